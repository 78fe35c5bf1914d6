"""The adaptive policy: numba kernel == NumPy/Python reference, and its behaviour (docs/adaptive.md)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_policies import hand_net, scenario

from engine.policies import (
    DEFAULT_PARAMS,
    HOLD,
    INTERVAL_GREEN,
    AdaptiveParam,
    get_policy,
    make_fused_observations,
    make_policy_net,
    make_state,
    new_target,
    seed_rng,
)

HYP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POL = get_policy("adaptive")


def fused(n_lanes, n_j, n_mov, queue=None, gap=None, profile=None, wait=None, space=None, rate=None, H=20):
    def arr(d, default):
        a = np.full(n_lanes, float(default))
        for k, v in (d or {}).items():
            a[k] = v
        return a

    prof = np.zeros((n_lanes, H))
    for lane, bins in (profile or {}).items():
        for k, v in bins.items():
            prof[lane, k] = v
    q = arr(queue, 0.0)
    return make_fused_observations(q, q.copy(), arr(gap, 1e6), np.zeros(n_lanes), arr(rate, 0.0), arr(wait, 0.0),
                                   arr(space, 50.0), prof, n_j, n_mov)


def both(net, state, obs, params=None, t=0.0, seen=None):
    """Kernel and reference on the same inputs, each on its own copy of the crossings' memory; their
    outputs and memories must be equal. ``seen``: an array the kernel's memory is copied into afterwards."""
    params = POL.default_params() if params is None else params
    n_j = len(net.jn_phase_ptr) - 1
    outs = []
    memory = []
    for fn in (POL.kernel, POL.reference):
        run_net = net._replace(cross_seen=net.cross_seen.copy())  # the policy's memory: one copy each
        memory.append(run_net.cross_seen)
        o = obs._replace(plan_rem=np.full(n_j, -7.0), plan_next=np.full(n_j, 99, np.int32),
                         mov_flow=np.full(net.mov_in_lane.shape[0], -7.0))
        out = np.full(n_j, 12345, np.int32)
        fn(t, run_net, state, o, params, seed_rng(1, n_j), out)
        outs.append((out, o.plan_rem, o.plan_next, o.mov_flow))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(*memory)
    if seen is not None:
        seen[:] = memory[0]
    return outs[0]


VALS = [0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 3.0, 7.0]


@st.composite
def fused_scenario(draw):
    net, state, obs = draw(scenario())
    # the net's own yellow + all-red after each phase: none, short, or a long clearance (alternate one-way)
    change = draw(st.lists(st.sampled_from([0.0, 3.0, 20.0]), min_size=len(net.phase_min), max_size=len(net.phase_min)))
    net = net._replace(phase_change=np.array(change, dtype=np.float64))
    n_l = len(net.lane_length)
    n_j = len(net.jn_phase_ptr) - 1
    H = draw(st.integers(1, 12))

    def lane_vals(vals):
        return np.array(draw(st.lists(st.sampled_from(vals), min_size=n_l, max_size=n_l)), dtype=np.float64)

    prof = np.array(
        draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.25, 1.0, 2.0]), min_size=n_l * H, max_size=n_l * H))
    ).reshape(n_l, H)
    # signalised crossings: per junction 0-3, each shown green by some of the junction's phases (or by none,
    # or, as a malformed net, by another junction's), remembered as never seen, seen now, or long ago
    n_ph = len(net.phase_min)
    jn_cross, per_phase, seen = [0], [[] for _ in range(n_ph)], []
    for j in range(n_j):
        mine = list(range(int(net.jn_phase_ptr[j]), int(net.jn_phase_ptr[j + 1])))
        for _ in range(draw(st.integers(0, 3))):
            c = len(seen)
            pool = mine if draw(st.integers(0, 9)) else list(range(n_ph))
            for p in draw(st.lists(st.sampled_from(pool), unique=True, max_size=3)) if pool else []:
                per_phase[p].append(c)
            seen.append(draw(st.sampled_from([np.nan, 0.0, -30.0, -60.0, -89.5, -90.0, -200.0, 5.0])))
        jn_cross.append(len(seen))
    net = net._replace(jn_cross_ptr=np.array(jn_cross, np.int32),
                       phase_cross_ptr=np.cumsum([0] + [len(c) for c in per_phase]).astype(np.int32),
                       phase_cross_idx=np.array([c for cs in per_phase for c in cs], np.int32),
                       cross_seen=np.array(seen, np.float64))
    fo = make_fused_observations(obs.queue, obs.count, obs.gap, obs.presence, lane_vals([0.0, 0.1, 0.5, 1.0]),
                                 lane_vals([0.0, 0.0, 10.0, 130.0]), lane_vals([-2.0, 0.0, 0.5, 1.0, 30.0]), prof,
                                 n_j, net.mov_in_lane.shape[0])
    return net, state, fo


