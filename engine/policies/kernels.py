"""Numba kernels of the signal policies: one call decides for every junction.

Signature and rules: see ``engine/policies/base.py``. The rule each kernel implements is documented
on the kernel; ``engine/policies/reference.py`` implements the same rules in plain Python and the
tests hold the two equal. Each call allocates at most one or two scratch arrays of the size of the
largest junction (number of green phases), and maxpressure one of n_lanes (lane weights); nothing
is allocated per junction.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .base import (
    HOLD,
    INTERVAL_GREEN,
    INTERVAL_OFFLINE,
    JAM_SPACING,
    WEIGHT_DENSITY,
    WEIGHT_QUEUE,
    XORSHIFT_MULT,
    ActuatedParam,
    AdaptiveParam,
    MaxPressureParam,
    RandomParam,
)

_GAP_THRESHOLD = int(ActuatedParam.GAP_THRESHOLD)
_MP_WEIGHT = int(MaxPressureParam.WEIGHT)
_MP_HYSTERESIS = int(MaxPressureParam.HYSTERESIS)
_P_SWITCH = int(RandomParam.P_SWITCH)

_U12 = np.uint64(12)
_U25 = np.uint64(25)
_U27 = np.uint64(27)
_U11 = np.uint64(11)
_U32 = np.uint64(32)
_MULT = np.uint64(XORSHIFT_MULT)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53


# -- helpers -------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _max_phases(jn_phase_ptr):
    m = 0
    for j in range(jn_phase_ptr.shape[0] - 1):
        d = jn_phase_ptr[j + 1] - jn_phase_ptr[j]
        m = max(m, d)
    return m


@njit(cache=True, inline="always")
def _green_cur(state, jn_phase_ptr, j):
    """cur_phase of j if j is online, in green and cur_phase is one of j's phases; else -1."""
    if not state.online[j] or state.interval[j] != INTERVAL_GREEN:
        return -1
    cur = np.int64(state.cur_phase[j])
    if cur < jn_phase_ptr[j] or cur >= jn_phase_ptr[j + 1]:
        return -1
    return cur


@njit(cache=True, inline="always")
def _ring_order(net, lo, hi, cur, order):
    """Fill order[0:hi-lo] with j's phases in ring order from cur (see base.py); returns hi - lo."""
    n = hi - lo
    order[0] = cur
    k = 1
    p = np.int64(net.phase_next[cur])
    while k < n and p >= lo and p < hi:
        seen = False
        for i in range(k):
            if order[i] == p:
                seen = True
                break
        if seen:
            break
        order[k] = p
        k += 1
        p = np.int64(net.phase_next[p])
    q = lo
    while k < n and q < hi:
        seen = False
        for i in range(k):
            if order[i] == q:
                seen = True
                break
        if not seen:
            order[k] = q
            k += 1
        q += 1
    return n


@njit(cache=True, inline="always")
def _has_call(net, obs, p):
    for k in range(net.phase_mov_ptr[p], net.phase_mov_ptr[p + 1]):
        lane = net.mov_in_lane[net.phase_mov_idx[k]]
        if obs.count[lane] > 0.0 or obs.queue[lane] > 0.0 or obs.presence[lane] > 0.0:
            return True
    return False


@njit(cache=True, inline="always")
def _lane_weights(net, obs, wsel, w):
    """w[l] = the weight of incoming lane l (see MaxPressureParam.WEIGHT), for every lane."""
    if wsel == WEIGHT_QUEUE:
        w[:] = obs.queue
    elif wsel == WEIGHT_DENSITY:
        for lane in range(w.shape[0]):
            w[lane] = obs.count[lane] / max(net.lane_length[lane], 1.0)
    else:
        w[:] = obs.count


@njit(cache=True, inline="always")
def _pressure(net, w, p):
    """Sum over p's movements m (in phase_mov_idx order) of (w[in] - w[out]) / k, k = number of
    p's movements from the same incoming lane; w[out] = 0 when mov_out_lane == -1."""
    a = net.phase_mov_ptr[p]
    b = net.phase_mov_ptr[p + 1]
    s = 0.0
    for k in range(a, b):
        m = net.phase_mov_idx[k]
        lane = net.mov_in_lane[m]
        share = 0
        for k2 in range(a, b):
            if net.mov_in_lane[net.phase_mov_idx[k2]] == lane:
                share += 1
        out = net.mov_out_lane[m]
        w_out = 0.0
        if out >= 0:
            w_out = w[out]
        s += (w[lane] - w_out) / share
    return s


