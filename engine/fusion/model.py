"""The per-lane model, one step function per rule, run in this order once per detector batch by
``Fusion._integrate`` (docs/fusion.md, 'The per-lane model' and 'Code map'). Every step is vectorised over
lanes; the per-tick intermediate values travel in ``Readings`` and ``Departures``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from engine.fusion.config import NEVER, FusionConfig
from engine.fusion.health import usable
from engine.fusion.kernels import consume_profile_kernel, shift_profile_kernel, spread_profile_kernel
from engine.fusion.layout import FusionLayout, green_sets, green_sets_reference
from engine.fusion.state import FusionOutputs, LaneState, SensorState


class Readings(NamedTuple):
    """This tick's usable readings per lane [n_lanes] (0 where the sensor is not usable)."""

    sl_ok: np.ndarray  # bool: the stop-line loop exists, is healthy and reported
    adv_ok: np.ndarray  # bool: the advance loop ...
    cam_ok: np.ndarray  # bool: the camera ...
    any_ok: np.ndarray  # bool: at least one of them
    sl_n: np.ndarray  # veh: crossed the stop-line loop
    sl_o: np.ndarray  # stop-line occupancy, 0..1
    adv_n: np.ndarray  # veh: crossed the advance loop
    adv_o: np.ndarray  # advance-loop occupancy, 0..1
    cam_n: np.ndarray  # veh: in the camera zone
    cam_h: np.ndarray  # veh: halting in the camera zone
    cam_dn: np.ndarray  # veh: left the camera zone (decrease of its count since the previous tick)
    cam_up: np.ndarray  # veh: entered the camera zone (increase)


class Departures(NamedTuple):
    """This tick's departures and signal state."""

    gp: np.ndarray  # int64: the green phases shown now
    green: np.ndarray  # bool [n_lanes]: the lane shows green
    prot: np.ndarray  # bool [n_lanes]: ... protected ('G')
    green_mov: np.ndarray  # bool [n_mov]: the movement shows green
    no_dep: np.ndarray  # bool [n_lanes]: no departure sensor (stop-line loop and camera both unusable)
    outflow: np.ndarray  # veh [n_lanes]: left the lane (measured, or modelled on green)
    left: np.ndarray  # bool [n_lanes]: a vehicle left the lane (it discharges: gap and wait restart)


def read_sensors(layout: FusionLayout, sensors: SensorState, lanes: LaneState) -> Readings:
    """The usable readings per lane; camera departures and entries from the change of its zone count."""
    sl_ok, adv_ok, cam_ok = usable(sensors, layout.sl), usable(sensors, layout.adv), usable(sensors, layout.cam)
    z = np.zeros(layout.n_lanes)

    def val(arr: np.ndarray, det: np.ndarray, ok: np.ndarray) -> np.ndarray:
        return np.where(ok, arr[np.maximum(det, 0)] if arr.shape[0] else z, 0.0)

    sl_n, sl_o = val(sensors.count, layout.sl, sl_ok), val(sensors.occ, layout.sl, sl_ok)
    adv_n, adv_o = val(sensors.count, layout.adv, adv_ok), val(sensors.occ, layout.adv, adv_ok)
    cam_n, cam_h = val(sensors.count, layout.cam, cam_ok), val(sensors.halt, layout.cam, cam_ok)
    cam_prev_ok = cam_ok & lanes.cam_prev_valid
    cam_dn = np.where(cam_prev_ok, np.maximum(lanes.cam_prev - cam_n, 0.0), 0.0)
    cam_up = np.where(cam_prev_ok, np.maximum(cam_n - lanes.cam_prev, 0.0), 0.0)
    lanes.cam_prev = np.where(cam_ok, cam_n, lanes.cam_prev)
    lanes.cam_prev_valid = cam_ok.copy()
    any_ok = sl_ok | adv_ok | cam_ok
    return Readings(sl_ok, adv_ok, cam_ok, any_ok, sl_n, sl_o, adv_n, adv_o, cam_n, cam_h, cam_dn, cam_up)