@HYP
@given(
    sc=fused_scenario(),
    sat=st.sampled_from([2.0, 0.05, 1.5]),
    kappa=st.sampled_from([1.0, 0.0, 3.0]),
    ext=st.sampled_from([10.0, 0.0, 3.5, 40.0]),
    score_h=st.sampled_from([10.0, 0.0, 2.5]),
    ring=st.sampled_from([0.0, 1.0]),
    max_wait=st.sampled_from([120.0, 5.0]),
    stall=st.sampled_from([5.0, 0.0, 1e9]),
    qc=st.sampled_from([0.0, 1.0, 2.0]),
    clear_max=st.sampled_from([20.0, 0.0, 7.5, 1e9]),
    stop=st.sampled_from([9.0, 0.0, 30.0]),
    lost=st.sampled_from([4.0, 0.0, 2.5, 1e9]),
    shift=st.sampled_from([0.0, 1.0, 0.5]),
    order=st.sampled_from([0.0, 2.0, 1.0]),
    ped=st.sampled_from([90.0, 0.0, 60.0, 1e-9]),
    spill=st.sampled_from([1.0, 0.0, 0.75, 5.0, 31.0]),
    spill_all=st.sampled_from([0.0, 1.0]),
    entry=st.sampled_from([0.0, 0.5, 0.05]),
)
def test_kernel_matches_reference(sc, sat, kappa, ext, score_h, ring, max_wait, stall, qc, clear_max, stop, lost,
                                  shift, order, ped, spill, spill_all, entry):
    net, state, obs = sc
    params = POL.params(SAT_HEADWAY=sat, KAPPA=kappa, EXT_HORIZON=ext, SCORE_HORIZON=score_h, RING=ring,
                        MAX_WAIT=max_wait, STALL_GAP=stall, QUEUE_CLEAR=qc, CLEAR_MAX=clear_max, STOP_COST=stop,
                        LOST_TIME=lost, SHIFT=shift, ORDER_PREF=order, PED_MAX_WAIT=ped, SPILL_SPACE=spill,
                        SPILL_ALL=spill_all, SPILL_ENTRY=entry)
    out, *_ = both(net, state, obs, params)
    for j, tgt in enumerate(out):  # the rules of base.py
        if tgt == HOLD:
            continue
        assert state.online[j] and state.interval[j] == INTERVAL_GREEN
        assert net.jn_phase_ptr[j] <= tgt < net.jn_phase_ptr[j + 1]
        assert tgt != state.cur_phase[j]
        assert state.since[j] >= net.phase_min[state.cur_phase[j]]


@HYP
@given(sc=scenario())
def test_kernel_matches_reference_on_plain_observations(sc):
    net, state, obs = sc
    n_j = len(net.jn_phase_ptr) - 1
    outs = []
    for fn in (POL.kernel, POL.reference):
        out = new_target(n_j)
        fn(0.0, net, state, obs, POL.default_params(), seed_rng(0, n_j), out)
        outs.append(out)
    np.testing.assert_array_equal(*outs)


def test_hand_net_grid():
    net = hand_net()
    rs = np.random.default_rng(3)
    for _ in range(300):
        state = make_state([int(rs.integers(0, 4)), int(rs.integers(4, 6))], rs.choice([0, 0, 1], 2),
                           rs.choice([0.0, 5.0, 7.0, 12.0, 30.0, 45.0], 2), rs.random(2) < 0.9)
        obs = make_fused_observations(rs.integers(0, 5, 9), rs.integers(0, 5, 9), rs.choice([0.5, 3.0, 9.0], 9),
                                      np.zeros(9), rs.random(9) * 0.3, rs.choice([0.0, 20.0, 150.0], 9),
                                      rs.choice([0.0, 5.0, 40.0], 9), rs.random((9, 15)) * (rs.random((9, 15)) < 0.2),
                                      2, 11)
        both(net, state, obs)