# -- policies ------------------------------------------------------------------------------------------


@njit(cache=True)
def fixed_kernel(t, net, state, obs, params, rng, out_target):
    """The net's own program: target = phase_next[cur] once since >= phase_fixed[cur], else HOLD."""
    ptr = net.jn_phase_ptr
    for j in range(ptr.shape[0] - 1):
        out_target[j] = HOLD
        cur = _green_cur(state, ptr, j)
        if cur < 0:
            continue
        if state.since[j] >= net.phase_fixed[cur]:
            nxt = np.int64(net.phase_next[cur])
            if nxt != cur and nxt >= ptr[j] and nxt < ptr[j + 1]:
                out_target[j] = nxt


@njit(cache=True)
def actuated_kernel(t, net, state, obs, params, rng, out_target):
    """Gap-out / max-out. Before phase_min[cur]: HOLD. Then the phase extends (HOLD) while
    since < phase_max[cur] and some lane served by cur has gap < GAP_THRESHOLD. On gap-out or max-out
    the target is the first phase after cur in ring order with a call (a served lane with count > 0,
    queue > 0 or presence > 0); phases without calls are skipped; no call anywhere else: HOLD (rest in
    green, even at max)."""
    gap_thr = params[_GAP_THRESHOLD]
    ptr = net.jn_phase_ptr
    order = np.empty(max(_max_phases(ptr), 1), dtype=np.int64)
    for j in range(ptr.shape[0] - 1):
        out_target[j] = HOLD
        cur = _green_cur(state, ptr, j)
        if cur < 0:
            continue
        since = state.since[j]
        if since < net.phase_min[cur]:
            continue
        if since < net.phase_max[cur]:
            extend = False
            for k in range(net.phase_mov_ptr[cur], net.phase_mov_ptr[cur + 1]):
                if obs.gap[net.mov_in_lane[net.phase_mov_idx[k]]] < gap_thr:
                    extend = True
                    break
            if extend:
                continue
        lo = np.int64(ptr[j])
        n = _ring_order(net, lo, np.int64(ptr[j + 1]), cur, order)
        for i in range(1, n):
            if _has_call(net, obs, order[i]):
                out_target[j] = order[i]
                break


@njit(cache=True)
def maxpressure_kernel(t, net, state, obs, params, rng, out_target):
    """Max pressure (Varaiya). pressure(p) = sum over p's movements m of (w(in_lane) - w(out_lane)) / k,
    k = number of p's movements fed by that in_lane (a shared lane counts once per phase, minus the
    mean of its movements' downstream weights). Before phase_min[cur]: HOLD. Then, below phase_max[cur]:
    best = argmax pressure (ties: ring order from cur, so cur wins ties); switch to best if
    best != cur and pressure[best] > pressure[cur] + HYSTERESIS. At since >= phase_max[cur]: if every
    phase of the junction has pressure exactly 0, phase_next[cur]; otherwise the best phase other than
    cur (ties: ring order from cur), whatever its pressure. A junction with one phase: HOLD."""
    wsel = round(params[_MP_WEIGHT])  # round half to even, as Python
    hyst = params[_MP_HYSTERESIS]
    ptr = net.jn_phase_ptr
    nmax = max(_max_phases(ptr), 1)
    order = np.empty(nmax, dtype=np.int64)
    press = np.empty(nmax, dtype=np.float64)  # indexed by p - lo
    w = np.empty(net.lane_length.shape[0], dtype=np.float64)
    _lane_weights(net, obs, wsel, w)
    for j in range(ptr.shape[0] - 1):
        out_target[j] = HOLD
        cur = _green_cur(state, ptr, j)
        if cur < 0:
            continue
        since = state.since[j]
        if since < net.phase_min[cur]:
            continue
        lo = np.int64(ptr[j])
        hi = np.int64(ptr[j + 1])
        if hi - lo < 2:
            continue
        all_zero = True
        for p in range(lo, hi):
            v = _pressure(net, w, p)
            press[p - lo] = v
            if v != 0.0:
                all_zero = False
        n = _ring_order(net, lo, hi, cur, order)
        if since >= net.phase_max[cur]:
            nxt = np.int64(net.phase_next[cur])
            if all_zero and nxt != cur and nxt >= lo and nxt < hi:
                out_target[j] = nxt
                continue
            best = order[1]
            bp = press[best - lo]
            for i in range(2, n):
                v = press[order[i] - lo]
                if v > bp:
                    best = order[i]
                    bp = v
            out_target[j] = best
        else:
            best = cur
            bp = press[cur - lo]
            for i in range(1, n):
                v = press[order[i] - lo]
                if v > bp:
                    best = order[i]
                    bp = v
            if best != cur and bp > press[cur - lo] + hyst:
                out_target[j] = best