def update_timers(lanes: LaneState, r: Readings, dt: float) -> None:
    """How long each loop has been covered by a standing vehicle, or empty and silent."""
    lanes.sl_cover = np.where(r.sl_ok & (r.sl_o >= 0.9) & (r.sl_n == 0), lanes.sl_cover + dt, 0.0)
    lanes.adv_cover = np.where(r.adv_ok & (r.adv_o >= 0.9) & (r.adv_n == 0), lanes.adv_cover + dt, 0.0)
    sl_silent = r.sl_ok & (r.sl_o == 0) & (r.sl_n == 0)
    adv_silent = r.adv_ok & (r.adv_o == 0) & (r.adv_n == 0)
    lanes.sl_empty = np.where(sl_silent, lanes.sl_empty + dt, 0.0)
    lanes.adv_quiet = np.where(adv_silent, lanes.adv_quiet + dt, 0.0)
    lanes.idle = np.where(sl_silent & (~r.adv_ok | adv_silent), lanes.idle + dt, 0.0)


def update_rate(cfg: FusionConfig, lanes: LaneState, r: Readings, dt: float) -> None:
    """Arrival rate: advance-loop count, else camera entries, else stop-line count, smoothed over rate_tau."""
    arr = np.where(r.adv_ok, r.adv_n, np.where(r.cam_ok, r.cam_up, r.sl_n))
    a = dt / cfg.rate_tau
    lanes.rate_est = np.where(r.any_ok, (1 - a) * lanes.rate_est + a * arr / dt, lanes.rate_est)


def departures(layout: FusionLayout, cfg: FusionConfig, lanes: LaneState, r: Readings, t: float,
               dt: float, reference: bool = False) -> Departures:
    """Departures: stop-line count, else camera departures, else one per sat_headway on green; crossings."""
    # a departure or an advance-loop crossing restarts the gap (docs/fusion.md, 'The per-lane model', steps 1, 5)
    no_dep = ~r.sl_ok & ~r.cam_ok
    gp = lanes.green_phase[lanes.green_phase >= 0]
    green, prot, green_mov = (green_sets_reference if reference else green_sets)(layout, gp)
    modelled = np.where(no_dep & green, np.minimum(lanes.x, dt / cfg.sat_headway), 0.0)
    outflow = np.where(r.sl_ok, r.sl_n, np.where(r.cam_ok, r.cam_dn, modelled))
    # on green, vehicles moving in the camera zone mean the lane discharges: its count can hold steady while
    # vehicles leave and others enter. A queue standing between the loops discharges without crossing the
    # advance loop: its gap must not look stalled
    left = ((r.sl_n > 0) | (~r.sl_ok & ((r.cam_dn > 0) | (r.cam_ok & green & (r.cam_n - r.cam_h > 0))))
            | (modelled > 0))
    lanes.last_cross[left | (r.adv_n > 0)] = t
    return Departures(gp, green, prot, green_mov, no_dep, outflow, left)


def predict(cfg: FusionConfig, lanes: LaneState, r: Readings, outflow: np.ndarray, dt: float) -> None:
    """Loop-count model, conservation: x += in - out (in: advance-loop count, else rate x dt); P grows."""
    inflow = np.where(r.adv_ok, r.adv_n, lanes.rate_est * dt)
    lanes.x = np.maximum(lanes.x + inflow - outflow, 0.0)
    lanes.P = lanes.P + cfg.q_proc + cfg.q_per_veh * (inflow + outflow)


def _kalman(lanes: LaneState, mask: np.ndarray, zval: np.ndarray, r: float) -> None:
    """Scalar Kalman update of x towards the measurement zval (noise r) where mask."""
    if mask.any():
        k = lanes.P[mask] / (lanes.P[mask] + r)
        lanes.x[mask] += k * (zval[mask] - lanes.x[mask])
        lanes.P[mask] *= 1.0 - k


