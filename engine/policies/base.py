"""Common interface of the signal policies: input/output arrays, parameter vectors, rng seeding.

A *policy* looks at every junction of the network at once and proposes, per junction, which green
phase to advance to. It never times yellow or all-red and never enforces safety: the per-junction
controllers do that, and may refuse a proposal. Every policy exists twice, with the same signature:

- ``kernel``: a ``@numba.njit(cache=True)`` function (``engine/policies/kernels.py``), used at run time;
- ``reference``: plain Python/NumPy loops (``engine/policies/reference.py``), written independently
  and kept so the tests can prove the kernel implements the documented rule.

Signature (both)::

    fn(t, net, state, obs, params, rng, out_target) -> None

t : float
    Current time (s). Part of the interface for time-of-day policies; the four built-in policies only
    use ``state.since``.
net : PolicyNet
    Network arrays, from :func:`policy_net`.
state : JunctionState
    Arrays of length n_junctions (see :class:`JunctionState`).
obs : Observations
    Arrays of length n_lanes (see :class:`Observations`).
params : float64[n_params]
    The policy's parameter vector; ``DEFAULT_PARAMS[name]`` holds the defaults, the policy's IntEnum
    (``ActuatedParam``, ``MaxPressureParam``, ``RandomParam``) names the indices.
rng : uint64[n_junctions]
    Per-junction xorshift64* states, from :func:`seed_rng`; only ``random`` reads it, and updates it
    in place. The others ignore it (pass any uint64 array, e.g. the same one).
out_target : int32[n_junctions]
    Written for EVERY junction: :data:`HOLD` (-1) to hold / nothing to propose, otherwise the GLOBAL
    index of a green phase *of that junction* to advance to.

Rules common to ``fixed``, ``actuated``, ``maxpressure`` and ``adaptive`` (``respects_limits`` is True):
- they propose only for junctions with ``online[j]`` and ``interval[j] == INTERVAL_GREEN``; every other
  junction gets HOLD;
- a junction whose ``cur_phase`` is not one of its own green phases, or which has no green phases,
  gets HOLD; a proposal is never the current phase itself (that would be a no-op: HOLD instead) and
  never a phase of another junction.

``random`` proposes for every junction whatever its interval/online state, and may propose the
current phase: it is there to exercise the controllers' safety logic.

*Ring order* from ``cur`` (used for tie-breaks and for the actuated phase sequence): ``cur``, then
``phase_next[cur]``, ``phase_next[phase_next[cur]]``, ... until the walk leaves the junction's phases
or revisits a phase; then any of the junction's phases the walk never reached, by increasing index.
For a well-formed program (``phase_next`` a single cycle over the junction's phases) that is simply
the program's cycle starting at ``cur``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np

HOLD = -1


class IntervalCode(IntEnum):
    """``JunctionState.interval``: what each junction shows, as the kernels read it (int8)."""

    GREEN = 0
    YELLOW = 1
    ALLRED = 2
    OFFLINE = 3  # offline / fail-safe / local control: never command


# plain ints for the numba kernels (module constants are frozen into the compiled code)
INTERVAL_GREEN = int(IntervalCode.GREEN)
INTERVAL_YELLOW = int(IntervalCode.YELLOW)
INTERVAL_ALLRED = int(IntervalCode.ALLRED)
INTERVAL_OFFLINE = int(IntervalCode.OFFLINE)


class PolicyNet(NamedTuple):
    """The network arrays a policy kernel reads (all C-contiguous, dtypes as listed).

    jn_phase_ptr  int32[n_j + 1]      junction j's green phases are jn_phase_ptr[j]:jn_phase_ptr[j+1]
    phase_mov_ptr int32[n_phases + 1] phase p serves movements phase_mov_idx[phase_mov_ptr[p]:phase_mov_ptr[p+1]]
    phase_mov_idx int32[nnz]
    mov_in_lane   int32[n_mov]        incoming lane of each movement
    mov_out_lane  int32[n_mov]        downstream controlled lane (incoming lane of the next junction) or -1
    phase_min     float64[n_phases]   min green (s)
    phase_max     float64[n_phases]   max green (s)
    phase_fixed   float64[n_phases]   the net program's green (s)
    phase_next    int32[n_phases]     the net program's next green phase (global index)
    lane_length   float64[n_lanes]    m
    phase_change  float64[n_phases]   the net's yellow + all-red after the phase (s; 0 where unknown)
    jn_cross_ptr    int32[n_j + 1]        junction j's signalised crossings are jn_cross_ptr[j]:jn_cross_ptr[j+1]
    phase_cross_ptr int32[n_phases + 1]   phase p shows green (G/g) to the crossings
    phase_cross_idx int32[nnz]            phase_cross_idx[phase_cross_ptr[p]:phase_cross_ptr[p+1]] (global indices)
    cross_seen      float64[n_cross]      MEMORY, written by ``adaptive`` on every call: the last time (the
                                          policy's ``t``) each crossing was seen green, NaN before the first call

    A *crossing* (:func:`policy_net`) is a link of a junction's signal string that no vehicle lane feeds
    (``JunctionSpec.link_in_lane[i] == ''``: netcompile leaves it empty for pedestrian crossings) and that
    some green phase of the junction shows green; a net without them has ``n_cross = 0`` and every policy
    behaves as before. ``cross_seen`` is the only state a policy keeps between calls: one PolicyNet per run
    (the engine builds its own with :func:`policy_net`).
    """

    jn_phase_ptr: np.ndarray
    phase_mov_ptr: np.ndarray
    phase_mov_idx: np.ndarray
    mov_in_lane: np.ndarray
    mov_out_lane: np.ndarray
    phase_min: np.ndarray
    phase_max: np.ndarray
    phase_fixed: np.ndarray
    phase_next: np.ndarray
    lane_length: np.ndarray
    phase_change: np.ndarray
    jn_cross_ptr: np.ndarray
    phase_cross_ptr: np.ndarray
    phase_cross_idx: np.ndarray
    cross_seen: np.ndarray


class JunctionState(NamedTuple):
    """Per-junction controller state, arrays of length n_junctions.

    cur_phase int32    global green phase index currently served (or being left during yellow/all-red)
    interval  int8     INTERVAL_GREEN 0, INTERVAL_YELLOW 1, INTERVAL_ALLRED 2, INTERVAL_OFFLINE 3
    since     float64  seconds spent in the current interval
    online    bool     the controller accepts engine commands
    """

    cur_phase: np.ndarray
    interval: np.ndarray
    since: np.ndarray
    online: np.ndarray


class Observations(NamedTuple):
    """Per-lane observations, arrays of length n_lanes (float64).

    queue     halting vehicles on the approach
    count     vehicles on the approach within the detection area
    gap       seconds since the last vehicle crossed the lane's stop-line or advance loop (large if none)
    presence  stop-line occupancy now, 0..1
    """

    queue: np.ndarray
    count: np.ndarray
    gap: np.ndarray
    presence: np.ndarray


class FusedObservations(NamedTuple):
    """A superset of :class:`Observations` from sensor fusion (``engine/fusion/``): the first four
    fields have the same meaning, so every policy accepts it; the adaptive policy reads the rest.

    rate       float64[n_lanes]         arrival rate, veh/s
    wait       float64[n_lanes]         seconds the lane has had a standing queue (0 if none)
    space      float64[n_lanes]         free storage on the lane, vehicles (may be < 0 when over-full)
    profile    float64[n_lanes, H]      vehicles predicted to reach the stop line k..k+1 s from now, not queued
    plan_rem   float64[n_junctions]     OUT (adaptive): predicted remaining green of the current phase, s
    plan_next  int32[n_junctions]       OUT (adaptive): predicted next phase (global index) or -1
    mov_flow   float64[n_movements]     OUT (adaptive): predicted outflow of each movement while its green lasts, veh/s
    """

    queue: np.ndarray
    count: np.ndarray
    gap: np.ndarray
    presence: np.ndarray
    rate: np.ndarray
    wait: np.ndarray
    space: np.ndarray
    profile: np.ndarray
    plan_rem: np.ndarray
    plan_next: np.ndarray
    mov_flow: np.ndarray


def make_fused_observations(queue, count, gap, presence, rate, wait, space, profile, n_junctions, n_movements):
    """FusedObservations with the documented dtypes; the plan arrays are fresh outputs."""
    f = [np.ascontiguousarray(a, dtype=np.float64) for a in (queue, count, gap, presence, rate, wait, space)]
    prof = np.ascontiguousarray(profile, dtype=np.float64)
    if prof.ndim != 2 or prof.shape[0] != f[0].shape[0] or prof.shape[1] < 1:
        raise ValueError("profile must be float64[n_lanes, H >= 1]")
    return FusedObservations(
        *f, prof, np.zeros(n_junctions), np.full(n_junctions, -1, dtype=np.int32), np.zeros(n_movements)
    )


_NET_DTYPES = {
    "jn_phase_ptr": np.int32,
    "phase_mov_ptr": np.int32,
    "phase_mov_idx": np.int32,
    "mov_in_lane": np.int32,
    "mov_out_lane": np.int32,
    "phase_min": np.float64,
    "phase_max": np.float64,
    "phase_fixed": np.float64,
    "phase_next": np.int32,
    "lane_length": np.float64,
    "phase_change": np.float64,
    "jn_cross_ptr": np.int32,
    "phase_cross_ptr": np.int32,
    "phase_cross_idx": np.int32,
    "cross_seen": np.float64,
}
_DERIVED = ("phase_change", "jn_cross_ptr", "phase_cross_ptr", "phase_cross_idx", "cross_seen")


def make_policy_net(**arrays) -> PolicyNet:
    """PolicyNet from keyword arrays (the field names), coerced to the documented dtypes, contiguous.
    ``phase_change`` may be left out (zeros: no change longer than a policy's own lost time), and so may
    the crossing arrays (no crossings); ``cross_seen`` left out is NaN for every crossing (none seen yet)."""
    n_ph = len(arrays["phase_min"])
    n_j = len(arrays["jn_phase_ptr"]) - 1
    n_cross = int(np.asarray(arrays["jn_cross_ptr"])[-1]) if "jn_cross_ptr" in arrays else 0
    defaults = {"phase_change": np.zeros(n_ph), "jn_cross_ptr": np.zeros(n_j + 1),
                "phase_cross_ptr": np.zeros(n_ph + 1), "phase_cross_idx": np.zeros(0),
                "cross_seen": np.full(n_cross, np.nan)}
    arrays = {**defaults, **arrays}
    return PolicyNet(**{k: np.array(arrays[k], dtype=dt, order="C") if k == "cross_seen"  # memory: a copy
                        else np.ascontiguousarray(arrays[k], dtype=dt) for k, dt in _NET_DTYPES.items()})


def crossing_arrays(junctions, jn_phase_ptr) -> dict[str, np.ndarray]:
    """``jn_cross_ptr``, ``phase_cross_ptr`` and ``phase_cross_idx`` from the junction specs (one per junction,
    in the network's order; green phase k of junction j is the global phase ``jn_phase_ptr[j] + k``). A crossing:
    a link with no incoming vehicle lane (``link_in_lane[i] == ''``) that some green phase shows ``G``/``g``;
    numbered junction by junction, in link order."""
    ptr = [int(x) for x in jn_phase_ptr]
    n_ph = ptr[-1] if ptr else 0
    jn_cross = [0]
    per_phase: list[list[int]] = [[] for _ in range(n_ph)]
    n = 0
    for j, spec in enumerate(junctions):
        states = list(spec.green_states)[: ptr[j + 1] - ptr[j]]
        for i, lane in enumerate(spec.link_in_lane):
            if lane:
                continue
            green_in = [k for k, s in enumerate(states) if i < len(s) and s[i] in "Gg"]
            if not green_in:
                continue  # never green: nothing a policy could serve
            for k in green_in:
                per_phase[ptr[j] + k].append(n)
            n += 1
        jn_cross.append(n)
    return {
        "jn_cross_ptr": np.asarray(jn_cross, dtype=np.int32),
        "phase_cross_ptr": np.cumsum([0] + [len(c) for c in per_phase]).astype(np.int32),
        "phase_cross_idx": np.asarray([c for cs in per_phase for c in cs], dtype=np.int32),
    }


def policy_net(network) -> PolicyNet:
    """The arrays of an :class:`engine.network.Network` (or anything with those attributes). The crossings
    come from ``network.junctions`` (the specs) where it has one per junction; otherwise there are none."""
    arrays = {k: getattr(network, k) for k in _NET_DTYPES if k not in _DERIVED}
    if hasattr(network, "phase_yellow") and hasattr(network, "phase_allred"):
        arrays["phase_change"] = np.asarray(network.phase_yellow, float) + np.asarray(network.phase_allred, float)
    specs = list(getattr(network, "junctions", None) or [])
    if specs and len(specs) == len(arrays["jn_phase_ptr"]) - 1:
        arrays.update(crossing_arrays(specs, arrays["jn_phase_ptr"]))
    return make_policy_net(**arrays)


def make_state(cur_phase, interval, since, online) -> JunctionState:
    """JunctionState with the documented dtypes (copies only where a conversion is needed)."""
    return JunctionState(
        np.ascontiguousarray(cur_phase, dtype=np.int32),
        np.ascontiguousarray(interval, dtype=np.int8),
        np.ascontiguousarray(since, dtype=np.float64),
        np.ascontiguousarray(online, dtype=np.bool_),
    )


def make_observations(queue, count, gap, presence) -> Observations:
    """Observations with the documented dtype (float64)."""
    return Observations(*(np.ascontiguousarray(a, dtype=np.float64) for a in (queue, count, gap, presence)))


def empty_observations(n_lanes: int, gap: float = 1e9) -> Observations:
    """No vehicles anywhere (gap large)."""
    z = np.zeros(n_lanes)
    return Observations(z, z.copy(), np.full(n_lanes, float(gap)), z.copy())


def new_target(n_junctions: int) -> np.ndarray:
    """An out_target array (int32, filled with HOLD)."""
    return np.full(n_junctions, HOLD, dtype=np.int32)


# -- parameters ----------------------------------------------------------------------------------


class FixedParam(IntEnum):
    """``fixed`` takes no parameters (an empty vector)."""


class ActuatedParam(IntEnum):
    GAP_THRESHOLD = 0  # s; the phase extends while a served lane has gap < this (default 3.0)


class MaxPressureParam(IntEnum):
    WEIGHT = 0  # which observation weighs a lane: WEIGHT_COUNT (default), WEIGHT_QUEUE, WEIGHT_DENSITY
    HYSTERESIS = 1  # switch only if pressure[best] > pressure[cur] + this (default 0.0)


class AdaptiveParam(IntEnum):
    """Parameters of ``adaptive`` (docs/adaptive.md); one frozen set for every map."""

    SAT_HEADWAY = 0  # s per vehicle and lane when a queue discharges (default 2.0)
    LOST_TIME = 1  # s lost per phase change, yellow + all-red (default 4.0)
    EXT_HORIZON = 2  # s, longest extension window looked at (default 20)
    KAPPA = 3  # weight of the delay imposed on other phases against the delay saved (default 2.0)
    SCORE_HORIZON = 4  # s of predicted arrivals counted in a phase's demand (default 20)
    AGE_WEIGHT = 5  # vehicles per second of head-of-queue wait added to a phase's demand (default 0.05)
    MAX_WAIT = 6  # s; a queue waiting this long forces a switch after min green (default 120)
    STALL_GAP = 7  # s; a served lane with a queue but no crossing for this long is stalled (default 5)
    RING = 8  # >= 0.5: the next phase is the first in ring order with demand; else the largest demand
    QUEUE_CLEAR = 9  # >= 0.5: a standing queue being discharged is one cluster, never split (default 1);
    # >= 1.5: only while it discharges at saturation (a crossing within 1.5 SAT_HEADWAY)
    CLEAR_MAX = 10  # s of green up to which QUEUE_CLEAR holds a discharging queue (default 20 = 5 LOST_TIME)
    STOP_COST = 11  # s charged per stop an extension spares or causes (default 10; 0: stops not counted)
    SHIFT = 12  # weight of the arrivals a later change stops instead (lane rate x e; 0: not counted)
    ORDER_PREF = 13  # > 0: the first phase in ring order with demand is next while ORDER_PREF x its demand
    # >= the largest demand (a change in the program's order costs no extra all-red; 0: free choice)
    PED_MAX_WAIT = 14  # s; a signalised crossing not green for this long makes the next phase one that shows it
    # green, after the current minimum green (a recall: there is no pedestrian detection; <= 0: off)
    SPILL_SPACE = 15  # vehicles of free storage a movement's downstream lane must have for the movement to move
    # (spill-back: a movement into a fuller lane is not served; default 1)
    SPILL_ALL = 16  # >= 0.5: a lane moves in a phase only when every one of its movements there can (a shared
    # lane's head vehicle blocks it when its own exit is full); else when one can (default 0)
    SPILL_ENTRY = 17  # a movement from a lane no junction feeds (an entry of the controlled area) needs this
    # fraction of its downstream lane's storage (lane_length / JAM_SPACING) free, when more than SPILL_SPACE:
    # the last places of a lane are kept for the vehicles already inside (default 0: SPILL_SPACE for every lane)


JAM_SPACING = 7.5  # m per standing vehicle: a lane's storage (as fusion counts it)


class RandomParam(IntEnum):
    P_SWITCH = 0  # probability per tick and junction of proposing a random phase (default 0.3)


# values of MaxPressureParam.WEIGHT (rounded to the nearest integer; anything else counts as COUNT)
WEIGHT_COUNT = 0  # w(l) = obs.count[l]
WEIGHT_QUEUE = 1  # w(l) = obs.queue[l]
WEIGHT_DENSITY = 2  # w(l) = obs.count[l] / max(lane_length[l], 1.0)   (vehicles per metre)

PARAM_ENUMS: dict[str, type[IntEnum]] = {
    "fixed": FixedParam,
    "actuated": ActuatedParam,
    "maxpressure": MaxPressureParam,
    "random": RandomParam,
    "adaptive": AdaptiveParam,
}


def _defaults(enum: type[IntEnum], values: dict) -> np.ndarray:
    a = np.zeros(len(enum), dtype=np.float64)
    for k, v in values.items():
        a[enum[k]] = v
    a.setflags(write=False)  # shared: copy with Policy.default_params() before editing
    return a


DEFAULT_PARAMS: dict[str, np.ndarray] = {
    "fixed": _defaults(FixedParam, {}),
    "actuated": _defaults(ActuatedParam, {"GAP_THRESHOLD": 3.0}),
    "maxpressure": _defaults(MaxPressureParam, {"WEIGHT": WEIGHT_COUNT, "HYSTERESIS": 0.0}),
    "random": _defaults(RandomParam, {"P_SWITCH": 0.3}),
    "adaptive": _defaults(
        AdaptiveParam,
        {
            "SAT_HEADWAY": 2.0,
            "LOST_TIME": 4.0,
            "EXT_HORIZON": 20.0,
            "KAPPA": 2.0,
            "SCORE_HORIZON": 20.0,
            "AGE_WEIGHT": 0.05,
            "MAX_WAIT": 120.0,
            "STALL_GAP": 5.0,
            "RING": 0.0,
            "QUEUE_CLEAR": 1.0,
            "CLEAR_MAX": 20.0,
            "STOP_COST": 10.0,
            "SHIFT": 0.0,
            "ORDER_PREF": 0.0,
            "PED_MAX_WAIT": 60.0,
            "SPILL_SPACE": 1.0,
            "SPILL_ALL": 1.0,
            "SPILL_ENTRY": 0.5,
        },
    ),
}


# -- random number generation ----------------------------------------------------------------------

MASK64 = (1 << 64) - 1
XORSHIFT_MULT = 0x2545F4914F6CDD1D  # xorshift64* output multiplier
_SPLITMIX_GAMMA = 0x9E3779B97F4A7C15


def seed_rng(seed: int, n_junctions: int) -> np.ndarray:
    """Per-junction xorshift64* states (uint64[n_junctions], never 0), from a splitmix64 stream.

    The generator (identical in kernel and reference), per draw::

        x ^= x >> 12; x ^= x << 25 (mod 2**64); x ^= x >> 27; state = x
        r = x * 0x2545F4914F6CDD1D (mod 2**64)
        uniform u = (r >> 11) * 2**-53 in [0, 1); bounded k = ((r >> 32) * n) >> 32 in [0, n)
    """
    out = np.empty(n_junctions, dtype=np.uint64)
    s = int(seed) & MASK64
    for j in range(n_junctions):
        s = (s + _SPLITMIX_GAMMA) & MASK64
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        out[j] = z if z != 0 else _SPLITMIX_GAMMA
    return out


# -- registry types ----------------------------------------------------------------------------------


class UnknownPolicy(KeyError, ValueError):
    """Raised by :func:`engine.policies.get_policy` for a name not in ``POLICIES`` (a KeyError and a
    ValueError, so either ``except`` catches it)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Policy:
    """A registered policy. ``kernel`` and ``reference`` share the signature in the module docstring."""

    name: str
    kernel: Callable
    reference: Callable
    param_enum: type[IntEnum]
    respects_limits: bool  # True: proposes only for online green junctions, never before min green
    # (fixed: at phase_fixed) nor a no-op; False (random): proposes anything, anytime
    doc: str = ""
    publishes_plans: bool = False  # True: the kernel writes plan arrays the engine publishes as ``Plan``

    @property
    def n_params(self) -> int:
        return len(self.param_enum)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.param_enum)

    def default_params(self) -> np.ndarray:
        """A fresh, writable copy of ``DEFAULT_PARAMS[name]``."""
        return np.array(DEFAULT_PARAMS[self.name], dtype=np.float64, copy=True)

    def params(self, **overrides: float) -> np.ndarray:
        """Default params with some entries replaced by name, e.g. ``params(GAP_THRESHOLD=2.5)``."""
        p = self.default_params()
        for k, v in overrides.items():
            try:
                p[self.param_enum[k.upper()]] = v
            except KeyError:
                raise KeyError(f"{self.name} has no parameter {k!r}; valid: {self.param_names}") from None
        return p
