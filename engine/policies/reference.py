"""Plain Python/NumPy reference implementations of the signal policies.

Slow and obvious on purpose: written from the rules in ``engine/policies/base.py`` (not by calling the
kernels) so ``tests/engine/test_policies.py`` can hold ``kernels.py`` to them. Same signature as the
kernels; floating-point sums are taken in the same order (movement order of ``phase_mov_idx``) so
results are bit-identical, ties included.
"""

from __future__ import annotations

import math

from .base import (
    HOLD,
    INTERVAL_GREEN,
    INTERVAL_OFFLINE,
    JAM_SPACING,
    MASK64,
    WEIGHT_DENSITY,
    WEIGHT_QUEUE,
    XORSHIFT_MULT,
    ActuatedParam,
    MaxPressureParam,
    RandomParam,
)


def _phases(net, j) -> list[int]:
    return list(range(int(net.jn_phase_ptr[j]), int(net.jn_phase_ptr[j + 1])))


def _commandable_phase(state, net, j):
    """The current phase if the engine may command junction j (online, green, valid phase)."""
    if not bool(state.online[j]) or int(state.interval[j]) != INTERVAL_GREEN:
        return None
    cur = int(state.cur_phase[j])
    if cur not in _phases(net, j):
        return None
    return cur


def _movements(net, p) -> list[int]:
    return [int(m) for m in net.phase_mov_idx[int(net.phase_mov_ptr[p]) : int(net.phase_mov_ptr[p + 1])]]


def _served_lanes(net, p) -> list[int]:
    return [int(net.mov_in_lane[m]) for m in _movements(net, p)]


def ring_order(net, j, cur) -> list[int]:
    """cur, phase_next[cur], ... while inside j and unseen; then j's unreached phases by index."""
    mine = _phases(net, j)
    ring = [cur]
    p = int(net.phase_next[cur])
    while p in mine and p not in ring:
        ring.append(p)
        p = int(net.phase_next[p])
    return ring + [q for q in mine if q not in ring]


def fixed_reference(t, net, state, obs, params, rng, out_target) -> None:
    for j in range(len(net.jn_phase_ptr) - 1):
        target = HOLD
        cur = _commandable_phase(state, net, j)
        if cur is not None and float(state.since[j]) >= float(net.phase_fixed[cur]):
            nxt = int(net.phase_next[cur])
            if nxt != cur and nxt in _phases(net, j):
                target = nxt
        out_target[j] = target


def _lane_has_call(obs, lane) -> bool:
    return obs.count[lane] > 0 or obs.queue[lane] > 0 or obs.presence[lane] > 0


def actuated_reference(t, net, state, obs, params, rng, out_target) -> None:
    threshold = float(params[ActuatedParam.GAP_THRESHOLD])
    for j in range(len(net.jn_phase_ptr) - 1):
        out_target[j] = HOLD
        cur = _commandable_phase(state, net, j)
        if cur is None:
            continue
        since = float(state.since[j])
        if since < float(net.phase_min[cur]):
            continue  # min green
        maxed_out = since >= float(net.phase_max[cur])
        gapped_out = not any(float(obs.gap[lane]) < threshold for lane in _served_lanes(net, cur))
        if not (maxed_out or gapped_out):
            continue  # extending
        for p in ring_order(net, j, cur)[1:]:
            if any(_lane_has_call(obs, lane) for lane in _served_lanes(net, p)):
                out_target[j] = p
                break
        # no call elsewhere: rest in green (HOLD)


def _lane_weight(net, obs, lane, variant) -> float:
    if variant == WEIGHT_QUEUE:
        return float(obs.queue[lane])
    if variant == WEIGHT_DENSITY:
        return float(obs.count[lane]) / max(float(net.lane_length[lane]), 1.0)
    return float(obs.count[lane])


def phase_pressure(net, obs, p, variant) -> float:
    """Each incoming lane counts once per phase: its weight is split evenly among the phase's movements
    from it, and each of those movements subtracts its share of its downstream lane's weight."""
    movs = _movements(net, p)
    per_lane: dict[int, int] = {}
    for m in movs:
        lane = int(net.mov_in_lane[m])
        per_lane[lane] = per_lane.get(lane, 0) + 1
    total = 0.0
    for m in movs:
        lane = int(net.mov_in_lane[m])
        out = int(net.mov_out_lane[m])
        w_out = _lane_weight(net, obs, out, variant) if out != -1 and out >= 0 else 0.0
        total += (_lane_weight(net, obs, lane, variant) - w_out) / per_lane[lane]
    return total