def correct(layout: FusionLayout, cfg: FusionConfig, lanes: LaneState, r: Readings) -> None:
    """Kalman corrections of x: camera count; both loops idle => empty; advance loop covered => full."""
    # nothing can hide between two loops empty and silent longer than the travel time + 3 s (step 2)
    zc = np.minimum(r.cam_n, layout.sec_full)
    _kalman(lanes, r.cam_ok, zc, cfg.r_camera)
    _kalman(lanes, ~r.cam_ok & (lanes.idle >= layout.adv_eta + 3.0), np.zeros(layout.n_lanes), cfg.r_empty)
    _kalman(lanes, ~r.cam_ok & (lanes.adv_cover >= 3.0), layout.sec_full, cfg.r_full)
    lanes.x = np.where(~r.cam_ok & (lanes.sl_cover >= 2.0), np.maximum(lanes.x, 1.0), lanes.x)
    # physical bound: the section between the loops holds at most its storage
    lanes.x = np.minimum(lanes.x, layout.sec_full)


def shift_profile(layout: FusionLayout, lanes: LaneState, r: Readings) -> None:
    """Arrival profile: shift one bin; add this tick's advance-loop crossings at their free-flow ETA (the Numba
    kernel; :func:`shift_profile_reference` is the same rule in NumPy)."""
    shift_profile_kernel(lanes.prof_det, r.adv_ok, r.adv_n, layout.adv_k)


def shift_profile_reference(layout: FusionLayout, lanes: LaneState, r: Readings) -> None:
    """:func:`shift_profile` in NumPy (the reference its kernel is tested against)."""
    pd = lanes.prof_det
    pd[:, :-1] = pd[:, 1:]
    pd[:, -1] = 0.0
    if r.adv_ok.any():
        k = layout.adv_k
        sel = r.adv_ok & (r.adv_n > 0)
        np.add.at(pd, (layout.lane_idx[sel], k[sel]), r.adv_n[sel])
    pd[~r.adv_ok] = 0.0


def loop_queue(layout: FusionLayout, cfg: FusionConfig, lanes: LaneState, r: Readings, no_dep: np.ndarray,
               en_route: np.ndarray, dt: float) -> np.ndarray:
    """Queue from the loops: x not en route, plus the queue beyond the advance loop; a covered stop line's bound."""
    q_loop = np.maximum(lanes.x - en_route, 0.0)
    # an empty stop line means no queue only once it has stayed empty longer than a discharge headway: a
    # per-tick rule made the estimate flicker to 0 during green (docs/fusion.md, 'The per-lane model', step 4)
    q_loop = np.where(r.sl_ok & (lanes.sl_empty >= cfg.sl_empty_after) & ~(lanes.adv_cover > 0), 0.0, q_loop)
    q_loop = np.where(no_dep & ~r.adv_ok, np.where(lanes.adv_cover > 0, layout.sec_full, 0.0), q_loop)
    # beyond the advance loop: grows at the arrival rate while a standing vehicle covers the loop; once it
    # moves, those vehicles stay queued until they cross it (or the loop stays empty and silent up_quiet s)
    up = np.where(r.adv_ok & (lanes.adv_cover > 0), np.minimum(lanes.up + lanes.rate_est * dt, layout.up_cap),
                  np.maximum(lanes.up - r.adv_n, 0.0))
    lanes.up = np.where(r.adv_ok & (lanes.adv_quiet < cfg.up_quiet), up, 0.0)
    q_loop = q_loop + lanes.up
    # the queue has stood as long as the stop-line loop is covered, and the arrivals since joined it: a bound
    # that per-lane count drift (vehicles changing lanes between the loops) does not move
    return np.maximum(q_loop, np.where(lanes.sl_cover >= 2.0,
                                       np.minimum(1.0 + lanes.rate_est * lanes.sl_cover, layout.capacity), 0.0))


def camera_queue(layout: FusionLayout, lanes: LaneState, r: Readings, dt: float) -> np.ndarray:
    """Queue from the camera: its halting count; a zone full of standing vehicles grows on at the arrival rate."""
    lanes.cam_full = np.where(r.cam_ok & (r.cam_h >= 0.75 * layout.cam_cap), lanes.cam_full + dt, 0.0)
    return r.cam_h + np.minimum(lanes.rate_est * lanes.cam_full, layout.beyond_cap)