# -- behaviour on a plain 2-phase junction: lane 0 served by phase 0, lane 1 by phase 1 ----------------


def two_phase():
    return make_policy_net(
        jn_phase_ptr=[0, 2], phase_mov_ptr=[0, 1, 2], phase_mov_idx=[0, 1], mov_in_lane=[0, 1],
        mov_out_lane=[-1, -1], phase_min=[5.0, 5.0], phase_max=[60.0, 60.0], phase_fixed=[30.0, 30.0],
        phase_next=[1, 0], lane_length=[200.0, 200.0],
    )


def green(phase, since):
    return make_state([phase], [INTERVAL_GREEN], [since], [True])


def test_defaults_are_the_frozen_set():
    p = DEFAULT_PARAMS["adaptive"]
    assert p[AdaptiveParam.SAT_HEADWAY] == 2.0 and p[AdaptiveParam.LOST_TIME] == 4.0
    assert p[AdaptiveParam.RING] == 0.0 and len(p) == len(AdaptiveParam)


def test_never_switches_before_min_green():
    net = two_phase()
    obs = fused(2, 1, 2, queue={1: 30.0}, wait={1: 500.0})
    for since in (0.0, 2.0, 4.999):
        out, *_ = both(net, green(0, since), obs)
        assert out[0] == HOLD
    out, *_ = both(net, green(0, 5.0), obs)
    assert out[0] == 1


def test_extends_while_a_platoon_arrives():
    net = two_phase()
    platoon = {0: {1: 2.0, 2: 2.0, 3: 1.0}}  # five vehicles reach the stop line within 4 s
    obs = fused(2, 1, 2, queue={1: 2.0}, profile=platoon, gap={0: 1.0})
    out, _rem, nxt, flow = both(net, green(0, 12.0), obs)
    assert out[0] == HOLD
    assert nxt[0] == 1 and flow[0] == 0.0  # no queue: flow = rate (0) while green
    # the same green without the platoon: the waiting vehicles get the green
    out, *_ = both(net, green(0, 12.0), fused(2, 1, 2, queue={1: 2.0}, gap={0: 1.0}))
    assert out[0] == 1


def test_a_stop_saved_counts_on_both_sides_of_the_extension():
    """One vehicle reaches the green lane in 3-4 s, two wait across the junction (R = 4 + 4 + 5 = 13 s).
    The wait it saves alone (1 x 13) is less than the delay imposed (KAPPA 2 x 4 s x 2 vehicles = 16);
    with the stop it is spared (STOP_COST 10) the green is held. If changing now lets four vehicles reach
    the other phase's empty lane on green, sparing them a stop each, the change comes now, unless that
    lane could not move anyway (its downstream lane is full)."""
    net = make_policy_net(
        jn_phase_ptr=[0, 2], phase_mov_ptr=[0, 1, 3], phase_mov_idx=[0, 1, 2], mov_in_lane=[0, 1, 2],
        mov_out_lane=[-1, -1, 3], phase_min=[5.0, 5.0], phase_max=[60.0, 60.0], phase_fixed=[30.0, 30.0],
        phase_next=[1, 0], lane_length=[200.0] * 4,
    )
    one = {0: {3: 1.0}}
    assert DEFAULT_PARAMS["adaptive"][AdaptiveParam.STOP_COST] == 10.0
    obs = fused(4, 1, 3, queue={1: 2.0}, profile=one)
    assert both(net, green(0, 12.0), obs)[0][0] == HOLD
    assert both(net, green(0, 12.0), obs, POL.params(STOP_COST=0.0))[0][0] == 1
    after_change = {**one, 2: {4: 1.0, 5: 1.0, 6: 1.0, 7: 1.0}}
    assert both(net, green(0, 12.0), fused(4, 1, 3, queue={1: 2.0}, profile=after_change))[0][0] == 1
    blocked = fused(4, 1, 3, queue={1: 2.0}, profile=after_change, space={3: 0.0})
    assert both(net, green(0, 12.0), blocked)[0][0] == HOLD



