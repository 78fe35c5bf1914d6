"""Signal policies: which green phase each junction should advance to, decided for all junctions at once.

Usage::

    from engine.policies import decide, get_policy, policy_net, make_state, make_observations, seed_rng

    net = policy_net(network)
    pol = get_policy("actuated")
    params = pol.default_params()            # or pol.params(GAP_THRESHOLD=2.5)
    rng = seed_rng(42, network.n_junctions)
    target = new_target(network.n_junctions)
    decide("actuated", t, net, state, obs, params, rng, target)   # == pol.kernel(t, net, ..., target)

Interface, array dtypes and the rules every policy follows: ``engine/policies/base.py``.
Registered policies (``POLICIES``): ``fixed``, ``actuated``, ``maxpressure``, ``random``.
"""

from __future__ import annotations

import numpy as np

from . import kernels, reference
from .base import (
    DEFAULT_PARAMS,
    HOLD,
    INTERVAL_ALLRED,
    INTERVAL_GREEN,
    INTERVAL_OFFLINE,
    INTERVAL_YELLOW,
    PARAM_ENUMS,
    WEIGHT_COUNT,
    WEIGHT_DENSITY,
    WEIGHT_QUEUE,
    ActuatedParam,
    FixedParam,
    JunctionState,
    MaxPressureParam,
    Observations,
    Policy,
    PolicyNet,
    RandomParam,
    UnknownPolicy,
    empty_observations,
    make_observations,
    make_policy_net,
    make_state,
    new_target,
    policy_net,
    seed_rng,
)

__all__ = [
    "DEFAULT_PARAMS",
    "HOLD",
    "INTERVAL_ALLRED",
    "INTERVAL_GREEN",
    "INTERVAL_OFFLINE",
    "INTERVAL_YELLOW",
    "PARAM_ENUMS",
    "POLICIES",
    "WEIGHT_COUNT",
    "WEIGHT_DENSITY",
    "WEIGHT_QUEUE",
    "ActuatedParam",
    "FixedParam",
    "JunctionState",
    "MaxPressureParam",
    "Observations",
    "Policy",
    "PolicyNet",
    "RandomParam",
    "UnknownPolicy",
    "decide",
    "empty_observations",
    "get_policy",
    "make_observations",
    "make_policy_net",
    "make_state",
    "new_target",
    "policy_net",
    "seed_rng",
    "warmup",
]

_REGISTRY: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy(
            "fixed",
            kernels.fixed_kernel,
            reference.fixed_reference,
            FixedParam,
            True,
            "the net's own program: advance to phase_next after phase_fixed",
        ),
        Policy(
            "actuated",
            kernels.actuated_kernel,
            reference.actuated_reference,
            ActuatedParam,
            True,
            "gap-out / max-out, next phase with a call in ring order",
        ),
        Policy(
            "maxpressure",
            kernels.maxpressure_kernel,
            reference.maxpressure_reference,
            MaxPressureParam,
            True,
            "Varaiya max pressure within min/max green",
        ),
        Policy(
            "random",
            kernels.random_kernel,
            reference.random_reference,
            RandomParam,
            False,
            "random phase with probability p_switch, any state: exercises controller safety",
        ),
    )
}

POLICIES: tuple[str, ...] = tuple(_REGISTRY)


def get_policy(name: str) -> Policy:
    """The registered policy ``name``; :class:`UnknownPolicy` (a KeyError and ValueError) otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownPolicy(f"unknown policy {name!r}; valid policies: {', '.join(POLICIES)}") from None


def _check(pol: Policy, net: PolicyNet, state: JunctionState, obs: Observations, params, rng, out_target):
    n_j = net.jn_phase_ptr.shape[0] - 1
    if out_target.dtype != np.int32 or out_target.shape != (n_j,):
        raise ValueError(f"out_target must be int32[{n_j}], got {out_target.dtype}{list(out_target.shape)}")
    if params.dtype != np.float64 or params.ndim != 1 or params.shape[0] < pol.n_params:
        raise ValueError(f"{pol.name} needs float64 params of length {pol.n_params} ({pol.param_names})")
    if rng.dtype != np.uint64 or rng.shape != (n_j,):
        raise ValueError(f"rng must be uint64[{n_j}] (see seed_rng)")
    for a in state:
        if a.shape != (n_j,):
            raise ValueError(f"JunctionState arrays must have length {n_j}")
    n_l = net.lane_length.shape[0]
    for a in obs:
        if a.shape != (n_l,):
            raise ValueError(f"Observations arrays must have length n_lanes={n_l}")


def decide(
    name: str,
    t: float,
    net_arrays: PolicyNet,
    state: JunctionState,
    obs: Observations,
    params: np.ndarray,
    rng: np.ndarray,
    out_target: np.ndarray,
    *,
    check: bool = True,
) -> None:
    """Run policy ``name``'s kernel for all junctions, writing ``out_target`` (int32[n_junctions]:
    HOLD = -1 or the global index of the green phase to advance to). ``rng`` is updated in place by
    ``random``. ``check=False`` skips the (cheap) shape/dtype checks."""
    pol = get_policy(name)
    if check:
        _check(pol, net_arrays, state, obs, params, rng, out_target)
    pol.kernel(float(t), net_arrays, state, obs, params, rng, out_target)


def _tiny_net() -> tuple[PolicyNet, JunctionState, Observations]:
    net = make_policy_net(
        jn_phase_ptr=[0, 2],
        phase_mov_ptr=[0, 1, 2],
        phase_mov_idx=[0, 1],
        mov_in_lane=[0, 1],
        mov_out_lane=[-1, -1],
        phase_min=[5.0, 5.0],
        phase_max=[30.0, 30.0],
        phase_fixed=[20.0, 20.0],
        phase_next=[1, 0],
        lane_length=[100.0, 100.0],
    )
    state = make_state([0], [INTERVAL_GREEN], [10.0], [True])
    return net, state, empty_observations(2)


def warmup(names: tuple[str, ...] | None = None) -> None:
    """Compile (or load from numba's cache) the kernels for the dtypes that ``policy_net``,
    ``make_state``, ``make_observations`` and ``seed_rng`` produce, so the first real tick is fast."""
    net, state, obs = _tiny_net()
    for name in names or POLICIES:
        pol = get_policy(name)
        pol.kernel(0.0, net, state, obs, pol.default_params(), seed_rng(0, 1), new_target(1))
