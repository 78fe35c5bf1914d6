"""Fusion's Numba kernels: the per-lane loops of the model, compiled (``engine/fusion/model.py`` calls them;
each has its plain Python/NumPy reference there, and a hypothesis test keeps the two equal bit for bit).
No ``fastmath``: the same IEEE operations in the same order as the reference."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def consume_profile_kernel(prof_det: np.ndarray, q: np.ndarray, prev_queue: np.ndarray) -> None:
    """Vehicles that joined the queue (q - prev_queue > 0) leave the earliest bins of the lane's profile."""
    n_l, H = prof_det.shape
    for lane in range(n_l):
        rem = max(q[lane] - prev_queue[lane], 0.0)
        if not rem > 0:
            continue
        for kk in range(H):
            if rem <= 0:
                break
            v = prof_det[lane, kk]
            take = v if v <= rem else rem
            prof_det[lane, kk] = v - take
            rem -= take