def _beats(a, b, pressure, rank) -> bool:
    """Phase a beats phase b: higher pressure, then earlier in ring order."""
    if pressure[a] != pressure[b]:
        return pressure[a] > pressure[b]
    return rank[a] < rank[b]


def maxpressure_reference(t, net, state, obs, params, rng, out_target) -> None:
    variant = round(float(params[MaxPressureParam.WEIGHT]))
    hysteresis = float(params[MaxPressureParam.HYSTERESIS])
    for j in range(len(net.jn_phase_ptr) - 1):
        out_target[j] = HOLD
        cur = _commandable_phase(state, net, j)
        if cur is None:
            continue
        since = float(state.since[j])
        if since < float(net.phase_min[cur]):
            continue
        mine = _phases(net, j)
        if len(mine) < 2:
            continue
        pressure = {p: phase_pressure(net, obs, p, variant) for p in mine}
        order = ring_order(net, j, cur)
        rank = {p: i for i, p in enumerate(order)}

        if since >= float(net.phase_max[cur]):
            nxt = int(net.phase_next[cur])
            if all(v == 0.0 for v in pressure.values()) and nxt != cur and nxt in mine:
                out_target[j] = nxt
                continue
            others = [p for p in mine if p != cur]
            best = others[0]
            for p in others[1:]:
                if _beats(p, best, pressure, rank):
                    best = p
            out_target[j] = best
        else:
            best = mine[0]
            for p in mine[1:]:
                if _beats(p, best, pressure, rank):
                    best = p
            if best != cur and pressure[best] > pressure[cur] + hysteresis:
                out_target[j] = best


def _xorshift64star(x: int) -> tuple[int, int]:
    """(new state, output) of one xorshift64* step, with Python ints."""
    x ^= x >> 12
    x ^= (x << 25) & MASK64
    x ^= x >> 27
    return x, (x * XORSHIFT_MULT) & MASK64


def random_reference(t, net, state, obs, params, rng, out_target) -> None:
    p_switch = float(params[RandomParam.P_SWITCH])
    for j in range(len(net.jn_phase_ptr) - 1):
        out_target[j] = HOLD
        mine = _phases(net, j)
        if not mine:
            continue
        x, r = _xorshift64star(int(rng[j]))
        u = math.ldexp(r >> 11, -53)
        if u < p_switch:
            x, r = _xorshift64star(x)
            out_target[j] = mine[((r >> 32) * len(mine)) >> 32]
        rng[j] = x


# -- adaptive ------------------------------------------------------------------------------------------


def _distinct_lanes(net, p) -> list[int]:
    """p's incoming lanes, each once, in order of first occurrence in p's movements."""
    seen: list[int] = []
    for lane in _served_lanes(net, p):
        if lane not in seen:
            seen.append(lane)
    return seen


def _open(net, space, p, lane, need=None, every=False) -> bool:
    """Whether ``lane`` can move in phase p: one of its movements there (all of them, ``every``) leads nowhere
    controlled or to a lane with at least ``need[lane]`` vehicles of free storage (default 1)."""
    ok = []
    for m in _movements(net, p):
        if int(net.mov_in_lane[m]) != lane:
            continue
        out = int(net.mov_out_lane[m])
        if out < 0:
            ok.append(True)
            continue
        # need: SPILL_SPACE, or (an entry lane, SPILL_ENTRY > 0) at least that share of the downstream storage
        spill, entry = (1.0, 0.0) if need is None else need[lane]
        if entry > 0.0:
            spill = max(spill, entry * float(net.lane_length[out]) / JAM_SPACING)
        ok.append(float(space[out]) >= spill)
    return bool(ok) and (all(ok) if every else any(ok))


def _arrivals(profile, lane, k) -> float:
    """Predicted arrivals on lane within k s: profile bins 0..k-1, summed left to right."""
    s = 0.0
    for b in range(min(k, profile.shape[1])):
        s += float(profile[lane, b])
    return s


def _crossings(net, j) -> list[int]:
    return list(range(int(net.jn_cross_ptr[j]), int(net.jn_cross_ptr[j + 1])))


def _crossings_green(net, p) -> list[int]:
    return [int(c) for c in net.phase_cross_idx[int(net.phase_cross_ptr[p]) : int(net.phase_cross_ptr[p + 1])]]