def test_a_movement_into_a_lane_without_space_is_not_served():
    """Phase 1 serves lane 1, a shared lane: one movement to lane 3 (downstream, controlled), one leaving the net.
    Lane 3 with 2 vehicles of space: served with SPILL_SPACE 1 or 2; not with SPILL_SPACE 3 while every movement
    must move (SPILL_ALL, the default: the head vehicle bound for lane 3 blocks the lane); with SPILL_ALL off,
    the movement leaving the net keeps the lane open whatever lane 3's space. (SPILL_ENTRY off: lane 1 is an
    entry of the controlled area; the next test is about it.)"""
    net = make_policy_net(
        jn_phase_ptr=[0, 2], phase_mov_ptr=[0, 1, 3], phase_mov_idx=[0, 1, 2], mov_in_lane=[0, 1, 1],
        mov_out_lane=[-1, 3, -1], phase_min=[5.0, 5.0], phase_max=[60.0, 60.0], phase_fixed=[30.0, 30.0],
        phase_next=[1, 0], lane_length=[200.0] * 4,
    )
    assert DEFAULT_PARAMS["adaptive"][AdaptiveParam.SPILL_ALL] == 1.0

    def params(**kw):
        return POL.params(SPILL_ENTRY=0.0, **kw)

    obs = fused(4, 1, 3, queue={1: 4.0}, space={3: 2.0})
    assert both(net, green(0, 6.0), obs, params())[0][0] == 1
    assert both(net, green(0, 6.0), obs, params(SPILL_SPACE=3.0, SPILL_ALL=0.0))[0][0] == 1
    assert both(net, green(0, 6.0), obs, params(SPILL_SPACE=3.0))[0][0] == HOLD
    assert both(net, green(0, 6.0), obs, params(SPILL_SPACE=2.0))[0][0] == 1
    # a lane of the current phase feeding a full lane is not held for (queue clearing, extension)
    net1 = net._replace(phase_mov_idx=np.array([0, 1, 2], np.int32), mov_in_lane=np.array([1, 1, 0], np.int32),
                        mov_out_lane=np.array([3, -1, -1], np.int32), phase_mov_ptr=np.array([0, 2, 3], np.int32))
    obs = fused(4, 1, 3, queue={0: 3.0, 1: 6.0}, gap={1: 1.0}, space={3: 0.5})
    assert both(net1, green(0, 8.0), obs, params(SPILL_ALL=0.0))[0][0] == HOLD
    assert both(net1, green(0, 8.0), obs, params())[0][0] == 1


def test_the_last_places_of_a_lane_are_kept_for_the_vehicles_inside():
    """SPILL_ENTRY (default 0.5): a movement from a lane that no junction feeds (an entry of the controlled area)
    moves only while its downstream lane has that share of its storage (200 m / 7.5 m = 26.7 vehicles) free; a
    lane fed by a junction (lane 2, fed by lane 0's movement) needs only SPILL_SPACE (1 vehicle)."""
    net = make_policy_net(
        jn_phase_ptr=[0, 2, 3], phase_mov_ptr=[0, 1, 2, 3], phase_mov_idx=[0, 1, 2], mov_in_lane=[0, 1, 2],
        mov_out_lane=[2, 3, 3], phase_min=[5.0, 5.0, 5.0], phase_max=[60.0] * 3, phase_fixed=[30.0] * 3,
        phase_next=[1, 0, 2], lane_length=[200.0] * 4,
    )
    state = make_state([0, 2], [INTERVAL_GREEN, INTERVAL_GREEN], [6.0, 6.0], [True, True])
    assert DEFAULT_PARAMS["adaptive"][AdaptiveParam.SPILL_ENTRY] == 0.5
    obs = fused(4, 2, 3, queue={1: 4.0, 2: 4.0}, space={2: 50.0, 3: 10.0})
    assert both(net, state, obs)[0][0] == HOLD  # lane 1 (an entry) needs 13.3 free on lane 3: it has 10
    assert both(net, state, obs, POL.params(SPILL_ENTRY=0.3))[0][0] == 1  # 8 needed
    assert both(net, state, obs, POL.params(SPILL_ENTRY=0.0))[0][0] == 1
    # lane 2 (fed by junction 0) into the same lane 3: served with its 10 places free
    _out, _rem, _nxt, flow = both(net, state, obs)
    assert flow[2] > 0.0


