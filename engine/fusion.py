"""Sensor fusion: per-lane estimates from stop-line loops, advance loops and camera zones, with a
health state per detector inferred from its own data. The model is documented in docs/fusion.md.

``Fusion`` takes detector batches (``update(batch)``) and gives observations (``observations(t)``);
``observations`` returns a :class:`engine.policies.base.FusedObservations`, a superset of
``Observations`` (same first four fields, same meaning), so every policy kernel accepts it.

Per lane (vectorised over lanes, one NumPy pass per tick):

- ``queue``: standing vehicles. Camera halting count when the camera is healthy; otherwise a
  conservation (Kalman-style) estimate of the vehicles between the advance loop and the stop line,
  corrected by pseudo-measurements from loop occupancy (empty stop line => no queue; an advance loop
  covered for several seconds => queue reaches it). A lane with no usable sensor: a standing call, or,
  where an upstream junction feeds its approach, the inflow the approach's other lanes do not measure,
  queued until a protected green discharges it.
- ``count``: vehicles on the approach (camera count, or the loop estimate).
- ``gap``: seconds since the last vehicle crossed a healthy loop of the lane or left it (stop-line
  count, else camera departures or vehicles moving in the camera zone on green, else the departure
  model on green).
- ``presence``: stop-line occupancy (camera: 1 while vehicles stand at the stop line).
- ``rate``: arrival rate, veh/s, exponentially smoothed (advance loop, else camera entries, else stop line).
- ``profile[l, k]``: vehicles predicted to reach the stop line k..k+1 s from now and not yet queued:
  advance-loop crossings (free-flow travel time to the stop line), moving vehicles the camera sees
  but no loop has placed yet (a lane whose camera is gone: the departures from the upstream junction
  predicted over the camera's range), and beyond the detectors the upstream junctions' planned outflows
  (``Plan`` messages, or the kernel's own plan arrays).
- ``wait``: head-of-queue wait: seconds the lane has had a standing queue without discharging a vehicle.
- ``space``: free storage on the lane, in vehicles (lane length / jam spacing - queue).
"""

from __future__ import annotations

import numpy as np

from engine.protocol import messages as m
from engine.network import DET_ADVANCE, DET_AREA, DET_STOPLINE, Network
from engine.policies.base import FusedObservations

NEVER = 1e6

OK, STALE, STUCK, DEAD = 0, 1, 2, 3
HEALTH_NAMES = ("ok", "stale", "stuck", "dead")


class FusionConfig:
    """Model constants (not per map). Times in s, lengths in m."""

    horizon = 60  # profile length, 1-s bins
    stale_after = 2.5  # no reading for this long: stale
    dead_after = 30.0  # no reading for this long: dead
    stuck_after = 120.0  # identical non-zero reading this long while the lane's other sensors see traffic
    stuck_alone_after = 600.0  # identical non-zero reading this long, whatever else is seen
    dead_events = 15.0  # vehicles seen by the lane's other sensors (beyond its storage) while this one saw none: dead
    jam_spacing = 7.5  # m per standing vehicle
    rate_tau = 90.0  # s, smoothing of the arrival rate
    blind_recall = 120.0  # s without green after which a lane without sensors is called whatever its model says
    free_speed_factor = 0.8  # vehicles approach at this fraction of the speed limit
    q_proc = 0.05  # process noise of the loop-count model per tick (veh^2)
    q_per_veh = 0.02  # extra process noise per counted vehicle
    r_camera = 1.0
    r_empty = 0.25
    r_full = 1.0
    sl_empty_after = 3.0  # s of an empty, silent stop-line loop after which no queue stands at it
    up_quiet = 6.0  # s of an empty, silent advance loop after which no queue stands beyond it
    sat_headway = 2.0  # s per vehicle leaving a queue on green (departure model of a lane without departure sensor)


def _first_by_kind(network: Network, kind: int) -> np.ndarray:
    """Per lane, the detector of this kind (Lintas' own ``lintas_*`` first), or -1."""
    out = np.full(network.n_lanes, -1, dtype=np.int64)
    own = np.zeros(network.n_lanes, dtype=np.bool_)
    for d, (did, lane, k) in enumerate(zip(network.det_ids, network.det_lane, network.det_kind)):
        if int(k) != kind:
            continue
        mine = did.startswith("lintas_")
        if out[lane] < 0 or (mine and not own[lane]):
            out[lane] = d
            own[lane] = mine
    return out


