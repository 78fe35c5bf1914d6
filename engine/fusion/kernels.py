"""Fusion's Numba kernels: the per-lane loops of the model, compiled (``engine/fusion/model.py`` calls them;
each has its plain Python/NumPy reference there, and a hypothesis test keeps the two equal bit for bit).
No ``fastmath``: the same IEEE operations in the same order as the reference."""

from __future__ import annotations

import math

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


@njit(cache=True)
def green_sets_kernel(gp: np.ndarray, ph_ptr: np.ndarray, ph_mov: np.ndarray, ph_lane: np.ndarray,
                      ph_prot: np.ndarray, n_lanes: int, n_mov: int):
    """Lanes served, lanes served protected and movements green, by the phases ``gp`` (CSR walk)."""
    green = np.zeros(n_lanes, dtype=np.bool_)
    prot = np.zeros(n_lanes, dtype=np.bool_)
    movs = np.zeros(n_mov, dtype=np.bool_)
    for p in gp:
        for k in range(ph_ptr[p], ph_ptr[p + 1]):
            green[ph_lane[k]] = True
            movs[ph_mov[k]] = True
            if ph_prot[k]:
                prot[ph_lane[k]] = True
    return green, prot, movs


@njit(cache=True)
def shift_profile_kernel(prof_det: np.ndarray, adv_ok: np.ndarray, adv_n: np.ndarray, adv_k: np.ndarray) -> None:
    """Each lane's detected-arrivals profile one bin on; this tick's advance-loop crossings added at their bin;
    a lane whose advance loop is not usable has none."""
    n_l, H = prof_det.shape
    for lane in range(n_l):
        if not adv_ok[lane]:
            for kk in range(H):
                prof_det[lane, kk] = 0.0
            continue
        for kk in range(H - 1):
            prof_det[lane, kk] = prof_det[lane, kk + 1]
        prof_det[lane, H - 1] = 0.0
        if adv_n[lane] > 0:
            prof_det[lane, adv_k[lane]] += adv_n[lane]


@njit(cache=True)
def spread_profile_kernel(prof: np.ndarray, prof_det: np.ndarray, per_bin: np.ndarray, n_bins: np.ndarray) -> None:
    """prof = prof_det plus ``per_bin`` vehicles in each of the lane's first ``n_bins`` bins."""
    n_l, H = prof.shape
    for lane in range(n_l):
        v = per_bin[lane]
        z = 0.0 * v
        nb = n_bins[lane]
        for kk in range(H):
            prof[lane, kk] = prof_det[lane, kk] + (v if kk < nb else z)


@njit(cache=True)
def add_feed_kernel(prof: np.ndarray, mov_flow: np.ndarray, mov_out: np.ndarray, mov_j: np.ndarray,
                    plan_rem: np.ndarray, lane_len: np.ndarray, speed: np.ndarray, det_eta: np.ndarray) -> None:
    """Upstream plans' flows, arriving beyond the detection range, added to the downstream lanes' profiles."""
    H = prof.shape[1]
    for mv in range(mov_flow.shape[0]):
        if not (mov_flow[mv] > 0.0 and mov_out[mv] >= 0):
            continue
        o = mov_out[mv]
        rem = plan_rem[mov_j[mv]]
        if rem <= 0:
            continue
        tau = lane_len[o] / speed[o]
        a = max(tau, det_eta[o])
        b = min(tau + rem, float(H))
        if b <= a:
            continue
        ka, kb = int(a), math.ceil(b)
        f = mov_flow[mv]
        for k in range(ka, min(kb, H)):
            lo_ = a if a >= k else float(k)
            hi_ = b if b <= k + 1 else float(k + 1)
            if hi_ > lo_:
                prof[o, k] += f * (hi_ - lo_)


@njit(cache=True)
def label_kernel(t: float, start: float, count, occ, halt, last_seen, first_seen, last_change, other_events,
                 events_since_change, storage, stale_after: float, dead_after: float, no_data_after: float,
                 stuck_after: float, stuck_alone_after: float, dead_events: float, OK: int, STALE: int, STUCK: int,
                 DEAD: int, NO_DATA: int) -> np.ndarray:
    """Each detector's health at ``t`` from its timers and counters (``health.label_health``'s rules, in the
    same order: dead-silent, stuck, stale, dead, no-data, the later overriding the earlier)."""
    n_d = count.shape[0]
    h = np.empty(n_d, dtype=np.int8)
    window = t - start <= no_data_after
    for d in range(n_d):
        v = OK
        age = t - last_seen[d]
        const_for = t - last_change[d]
        nonzero = count[d] > 0 or occ[d] > 0 or halt[d] > 0
        if other_events[d] >= dead_events + storage[d]:
            v = DEAD
        if nonzero and ((const_for >= stuck_after and events_since_change[d] >= dead_events)
                        or const_for >= stuck_alone_after):
            v = STUCK
        if age > stale_after:
            v = STALE
        if age > dead_after:
            v = DEAD
        if window and np.isinf(first_seen[d]):
            v = NO_DATA
        h[d] = v
    return h


@njit(cache=True)
def assess_kernel(t: float, count, occ, halt, fresh, last_seen, first_seen, last_change, prev, other_events,
                  events_since_change, det_lane, det_kind, is_loop, lane_cam, cam_prev, cam_prev_valid,
                  n_lanes: int) -> None:
    """``health.assess_health`` up to the labels: timers, changes, and the vehicles the lane's other sensors saw
    (written in place)."""
    n_d = count.shape[0]
    seen = np.empty(n_d)
    changed = np.zeros(n_d, dtype=np.bool_)
    for d in range(n_d):
        f = fresh[d]
        if f:
            last_seen[d] = t
            if t < first_seen[d]:
                first_seen[d] = t
            same = count[d] == prev[d, 0] and occ[d] == prev[d, 1] and halt[d] == prev[d, 2]
            if not same:
                changed[d] = True
                last_change[d] = t
            prev[d, 0] = count[d]
            prev[d, 1] = occ[d]
            prev[d, 2] = halt[d]
        seen[d] = count[d] if (is_loop[d] and f) else 0.0
    for lane in range(n_lanes):
        cd = lane_cam[lane]
        if cd >= 0:
            if cam_prev_valid[lane] and fresh[cd]:
                seen[cd] = max(cam_prev[lane] - count[cd], 0.0)
            else:
                seen[cd] = 0.0
    ev = np.zeros((3, n_lanes))
    for d in range(n_d):
        ev[det_kind[d], det_lane[d]] += seen[d]
    for d in range(n_d):
        k, lane = det_kind[d], det_lane[d]
        if k == 0:
            others = max(ev[1, lane], ev[2, lane])
        elif k == 1:
            others = max(ev[0, lane], ev[2, lane])
        else:
            others = max(ev[0, lane], ev[1, lane])
        self_saw = seen[d] > 0 or ((not is_loop[d]) and fresh[d] and count[d] > 0 and occ[d] > 0)
        covered = is_loop[d] and fresh[d] and occ[d] >= 0.5
        if self_saw:
            other_events[d] = 0.0
        elif not covered:
            other_events[d] = other_events[d] + others
        if changed[d]:
            events_since_change[d] = 0.0
        else:
            events_since_change[d] = events_since_change[d] + others