def test_switches_to_the_queue_when_the_approach_is_empty():
    net = two_phase()
    out, *_ = both(net, green(0, 6.0), fused(2, 1, 2, queue={1: 3.0}))
    assert out[0] == 1
    out, *_ = both(net, green(1, 6.0), fused(2, 1, 2, queue={0: 1.0}))
    assert out[0] == 0


def test_rests_in_green_without_demand_elsewhere_and_serves_a_discharging_queue():
    net = two_phase()
    out, *_ = both(net, green(0, 100.0), fused(2, 1, 2))  # nothing anywhere, even past max: rest
    assert out[0] == HOLD
    obs = fused(2, 1, 2, queue={0: 8.0, 1: 3.0}, gap={0: 1.0})
    out, rem, _nxt, flow = both(net, green(0, 10.0), obs)
    assert out[0] == HOLD and rem[0] == 16.0 and flow[0] == 0.5  # 8 vehicles at 2 s each; 1/SAT veh/s
    # the same queue, not discharging (no crossing for STALL_GAP): no reason to hold it
    out, *_ = both(net, green(0, 10.0), fused(2, 1, 2, queue={0: 8.0, 1: 3.0}, gap={0: 9.0}))
    assert out[0] == 1


def test_max_green_and_max_wait_force_a_switch():
    net = two_phase()
    obs = fused(2, 1, 2, queue={0: 8.0, 1: 1.0}, gap={0: 1.0})
    assert both(net, green(0, 59.0), obs)[0][0] == HOLD
    assert both(net, green(0, 60.0), obs)[0][0] == 1
    obs = fused(2, 1, 2, queue={0: 8.0, 1: 1.0}, gap={0: 1.0}, wait={1: 121.0})
    assert both(net, green(0, 10.0), obs)[0][0] == 1


def test_blocked_downstream_is_not_served():
    net = make_policy_net(
        jn_phase_ptr=[0, 3], phase_mov_ptr=[0, 1, 2, 3], phase_mov_idx=[0, 1, 2], mov_in_lane=[0, 1, 2],
        mov_out_lane=[-1, 3, -1], phase_min=[5.0] * 3, phase_max=[60.0] * 3, phase_fixed=[30.0] * 3,
        phase_next=[1, 2, 0], lane_length=[200.0] * 4,
    )
    obs = fused(4, 1, 3, queue={1: 5.0, 2: 1.0}, space={3: 0.5})
    out, *_ = both(net, green(0, 8.0), obs)
    assert out[0] == 2  # phase 1 feeds a full lane: skipped
    # lane 1 is fed by no junction (an entry): it needs SPILL_ENTRY (0.5) x 26.7 places free downstream
    obs = fused(4, 1, 3, queue={1: 5.0, 2: 1.0}, space={3: 14.0})
    assert both(net, green(0, 8.0), obs)[0][0] == 1
    obs = fused(4, 1, 3, queue={1: 5.0, 2: 1.0}, space={3: 10.0})
    assert both(net, green(0, 8.0), obs)[0][0] == 2
    assert both(net, green(0, 8.0), obs, POL.params(SPILL_ENTRY=0.0))[0][0] == 1


def test_queue_clearing_lasts_up_to_clear_max():
    """A discharging queue is held whole up to CLEAR_MAX s of green; after that the look-ahead rule
    decides, and 30 vehicles waiting across the junction outweigh 8 leaving at saturation."""
    net = two_phase()
    obs = fused(2, 1, 2, queue={0: 8.0, 1: 30.0}, gap={0: 1.0})
    assert both(net, green(0, 10.0), obs)[0][0] == HOLD
    assert both(net, green(0, 19.9), obs)[0][0] == HOLD
    assert both(net, green(0, 20.0), obs)[0][0] == 1
    # without queue clearing the same green is cut at once
    assert both(net, green(0, 10.0), obs, POL.params(QUEUE_CLEAR=0.0))[0][0] == 1
    # and with an unbounded CLEAR_MAX it is held to max green
    assert both(net, green(0, 50.0), obs, POL.params(CLEAR_MAX=1e9))[0][0] == HOLD