class Fusion:
    def __init__(self, network: Network, cfg: FusionConfig | None = None) -> None:
        self.net = network
        self.cfg = cfg or FusionConfig()
        c = self.cfg
        n_d, n_l = network.n_detectors, network.n_lanes
        self.n_lanes = n_l
        self.sl = _first_by_kind(network, DET_STOPLINE)
        self.adv = _first_by_kind(network, DET_ADVANCE)
        self.cam = _first_by_kind(network, DET_AREA)
        speed = np.maximum(np.asarray(network.lane_speed, dtype=np.float64), 1.0) * c.free_speed_factor
        self.speed = speed
        pos = np.asarray(network.det_pos, dtype=np.float64)
        dlen = np.asarray(network.det_length, dtype=np.float64)
        self.adv_pos = np.where(self.adv >= 0, pos[np.maximum(self.adv, 0)] if n_d else 0.0, 0.0)
        cam_len = np.where(self.cam >= 0, np.maximum(pos[np.maximum(self.cam, 0)], dlen[np.maximum(self.cam, 0)]) if n_d else 0.0, 0.0)
        self.cam_len = cam_len
        lane_len = np.maximum(np.asarray(network.lane_length, dtype=np.float64), 1.0)
        self.lane_len = lane_len
        self.capacity = np.maximum(lane_len / c.jam_spacing, 1.0)
        self.sec_cap = np.maximum(self.adv_pos / c.jam_spacing, 1.0)  # vehicles between advance loop and stop line
        self.adv_eta = self.adv_pos / speed
        self.det_range = np.maximum(self.adv_pos, cam_len)
        self.det_eta = self.det_range / speed
        # -- per-detector raw state and health
        self.count = np.zeros(n_d)
        self.occ = np.zeros(n_d)
        self.halt = np.zeros(n_d)
        self.fresh = np.zeros(n_d, dtype=np.bool_)
        self.last_seen = np.full(n_d, -NEVER)
        self.first_seen = np.full(n_d, NEVER)
        self.last_change = np.full(n_d, -NEVER)  # last time the reading differed from the previous one
        self.prev = np.full((n_d, 3), np.nan)
        self.other_events = np.zeros(n_d)  # vehicles the lane's other sensors saw since this one last saw one
        self.events_since_change = np.zeros(n_d)
        self.health = np.zeros(n_d, dtype=np.int8)
        self._lane = np.asarray(network.det_lane, dtype=np.int64)
        # vehicles a sensor may legitimately miss while the others count them: those stored upstream of it
        self._storage = (self.det_range / c.jam_spacing)[self._lane] if n_d else np.zeros(0)
        self._is_loop = np.isin(np.asarray(network.det_kind), (DET_STOPLINE, DET_ADVANCE))
        self.t = -NEVER
        self._cam_prev = np.zeros(n_l)
        self._cam_prev_valid = np.zeros(n_l, dtype=np.bool_)
        # -- per-lane estimates
        self.x = np.zeros(n_l)  # vehicles between advance loop and stop line (loop model)
        self.P = np.ones(n_l)
        self.sl_cover = np.zeros(n_l)  # s the stop-line loop has been covered (occ >= 0.9, no count)
        self.adv_cover = np.zeros(n_l)
        self.sl_empty = np.zeros(n_l)  # s the stop-line loop has been empty and silent
        self.idle = np.zeros(n_l)  # s with both loops empty and silent
        self.cam_full = np.zeros(n_l)  # s the camera zone has been full of standing vehicles
        self.cam_cap = np.maximum(cam_len / c.jam_spacing, 1.0)
        self.beyond_cap = np.maximum(lane_len - np.maximum(self.det_range, 0.0), 0.0) / c.jam_spacing
        self.up_cap = np.maximum(lane_len - self.adv_pos, 0.0) / c.jam_spacing  # storage upstream of the advance loop
        self.up = np.zeros(n_l)  # vehicles queued upstream of the advance loop (loop model)
        self.adv_quiet = np.zeros(n_l)  # s the advance loop has been empty and silent
        self.rate_est = np.zeros(n_l)
        # the green phases serving each lane
        served: dict[int, set] = {}
        ptr = np.asarray(network.phase_mov_ptr)
        for p in range(len(ptr) - 1):
            for k in range(int(ptr[p]), int(ptr[p + 1])):
                served.setdefault(int(network.mov_in_lane[int(network.phase_mov_idx[k])]), set()).add(p)
        # lanes each green phase serves, and the green phase each junction shows (from its state reports):
        # the departure model of a lane that has no sensor at its stop line
        self._phase_lanes = np.zeros((len(ptr) - 1, n_l), dtype=np.bool_)
        for lane_i, ps in served.items():
            self._phase_lanes[list(ps), lane_i] = True
        self._green_phase = np.full(len(network.jn_phase_ptr) - 1, -1, dtype=np.int64)
        # movement groups: lanes of the same approach (edge) served by the same phases; a lane whose own
        # sensors cannot see its queue borrows the group's (vehicles spread over the lanes of a group)
        edges = [(lid.rsplit("_", 1)[0], tuple(sorted(served.get(i, ())))) for i, lid in enumerate(network.lane_ids)]
        eidx = {e: i for i, e in enumerate(dict.fromkeys(edges))}
        self._edge = np.asarray([eidx[e] for e in edges], dtype=np.int64)
        self._n_edges = len(eidx)
        self.last_cross = np.full(n_l, -NEVER)
        self.queue_since = np.full(n_l, NEVER)
        self.prof_det = np.zeros((n_l, c.horizon))  # detected arrivals (advance loop), not yet due
        self.queue = np.zeros(n_l)
        self.vehicles = np.zeros(n_l)
        self.gap = np.full(n_l, NEVER)
        self.presence = np.zeros(n_l)
        self.rate = np.zeros(n_l)
        self.wait = np.zeros(n_l)
        self.space = self.capacity.copy()
        self.profile = np.zeros((n_l, c.horizon))
        self.known = np.ones(n_l)
        # -- plans (written by the adaptive kernel, or from Plan messages)
        n_j, n_mov = network.n_junctions, network.n_movements
        self.plan_rem = np.zeros(n_j)
        self.plan_next = np.full(n_j, -1, dtype=np.int32)
        self.mov_flow = np.zeros(n_mov)
        self.plan_time = np.full(n_j, -NEVER)
        self._mov_out = np.asarray(network.mov_out_lane, dtype=np.int64)
        self._mov_j = np.asarray(network.mov_junction, dtype=np.int64)
        # vehicles on their way from an upstream junction to each approach (edge), by the second they are due
        # at its stop line: for a lane whose camera is gone, what the camera saw beyond the advance loop.
        # Kept per approach: vehicles change lanes on the way, so the upstream movement names the edge
        apps = [e for e, _phases in edges]
        aidx = {e: i for i, e in enumerate(dict.fromkeys(apps))}
        self._app = np.asarray([aidx[e] for e in apps], dtype=np.int64)
        self._app_lanes = np.bincount(self._app, minlength=len(aidx)).astype(np.float64)
        self._bins = np.arange(c.horizon)[None, :]
        # profile bins: the detection range (a camera's, or the advance loop's), the advance loop's own reach
        self._det_bin = np.ceil(self.det_eta).astype(np.int64)
        self._adv_bin = np.ceil(self.adv_eta).astype(np.int64)
        self._mov_in = np.asarray(network.mov_in_lane, dtype=np.int64)
        o = np.maximum(self._mov_out, 0)
        self._mov_app = np.where(self._mov_out >= 0, self._app[o] if n_l else 0, -1)
        self._mov_eta = lane_len[o] / speed[o] if n_l else np.zeros(n_mov)
        n_up = int(np.ceil(max(self._mov_eta.max(initial=0.0), self.det_eta.max(initial=0.0)))) + 2
        self.en_route = np.zeros((len(aidx), n_up))
        self.feed_rate = np.zeros(len(aidx))  # smoothed departures towards each approach, veh/s
        self._phase_movs = np.zeros((len(ptr) - 1, n_mov), dtype=np.bool_)
        # lanes with a protected ('G', not yielding 'g') movement in each green phase: where the queue model of a
        # lane without sensors drains (a lane that no phase protects drains on any green)
        self._phase_prot = np.zeros((len(ptr) - 1, n_l), dtype=np.bool_)
        jptr = np.asarray(network.jn_phase_ptr)
        for p in range(len(ptr) - 1):
            movs = np.asarray(network.phase_mov_idx[int(ptr[p]):int(ptr[p + 1])], dtype=np.int64)
            self._phase_movs[p, movs] = True
            for mv in movs:
                j = int(network.mov_junction[mv])
                if j < len(network.junctions):
                    state = network.junctions[j].green_states[p - int(jptr[j])]
                    if state[int(network.mov_link[mv])] == "G":
                        self._phase_prot[p, int(network.mov_in_lane[mv])] = True
        self._ever_prot = self._phase_prot.any(axis=0)
        self.blind_q = np.zeros(n_l)
        self.red_for = np.zeros(n_l)  # s since the lane last showed green
        self.readings = 0
        self.unknown = 0
        self._obs: FusedObservations | None = None

    # -- input -----------------------------------------------------------------------------------
    def set_signal(self, j: int, phase: int) -> None:
        """Junction ``j`` shows green phase ``phase`` (global index), or -1 for anything else."""
        self._green_phase[j] = phase

    def update(self, batch: m.DetectorBatch) -> None:
        idx = self.net.det_index
        count, occ, halt, fresh = self.count, self.occ, self.halt, self.fresh
        for r in batch.readings:
            i = idx.get(r.detector)
            if i is None:
                self.unknown += 1
                continue
            count[i] = r.count
            occ[i] = r.occupancy
            halt[i] = r.halting
            fresh[i] = True
        self.readings += len(batch.readings)
        self._integrate(float(batch.time), float(batch.interval) or 1.0)
        fresh[:] = False

    def on_plan(self, plan: m.Plan) -> None:
        """A junction's plan from the bus (this engine's own or a neighbouring engine's)."""
        j = self.net.junction_index.get(plan.junction)
        if j is None or plan.time <= self.plan_time[j]:
            return
        self.plan_time[j] = plan.time
        self.plan_rem[j] = max(plan.green_end - plan.time, 0.0)
        self.plan_next[j] = -1 if plan.next_phase < 0 else int(self.net.jn_phase_ptr[j]) + plan.next_phase
        sel = self._mov_j == j
        flows = dict(zip(plan.lanes, plan.flows))
        ids = self.net.mov_out_lane_id
        for mv in np.flatnonzero(sel):
            self.mov_flow[mv] = 0.0
        # a plan gives the flow per downstream lane; spread it over the junction's movements into it
        per_lane: dict[str, list[int]] = {}
        for mv in np.flatnonzero(sel):
            per_lane.setdefault(ids[mv], []).append(int(mv))
        for lane_id, f in flows.items():
            mvs = per_lane.get(lane_id)
            if mvs:
                for mv in mvs:
                    self.mov_flow[mv] = float(f) / len(mvs)

    def plans(self, t: float, state) -> list[m.Plan]:
        """This engine's plans for its junctions (from the kernel's plan arrays), to publish."""
        out = []
        ptr = self.net.jn_phase_ptr
        ids = self.net.mov_out_lane_id
        per_j: dict[int, dict[str, float]] = {}
        for mv in np.flatnonzero(self.mov_flow > 0.0):
            lid = ids[mv]
            if lid:
                d = per_j.setdefault(int(self._mov_j[mv]), {})
                d[lid] = d.get(lid, 0.0) + float(self.mov_flow[mv])
        for j, spec in enumerate(self.net.junctions):
            if not state.online[j]:
                continue
            flows = per_j.get(j, {})
            nxt = int(self.plan_next[j])
            out.append(
                m.Plan(
                    junction=spec.id,
                    time=t,
                    phase=int(state.cur_phase[j] - ptr[j]),
                    green_end=t + float(self.plan_rem[j]),
                    next_phase=nxt - int(ptr[j]) if nxt >= 0 else -1,
                    lanes=list(flows),
                    flows=[round(v, 4) for v in flows.values()],
                )
            )
            self.plan_time[j] = t
        return out

    # -- health --------------------------------------------------------------------------------------
    def _health(self, t: float, dt: float) -> None:
        c = self.cfg
        n_d = self.count.shape[0]
        if n_d == 0:
            return
        fresh = self.fresh
        self.last_seen[fresh] = t
        self.first_seen[fresh] = np.minimum(self.first_seen[fresh], t)
        cur = np.stack([self.count, self.occ, self.halt], axis=1)
        changed = fresh & ~np.all(cur == self.prev, axis=1)
        self.last_change[changed] = t
        self.prev[fresh] = cur[fresh]
        # vehicles seen this tick per lane and sensor kind: loop crossings, camera departures
        lane = self._lane
        kinds = np.asarray(self.net.det_kind)
        cam = self.cam
        has_cam = cam >= 0
        seen = np.where(self._is_loop & fresh, self.count, 0.0)
        if has_cam.any():
            cd = cam[has_cam]
            cv = self.count[cd]
            dep = np.where(self._cam_prev_valid[has_cam] & fresh[cd], np.maximum(self._cam_prev[has_cam] - cv, 0.0), 0.0)
            seen[cd] = dep
        ev = np.zeros((3, self.n_lanes))
        for k in (DET_STOPLINE, DET_ADVANCE, DET_AREA):
            sel = kinds == k
            ev[k] = np.bincount(lane[sel], weights=seen[sel], minlength=self.n_lanes)
        # every vehicle passes each sensor of its lane: others = the most any other sensor of the lane saw
        others = np.zeros(n_d)
        for k in (DET_STOPLINE, DET_ADVANCE, DET_AREA):
            sel = kinds == k
            rest = [kk for kk in (DET_STOPLINE, DET_ADVANCE, DET_AREA) if kk != k]
            others[sel] = np.maximum(ev[rest[0]], ev[rest[1]])[lane[sel]]
        self_saw = seen > 0
        # a camera that shows vehicles in its zone sees traffic even when none leaves it
        self_saw |= (~self._is_loop) & fresh & (self.count > 0) & (self.occ > 0)
        # a loop covered by a standing vehicle legitimately counts nothing
        covered = self._is_loop & fresh & (self.occ >= 0.5)
        self.other_events = np.where(self_saw, 0.0, np.where(covered, self.other_events, self.other_events + others))
        self.events_since_change = np.where(changed, 0.0, self.events_since_change + others)
        h = np.zeros(n_d, dtype=np.int8)
        age = t - self.last_seen
        const_for = t - self.last_change
        nonzero = (self.count > 0) | (self.occ > 0) | (self.halt > 0)
        stuck = nonzero & (
            ((const_for >= c.stuck_after) & (self.events_since_change >= c.dead_events))
            | (const_for >= c.stuck_alone_after)
        )
        dead_silent = self.other_events >= c.dead_events + self._storage
        h[dead_silent] = DEAD
        h[stuck] = STUCK
        h[age > c.stale_after] = STALE
        h[age > c.dead_after] = DEAD
        self.health = h

    def health_summary(self) -> dict:
        """Detector counts per health state, overall and per kind."""
        out: dict = {name: int(np.sum(self.health == k)) for k, name in enumerate(HEALTH_NAMES)}
        kinds = np.asarray(self.net.det_kind)
        for kind, kname in ((DET_STOPLINE, "stopline"), (DET_ADVANCE, "advance"), (DET_AREA, "area")):
            sel = kinds == kind
            out[kname] = {name: int(np.sum(self.health[sel] == k)) for k, name in enumerate(HEALTH_NAMES)}
        out["lanes_without_data"] = int(np.sum(self.known == 0))
        return out

    def _ok(self, det: np.ndarray) -> np.ndarray:
        """Per lane: the lane's detector ``det`` exists, is healthy and reported this tick."""
        have = det >= 0
        out = np.zeros(det.shape[0], dtype=np.bool_)
        if have.any():
            d = det[have]
            out[have] = (self.health[d] == OK) & self.fresh[d]
        return out

    # -- the model, once per batch -------------------------------------------------------------------
    def _integrate(self, t: float, dt: float) -> None:
        c = self.cfg
        self._health(t, dt)
        n_l = self.n_lanes
        lanes = np.arange(n_l)
        sl_ok, adv_ok, cam_ok = self._ok(self.sl), self._ok(self.adv), self._ok(self.cam)
        z = np.zeros(n_l)

        def val(arr, det, ok):
            return np.where(ok, arr[np.maximum(det, 0)] if arr.shape[0] else z, 0.0)

        sl_n, sl_o = val(self.count, self.sl, sl_ok), val(self.occ, self.sl, sl_ok)
        adv_n, adv_o = val(self.count, self.adv, adv_ok), val(self.occ, self.adv, adv_ok)
        cam_n, cam_h = val(self.count, self.cam, cam_ok), val(self.halt, self.cam, cam_ok)
        cam_prev_ok = cam_ok & self._cam_prev_valid
        cam_dn = np.where(cam_prev_ok, np.maximum(self._cam_prev - cam_n, 0.0), 0.0)
        cam_up = np.where(cam_prev_ok, np.maximum(cam_n - self._cam_prev, 0.0), 0.0)
        self._cam_prev = np.where(cam_ok, cam_n, self._cam_prev)
        self._cam_prev_valid = cam_ok.copy()

        # time the loops have been covered / silent
        self.sl_cover = np.where(sl_ok & (sl_o >= 0.9) & (sl_n == 0), self.sl_cover + dt, 0.0)
        self.adv_cover = np.where(adv_ok & (adv_o >= 0.9) & (adv_n == 0), self.adv_cover + dt, 0.0)
        sl_silent = sl_ok & (sl_o == 0) & (sl_n == 0)
        adv_silent = adv_ok & (adv_o == 0) & (adv_n == 0)
        self.sl_empty = np.where(sl_silent, self.sl_empty + dt, 0.0)
        self.adv_quiet = np.where(adv_silent, self.adv_quiet + dt, 0.0)
        self.idle = np.where(sl_silent & (~adv_ok | adv_silent), self.idle + dt, 0.0)

        # arrivals, departures this tick
        arr = np.where(adv_ok, adv_n, np.where(cam_ok, cam_up, sl_n))
        any_ok = sl_ok | adv_ok | cam_ok
        a = dt / c.rate_tau
        self.rate_est = np.where(any_ok, (1 - a) * self.rate_est + a * arr / dt, self.rate_est)

        # loop model (Kalman-style): x = vehicles between advance loop and stop line
        inflow = np.where(adv_ok, adv_n, self.rate_est * dt)
        # no departure sensor (stop-line loop and camera both unusable): vehicles leave at saturation flow
        # while the lane shows green
        no_dep = ~sl_ok & ~cam_ok
        gp = self._green_phase[self._green_phase >= 0]
        green = self._phase_lanes[gp].any(axis=0) if gp.size else np.zeros(n_l, dtype=np.bool_)
        modelled = np.where(no_dep & green, np.minimum(self.x, dt / c.sat_headway), 0.0)
        outflow = np.where(sl_ok, sl_n, np.where(cam_ok, cam_dn, modelled))
        # a vehicle left the lane: stop-line count, else camera departures or, on green, vehicles moving in
        # the camera zone (its count can hold steady while vehicles leave and others enter), else the
        # departure model. gap: since a vehicle crossed a healthy loop or left (a queue standing between the
        # loops discharges without crossing the advance loop: its gap must not look stalled)
        left = (sl_n > 0) | (~sl_ok & ((cam_dn > 0) | (cam_ok & green & (cam_n - cam_h > 0)))) | (modelled > 0)
        self.last_cross[left | (adv_n > 0)] = t
        self._track_en_route(outflow, gp, dt)
        self.x = np.maximum(self.x + inflow - outflow, 0.0)
        self.P = self.P + c.q_proc + c.q_per_veh * (inflow + outflow)
        zc = np.minimum(cam_n, self.sec_cap + 1.0)

        def correct(mask, zval, r):
            if mask.any():
                k = self.P[mask] / (self.P[mask] + r)
                self.x[mask] += k * (zval[mask] - self.x[mask])
                self.P[mask] *= 1.0 - k

        correct(cam_ok, zc, c.r_camera)
        correct(~cam_ok & (self.idle >= self.adv_eta + 3.0), z, c.r_empty)
        correct(~cam_ok & (self.adv_cover >= 3.0), self.sec_cap + 1.0 + z, c.r_full)
        self.x = np.where(~cam_ok & (self.sl_cover >= 2.0), np.maximum(self.x, 1.0), self.x)
        # physical bound: the section between the loops holds at most its storage
        self.x = np.minimum(self.x, self.sec_cap + 1.0)

        # arrival profile: shift one bin, add new advance-loop crossings at their free-flow ETA
        H = c.horizon
        pd = self.prof_det
        pd[:, :-1] = pd[:, 1:]
        pd[:, -1] = 0.0
        if adv_ok.any():
            k = np.clip(np.round(self.adv_eta).astype(np.int64) - 1, 0, H - 1)
            sel = adv_ok & (adv_n > 0)
            np.add.at(pd, (lanes[sel], k[sel]), adv_n[sel])
        pd[~adv_ok] = 0.0

        # queue
        en_route = pd.sum(axis=1)
        q_loop = np.maximum(self.x - en_route, 0.0)
        # an empty stop line means no queue only once it has stayed empty longer than a discharge headway
        # (between discharging vehicles the loop is empty for a second or two while the queue is still there)
        q_loop = np.where(sl_ok & (self.sl_empty >= c.sl_empty_after) & ~(self.adv_cover > 0), 0.0, q_loop)
        q_loop = np.where(no_dep & ~adv_ok, np.where(self.adv_cover > 0, self.sec_cap + 1.0, 0.0), q_loop)
        # the queue beyond the advance loop: grows at the arrival rate while a standing vehicle covers the
        # loop; when it moves, those vehicles are still there until they have crossed the loop (or the loop
        # has stayed empty and silent long enough for no queue to be standing beyond it)
        up = np.where(adv_ok & (self.adv_cover > 0), np.minimum(self.up + self.rate_est * dt, self.up_cap),
                      np.maximum(self.up - adv_n, 0.0))
        self.up = np.where(adv_ok & (self.adv_quiet < c.up_quiet), up, 0.0)
        q_loop = q_loop + self.up
        # a stop-line loop covered by a standing vehicle for s seconds: the queue has stood that long, and the
        # lane's arrivals since then joined it (a lower bound where the count between the loops has drifted,
        # and the only queue estimate of a lane whose advance loop is gone)
        q_loop = np.maximum(q_loop, np.where(self.sl_cover >= 2.0,
                                             np.minimum(1.0 + self.rate_est * self.sl_cover, self.capacity), 0.0))
        # a camera zone full of standing vehicles: the queue goes on beyond it, growing at the arrival rate
        self.cam_full = np.where(cam_ok & (cam_h >= 0.75 * self.cam_cap), self.cam_full + dt, 0.0)
        q_cam = cam_h + np.minimum(self.rate_est * self.cam_full, self.beyond_cap)
        q = np.where(cam_ok, q_cam, q_loop)
        # vehicles that joined the queue are no longer en route: consume the earliest profile bins
        dq = np.maximum(q - self.queue, 0.0)
        if dq.any():
            for l in np.flatnonzero(dq > 0):
                rem = dq[l]
                row = pd[l]
                for kk in range(H):
                    if rem <= 0:
                        break
                    take = min(row[kk], rem)
                    row[kk] -= take
                    rem -= take
        # a lane that sees its queue (camera, or both loops) vouches for its approach; a lane that does not
        # takes at least the mean queue of those that do
        strong = cam_ok | (sl_ok & adv_ok)
        borrowed = np.zeros(n_l, dtype=np.bool_)
        if self._n_edges < n_l and any_ok.any():
            for vouch, takes in ((strong, any_ok & ~strong), (any_ok, ~any_ok)):
                n_s = np.bincount(self._edge, weights=vouch.astype(np.float64), minlength=self._n_edges)
                q_s = np.bincount(self._edge, weights=np.where(vouch, q, 0.0), minlength=self._n_edges)
                sib = (q_s / np.maximum(n_s, 1.0))[self._edge]
                use = takes & (n_s[self._edge] > 0)
                q = np.where(use, np.maximum(np.where(any_ok, q, 0.0), sib), q)
                borrowed |= use & ~any_ok
        known = any_ok | borrowed
        self.known = known.astype(np.float64)
        # lanes without any usable sensor: a standing call (min recall), as a failed-detector controller does,
        # even where a neighbour lends its queue: a lane's own queue can stand while its neighbours' clear (a
        # permissive left behind opposing traffic), and without the call it was never served (ingolstadt7,
        # 30 % dead, seed 1: 45.5 s; with it: 29.7 s).
        # Where an upstream junction feeds the approach (at least one vehicle per smoothing window), the call is
        # a model queue instead: the vehicles sent towards the approach that its other lanes do not measure,
        # shared among its sensorless lanes, accumulated, and drained at saturation flow on a protected green
        # (on any green if no phase protects the lane); and never less than the call after ``blind_recall`` s
        # without green. On grid4x4's light traffic the call was a phantom queue 96 % of the time (30 % dead,
        # seed 1: the true queue of its four sensorless lanes in place of the call gave 25.7 s against 27.5 s).
        # Draining on a permissive green too emptied a left turner that stands there (ingolstadt7, seed 1: 42 s).
        self.red_for = np.where(green, 0.0, self.red_for + dt)
        call = 1.0  # the standing call; an array below where a fed approach models the queue
        no_sensor = ~any_ok
        if no_sensor.any():
            n_app = self._app_lanes.shape[0]
            sensed = np.bincount(self._app, weights=np.where(any_ok, self.rate_est, 0.0), minlength=n_app)
            n_blind = np.bincount(self._app, weights=no_sensor.astype(np.float64), minlength=n_app)
            lam = (np.maximum(self.feed_rate - sensed, 0.0) / np.maximum(n_blind, 1.0))[self._app]
            prot = self._phase_prot[gp].any(axis=0)
            drains = green & (prot | ~self._ever_prot)
            fed = no_sensor & (self.feed_rate * c.rate_tau >= 1.0)[self._app]  # only a fed approach has a feed
            bq = np.maximum(self.blind_q - np.where(drains, dt / c.sat_headway, 0.0), 0.0) + lam * dt
            self.blind_q = np.where(fed, np.minimum(bq, self.capacity), 0.0)
            recall = (self.red_for >= c.blind_recall).astype(np.float64)
            call = np.where(fed, np.maximum(self.blind_q, recall), 1.0)
        q = np.where(any_ok, q, np.where(borrowed, np.maximum(q, call), call))
        self.queue[:] = q
        veh = np.where(cam_ok, cam_n, np.where(no_dep & ~adv_ok, en_route, self.x) + self.up)
        self.vehicles[:] = np.where(known, np.maximum(veh, q), q)
        self.presence[:] = np.where(sl_ok, np.minimum(sl_o, 1.0), np.where(cam_ok & (cam_h > 0), 1.0, 0.0))
        self.rate[:] = self.rate_est
        if borrowed.any():
            # a lane without sensors that borrows its group's queue flows and fills like the group: the group's
            # latest crossing (its gap: a borrowed queue with no crossing of its own looked stalled and was left
            # out of every extension), the group's mean arrival rate (below: its mean profile)
            g = self._edge
            lc = np.full(self._n_edges, -NEVER)
            np.maximum.at(lc, g[any_ok], self.last_cross[any_ok])
            self.last_cross = np.where(borrowed, lc[g], self.last_cross)
            n_ok = np.bincount(g, weights=any_ok.astype(np.float64), minlength=self._n_edges)
            r_s = np.bincount(g, weights=np.where(any_ok, self.rate_est, 0.0), minlength=self._n_edges)
            self.rate[:] = np.where(borrowed, (r_s / np.maximum(n_ok, 1.0))[g], self.rate_est)
        # head-of-queue wait: since the lane last discharged a vehicle while queued (``left``). A lane that is
        # served is not starving, however long its queue stands: counting from when the queue formed made every
        # saturated approach look starved, the starvation guard then forced switches at minimum green on every
        # phase, and the lost time collapsed the junction (demo seed 4: 73 s); lanes without a usable sensor of
        # their own (a standing call or a borrowed queue): 0
        self.queue_since = np.where(q >= 1.0, np.where(left, t, np.minimum(self.queue_since, t)), NEVER)
        self.wait[:] = np.where((q >= 1.0) & any_ok, t - self.queue_since, 0.0)
        self.space[:] = self.capacity - q
        # moving vehicles a healthy camera sees but the advance loop has not placed: spread over the detection
        # range. Only a camera sees them: without one, vehicles - queue - en route is the drift of the loop
        # count (vehicles that changed lanes between the loops, or slower than predicted), and spreading it as
        # arrivals kept phantom platoons alive (grid4x4, every camera dead: 41.1 s; without: 30.4 s)
        moving = np.maximum(self.vehicles - q - en_route, 0.0) * cam_ok
        prof = self.profile
        prof[:] = pd
        n_bins = np.clip(self._det_bin, 1, H)
        # a lane whose camera is gone: the vehicles predicted between its advance loop (or stop line) and the
        # end of the camera's range, from the upstream departures, spread as the camera's were
        hi = self._det_bin
        lo = np.where(adv_ok, self._adv_bin, 0)
        blind = known & ~cam_ok & (hi > lo) & ~(self.adv_cover > 0)
        if blind.any():
            fr = self.feed_rate[self._app]
            share = np.where(fr > 0.02, np.minimum(self.rate_est / np.maximum(fr, 1e-9), 1.5),
                             1.0 / self._app_lanes[self._app])
            er = self.en_route
            cum = np.concatenate((np.zeros((er.shape[0], 1)), np.cumsum(er, axis=1)), axis=1)
            hi_c = np.minimum(hi, er.shape[1])
            band = cum[self._app, hi_c] - cum[self._app, np.minimum(lo, hi_c)]
            moving = np.where(blind, share * band, moving)
        prof += (self._bins < n_bins[:, None]) * (moving / n_bins)[:, None]
        if borrowed.any():
            g = self._edge
            p_s = np.zeros((self._n_edges, H))
            np.add.at(p_s, g[any_ok], prof[any_ok])
            prof[borrowed] = p_s[g[borrowed]] / n_ok[g[borrowed], None]
        self._add_feed(prof)
        self.t = t

    def _track_en_route(self, outflow: np.ndarray, gp: np.ndarray, dt: float) -> None:
        """Shift the vehicles en route one second closer; add this tick's departures from every lane (measured,
        or modelled on green), shared equally among the lane's movements green now, at the free-flow travel time
        to the stop line of the approach each movement leads to."""
        er = self.en_route
        er[:, :-1] = er[:, 1:]
        er[:, -1] = 0.0
        feed = np.zeros(er.shape[0])
        if self._mov_out.shape[0] and gp.size:
            green = self._phase_movs[gp].any(axis=0) & (self._mov_out >= 0)
            n_green = np.bincount(self._mov_in[green], minlength=self.n_lanes)
            dep = np.where(green, outflow[self._mov_in] / np.maximum(n_green[self._mov_in], 1), 0.0)
            sel = dep > 0.0
            if sel.any():
                k = np.minimum(self._mov_eta[sel].astype(np.int64), er.shape[1] - 1)
                np.add.at(er, (self._mov_app[sel], k), dep[sel])
                np.add.at(feed, self._mov_app[sel], dep[sel])
        a = dt / self.cfg.rate_tau
        self.feed_rate = (1 - a) * self.feed_rate + a * feed / max(dt, 1e-9)

    def _add_feed(self, prof: np.ndarray) -> None:
        """Upstream plans: a movement flowing at f veh/s for the next rem seconds into lane o reaches
        o's stop line tau = length/speed later; only arrivals beyond the detection range are added
        (those inside it are already measured)."""
        H = prof.shape[1]
        out = self._mov_out
        for mv in np.flatnonzero((self.mov_flow > 0.0) & (out >= 0)):
            o = out[mv]
            j = self._mov_j[mv]
            rem = self.plan_rem[j]
            if rem <= 0:
                continue
            tau = self.lane_len[o] / self.speed[o]
            a = max(tau, self.det_eta[o])
            b = min(tau + rem, float(H))
            if b <= a:
                continue
            ka, kb = int(a), int(np.ceil(b))
            f = self.mov_flow[mv]
            for k in range(ka, min(kb, H)):
                lo_, hi_ = max(a, k), min(b, k + 1)
                if hi_ > lo_:
                    prof[o, k] += f * (hi_ - lo_)

    def observations(self, t: float) -> FusedObservations:
        np.subtract(t, self.last_cross, out=self.gap)
        if self._obs is None:
            self._obs = FusedObservations(
                self.queue, self.vehicles, self.gap, self.presence, self.rate, self.wait, self.space,
                self.profile, self.plan_rem, self.plan_next, self.mov_flow,
            )
        return self._obs