@njit(cache=True)
def random_kernel(t, net, state, obs, params, rng, out_target):
    """Every junction, whatever its state: with probability P_SWITCH a uniformly random phase of the
    junction (may be the current one), else HOLD. Per junction with n >= 1 phases: one draw u; if
    u < P_SWITCH a second draw picks the phase. Junctions without phases: HOLD, no draw."""
    p_switch = params[_P_SWITCH]
    ptr = net.jn_phase_ptr
    for j in range(ptr.shape[0] - 1):
        out_target[j] = HOLD
        n = np.int64(ptr[j + 1]) - np.int64(ptr[j])
        if n <= 0:
            continue
        x = rng[j]
        x ^= x >> _U12
        x ^= x << _U25
        x ^= x >> _U27
        r = x * _MULT
        u = np.float64(r >> _U11) * _TWO_M53
        if u < p_switch:
            x ^= x >> _U12
            x ^= x << _U25
            x ^= x >> _U27
            r = x * _MULT
            k = ((r >> _U32) * np.uint64(n)) >> _U32
            out_target[j] = np.int64(ptr[j]) + np.int64(k)
        rng[j] = x


# -- adaptive (docs/adaptive.md) -------------------------------------------------------------------

_AD_SAT = int(AdaptiveParam.SAT_HEADWAY)
_AD_LOST = int(AdaptiveParam.LOST_TIME)
_AD_EXT = int(AdaptiveParam.EXT_HORIZON)
_AD_KAPPA = int(AdaptiveParam.KAPPA)
_AD_SCORE_H = int(AdaptiveParam.SCORE_HORIZON)
_AD_AGE = int(AdaptiveParam.AGE_WEIGHT)
_AD_MAXW = int(AdaptiveParam.MAX_WAIT)
_AD_STALL = int(AdaptiveParam.STALL_GAP)
_AD_RING = int(AdaptiveParam.RING)
_AD_CLEAR = int(AdaptiveParam.QUEUE_CLEAR)
_AD_CLEAR_MAX = int(AdaptiveParam.CLEAR_MAX)
_AD_STOP = int(AdaptiveParam.STOP_COST)
_AD_SHIFT = int(AdaptiveParam.SHIFT)
_AD_ORDER = int(AdaptiveParam.ORDER_PREF)
_AD_PED = int(AdaptiveParam.PED_MAX_WAIT)
_AD_SPILL = int(AdaptiveParam.SPILL_SPACE)
_AD_SPILL_ALL = int(AdaptiveParam.SPILL_ALL)
_AD_SPILL_ENTRY = int(AdaptiveParam.SPILL_ENTRY)
_JAM = JAM_SPACING


@njit(cache=True, inline="always")
def _first_in_phase(net, a, k):
    """True when the lane of phase_mov_idx[k] does not occur earlier in phase_mov_idx[a:k]."""
    lane = net.mov_in_lane[net.phase_mov_idx[k]]
    for k2 in range(a, k):
        if net.mov_in_lane[net.phase_mov_idx[k2]] == lane:
            return False
    return True