def test_a_long_clearance_makes_a_change_cost_more():
    """The change after a phase is the net's own yellow + all-red where longer than LOST_TIME. One vehicle
    reaches the green lane within 4 s, two wait across the junction, stops not counted: with 4-s changes
    it would wait R = 4 + 4 + 5 = 13 s if the green ended, less than the 2 x 4 s x 2 = 16 s imposed, so the
    change comes; behind a 20-s clearance (an alternate one-way stretch) R = 20 + 20 + 5 = 45 s: held."""
    arrays = two_phase()._asdict()
    obs = fused(2, 1, 2, queue={1: 2.0}, profile={0: {3: 1.0}})
    no_stops = POL.params(STOP_COST=0.0)
    for change, want in ((0.0, 1), (4.0, 1), (20.0, HOLD)):
        net = make_policy_net(**{**arrays, "phase_change": [change, change]})
        assert both(net, green(0, 12.0), obs, no_stops)[0][0] == want, change


# -- signalised crossings: a bounded wait without pedestrian detection (PED_MAX_WAIT) ------------------


def crossing_junction():
    """Phase 0 serves lane 0 (a steady stream); phase 1 serves lane 1 (empty) and shows the crossing over
    lane 0 (crossing 0) green; minimum green 5 s."""
    return make_policy_net(
        jn_phase_ptr=[0, 2], phase_mov_ptr=[0, 1, 2], phase_mov_idx=[0, 1], mov_in_lane=[0, 1],
        mov_out_lane=[-1, -1], phase_min=[5.0, 5.0], phase_max=[60.0, 60.0], phase_fixed=[30.0, 30.0],
        phase_next=[1, 0], lane_length=[200.0, 200.0],
        jn_cross_ptr=[0, 1], phase_cross_ptr=[0, 0, 1], phase_cross_idx=[0],
    )


def drive(net, obs, params, seconds, start_phase=0, change=4.0):
    """A toy controller around the policy, 1-s ticks: a proposal starts a change (yellow + all-red, ``change``
    s, nothing green), then the proposed phase is green. Kernel and reference decide every tick (``both``)
    and carry one memory. Returns the times each phase was green, {phase: [t, ...]}."""
    from engine.policies import INTERVAL_YELLOW

    seen = net.cross_seen.copy()
    cur, since, changing_to = start_phase, 0.0, -1
    shown: dict[int, list[float]] = {}
    for t in range(seconds):
        if changing_to >= 0 and since >= change:
            cur, since, changing_to = changing_to, 0.0, -1
        interval = INTERVAL_YELLOW if changing_to >= 0 else INTERVAL_GREEN
        state = make_state([cur], [interval], [since], [True])
        out, *_ = both(net._replace(cross_seen=seen), state, obs, params, t=float(t), seen=seen)
        if interval == INTERVAL_GREEN:
            shown.setdefault(cur, []).append(float(t))
        if out[0] != HOLD:
            assert interval == INTERVAL_GREEN and since >= net.phase_min[cur]
            cur, since, changing_to = cur, 0.0, int(out[0])
        else:
            since += 1.0
    return shown


def longest_without(times, seconds):
    """The longest stretch of the run (s) between two of ``times`` (or the run's ends)."""
    edges = [-1.0, *times, float(seconds)]
    return max(b - a - 1.0 for a, b in itertools.pairwise(edges))


