"""What comes from upstream junctions: this engine's own departures on their way to the next approach
(``track_en_route``), and the junctions' plans, received (``apply_plan``), published (``make_plans``) and
turned into predicted arrivals beyond the detectors (``add_feed``). docs/fusion.md, 'Plans from neighbours'."""

from __future__ import annotations

import numpy as np

from engine.fusion.config import FusionConfig
from engine.fusion.kernels import add_feed_kernel
from engine.fusion.layout import FusionLayout
from engine.fusion.state import FusionOutputs, LaneState
from engine.network import Network
from engine.policies.base import JunctionState
from engine.protocol import messages as m


def track_en_route(layout: FusionLayout, cfg: FusionConfig, lanes: LaneState, outflow: np.ndarray, gp: np.ndarray,
                   green_mov: np.ndarray, dt: float) -> np.ndarray:
    """Shift the vehicles en route one second closer; add this tick's departures from every lane (measured,
    or modelled on green), shared equally among the lane's movements green now, at the free-flow travel time
    to the stop line of the approach each movement leads to; smooth the feed of each approach. Returns this
    tick's departures towards each approach (veh [n_apps])."""
    er = lanes.en_route
    er[:, :-1] = er[:, 1:]
    er[:, -1] = 0.0
    feed = np.zeros(er.shape[0])
    if layout.mov_out.shape[0] and gp.size:
        green = green_mov & (layout.mov_out >= 0)
        n_green = np.bincount(layout.mov_in[green], minlength=layout.n_lanes)
        dep = np.where(green, outflow[layout.mov_in] / np.maximum(n_green[layout.mov_in], 1), 0.0)
        sel = dep > 0.0
        if sel.any():
            k = np.minimum(layout.mov_eta[sel].astype(np.int64), er.shape[1] - 1)
            np.add.at(er, (layout.mov_app[sel], k), dep[sel])
            np.add.at(feed, layout.mov_app[sel], dep[sel])
    a = dt / cfg.rate_tau
    lanes.feed_rate = (1 - a) * lanes.feed_rate + a * feed / max(dt, 1e-9)
    return feed


def add_feed(layout: FusionLayout, out: FusionOutputs) -> None:
    """Upstream plans: a movement flowing at f veh/s for the next rem seconds into lane o reaches o's stop
    line tau = length/speed later; only arrivals beyond the detection range are added to the profile (those
    inside it are already measured). The Numba kernel; :func:`add_feed_reference` is the same in Python."""
    add_feed_kernel(out.profile, out.mov_flow, layout.mov_out, layout.mov_j, out.plan_rem, layout.lane_len,
                    layout.speed, layout.det_eta)


def add_feed_reference(layout: FusionLayout, out: FusionOutputs) -> None:
    """:func:`add_feed` in plain Python (the reference its kernel is tested against)."""
    prof = out.profile
    H = prof.shape[1]
    mov_out = layout.mov_out
    for mv in np.flatnonzero((out.mov_flow > 0.0) & (mov_out >= 0)):
        o = mov_out[mv]
        j = layout.mov_j[mv]
        rem = out.plan_rem[j]
        if rem <= 0:
            continue
        tau = layout.lane_len[o] / layout.speed[o]
        a = max(tau, layout.det_eta[o])
        b = min(tau + rem, float(H))
        if b <= a:
            continue
        ka, kb = int(a), int(np.ceil(b))
        f = out.mov_flow[mv]
        for k in range(ka, min(kb, H)):
            lo_, hi_ = max(a, k), min(b, k + 1)
            if hi_ > lo_:
                prof[o, k] += f * (hi_ - lo_)


def apply_plan(net: Network, layout: FusionLayout, out: FusionOutputs, plan: m.Plan) -> None:
    """A junction's plan from the bus (this engine's own or a neighbouring engine's), unless not newer than the
    one held: its remaining green, next phase, and its flow per downstream lane spread over the movements into it."""
    j = net.junction_index.get(plan.junction)
    if j is None or plan.time <= out.plan_time[j]:
        return
    out.plan_time[j] = plan.time
    out.plan_rem[j] = max(plan.green_end - plan.time, 0.0)
    out.plan_next[j] = -1 if plan.next_phase < 0 else int(net.jn_phase_ptr[j]) + plan.next_phase
    sel = layout.mov_j == j
    flows = dict(zip(plan.lanes, plan.flows))
    ids = net.mov_out_lane_id
    for mv in np.flatnonzero(sel):
        out.mov_flow[mv] = 0.0
    per_lane: dict[str, list[int]] = {}
    for mv in np.flatnonzero(sel):
        per_lane.setdefault(ids[mv], []).append(int(mv))
    for lane_id, f in flows.items():
        mvs = per_lane.get(lane_id)
        if mvs:
            for mv in mvs:
                out.mov_flow[mv] = float(f) / len(mvs)


def make_plans(net: Network, layout: FusionLayout, out: FusionOutputs, t: float, state: JunctionState) -> list[m.Plan]:
    """A ``Plan`` per online junction from the plan arrays (the flows summed per downstream lane); marks them
    as held at ``t`` (so the engine's own plans, coming back from the bus, are not applied twice)."""
    plans: list[m.Plan] = []
    ptr = net.jn_phase_ptr
    ids = net.mov_out_lane_id
    per_j: dict[int, dict[str, float]] = {}
    for mv in np.flatnonzero(out.mov_flow > 0.0):
        lid = ids[mv]
        if lid:
            d = per_j.setdefault(int(layout.mov_j[mv]), {})
            d[lid] = d.get(lid, 0.0) + float(out.mov_flow[mv])
    for j, spec in enumerate(net.junctions):
        if not state.online[j]:
            continue
        flows = per_j.get(j, {})
        nxt = int(out.plan_next[j])
        plans.append(
            m.Plan(
                junction=spec.id,
                time=t,
                phase=int(state.cur_phase[j] - ptr[j]),
                green_end=t + float(out.plan_rem[j]),
                next_phase=nxt - int(ptr[j]) if nxt >= 0 else -1,
                lanes=list(flows),
                flows=[round(v, 4) for v in flows.values()],
            )
        )
        out.plan_time[j] = t
    return plans
