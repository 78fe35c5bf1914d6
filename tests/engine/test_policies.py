"""Signal policy kernels (engine/policies): numba kernels == plain-Python references, plus behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.network import Network
from engine.policies import (
    DEFAULT_PARAMS,
    HOLD,
    INTERVAL_ALLRED,
    INTERVAL_GREEN,
    INTERVAL_OFFLINE,
    INTERVAL_YELLOW,
    POLICIES,
    WEIGHT_COUNT,
    WEIGHT_DENSITY,
    WEIGHT_QUEUE,
    ActuatedParam,
    MaxPressureParam,
    PolicyNet,
    RandomParam,
    UnknownPolicy,
    decide,
    empty_observations,
    get_policy,
    make_observations,
    make_policy_net,
    make_state,
    new_target,
    policy_net,
    seed_rng,
    warmup,
)
from engine.policies.reference import phase_pressure, ring_order

HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------------
# A hand-built net: J0 has 4 phases (0..3), J1 has 2 (4, 5).
#   lanes 0..5 enter J0, lanes 6..8 enter J1.
#   m0: 0->6   m1: 0->-1 (lane 0 shared: through in p0, right turn in p0 and p3)   m2: 1->7
#   m3: 2->-1  m4: 3->-1  m5: 3->8 (lane 3 shared in p2)   m6: 4->-1   m7: 5->-1
#   m8: 6->-1  m9: 7->0 (back into J0)   m10: 8->-1
#   p0=[m0,m1,m2]  p1=[m3]  p2=[m4,m5]  p3=[m6,m7,m1]  |  p4=[m8,m9]  p5=[m10]
# ---------------------------------------------------------------------------------------------------


def hand_net() -> PolicyNet:
    phases = [[0, 1, 2], [3], [4, 5], [6, 7, 1], [8, 9], [10]]
    return make_policy_net(
        jn_phase_ptr=[0, 4, 6],
        phase_mov_ptr=np.cumsum([0] + [len(p) for p in phases]),
        phase_mov_idx=[m for p in phases for m in p],
        mov_in_lane=[0, 0, 1, 2, 3, 3, 4, 5, 6, 7, 8],
        mov_out_lane=[6, -1, 7, -1, -1, 8, -1, -1, -1, 0, -1],
        phase_min=[5.0, 5.0, 6.0, 5.0, 7.0, 7.0],
        phase_max=[40.0, 30.0, 30.0, 20.0, 45.0, 25.0],
        phase_fixed=[25.0, 15.0, 20.0, 10.0, 30.0, 12.0],
        phase_next=[1, 2, 3, 0, 5, 4],
        lane_length=[100.0, 80.0, 50.0, 120.0, 30.0, 0.0, 200.0, 150.0, 60.0],
    )


N_LANES = 9


def obs_with(count=None, queue=None, gap=None, presence=None, n=N_LANES):
    base = empty_observations(n)
    arrs = {"count": base.count, "queue": base.queue, "gap": base.gap, "presence": base.presence}
    for k, v in {"count": count, "queue": queue, "gap": gap, "presence": presence}.items():
        if v is not None:
            for lane, x in v.items():
                arrs[k][lane] = x
    return make_observations(arrs["queue"], arrs["count"], arrs["gap"], arrs["presence"])


def state_one(j_phase, j_since, n_j=2, cur=None, interval=None, online=None):
    """State with junction j in green at phase j_phase for j_since seconds; others offline."""
    cur_a = np.zeros(n_j, np.int32) if cur is None else np.asarray(cur)
    iv = np.full(n_j, INTERVAL_OFFLINE, np.int8) if interval is None else np.asarray(interval)
    since = np.zeros(n_j)
    on = np.ones(n_j, bool) if online is None else np.asarray(online)
    j = 0 if j_phase < 4 else 1
    cur_a[j] = j_phase
    iv[j] = INTERVAL_GREEN
    since[j] = j_since
    return make_state(cur_a, iv, since, on)


def run(name, net, state, obs, params=None, rng=None, t=0.0, which="kernel"):
    pol = get_policy(name)
    params = pol.default_params() if params is None else params
    n_j = len(net.jn_phase_ptr) - 1
    rng = seed_rng(1, n_j) if rng is None else rng
    out = np.full(n_j, 12345, np.int32)  # garbage: every entry must be written
    getattr(pol, which)(t, net, state, obs, params, rng, out)
    return out


def both(name, net, state, obs, params=None):
    k = run(name, net, state, obs, params, which="kernel")
    r = run(name, net, state, obs, params, which="reference")
    np.testing.assert_array_equal(k, r)
    return k


# ---------------------------------------------------------------------------------------------------
# hypothesis strategies: random nets, states, observations
# ---------------------------------------------------------------------------------------------------

DURATIONS = [0.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0]
OBS_VALUES = [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 0.5, 1.0 / 3.0, 7.0]
GAP_VALUES = [0.0, 1.0, 2.999, 3.0, 3.001, 5.0, 1e9]


@st.composite
def nets(draw, max_junctions=4):
    n_j = draw(st.integers(1, max_junctions))
    n_ph = [draw(st.integers(0, 5)) for _ in range(n_j)]
    n_ln = [draw(st.integers(1, 4)) for _ in range(n_j)]
    lane_lo = np.cumsum([0, *n_ln])
    n_lanes = int(lane_lo[-1])
    mov_in, mov_out, mov_lo = [], [], [0]
    for j in range(n_j):
        n_m = draw(st.integers(0, 6))
        for _ in range(n_m):
            mov_in.append(draw(st.integers(int(lane_lo[j]), int(lane_lo[j + 1]) - 1)))
            mov_out.append(draw(st.integers(-1, n_lanes - 1)))
        mov_lo.append(len(mov_in))
    jn_ptr = np.cumsum([0, *n_ph])
    phase_movs, phase_next, pmin, pmax, pfix = [], [], [], [], []
    for j in range(n_j):
        lo, hi = int(jn_ptr[j]), int(jn_ptr[j + 1])
        mine = list(range(mov_lo[j], mov_lo[j + 1]))
        ring = draw(st.booleans())
        perm = draw(st.permutations(list(range(lo, hi)))) if hi > lo else []
        for k in range(hi - lo):
            phase_movs.append(draw(st.lists(st.sampled_from(mine), max_size=4, unique=True)) if mine else [])
            if ring:  # a proper cycle (program order)
                phase_next.append(lo + (k + 1) % (hi - lo))
            else:  # any mapping, even out of the junction or a sub-cycle
                phase_next.append(
                    draw(st.sampled_from([*perm, lo, hi - 1, lo - 1, hi, -1, int(jn_ptr[-1]) - 1]))
                )
            a, b = sorted([draw(st.sampled_from(DURATIONS)), draw(st.sampled_from(DURATIONS))])
            pmin.append(a)
            pmax.append(b)
            pfix.append(draw(st.sampled_from(DURATIONS)))
    net = make_policy_net(
        jn_phase_ptr=jn_ptr,
        phase_mov_ptr=np.cumsum([0] + [len(m) for m in phase_movs]),
        phase_mov_idx=np.array([m for ms in phase_movs for m in ms], dtype=np.int32),
        mov_in_lane=np.array(mov_in, dtype=np.int32),
        mov_out_lane=np.array(mov_out, dtype=np.int32),
        phase_min=np.array(pmin, dtype=np.float64),
        phase_max=np.array(pmax, dtype=np.float64),
        phase_fixed=np.array(pfix, dtype=np.float64),
        phase_next=np.array(phase_next, dtype=np.int32),
        lane_length=np.array(
            [draw(st.sampled_from([0.0, 0.5, 30.0, 100.0])) for _ in range(n_lanes)], dtype=np.float64
        ),
    )
    return net


@st.composite
def scenario(draw, max_junctions=4):
    net = draw(nets(max_junctions))
    n_j = len(net.jn_phase_ptr) - 1
    n_lanes = len(net.lane_length)
    cur, since = [], []
    for j in range(n_j):
        lo, hi = int(net.jn_phase_ptr[j]), int(net.jn_phase_ptr[j + 1])
        if hi > lo and draw(st.integers(0, 9)) > 0:
            p = draw(st.integers(lo, hi - 1))
        else:  # invalid / foreign phase index
            p = draw(st.sampled_from([-1, 0, int(net.jn_phase_ptr[-1])]))
        cur.append(p)
        if 0 <= p < len(net.phase_min):
            cands = [net.phase_min[p], net.phase_max[p], net.phase_fixed[p], net.phase_min[p] - 1e-9]
        else:
            cands = [0.0]
        since.append(draw(st.sampled_from(cands + DURATIONS + [1e6])))
    interval = draw(st.lists(st.sampled_from([0, 0, 0, 1, 2, 3]), min_size=n_j, max_size=n_j))
    online = draw(st.lists(st.integers(0, 3).map(lambda x: x > 0), min_size=n_j, max_size=n_j))
    state = make_state(cur, interval, since, online)

    def lane_vals(vals):
        return draw(st.lists(st.sampled_from(vals), min_size=n_lanes, max_size=n_lanes))

    zero = draw(st.integers(0, 4)) == 0  # sometimes nothing observed at all
    obs = make_observations(
        [0.0] * n_lanes if zero else lane_vals(OBS_VALUES),
        [0.0] * n_lanes if zero else lane_vals(OBS_VALUES),
        [1e9] * n_lanes if zero else lane_vals(GAP_VALUES),
        [0.0] * n_lanes if zero else lane_vals([0.0, 0.0, 0.2, 1.0]),
    )
    return net, state, obs


# ---------------------------------------------------------------------------------------------------
# kernel == reference
# ---------------------------------------------------------------------------------------------------


@HYP
@given(sc=scenario())
def test_fixed_kernel_matches_reference(sc):
    net, state, obs = sc
    both("fixed", net, state, obs)


@HYP
@given(sc=scenario(), gap=st.sampled_from([0.0, 1.0, 3.0, 3.001, 10.0]))
def test_actuated_kernel_matches_reference(sc, gap):
    net, state, obs = sc
    both("actuated", net, state, obs, get_policy("actuated").params(GAP_THRESHOLD=gap))


@HYP
@given(
    sc=scenario(),
    weight=st.sampled_from([WEIGHT_COUNT, WEIGHT_QUEUE, WEIGHT_DENSITY, 0.4, 1.6, 7.0]),
    hyst=st.sampled_from([0.0, 0.5, 1.0, -1.0]),
)
def test_maxpressure_kernel_matches_reference(sc, weight, hyst):
    net, state, obs = sc
    both("maxpressure", net, state, obs, get_policy("maxpressure").params(WEIGHT=weight, HYSTERESIS=hyst))


@HYP
@given(
    sc=scenario(),
    seed=st.integers(0, 2**64 - 1),
    p=st.sampled_from([0.0, 0.3, 0.5, 1.0, 0.999]),
)
def test_random_kernel_matches_reference_over_50_ticks(sc, seed, p):
    net, state, obs = sc
    n_j = len(net.jn_phase_ptr) - 1
    pol = get_policy("random")
    params = pol.params(P_SWITCH=p)
    rng_k, rng_r = seed_rng(seed, n_j), seed_rng(seed, n_j)
    out_k, out_r = new_target(n_j), new_target(n_j)
    for tick in range(50):
        pol.kernel(float(tick), net, state, obs, params, rng_k, out_k)
        pol.reference(float(tick), net, state, obs, params, rng_r, out_r)
        np.testing.assert_array_equal(out_k, out_r)
        for j in range(n_j):  # always a phase of that junction, or HOLD
            lo, hi = net.jn_phase_ptr[j], net.jn_phase_ptr[j + 1]
            assert out_k[j] == HOLD or lo <= out_k[j] < hi
    np.testing.assert_array_equal(rng_k, rng_r)


@HYP
@given(sc=scenario())
def test_limit_respecting_policies_only_command_online_green_and_own_phases(sc):
    net, state, obs = sc
    for name in POLICIES:
        if not get_policy(name).respects_limits:
            continue
        out = both(name, net, state, obs)
        for j, tgt in enumerate(out):
            if tgt == HOLD:
                continue
            assert state.online[j] and state.interval[j] == INTERVAL_GREEN
            assert net.jn_phase_ptr[j] <= tgt < net.jn_phase_ptr[j + 1]
            assert tgt != state.cur_phase[j]
            if name != "fixed":
                assert state.since[j] >= net.phase_min[state.cur_phase[j]]


@pytest.mark.parametrize("name", POLICIES)
def test_hand_net_kernel_matches_reference_grid(name):
    net = hand_net()
    rs = np.random.default_rng(7)
    for _ in range(300):
        cur = [int(rs.integers(0, 4)), int(rs.integers(4, 6))]
        since = rs.choice([0.0, 5.0, 6.0, 7.0, 10.0, 20.0, 25.0, 30.0, 40.0, 45.0, 99.0], size=2)
        state = make_state(cur, rs.choice([0, 0, 1, 2, 3], size=2), since, rs.random(2) < 0.9)
        obs = make_observations(
            rs.integers(0, 4, N_LANES),
            rs.integers(0, 4, N_LANES),
            rs.choice([0.5, 3.0, 9.0], N_LANES),
            rs.random(N_LANES) < 0.2,
        )
        both(name, net, state, obs)


# ---------------------------------------------------------------------------------------------------
# fixed
# ---------------------------------------------------------------------------------------------------


def test_fixed_advances_exactly_at_fixed_duration():
    net = hand_net()
    obs = empty_observations(N_LANES)
    for p in range(6):
        j = 0 if p < 4 else 1
        fixed = net.phase_fixed[p]
        assert both("fixed", net, state_one(p, np.nextafter(fixed, 0)), obs)[j] == HOLD
        assert both("fixed", net, state_one(p, fixed), obs)[j] == net.phase_next[p]
        assert both("fixed", net, state_one(p, fixed + 100), obs)[j] == net.phase_next[p]


def test_fixed_full_cycle_by_ticking():
    net = hand_net()
    obs = empty_observations(N_LANES)
    cur, since, seen = 0, 0.0, []
    for _ in range(200):  # 1 s ticks
        out = run("fixed", net, state_one(cur, since), obs)
        if out[0] != HOLD:
            seen.append((cur, since))
            cur, since = int(out[0]), 0.0
        else:
            since += 1.0
    assert seen[:4] == [(0, 25.0), (1, 15.0), (2, 20.0), (3, 10.0)]


@pytest.mark.parametrize("interval", [INTERVAL_YELLOW, INTERVAL_ALLRED, INTERVAL_OFFLINE])
def test_no_command_outside_green_or_offline(interval):
    net = hand_net()
    obs = obs_with(count=dict.fromkeys(range(N_LANES), 5), gap=dict.fromkeys(range(N_LANES), 99))
    for name in ("fixed", "actuated", "maxpressure"):
        st_ = make_state([0, 4], [interval, interval], [1e6, 1e6], [True, True])
        assert list(both(name, net, st_, obs)) == [HOLD, HOLD]
        st_ = make_state([0, 4], [INTERVAL_GREEN] * 2, [1e6, 1e6], [False, False])
        assert list(both(name, net, st_, obs)) == [HOLD, HOLD]
        st_ = make_state([0, 4], [INTERVAL_GREEN] * 2, [1e6, 1e6], [True, True])
        assert HOLD not in list(both(name, net, st_, obs))


def test_invalid_current_phase_holds():
    net = hand_net()
    obs = obs_with(count=dict.fromkeys(range(N_LANES), 5))
    st_ = make_state([4, 0], [INTERVAL_GREEN] * 2, [1e6, 1e6], [True, True])  # swapped: foreign phases
    for name in ("fixed", "actuated", "maxpressure"):
        assert list(both(name, net, st_, obs)) == [HOLD, HOLD]


# ---------------------------------------------------------------------------------------------------
# actuated
# ---------------------------------------------------------------------------------------------------

ALL_CALLS = dict.fromkeys(range(N_LANES), 1)


def test_actuated_holds_before_min_green_even_gapped_out():
    net = hand_net()
    obs = obs_with(count=ALL_CALLS)  # gaps huge everywhere
    assert both("actuated", net, state_one(0, np.nextafter(5.0, 0)), obs)[0] == HOLD
    assert both("actuated", net, state_one(0, 5.0), obs)[0] == 1


def test_actuated_extends_then_gaps_out_at_threshold():
    net = hand_net()
    for g, expect in [(0.0, HOLD), (2.999, HOLD), (3.0, 1), (3.5, 1)]:
        # p0 serves lanes 0 and 1; one of them with a short gap is enough to extend
        obs = obs_with(count=ALL_CALLS, gap={1: g})
        assert both("actuated", net, state_one(0, 10.0), obs)[0] == expect, g
    params = get_policy("actuated").params(GAP_THRESHOLD=1.0)
    obs = obs_with(count=ALL_CALLS, gap={1: 2.0})
    assert both("actuated", net, state_one(0, 10.0), obs, params)[0] == 1


def test_actuated_maxes_out_despite_traffic():
    net = hand_net()
    obs = obs_with(count=ALL_CALLS, gap={0: 0.5, 1: 0.5})
    assert both("actuated", net, state_one(0, np.nextafter(40.0, 0)), obs)[0] == HOLD
    assert both("actuated", net, state_one(0, 40.0), obs)[0] == 1


def test_actuated_skips_phases_without_calls_and_rests_without_any():
    net = hand_net()
    # only p3's lane 5 calls: from p0, skip p1 (lane 2) and p2 (lane 3)
    obs = obs_with(count={5: 1})
    assert both("actuated", net, state_one(0, 10.0), obs)[0] == 3
    # presence or queue alone is a call too
    assert both("actuated", net, state_one(0, 10.0), obs_with(presence={3: 0.3}))[0] == 2
    assert both("actuated", net, state_one(0, 10.0), obs_with(queue={2: 1}))[0] == 1
    # ring order from cur: from p2 with calls on p1 and p3 -> p3 first
    assert both("actuated", net, state_one(2, 10.0), obs_with(count={2: 1, 4: 1}))[0] == 3
    # calls only on the current phase's lanes: rest in green, even at max
    obs = obs_with(count={2: 4})
    assert both("actuated", net, state_one(1, 10.0), obs)[0] == HOLD
    assert both("actuated", net, state_one(1, 1e6), obs)[0] == HOLD
    # lane 0 feeds p0 and p3: a vehicle there calls p3 while p0 gaps out
    assert both("actuated", net, state_one(0, 10.0), obs_with(count={0: 1}))[0] == 3


def test_actuated_second_junction_independent():
    net = hand_net()
    obs = obs_with(count={8: 1, 2: 1}, gap={6: 1.0})
    st_ = make_state([0, 4], [INTERVAL_GREEN] * 2, [10.0, 10.0], [True, True])
    # J0 at p0 gapped out (lanes 0, 1 huge gaps) -> p1 (lane 2 calls); J1 at p4 extends (lane 6 gap 1)
    assert list(both("actuated", net, st_, obs)) == [1, HOLD]
    st_ = make_state([0, 4], [INTERVAL_GREEN] * 2, [10.0, 45.0], [True, True])
    assert list(both("actuated", net, st_, obs)) == [1, 5]


# ---------------------------------------------------------------------------------------------------
# maxpressure
# ---------------------------------------------------------------------------------------------------


def test_pressure_shared_lane_counted_once_per_phase():
    net = hand_net()
    obs = obs_with(count={0: 6, 1: 2, 6: 1, 7: 3, 3: 4, 8: 2}, queue={0: 1})
    # p0 = m0 (0->6), m1 (0->-1), m2 (1->7): lane 0 shared by two movements -> (6-1)/2 + (6-0)/2 + (2-3)
    assert phase_pressure(net, obs, 0, WEIGHT_COUNT) == pytest.approx(4.5)
    # p2 = m4 (3->-1), m5 (3->8): (4-0)/2 + (4-2)/2
    assert phase_pressure(net, obs, 2, WEIGHT_COUNT) == pytest.approx(3.0)
    # p3 = m6 (4), m7 (5), m1 (0->-1): lane 0 once
    assert phase_pressure(net, obs, 3, WEIGHT_COUNT) == pytest.approx(6.0)
    assert phase_pressure(net, obs, 3, WEIGHT_QUEUE) == pytest.approx(1.0)
    # density: count / max(length, 1): lane 0 is 100 m
    assert phase_pressure(net, obs, 3, WEIGHT_DENSITY) == pytest.approx(0.06)


def test_maxpressure_picks_argmax_after_min():
    net = hand_net()
    obs = obs_with(count={0: 6, 1: 2, 6: 1, 7: 3, 3: 4, 8: 2})  # pressures p0 4.5, p1 0, p2 3, p3 6
    assert both("maxpressure", net, state_one(0, 4.99), obs)[0] == HOLD
    assert both("maxpressure", net, state_one(0, 5.0), obs)[0] == 3
    assert both("maxpressure", net, state_one(3, 5.0), obs)[0] == HOLD  # already best
    hyst = get_policy("maxpressure").params(HYSTERESIS=1.5)
    assert both("maxpressure", net, state_one(0, 5.0), obs, hyst)[0] == HOLD  # 6 > 4.5 + 1.5 is false
    hyst = get_policy("maxpressure").params(HYSTERESIS=1.49)
    assert both("maxpressure", net, state_one(0, 5.0), obs, hyst)[0] == 3


def test_maxpressure_ties_break_by_ring_distance_then_stay():
    net = hand_net()
    obs = obs_with(count={2: 3, 4: 3})  # p1 = 3, p3 = 3 (lanes 4), p0 = 0, p2 = 0
    assert both("maxpressure", net, state_one(0, 10.0), obs)[0] == 1  # p1 closer than p3 from p0
    assert both("maxpressure", net, state_one(2, 10.0), obs)[0] == 3  # p3 closer from p2
    assert both("maxpressure", net, state_one(1, 10.0), obs)[0] == HOLD  # cur ties best: stay


def test_maxpressure_at_max_switches_to_best_other_or_next_when_empty():
    net = hand_net()
    obs = obs_with(count={2: 9, 3: 1})  # cur p1 has the most pressure, p2 has some
    assert both("maxpressure", net, state_one(1, 29.9), obs)[0] == HOLD
    assert both("maxpressure", net, state_one(1, 30.0), obs)[0] == 2
    # everything empty: follow the program
    empty = empty_observations(N_LANES)
    for p in range(6):
        j = 0 if p < 4 else 1
        assert both("maxpressure", net, state_one(p, net.phase_max[p]), empty)[j] == net.phase_next[p]
    # others negative (downstream full) -> still leave at max, to the least negative
    obs = obs_with(count={6: 5, 8: 1, 7: 2, 4: 1})  # p0: (0-5)/2 + 0/2 + (0-2) ; p2: (0-0)/2 + (0-1)/2
    assert both("maxpressure", net, state_one(3, 20.0), obs)[0] == 1  # p1 = 0 is the best other


@HYP
@given(sc=scenario(max_junctions=3))
def test_maxpressure_never_before_min_always_at_max(sc):
    net, state, obs = sc
    out = both("maxpressure", net, state, obs)
    for j in range(len(out)):
        lo, hi = int(net.jn_phase_ptr[j]), int(net.jn_phase_ptr[j + 1])
        cur = int(state.cur_phase[j])
        commandable = state.online[j] and state.interval[j] == INTERVAL_GREEN and lo <= cur < hi
        if not commandable or state.since[j] < net.phase_min[cur]:
            assert out[j] == HOLD
            continue
        pressures = {p: phase_pressure(net, obs, p, WEIGHT_COUNT) for p in range(lo, hi)}
        if state.since[j] >= net.phase_max[cur] and hi - lo >= 2:
            assert out[j] != HOLD and out[j] != cur
            if any(v != 0.0 for v in pressures.values()):
                assert pressures[int(out[j])] == max(v for p, v in pressures.items() if p != cur)
        elif out[j] != HOLD:
            assert pressures[int(out[j])] > pressures[cur]
            assert pressures[int(out[j])] == max(pressures.values())


# ---------------------------------------------------------------------------------------------------
# random
# ---------------------------------------------------------------------------------------------------


def test_random_respects_p_switch_and_is_uniform_over_phases():
    net = hand_net()
    state = make_state([0, 4], [INTERVAL_OFFLINE, INTERVAL_YELLOW], [0.0, 0.0], [False, True])
    obs = empty_observations(N_LANES)
    pol = get_policy("random")
    params = pol.default_params()
    assert params[RandomParam.P_SWITCH] == 0.3
    rng = seed_rng(2024, 2)
    out = new_target(2)
    hits = np.zeros(6, int)
    n_switch = 0
    for t in range(10_000):
        pol.kernel(float(t), net, state, obs, params, rng, out)
        if out[0] != HOLD:  # offline junction still gets proposals
            n_switch += 1
            hits[out[0]] += 1
        if out[1] != HOLD:
            hits[out[1]] += 1
    assert abs(n_switch / 10_000 - 0.3) < 0.02  # sd ~ 0.0046
    assert hits[:4].min() > 0.25 * n_switch - 150 and hits[:4].max() < 0.25 * n_switch + 150
    assert abs(hits[4] - hits[5]) < 250


@pytest.mark.parametrize("p,expect_all", [(0.0, False), (1.0, True)])
def test_random_extremes(p, expect_all):
    net = hand_net()
    state = make_state([0, 4], [0, 0], [0.0, 0.0], [True, True])
    pol = get_policy("random")
    rng = seed_rng(5, 2)
    before = rng.copy()
    out = new_target(2)
    for _ in range(100):
        pol.kernel(0.0, net, state, empty_observations(N_LANES), pol.params(P_SWITCH=p), rng, out)
        assert (HOLD not in out) == expect_all and (set(out) == {HOLD}) != expect_all
    assert not np.array_equal(rng, before)


def test_seed_rng_deterministic_nonzero_distinct():
    a, b, c = seed_rng(1, 100), seed_rng(1, 100), seed_rng(2, 100)
    assert a.dtype == np.uint64 and a.shape == (100,)
    np.testing.assert_array_equal(a, b)
    assert (a != 0).all() and len(set(a.tolist())) == 100
    assert not np.array_equal(a, c)
    assert seed_rng(0, 0).shape == (0,)


def test_random_junction_without_phases_holds_and_does_not_draw():
    net = make_policy_net(
        jn_phase_ptr=[0, 0, 2],
        phase_mov_ptr=[0, 0, 0],
        phase_mov_idx=np.zeros(0),
        mov_in_lane=np.zeros(0),
        mov_out_lane=np.zeros(0),
        phase_min=[0.0, 0.0],
        phase_max=[1.0, 1.0],
        phase_fixed=[1.0, 1.0],
        phase_next=[1, 0],
        lane_length=[1.0],
    )
    state = make_state([0, 0], [0, 0], [5.0, 5.0], [True, True])
    pol = get_policy("random")
    for which in ("kernel", "reference"):
        rng = seed_rng(3, 2)
        r0 = rng[0]
        out = new_target(2)
        getattr(pol, which)(0.0, net, state, empty_observations(1), pol.params(P_SWITCH=1.0), rng, out)
        assert out[0] == HOLD and rng[0] == r0 and out[1] in (0, 1)
    for name in ("fixed", "actuated", "maxpressure"):
        assert both(name, net, state, empty_observations(1))[0] == HOLD


# ---------------------------------------------------------------------------------------------------
# registry, interface
# ---------------------------------------------------------------------------------------------------


def test_registry():
    assert POLICIES == ("fixed", "actuated", "maxpressure", "random", "adaptive")
    for name in POLICIES:
        pol = get_policy(name)
        assert pol.name == name and callable(pol.kernel) and callable(pol.reference)
        d = pol.default_params()
        np.testing.assert_array_equal(d, DEFAULT_PARAMS[name])
        d[:] = -1  # a copy
        assert not np.array_equal(DEFAULT_PARAMS[name], d) or len(d) == 0
        assert pol.respects_limits == (name != "random")
    assert get_policy("actuated").default_params()[ActuatedParam.GAP_THRESHOLD] == 3.0
    mp = get_policy("maxpressure").default_params()
    assert mp[MaxPressureParam.WEIGHT] == WEIGHT_COUNT and mp[MaxPressureParam.HYSTERESIS] == 0.0
    assert len(DEFAULT_PARAMS["fixed"]) == 0
    with pytest.raises(UnknownPolicy, match="fixed, actuated, maxpressure, random"):
        get_policy("webster")
    with pytest.raises(KeyError):
        get_policy("webster")
    with pytest.raises(ValueError):
        get_policy("webster")
    with pytest.raises(KeyError):
        get_policy("actuated").params(NOPE=1.0)


def test_decide_dispatches_and_checks():
    warmup()
    net = hand_net()
    obs = obs_with(count={5: 1})
    st_ = state_one(0, 10.0)
    out = new_target(2)
    decide("actuated", 0.0, net, st_, obs, get_policy("actuated").default_params(), seed_rng(0, 2), out)
    assert list(out) == [3, HOLD]
    with pytest.raises(UnknownPolicy):
        decide("nope", 0.0, net, st_, obs, np.zeros(1), seed_rng(0, 2), out)
    with pytest.raises(ValueError, match="int32"):
        decide("fixed", 0.0, net, st_, obs, np.zeros(0), seed_rng(0, 2), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="params"):
        decide("actuated", 0.0, net, st_, obs, np.zeros(0), seed_rng(0, 2), out)
    with pytest.raises(ValueError, match="rng"):
        decide("random", 0.0, net, st_, obs, np.zeros(1), np.zeros(2, np.int64), out)
    with pytest.raises(ValueError, match="n_lanes"):
        decide("fixed", 0.0, net, st_, empty_observations(3), np.zeros(0), seed_rng(0, 2), out)


def test_policy_net_from_network():
    hn = hand_net()
    network = Network(
        name="hand",
        junctions=[],
        lane_ids=[f"l{i}" for i in range(N_LANES)],
        lane_junction=np.array([0] * 6 + [1] * 3, np.int32),
        lane_length=hn.lane_length.tolist(),
        lane_speed=np.full(N_LANES, 13.9),
        mov_junction=np.array([0] * 8 + [1] * 3, np.int32),
        mov_link=np.arange(11, dtype=np.int32),
        mov_in_lane=hn.mov_in_lane.astype(np.int64),
        mov_out_lane=hn.mov_out_lane,
        mov_out_lane_id=[""] * 11,
        jn_phase_ptr=hn.jn_phase_ptr,
        phase_mov_ptr=hn.phase_mov_ptr,
        phase_mov_idx=hn.phase_mov_idx,
        phase_min=hn.phase_min,
        phase_max=hn.phase_max,
        phase_fixed=hn.phase_fixed,
        phase_next=hn.phase_next,
        phase_yellow=np.full(6, 3.0),
        phase_allred=np.full(6, 1.0),
        det_ids=[],
        det_lane=np.zeros(0, np.int32),
        det_kind=np.zeros(0, np.int8),
        det_pos=np.zeros(0),
        det_length=np.zeros(0),
    )
    pn = policy_net(network)
    assert isinstance(pn, PolicyNet)
    for field, a in zip(PolicyNet._fields, pn):
        assert a.flags.c_contiguous
        want = np.full(6, 4.0) if field == "phase_change" else getattr(hn, field)  # yellow 3 + all-red 1
        np.testing.assert_array_equal(a, want)
        assert a.dtype == getattr(hn, field).dtype
    assert pn.mov_in_lane.dtype == np.int32 and pn.lane_length.dtype == np.float64


def test_ring_order_reference_helper():
    net = hand_net()
    assert ring_order(net, 0, 2) == [2, 3, 0, 1]
    assert ring_order(net, 1, 5) == [5, 4]