def test_a_crossing_is_served_within_its_maximum_wait_without_vehicle_demand():
    """No vehicle ever waits for phase 1, so without the bound the green rests on phase 0's stream for
    ever and the crossing is never green; with it the crossing's phase comes every PED_MAX_WAIT s,
    within PED_MAX_WAIT + min green + the change, and the stream keeps most of the time."""
    net = crossing_junction()
    stream = fused(2, 1, 2, gap={0: 1.0}, profile={0: dict.fromkeys(range(20), 0.5)})  # a vehicle every 2 s
    wait = DEFAULT_PARAMS["adaptive"][AdaptiveParam.PED_MAX_WAIT]
    assert 60.0 <= wait <= 90.0
    seconds = 600
    off = drive(net, stream, POL.params(PED_MAX_WAIT=0.0), seconds)
    assert 1 not in off  # today's rule: rest in green on the stream
    on = drive(net, stream, POL.default_params(), seconds)
    assert longest_without(on[1], seconds) <= wait + net.phase_min[0] + 4.0
    assert len(on[1]) >= seconds // (wait + 10) * 5  # served every time, for its minimum green
    assert len(on[0]) > 0.8 * seconds
    # with two vehicles standing for phase 1 as well, the bound holds all the same
    queued = fused(2, 1, 2, queue={1: 2.0}, gap={0: 1.0}, profile={0: dict.fromkeys(range(20), 0.5)})
    assert longest_without(drive(net, queued, POL.default_params(), seconds)[1], seconds) <= wait + 5.0 + 4.0


def test_a_due_crossing_waits_for_min_green_then_overrides_queue_clearing():
    net = crossing_junction()
    params = POL.params(PED_MAX_WAIT=60.0)
    obs = fused(2, 1, 2, queue={0: 8.0}, gap={0: 1.0})  # a discharging queue: queue clearing holds the green
    seen = np.array([0.0])
    assert both(net._replace(cross_seen=seen), green(0, 10.0), obs, params, t=59.0)[0][0] == HOLD
    out, rem, nxt, _ = both(net._replace(cross_seen=seen), green(0, 3.0), obs, params, t=60.0)
    assert out[0] == HOLD and nxt[0] == 1 and rem[0] == 2.0  # min green first; the plan says what comes
    assert both(net._replace(cross_seen=seen), green(0, 10.0), obs, params, t=60.0)[0][0] == 1
    # never seen (NaN) counts from now; a junction on its own plan is not the engine's to judge
    fresh = np.array([np.nan])
    assert both(net._replace(cross_seen=fresh), green(0, 10.0), obs, params, t=500.0, seen=fresh)[0][0] == HOLD
    assert fresh[0] == 500.0
    local = np.array([0.0])
    both(net._replace(cross_seen=local), make_state([0], [3], [10.0], [True]), obs, params, t=500.0, seen=local)
    assert local[0] == 500.0
    shown = np.array([0.0])
    both(net._replace(cross_seen=shown), green(1, 10.0), obs, params, t=500.0, seen=shown)
    assert shown[0] == 500.0


def test_the_crossing_seen_longest_ago_goes_first():
    """Three phases; crossing 0 is shown by phase 1, crossing 1 by phases 1 and 2 (the larger demand
    decides between them), crossing 2 by phase 2."""
    net = make_policy_net(
        jn_phase_ptr=[0, 3], phase_mov_ptr=[0, 1, 2, 3], phase_mov_idx=[0, 1, 2], mov_in_lane=[0, 1, 2],
        mov_out_lane=[-1, -1, -1], phase_min=[5.0] * 3, phase_max=[60.0] * 3, phase_fixed=[30.0] * 3,
        phase_next=[1, 2, 0], lane_length=[200.0] * 3,
        jn_cross_ptr=[0, 3], phase_cross_ptr=[0, 0, 2, 4], phase_cross_idx=[0, 1, 1, 2],
    )
    obs = fused(3, 1, 3, queue={0: 5.0, 2: 1.0}, gap={0: 1.0})
    params = POL.params(PED_MAX_WAIT=60.0)
    for seen, want in (([0.0, 50.0, 10.0], 1), ([20.0, 50.0, 10.0], 2), ([50.0, 0.0, 50.0], 2),
                       ([50.0, 50.0, 50.0], HOLD)):  # none due: queue clearing holds phase 0
        assert both(net._replace(cross_seen=np.array(seen)), green(0, 10.0), obs, params, t=70.0)[0][0] == want