def consume_profile(lanes: LaneState, q: np.ndarray, prev_queue: np.ndarray) -> None:
    """Vehicles that joined the queue are no longer en route: take them from the earliest profile bins (the
    Numba kernel; :func:`consume_profile_reference` is the same rule in Python)."""
    consume_profile_kernel(lanes.prof_det, q, prev_queue)


def consume_profile_reference(lanes: LaneState, q: np.ndarray, prev_queue: np.ndarray) -> None:
    """:func:`consume_profile` in plain Python/NumPy (the reference its kernel is tested against)."""
    pd = lanes.prof_det
    H = pd.shape[1]
    dq = np.maximum(q - prev_queue, 0.0)
    if dq.any():
        for lane in np.flatnonzero(dq > 0):
            rem = dq[lane]
            row = pd[lane]
            for kk in range(H):
                if rem <= 0:
                    break
                take = min(row[kk], rem)
                row[kk] -= take
                rem -= take


def borrow_from_group(layout: FusionLayout, r: Readings, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Movement groups: a lane blind to its own queue takes at least the mean of its group's lanes that see theirs."""
    # no camera and not both loops: the mean of those that see it; no usable sensor: of those with any; returns
    # (q, borrowed: the lanes without a sensor that took a queue). docs/fusion.md, step 4, 'Movement groups'
    strong = r.cam_ok | (r.sl_ok & r.adv_ok)
    any_ok = r.any_ok
    borrowed = np.zeros(layout.n_lanes, dtype=np.bool_)
    if layout.n_edges < layout.n_lanes and any_ok.any():
        for vouch, takes in ((strong, any_ok & ~strong), (any_ok, ~any_ok)):
            n_s = np.bincount(layout.edge, weights=vouch.astype(np.float64), minlength=layout.n_edges)
            q_s = np.bincount(layout.edge, weights=np.where(vouch, q, 0.0), minlength=layout.n_edges)
            sib = (q_s / np.maximum(n_s, 1.0))[layout.edge]
            use = takes & (n_s[layout.edge] > 0)
            q = np.where(use, np.maximum(np.where(any_ok, q, 0.0), sib), q)
            borrowed |= use & ~any_ok
    return q, borrowed


def sensorless_queue(layout: FusionLayout, cfg: FusionConfig, lanes: LaneState, r: Readings, dep: Departures,
                     q: np.ndarray, borrowed: np.ndarray, dt: float) -> np.ndarray:
    """A lane without any usable sensor: a standing call, or the unmeasured inflow of a fed approach."""
    # The call stays under a borrowed queue: a lane's own queue can stand while its neighbours' clear (a
    # permissive left), and without the call it was never served. On a fed approach the call was mostly a
    # phantom queue: the model queue replaces it, drained only on a protected green (a permissive left turner
    # stands through its green), recalled after blind_recall s without green. Figures: docs/fusion.md, step 4,
    # 'Movement groups' and 'Lanes without any sensor on a fed approach'
    c = cfg
    any_ok = r.any_ok
    lanes.red_for = np.where(dep.green, 0.0, lanes.red_for + dt)
    call = 1.0  # the standing call; an array below where a fed approach models the queue
    no_sensor = ~any_ok
    if no_sensor.any():
        n_app = layout.n_apps
        sensed = np.bincount(layout.app, weights=np.where(any_ok, lanes.rate_est, 0.0), minlength=n_app)
        n_blind = np.bincount(layout.app, weights=no_sensor.astype(np.float64), minlength=n_app)
        lam = (np.maximum(lanes.feed_rate - sensed, 0.0) / np.maximum(n_blind, 1.0))[layout.app]
        drains = dep.green & (dep.prot | ~layout.ever_prot)
        fed = no_sensor & (lanes.feed_rate * c.rate_tau >= 1.0)[layout.app]  # only a fed approach has a feed
        bq = np.maximum(lanes.blind_q - np.where(drains, dt / c.sat_headway, 0.0), 0.0) + lam * dt
        lanes.blind_q = np.where(fed, np.minimum(bq, layout.capacity), 0.0)
        recall = (lanes.red_for >= c.blind_recall).astype(np.float64)
        call = np.where(fed, np.maximum(lanes.blind_q, recall), 1.0)
    return np.where(any_ok, q, np.where(borrowed, np.maximum(q, call), call))


def write_outputs(lanes: LaneState, out: FusionOutputs, r: Readings, no_dep: np.ndarray, q: np.ndarray,
                  en_route: np.ndarray, known: np.ndarray) -> None:
    """Queue, vehicles on the approach, stop-line presence and arrival rate."""
    out.known = known.astype(np.float64)
    out.queue[:] = q
    veh = np.where(r.cam_ok, r.cam_n, np.where(no_dep & ~r.adv_ok, en_route, lanes.x) + lanes.up)
    out.vehicles[:] = np.where(known, np.maximum(veh, q), q)
    out.presence[:] = np.where(r.sl_ok, np.minimum(r.sl_o, 1.0), np.where(r.cam_ok & (r.cam_h > 0), 1.0, 0.0))
    out.rate[:] = lanes.rate_est


def lend_group_flow(layout: FusionLayout, lanes: LaneState, out: FusionOutputs, any_ok: np.ndarray,
                    borrowed: np.ndarray) -> None:
    """A lane that borrows its group's queue flows like the group: its latest crossing (gap), mean rate."""
    # without the group's gap, a borrowed queue with no crossing of its own looked stalled and counted for
    # nothing in any extension (docs/fusion.md, step 4, 'Movement groups')
    g = layout.edge
    lc = np.full(layout.n_edges, -NEVER)
    np.maximum.at(lc, g[any_ok], lanes.last_cross[any_ok])
    lanes.last_cross = np.where(borrowed, lc[g], lanes.last_cross)
    n_ok = np.bincount(g, weights=any_ok.astype(np.float64), minlength=layout.n_edges)
    r_s = np.bincount(g, weights=np.where(any_ok, lanes.rate_est, 0.0), minlength=layout.n_edges)
    out.rate[:] = np.where(borrowed, (r_s / np.maximum(n_ok, 1.0))[g], lanes.rate_est)


def wait_and_space(layout: FusionLayout, lanes: LaneState, out: FusionOutputs, any_ok: np.ndarray, left: np.ndarray,
                   q: np.ndarray, t: float) -> None:
    """Head-of-queue wait, since the queued lane last discharged (0 without an own sensor); free storage."""
    # a served lane is not starving however long its queue stands: counting from when the queue formed made
    # the starvation guard collapse saturated junctions (docs/fusion.md, 'The per-lane model', step 5)
    # inf, not NEVER, for 'no queue': NEVER (1e6 s) lies before any Unix time, and the field's clock is one
    lanes.queue_since = np.where(q >= 1.0, np.where(left, t, np.minimum(lanes.queue_since, t)), np.inf)
    out.wait[:] = np.where((q >= 1.0) & any_ok, t - lanes.queue_since, 0.0)
    out.space[:] = layout.capacity - q


def link_space(layout: FusionLayout, cfg: FusionConfig, lanes: LaneState, out: FusionOutputs, r: Readings,
               dep: Departures, feed: np.ndarray, q: np.ndarray) -> None:
    """Free storage counts the vehicles upstream of the detection range too, by conservation per approach: the
    departures this engine's junctions send towards it, less the vehicles entering its lanes' detection range
    (camera: its count's change plus the departures; else the advance loop). A queue longer than the camera's
    reach is then seen (the camera's halting count alone stops at its zone; docs/adaptive.md, 'Locks')."""
    # where a lane of the approach has neither camera nor advance loop the entries are unknown: no estimate
    app, n_app = layout.app, layout.n_apps
    seen = r.cam_ok | r.adv_ok
    entries = np.where(r.cam_ok, np.maximum(r.cam_up - r.cam_dn + dep.outflow, 0.0), np.where(r.adv_ok, r.adv_n, 0.0))
    valid = np.bincount(app, weights=(~seen).astype(np.float64), minlength=n_app) == 0
    cap_b = np.bincount(app, weights=layout.beyond_cap, minlength=n_app)
    b = lanes.beyond + feed - np.bincount(app, weights=entries, minlength=n_app)
    # free flow in the whole detection range: what is beyond it is at most what is still on its way
    jam = np.where(r.cam_ok, r.cam_h >= 0.5 * layout.cam_cap, lanes.adv_cover > 0)
    free = np.bincount(app, weights=jam.astype(np.float64), minlength=n_app) == 0
    tt = np.zeros(n_app)
    np.maximum.at(tt, app, layout.beyond_cap * cfg.jam_spacing / layout.speed)
    b = np.where(free, np.minimum(b, lanes.feed_rate * tt + 1.0), b)
    lanes.beyond = np.where(valid & (cap_b > 0), np.clip(b, 0.0, cap_b + 1.0), 0.0)
    share = np.where(cap_b[app] > 0, layout.beyond_cap / np.maximum(cap_b[app], 1e-9), 0.0)
    vis = np.where(r.cam_ok, r.cam_n, lanes.x)
    occ = np.maximum(q, vis + lanes.beyond[app] * share)
    out.space[:] = np.minimum(out.space, layout.capacity - occ)


def predicted_profile(layout: FusionLayout, lanes: LaneState, out: FusionOutputs, r: Readings, q: np.ndarray,
                      en_route: np.ndarray, known: np.ndarray, reference: bool = False) -> None:
    """Profile: detected arrivals plus the moving vehicles not yet placed, spread over the detection range (the
    [n_lanes, H] part as a Numba kernel; ``reference``: in NumPy)."""
    # only a camera sees moving vehicles: without one, vehicles - queue - en route is the loop count's drift,
    # and spread as arrivals it made phantom platoons (docs/fusion.md, 'The per-lane model', step 6)
    moving = np.maximum(out.vehicles - q - en_route, 0.0) * r.cam_ok
    prof = out.profile
    n_bins = layout.det_nbins
    hi = layout.det_bin
    lo = np.where(r.adv_ok, layout.adv_bin, 0)
    blind = known & ~r.cam_ok & (hi > lo) & ~(lanes.adv_cover > 0)
    if blind.any():  # a lane whose camera is gone: the upstream departures predicted in the camera's range
        moving = np.where(blind, _camera_band(layout, lanes, hi, lo), moving)
    if reference:
        prof[:] = lanes.prof_det
        prof += (layout.bins < n_bins[:, None]) * (moving / n_bins)[:, None]
    else:
        spread_profile_kernel(prof, lanes.prof_det, moving / n_bins, n_bins)


def _camera_band(layout: FusionLayout, lanes: LaneState, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Per lane: its share of the vehicles en route to its approach, due at the stop line in lo..hi s."""
    # share: the lane's arrival rate over the approach's predicted inflow, an equal share until that is known
    # (docs/fusion.md, step 6, 'Upstream departures, for a lane whose camera is gone')
    fr = lanes.feed_rate[layout.app]
    share = np.where(fr > 0.02, np.minimum(lanes.rate_est / np.maximum(fr, 1e-9), 1.5),
                     1.0 / layout.app_lanes[layout.app])
    er = lanes.en_route
    cum = np.concatenate((np.zeros((er.shape[0], 1)), np.cumsum(er, axis=1)), axis=1)
    hi_c = np.minimum(hi, er.shape[1])
    band = cum[layout.app, hi_c] - cum[layout.app, np.minimum(lo, hi_c)]
    return share * band


def lend_group_profile(layout: FusionLayout, out: FusionOutputs, any_ok: np.ndarray, borrowed: np.ndarray) -> None:
    """A lane that borrows its group's queue fills like the group: the mean profile of its lanes with a sensor."""
    g = layout.edge
    prof = out.profile
    n_ok = np.bincount(g, weights=any_ok.astype(np.float64), minlength=layout.n_edges)
    p_s = np.zeros((layout.n_edges, prof.shape[1]))
    np.add.at(p_s, g[any_ok], prof[any_ok])
    prof[borrowed] = p_s[g[borrowed]] / n_ok[g[borrowed], None]
