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
Registered policies (``POLICIES``): ``fixed``, ``actuated``, ``maxpressure``, ``random``, ``adaptive``.

``adaptive`` reads the extra fields of :class:`FusedObservations` (``engine/fusion/``) and writes
its plan into that object's plan arrays; given plain :class:`Observations` it runs with no predicted
arrivals, no waits and unlimited space (and discards its plan). The adapter below keeps the common
signature; the numba kernel itself is ``kernels.adaptive_core``.
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
    AdaptiveParam,
    FixedParam,
    FusedObservations,
    IntervalCode,
    JunctionState,
    MaxPressureParam,
    Observations,
    Policy,
    PolicyNet,
    RandomParam,
    UnknownPolicy,
    empty_observations,
    make_fused_observations,
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
    "AdaptiveParam",
    "FixedParam",
    "FusedObservations",
    "IntervalCode",
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
    "make_fused_observations",
    "make_observations",
    "make_policy_net",
    "make_state",
    "new_target",
    "policy_net",
    "seed_rng",
    "warmup",
]

def _adaptive_args(net, obs):
    """The adaptive core's extra arrays: from FusedObservations, or neutral ones for Observations."""
    if isinstance(obs, FusedObservations):
        return obs.rate, obs.wait, obs.space, obs.profile, obs.plan_rem, obs.plan_next, obs.mov_flow
    n_l = obs.queue.shape[0]
    n_j = net.jn_phase_ptr.shape[0] - 1
    z = np.zeros(n_l)
    return (z, z, np.full(n_l, 1e9), np.zeros((n_l, 1)), np.zeros(n_j), np.full(n_j, -1, np.int32),
            np.zeros(net.mov_in_lane.shape[0]))


def _adaptive_call(core, t, net, state, obs, params, out_target):
    rate, wait, space, profile, plan_rem, plan_next, mov_flow = _adaptive_args(net, obs)
    core(float(t), net, state, obs.queue, obs.gap, rate, wait, space, profile, params, out_target, plan_rem, plan_next,
         mov_flow)


def adaptive_kernel(t, net, state, obs, params, rng, out_target):
    """``adaptive`` with the common signature: runs the numba kernel ``kernels.adaptive_core``."""
    _adaptive_call(kernels.adaptive_core, t, net, state, obs, params, out_target)


def adaptive_reference(t, net, state, obs, params, rng, out_target):
    """``adaptive`` with the common signature: runs ``reference.adaptive_reference_core``."""
    _adaptive_call(reference.adaptive_reference_core, t, net, state, obs, params, out_target)


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
        Policy(
            "adaptive",
            adaptive_kernel,
            adaptive_reference,
            AdaptiveParam,
            True,
            "look-ahead schedule: extend while the delay saved beats the delay imposed; plans to neighbours",
            publishes_plans=True,
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
    for a in obs[:4]:
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
    ``make_state``, ``make_observations`` and ``seed_rng`` produce, so the first real tick is fast;
    also for :class:`FusedObservations` (what the engine's sensor fusion hands every policy)."""
    net, state, obs = _tiny_net()
    z = np.zeros(2)
    fused = make_fused_observations(z, z, np.full(2, 1e9), z, z, z, z, np.zeros((2, 60)), 1, 2)
    for name in names or POLICIES:
        pol = get_policy(name)
        for o in (obs, fused):
            pol.kernel(0.0, net, state, o, pol.default_params(), seed_rng(0, 1), new_target(1))