@HYP
@given(sc=fused_scenario())
def test_without_a_due_crossing_nothing_changes(sc):
    """PED_MAX_WAIT off, every decision and plan is the one of the same net without crossings."""
    net, state, obs = sc
    params = POL.params(PED_MAX_WAIT=0.0)
    bare = make_policy_net(**{k: v for k, v in net._asdict().items()
                              if k not in ("jn_cross_ptr", "phase_cross_ptr", "phase_cross_idx", "cross_seen")})
    for a, b in zip(both(net, state, obs, params), both(bare, state, obs, params)):
        np.testing.assert_array_equal(a, b)


def test_crossings_from_the_junction_specs():
    """A crossing is a link no vehicle lane feeds that some green phase shows green (SUMO's netconvert program
    of a junction with four crossings: two shown with each axis, red in the axes' clearance phases)."""
    from types import SimpleNamespace

    from engine.policies import policy_net

    a0 = SimpleNamespace(
        green_states=["gGrrgGrrrGrG", "gGrrgGrrrrrr", "rrgGrrgGGrGr", "rrgGrrgGrrrr"],
        link_in_lane=["n_0", "n_1", "e_0", "e_1", "s_0", "s_1", "w_0", "w_1", "", "", "", ""],
    )
    plain = SimpleNamespace(green_states=["GGr", "rrG"], link_in_lane=["a", "b", "c"])
    never = SimpleNamespace(green_states=["Gr"], link_in_lane=["x", ""])  # a link index no phase shows green
    arrays = two_phase()._asdict()
    network = SimpleNamespace(junctions=[plain, a0, never],
                              **{**arrays, "jn_phase_ptr": [0, 2, 6, 7], "phase_min": [5.0] * 7,
                                 "phase_max": [60.0] * 7, "phase_fixed": [30.0] * 7,
                                 "phase_next": [1, 0, 3, 4, 5, 2, 6],
                                 "phase_yellow": [3.0] * 7, "phase_allred": [1.0] * 7})
    pn = policy_net(network)
    assert pn.jn_cross_ptr.tolist() == [0, 0, 4, 4]
    shown = [pn.phase_cross_idx[pn.phase_cross_ptr[p]:pn.phase_cross_ptr[p + 1]].tolist() for p in range(7)]
    assert shown == [[], [], [1, 3], [], [0, 2], [], []]  # links 9 and 11 with A0's phase 0, 8 and 10 with 2
    assert np.isnan(pn.cross_seen).all() and pn.cross_seen.shape == (4,)
    assert pn.jn_cross_ptr.dtype == np.int32 and pn.cross_seen.dtype == np.float64
    # without the specs (or one per junction): no crossings, the policies as before
    bare = policy_net(SimpleNamespace(**{**vars(network), "junctions": []}))
    assert bare.jn_cross_ptr.tolist() == [0, 0, 0, 0] and bare.phase_cross_idx.size == 0


def test_a_phase_showing_another_junctions_crossing_is_remembered_alike():
    """Found by hypothesis in CI: in a malformed net, junction 0's phase 0 shows crossing 0 of junction 1 (which
    has no phase showing it); the kernel skipped junction 0 (no crossings of its own) while the reference
    remembered the shown crossing. Both now take the shown phase's crossings as seen."""
    net = make_policy_net(
        jn_phase_ptr=[0, 1, 5], phase_mov_ptr=[0] * 6, phase_mov_idx=[], mov_in_lane=[], mov_out_lane=[],
        phase_min=[0.0] * 5, phase_max=[0.0] * 5, phase_fixed=[0.0] * 5, phase_next=[0, 1, 1, 1, 1],
        lane_length=[0.0] * 5, jn_cross_ptr=[0, 0, 1], phase_cross_ptr=[0, 1, 1, 1, 1, 1], phase_cross_idx=[0],
    )
    net = net._replace(cross_seen=np.array([-30.0]))
    state = make_state([0, -1], [INTERVAL_GREEN, INTERVAL_GREEN], [0.0, 0.0], [True, True])
    seen = net.cross_seen.copy()
    both(net._replace(cross_seen=seen), state, fused(5, 2, 0), POL.params(PED_MAX_WAIT=0.0), t=0.0, seen=seen)
    assert seen[0] == 0.0