@njit(cache=True, inline="always")
def _lane_open(net, space, p, lane, need, spill, spill_all):
    """Some movement of phase p from ``lane`` can move (every one, with ``spill_all``): no downstream lane, or
    it has space >= ``need[lane]`` (``need[lane] < 0``: the larger of ``spill`` and -need[lane] times the
    downstream lane's storage). A lane with no movement in p is not open."""
    found = False
    for k in range(net.phase_mov_ptr[p], net.phase_mov_ptr[p + 1]):
        mv = net.phase_mov_idx[k]
        if net.mov_in_lane[mv] == lane:
            out = net.mov_out_lane[mv]
            ok = out < 0
            if not ok:
                nd = need[lane]
                if nd < 0.0:
                    nd = max(spill, -nd * net.lane_length[out] / _JAM)
                ok = space[out] >= nd
            if ok and not spill_all:
                return True
            if not ok and spill_all:
                return False
            found = True
    return found and spill_all


@njit(cache=True, inline="always")
def _shows_crossing(net, p, c):
    """True when phase p shows crossing c green."""
    for k in range(net.phase_cross_ptr[p], net.phase_cross_ptr[p + 1]):
        if net.phase_cross_idx[k] == c:
            return True
    return False


@njit(cache=True)
def _see_crossings(t, net, state):
    """adaptive's memory of the crossings (``net.cross_seen``), before it decides: a crossing not seen yet (NaN),
    or seen later than t (a new run on the same arrays), counts as seen now; so does every crossing of a
    junction not under the engine's control (offline, or its controller on its own plan: what it shows is not
    known); a crossing the current phase of a junction in green shows green is seen now."""
    ptr = net.jn_phase_ptr
    seen = net.cross_seen
    if net.phase_cross_idx.shape[0] == 0 and seen.shape[0] == 0:
        return  # a net without crossings (most): no work per tick
    for j in range(ptr.shape[0] - 1):
        c0 = net.jn_cross_ptr[j]
        c1 = net.jn_cross_ptr[j + 1]
        if c1 > c0:
            local = not state.online[j] or state.interval[j] == INTERVAL_OFFLINE
            for c in range(c0, c1):
                if local or np.isnan(seen[c]) or seen[c] > t:
                    seen[c] = t
        # (a phase may show another junction's crossing in a malformed net: the shown phase decides, as in the
        # reference)
        cur = _green_cur(state, ptr, j)
        if cur >= 0:
            for k in range(net.phase_cross_ptr[cur], net.phase_cross_ptr[cur + 1]):
                seen[net.phase_cross_idx[k]] = t