def remember_crossings(t, net, state) -> None:
    """net.cross_seen up to time t: now for a crossing never seen (NaN) or seen 'after' t (a new run), for every
    crossing of a junction the engine does not control (offline, or on its own plan), and for the crossings
    the current green of a commandable junction shows green."""
    seen = net.cross_seen
    for j in range(len(net.jn_phase_ptr) - 1):
        local = not bool(state.online[j]) or int(state.interval[j]) == INTERVAL_OFFLINE
        for c in _crossings(net, j):
            if local or math.isnan(float(seen[c])) or float(seen[c]) > t:
                seen[c] = t
        cur = _commandable_phase(state, net, j)
        if cur is not None:
            for c in _crossings_green(net, cur):
                seen[c] = t


def adaptive_reference_core(t, net, state, queue, gap, rate, wait, space, profile, params, out_target, plan_rem,
                            plan_next, mov_flow):
    from .base import AdaptiveParam as A

    sat = max(float(params[A.SAT_HEADWAY]), 0.1)
    lost = float(params[A.LOST_TIME])
    n_ext = int(max(float(params[A.EXT_HORIZON]), 0.0))
    kappa = float(params[A.KAPPA])
    n_score = math.ceil(max(float(params[A.SCORE_HORIZON]), 0.0))
    age_w = float(params[A.AGE_WEIGHT])
    max_wait = float(params[A.MAX_WAIT])
    stall = float(params[A.STALL_GAP])
    ring = float(params[A.RING]) >= 0.5
    clear = float(params[A.QUEUE_CLEAR]) >= 0.5
    stop_cost = float(params[A.STOP_COST])
    shift = float(params[A.SHIFT])
    fed = {int(o) for o in net.mov_out_lane if int(o) >= 0}  # lanes a junction's movements feed (platoons)
    ped_max = float(params[A.PED_MAX_WAIT])
    spill = float(params[A.SPILL_SPACE])
    every = float(params[A.SPILL_ALL]) >= 0.5
    # a movement from an entry of the controlled area (a lane no junction feeds) needs SPILL_ENTRY x the
    # downstream lane's storage free
    need = [(spill, 0.0 if lane in fed else float(params[A.SPILL_ENTRY])) for lane in range(len(queue))]
    t = float(t)
    remember_crossings(t, net, state)
    for m in range(len(mov_flow)):
        mov_flow[m] = 0.0
    for j in range(len(net.jn_phase_ptr) - 1):
        out_target[j] = HOLD
        plan_rem[j] = 0.0
        plan_next[j] = -1
        cur = _commandable_phase(state, net, j)
        if cur is None:
            continue
        since = float(state.since[j])
        order = ring_order(net, j, cur)

        def demand(p):
            s = 0.0
            for lane in _distinct_lanes(net, p):
                if _open(net, space, p, lane, need, every):
                    s += float(queue[lane]) + _arrivals(profile, lane, n_score) + age_w * float(wait[lane])
            return s

        def green_needed(p):
            qs = [float(queue[lane]) for lane in _distinct_lanes(net, p) if _open(net, space, p, lane, need, every)]
            pmin, pmax = float(net.phase_min[p]), float(net.phase_max[p])
            return min(max(pmin, sat * max([*qs, 0.0])), max(pmax, pmin))

        best, bscore = -1, 0.0
        if ring:  # first phase in ring order with demand
            for p in order[1:]:
                if demand(p) > 0.0:
                    best = p
                    break
        else:
            for p in order[1:]:
                s = demand(p)
                if s > bscore:
                    best, bscore = p, s
            pref = float(params[A.ORDER_PREF])
            first = next((p for p in order[1:] if demand(p) > 0.0), -1)
            if pref > 0.0 and first >= 0 and pref * demand(first) >= bscore:
                best = first  # the program's order: no extra all-red for the change
        # until cur is served again: every other phase with demand, each after its lost time (LOST_TIME, or
        # the phase's own yellow + all-red where longer)
        def lost_of(p):
            return max(lost, float(net.phase_change[p]))

        r = lost_of(cur)
        for p in order[1:]:
            if demand(p) > 0.0:
                r += lost_of(p) + green_needed(p)
        # a crossing not shown green for PED_MAX_WAIT s: the one waiting longest is served next, by the phase
        # showing it green with the most demand (ties: ring order)
        ped = None
        if ped_max > 0.0:
            waiting = [c for c in _crossings(net, j) if t - float(net.cross_seen[c]) >= ped_max]
            if waiting:
                due = min(waiting, key=lambda c: (float(net.cross_seen[c]), c))
                serving = [p for p in order[1:] if due in _crossings_green(net, p)]
                if serving:
                    top = max(demand(p) for p in serving)
                    ped = next(p for p in serving if demand(p) == top)
        cur_lanes = set(_served_lanes(net, cur))
        open_cur = [lane for lane in _distinct_lanes(net, cur) if _open(net, space, cur, lane, need, every)]
        other_lanes: list[int] = []
        for p in _phases(net, j):
            if p == cur:
                continue
            for lane in _served_lanes(net, p):
                if lane not in cur_lanes and lane not in other_lanes:
                    other_lanes.append(lane)
        q_o = 0.0
        for lane in other_lanes:
            q_o += float(queue[lane])
        wait_o = max([float(wait[lane]) for lane in other_lanes], default=0.0)
        wait_o = max(wait_o, 0.0)

        def a_o(e, other_lanes=other_lanes):
            s = 0.0
            for lane in other_lanes:
                s += _arrivals(profile, lane, e)
            return s

        target = HOLD
        if ped is not None:
            if since >= float(net.phase_min[cur]):
                target = ped
        elif since >= float(net.phase_min[cur]) and best >= 0:
            if since >= float(net.phase_max[cur]) or wait_o >= max_wait:
                target = best
            else:
                e_max = min(n_ext, math.floor(float(net.phase_max[cur]) - since))
                stalled = [lane for lane in open_cur
                           if float(queue[lane]) > 0.0 and float(gap[lane]) >= stall and since >= stall]
                if float(params[A.QUEUE_CLEAR]) >= 1.5:  # discharging at saturation, or starting up
                    moving = [lane for lane in open_cur if float(gap[lane]) < 1.5 * sat or since < stall]
                else:
                    moving = [lane for lane in open_cur if lane not in stalled]
                extend = (clear and since < float(params[A.CLEAR_MAX])
                          and any(float(queue[lane]) >= 1.0 for lane in moving))
                # best's lanes that a change now would reach before a queue does: their arrivals
                # within LOST_TIME + e are spared a stop by changing now rather than in e s
                n_lost = int(min(max(lost_of(cur), 0.0), profile.shape[1]))
                spared = [lane for lane in _distinct_lanes(net, best) if lane in other_lanes
                          and float(queue[lane]) < 1.0 and _open(net, space, best, lane, need, every)]
                for e in range(1, e_max + 1):
                    if extend:
                        break
                    served = 0.0  # by the extension
                    queued = 0.0  # of which already standing
                    later = 0.0  # arrivals a change in e s stops instead, at the lanes' rates
                    for lane in open_cur:
                        if float(queue[lane]) > 0.0 and float(gap[lane]) >= stall and since >= stall:
                            continue  # queue not discharging
                        served_l = min(float(queue[lane]) + _arrivals(profile, lane, e), e / sat)
                        queued_l = min(float(queue[lane]), e / sat)
                        served += served_l
                        queued += queued_l
                        if shift > 0.0 and lane not in fed:  # random arrivals: the lane's rate is their expectation
                            later += min(float(rate[lane]) * e, served_l - queued_l)
                    later *= shift
                    s_best = sum(_arrivals(profile, lane, e + n_lost) - _arrivals(profile, lane, n_lost)
                                 for lane in spared)
                    gain = (served - later) * r + stop_cost * (served - queued - later)
                    if served > 0.0 and gain > kappa * e * (q_o + 0.5 * a_o(e)) + stop_cost * s_best:
                        extend = True
                        break
                if not extend:
                    target = best
        out_target[j] = target
        if target != HOLD:
            plan_next[j] = target
            continue
        plan_next[j] = best
        qmax_c = max([float(queue[lane]) for lane in open_cur], default=0.0)
        qmax_c = max(qmax_c, 0.0)
        rem = max(float(net.phase_min[cur]) - since, sat * qmax_c)
        rem = max(min(rem, max(float(net.phase_max[cur]) - since, 0.0)), 0.0)
        if ped is not None:  # at minimum green, to the crossing's phase
            plan_next[j] = ped
            rem = max(float(net.phase_min[cur]) - since, 0.0)
        plan_rem[j] = rem
        if rem > 0.0:
            served = _served_lanes(net, cur)
            for m in _movements(net, cur):
                lane = int(net.mov_in_lane[m])
                if lane not in open_cur:
                    continue
                f = 1.0 / sat if float(queue[lane]) > 0.0 else min(float(rate[lane]), 1.0 / sat)
                mov_flow[m] = f / served.count(lane)