@njit(cache=True)
def adaptive_core(t, net, state, queue, gap, rate, wait, space, profile, params, out_target, plan_rem, plan_next,
                  mov_flow):
    """Look-ahead adaptive control (docs/adaptive.md). Per junction j in green (online, valid phase):

    cum[l, k] = predicted arrivals on lane l within k s (sum of profile[l, 0:k]).
    demand(p) = sum over p's distinct open lanes l (first occurrence in p's movement order) of
    queue[l] + cum[l, ceil(SCORE_HORIZON)] + AGE_WEIGHT * wait[l]; a lane is open in p when one of
    its movements in p (every one with SPILL_ALL >= 0.5) has no downstream lane or space[out] >= need, need =
    SPILL_SPACE, or for a lane that no movement of a junction feeds (an entry) max(SPILL_SPACE, SPILL_ENTRY x
    lane_length[out] / JAM_SPACING) (spill-back: the last places of a lane are kept for vehicles inside).
    best = the phase != cur with the largest demand > 0 (ties: ring order from cur), or with RING >= 0.5
    the first phase after cur in ring order with demand > 0; none: -1. With ORDER_PREF > 0 (and RING < 0.5)
    that first phase in ring order is best when ORDER_PREF x its demand >= the largest demand.
    Decision (HOLD unless stated): since < phase_min[cur]: HOLD. best == -1: HOLD. since >=
    phase_max[cur] or some lane of j not served by cur waits >= MAX_WAIT: best. Otherwise, with
    L(p) = max(LOST_TIME, phase_change[p]) (the change after p: the net's yellow + all-red),
    R = L(cur) + sum over the phases p != cur with demand > 0 (ring order) of L(p) +
    min(max(phase_min[p], SAT_HEADWAY * max queue of p's open lanes), max(phase_max[p], phase_min[p]))
    (the time until cur would be served again), Q_o / A_o(e) the queues / arrivals within e s on j's lanes
    not served by cur, B(e) = sum over cur's distinct open, moving lanes of min(queue + cum[l, e], e / SAT_HEADWAY)
    (a lane is stalled, not moving, when queue > 0, gap >= STALL_GAP and since >= STALL_GAP); with
    QUEUE_CLEAR >= 0.5 also extend while an open, non-stalled lane of cur has queue >= 1 (QUEUE_CLEAR >= 1.5:
    while such a lane discharges at saturation, gap < 1.5 SAT_HEADWAY, or since < STALL_GAP), as long as
    since < CLEAR_MAX:
    extend (HOLD) if for some e in 1..min(EXT_HORIZON, phase_max[cur] - since) B(e) > 0 and
    (B(e) - F(e)) * R + STOP_COST * (B(e) - B_q(e) - F(e)) > KAPPA * e * (Q_o + A_o(e) / 2) + STOP_COST * S(e);
    else best. F(e) = SHIFT * the sum over the same lanes that no movement of a junction feeds (mov_out_lane)
    of min(rate * e, the lane's part of B(e) - B_q(e)): a change in e s rather than now still interrupts
    cur, and stops the vehicles arriving then instead (expected at the lane's rate where arrivals are
    random), so only arrivals above the lane's rate are a gain; a standing queue the extension serves is a
    gain in full. Lanes fed by a junction receive platoons, which its plan predicts: no F there.
    B_q(e) = the same sum over min(queue, e / SAT_HEADWAY) (vehicles already standing); S(e) = the arrivals
    within (L, L + e] s, L = floor(L(cur)) (at most the profile's length), on best's distinct lanes that
    are open in best, not served by cur and hold queue < 1 (spared a stop by changing now).
    Plan outputs: plan_next[j] = target if one, else best; plan_rem[j] = 0 if a target, else
    clamp(max(phase_min - since, SAT * max queue of cur's open lanes), 0, max(phase_max - since, 0));
    mov_flow of cur's movements from open lanes, while plan_rem > 0: (1/SAT if queue > 0 else
    min(rate, 1/SAT)) / (number of cur's movements from that lane). Everything else 0 / -1.

    Crossings (PED_MAX_WAIT > 0; see PolicyNet): first, net.cross_seen is brought up to t (``_see_crossings``).
    A crossing c of j is due when t - cross_seen[c] >= PED_MAX_WAIT; the due crossing is the one seen longest
    ago (ties: the lowest index), and ped = the phase != cur showing it green with the largest demand (ties:
    ring order from cur; demand 0 counts). With a due crossing: since >= phase_min[cur]: target = ped
    (before every other rule, rest in green and queue clearing included); else HOLD, plan_next = ped and
    plan_rem = phase_min[cur] - since. A junction without crossings, or with none due, decides as above."""
    sat = max(params[_AD_SAT], 0.1)
    lost = params[_AD_LOST]
    n_ext = int(max(params[_AD_EXT], 0.0))
    kappa = params[_AD_KAPPA]
    n_score = int(np.ceil(max(params[_AD_SCORE_H], 0.0)))
    age_w = params[_AD_AGE]
    max_wait = params[_AD_MAXW]
    stall = params[_AD_STALL]
    ring = params[_AD_RING] >= 0.5
    clear = params[_AD_CLEAR] >= 0.5
    clear_max = params[_AD_CLEAR_MAX]
    clear_sat = params[_AD_CLEAR] >= 1.5  # only while discharging at saturation (gap < 1.5 SAT)
    stop_cost = params[_AD_STOP]
    shift = params[_AD_SHIFT]
    order_pref = params[_AD_ORDER]
    ped_max = params[_AD_PED]
    spill = params[_AD_SPILL]
    spill_all = params[_AD_SPILL_ALL] >= 0.5
    spill_entry = params[_AD_SPILL_ENTRY]
    ptr = net.jn_phase_ptr
    _see_crossings(t, net, state)
    n_l = queue.shape[0]
    H = profile.shape[1]
    lost_max = lost  # the longest change: LOST_TIME, or a phase's own yellow + all-red where longer
    for p in range(net.phase_change.shape[0]):
        lost_max = max(lost_max, net.phase_change[p])
    K = max(n_ext + int(min(max(lost_max, 0.0), H)), n_score)  # the profile ends at H s
    cum = np.zeros((n_l, K + 1))
    for lane in range(n_l):
        for k in range(1, K + 1):
            if k <= H:
                cum[lane, k] = cum[lane, k - 1] + profile[lane, k - 1]
            else:
                cum[lane, k] = cum[lane, k - 1]
    mark = np.full(n_l, -1, dtype=np.int64)
    fed = np.zeros(n_l, dtype=np.bool_)  # lanes a movement of a Lintas junction feeds (platoons, planned)
    if shift > 0.0 or spill_entry > 0.0:  # no pass over the movements per tick when both are off (the default)
        for mv in range(net.mov_out_lane.shape[0]):
            if net.mov_out_lane[mv] >= 0:
                fed[net.mov_out_lane[mv]] = True
    need = np.full(n_l, spill)  # free storage a movement from the lane needs downstream (< 0: a share of it)
    if spill_entry > 0.0:
        for lane in range(n_l):
            if not fed[lane]:
                need[lane] = -spill_entry
    ao = np.zeros(K + 1)
    s_best = np.zeros(K + 1)  # s_best[e]: arrivals on best's empty lanes within (n_lost, n_lost + e] s
    order = np.empty(max(_max_phases(ptr), 1), dtype=np.int64)
    mov_flow[:] = 0.0
    for j in range(ptr.shape[0] - 1):
        out_target[j] = HOLD
        plan_rem[j] = 0.0
        plan_next[j] = -1
        cur = _green_cur(state, ptr, j)
        if cur < 0:
            continue
        lo = np.int64(ptr[j])
        hi = np.int64(ptr[j + 1])
        since = state.since[j]
        n = _ring_order(net, lo, hi, cur, order)
        due = np.int64(-1)  # the crossing seen green longest ago, if PED_MAX_WAIT has passed since
        if ped_max > 0.0:
            due_seen = np.inf
            for c in range(net.jn_cross_ptr[j], net.jn_cross_ptr[j + 1]):
                if t - net.cross_seen[c] >= ped_max and net.cross_seen[c] < due_seen:
                    due = c
                    due_seen = net.cross_seen[c]
        ped = np.int64(-1)  # the phase that serves it: the largest demand among those showing it green
        ped_s = -np.inf
        # best other phase by demand
        best = np.int64(-1)
        bscore = 0.0
        first = np.int64(-1)  # the first phase in ring order with demand
        first_s = 0.0
        lost_c = max(lost, net.phase_change[cur])  # leaving cur
        n_lost = int(min(max(lost_c, 0.0), H))
        r = lost_c  # time until cur is served again: the other phases with demand, each with its lost time
        for i in range(1, n):
            p = order[i]
            a = net.phase_mov_ptr[p]
            s = 0.0
            qmax_p = 0.0
            for k in range(a, net.phase_mov_ptr[p + 1]):
                if not _first_in_phase(net, a, k):
                    continue
                lane = net.mov_in_lane[net.phase_mov_idx[k]]
                if _lane_open(net, space, p, lane, need, spill, spill_all):
                    s += queue[lane] + cum[lane, n_score] + age_w * wait[lane]
                    qmax_p = max(qmax_p, queue[lane])
            if s > 0.0:
                r += max(lost, net.phase_change[p]) + min(
                    max(net.phase_min[p], sat * qmax_p), max(net.phase_max[p], net.phase_min[p]))
            if s > bscore and not (ring and best >= 0):
                best = p
                bscore = s
            if s > 0.0 and first < 0:
                first = p
                first_s = s
            if due >= 0 and s > ped_s and _shows_crossing(net, p, due):
                ped = p
                ped_s = s
        if order_pref > 0.0 and not ring and first >= 0 and order_pref * first_s >= bscore:
            best = first  # the program's order: no extra all-red for the change
        # cur's lanes, and the other lanes of j
        a_c = net.phase_mov_ptr[cur]
        b_c = net.phase_mov_ptr[cur + 1]
        qmax_c = 0.0
        for k in range(a_c, b_c):
            lane = net.mov_in_lane[net.phase_mov_idx[k]]
            mark[lane] = 2 * j
            if _lane_open(net, space, cur, lane, need, spill, spill_all):
                qmax_c = max(qmax_c, queue[lane])
        q_o = 0.0
        wait_o = 0.0
        ao[:] = 0.0
        for p in range(lo, hi):
            if p == cur:
                continue
            for k in range(net.phase_mov_ptr[p], net.phase_mov_ptr[p + 1]):
                lane = net.mov_in_lane[net.phase_mov_idx[k]]
                if mark[lane] == 2 * j or mark[lane] == 2 * j + 1:
                    continue
                mark[lane] = 2 * j + 1
                q_o += queue[lane]
                wait_o = max(wait_o, wait[lane])
                for e in range(K + 1):
                    ao[e] += cum[lane, e]
        target = np.int64(HOLD)
        if ped >= 0:  # a crossing's wait is bounded: its phase next, after minimum green
            if since >= net.phase_min[cur]:
                target = ped
        elif since >= net.phase_min[cur] and best >= 0:
            if since >= net.phase_max[cur] or wait_o >= max_wait:
                target = best
            else:
                e_max = min(n_ext, int(np.floor(net.phase_max[cur] - since)))
                extend = False
                if clear and since < clear_max:  # a discharging standing queue is served whole
                    for k in range(a_c, b_c):
                        lane = net.mov_in_lane[net.phase_mov_idx[k]]
                        if clear_sat:
                            moving = gap[lane] < 1.5 * sat or since < stall
                        else:
                            moving = not (gap[lane] >= stall and since >= stall)
                        if queue[lane] >= 1.0 and moving and _lane_open(net, space, cur, lane, need, spill, spill_all):
                            extend = True
                            break
                s_best[:] = 0.0
                if not extend:  # best's empty lanes: a change now spares their arrivals a stop
                    a_b = net.phase_mov_ptr[best]
                    for k in range(a_b, net.phase_mov_ptr[best + 1]):
                        if not _first_in_phase(net, a_b, k):
                            continue
                        lane = net.mov_in_lane[net.phase_mov_idx[k]]
                        if mark[lane] != 2 * j + 1 or queue[lane] >= 1.0:
                            continue  # served by cur too, or a queue they would stop behind anyway
                        if _lane_open(net, space, best, lane, need, spill, spill_all):
                            for e in range(1, e_max + 1):
                                s_best[e] += cum[lane, e + n_lost] - cum[lane, n_lost]
                for e in range(1, e_max + 1):
                    if extend:
                        break
                    b = 0.0
                    b_q = 0.0  # of which already queued (stopped either way)
                    f = 0.0  # arrivals a change in e s would stop instead (at the lanes' rates)
                    for k in range(a_c, b_c):
                        if not _first_in_phase(net, a_c, k):
                            continue
                        lane = net.mov_in_lane[net.phase_mov_idx[k]]
                        if queue[lane] > 0.0 and gap[lane] >= stall and since >= stall:
                            continue
                        if _lane_open(net, space, cur, lane, need, spill, spill_all):
                            b_l = min(queue[lane] + cum[lane, e], e / sat)
                            bq_l = min(queue[lane], e / sat)
                            b += b_l
                            b_q += bq_l
                            if shift > 0.0 and not fed[lane]:
                                f += min(rate[lane] * e, b_l - bq_l)
                    f *= shift
                    gain = (b - f) * r + stop_cost * (b - b_q - f)
                    if b > 0.0 and gain > kappa * e * (q_o + 0.5 * ao[e]) + stop_cost * s_best[e]:
                        extend = True
                        break
                if not extend:
                    target = best
        out_target[j] = target
        if target >= 0:
            plan_next[j] = target
            continue
        plan_next[j] = best
        rem = max(net.phase_min[cur] - since, sat * qmax_c)
        rem = min(rem, max(net.phase_max[cur] - since, 0.0))
        rem = max(rem, 0.0)
        if ped >= 0:  # the crossing's phase comes at minimum green
            plan_next[j] = ped
            rem = max(net.phase_min[cur] - since, 0.0)
        plan_rem[j] = rem
        if rem > 0.0:
            for k in range(a_c, b_c):
                mv = net.phase_mov_idx[k]
                lane = net.mov_in_lane[mv]
                if not _lane_open(net, space, cur, lane, need, spill, spill_all):
                    continue
                share = 0
                for k2 in range(a_c, b_c):
                    if net.mov_in_lane[net.phase_mov_idx[k2]] == lane:
                        share += 1
                f = 1.0 / sat if queue[lane] > 0.0 else min(rate[lane], 1.0 / sat)
                mov_flow[mv] = f / share
