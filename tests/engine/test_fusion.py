"""Sensor fusion (engine/fusion/): estimates from synthetic detector streams, health states, degradation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.fusion import DEAD, OK, STALE, STUCK, Fusion
from engine.network import DET_ADVANCE, DET_AREA, DET_STOPLINE, Network
from engine.policies import FusedObservations
from engine.protocol import messages as m

N_LANES = 2
ADV = 40.0
CAM = 100.0
SPEED = 13.89


def _detectors(names):
    """A stop-line loop, an advance loop and a camera per lane (``lintas_<kind>_<name>``): ids, lane
    indices, kinds, positions and zone lengths."""
    ids, lanes, kinds, pos, length = [], [], [], [], []
    for lane, name in enumerate(names):
        for prefix, kind, p, ln in (("sl", DET_STOPLINE, 1.0, 0.0), ("adv", DET_ADVANCE, ADV, 0.0),
                                    ("cam", DET_AREA, CAM, CAM)):
            ids.append(f"lintas_{prefix}_{name}")
            lanes.append(lane)
            kinds.append(kind)
            pos.append(p)
            length.append(ln)
    return ids, lanes, kinds, pos, length


def small_net(lane_ids=None, one_phase=False) -> Network:
    """Two lanes with a stop-line loop, an advance loop and a camera each; ``one_phase``: one junction
    whose single green phase serves both."""
    ids, lanes, kinds, pos, length = _detectors([f"L{i}" for i in range(N_LANES)])
    n_p = 1 if one_phase else 0
    mv = np.arange(N_LANES if one_phase else 0, dtype=np.int32)
    return Network(
        name="t", junctions=[], lane_ids=list(lane_ids or [f"L{i}" for i in range(N_LANES)]),
        lane_junction=np.zeros(N_LANES, np.int32), lane_length=np.full(N_LANES, 300.0),
        lane_speed=np.full(N_LANES, SPEED), mov_junction=np.zeros_like(mv), mov_link=mv, mov_in_lane=mv,
        mov_out_lane=np.full_like(mv, -1), mov_out_lane_id=[""] * len(mv),
        jn_phase_ptr=np.array([0, n_p] if one_phase else [0], np.int32),
        phase_mov_ptr=np.array([0, len(mv)] if one_phase else [0], np.int32),
        phase_mov_idx=mv, phase_min=np.full(n_p, 5.0), phase_max=np.full(n_p, 60.0), phase_fixed=np.full(n_p, 30.0),
        phase_next=np.zeros(n_p, np.int32), phase_yellow=np.full(n_p, 3.0), phase_allred=np.full(n_p, 1.0), det_ids=ids,
        det_lane=np.array(lanes, np.int32), det_kind=np.array(kinds, np.int8), det_pos=np.array(pos),
        det_length=np.array(length),
    )


class Lane:
    """A point-queue approach: arrivals cross the advance loop, reach the stop line ADV/v later, queue
    on red, discharge one vehicle per 2 s on green (cycle: 30 s red, 30 s green)."""

    def __init__(self, rate, seed):
        self.rs = np.random.default_rng(seed)
        self.rate = rate
        self.en_route: list[float] = []
        self.queue = 0
        self.next_dep = 0.0

    def step(self, t):
        adv_n = int(self.rs.random() < self.rate)
        if adv_n:
            self.en_route.append(t + ADV / (0.8 * SPEED))
        green = (t % 60) >= 30
        arrived = [x for x in self.en_route if x <= t]
        self.en_route = [x for x in self.en_route if x > t]
        sl_n = 0
        for _ in arrived:
            if green and self.queue == 0 and t >= self.next_dep:
                sl_n += 1
                self.next_dep = t + 2.0
            else:
                self.queue += 1
        if green and self.queue > 0 and t >= self.next_dep:
            self.queue -= 1
            sl_n += 1
            self.next_dep = t + 2.0
        sl_occ = 1.0 if (self.queue > 0 and not green) else (0.3 if sl_n else 0.0)
        adv_occ = 1.0 if (self.queue * 7.5 > ADV and not green) else (0.2 if adv_n else 0.0)
        cam_n = self.queue + len(self.en_route)
        return (sl_n, sl_occ), (adv_n, adv_occ), (cam_n, min(cam_n * 7.5 / CAM, 1.0), self.queue)


def stream(seconds, drop=lambda det, t: False, override=None, rates=(0.25, 0.15)):
    """Yield (t, batch, true queues) for a synthetic run; ``drop`` removes readings, ``override``
    replaces them (det id, t) -> (count, occ, halting)."""
    lanes = [Lane(r, i) for i, r in enumerate(rates)]
    for t in range(seconds):
        readings = []
        truth = []
        for i, ln in enumerate(lanes):
            (sn, so), (an, ao), (cn, co, ch) = ln.step(float(t))
            truth.append(ln.queue)
            for did, vals in ((f"lintas_sl_L{i}", (sn, so, 0)), (f"lintas_adv_L{i}", (an, ao, 0)),
                              (f"lintas_cam_L{i}", (cn, co, ch))):
                if drop(did, t):
                    continue
                if override is not None and override(did, t) is not None:
                    vals = override(did, t)
                readings.append(m.DetectorReading(did, int(vals[0]), float(vals[1]), int(vals[2])))
        yield float(t), m.DetectorBatch(source="test", time=float(t), readings=readings), np.array(truth, float)


def run(seconds, net=None, signal=False, lane=None, **kw):
    """Fusion over a synthetic run; mean absolute queue error after 120 s (of ``lane``, or all lanes).
    ``signal``: the engine tells fusion when the lanes show green (a one-phase net)."""
    f = Fusion(net or small_net())
    errs = []
    obs = None
    for t, batch, truth in stream(seconds, **kw):
        if signal:
            f.set_signal(0, 0 if (t % 60) >= 30 else -1)
        f.update(batch)
        obs = f.observations(t)
        if t > 120:
            errs.append(np.abs(obs.queue - truth) if lane is None else abs(obs.queue[lane] - truth[lane]))
    return f, obs, np.mean(errs)


def health_of(f, det_id):
    return int(f.health[f.net.det_index[det_id]])


def test_all_sensors_queue_is_the_camera_and_observations_are_a_superset():
    f, obs, err = run(600)
    assert isinstance(obs, FusedObservations)
    assert err < 0.05  # the camera halting count (plus a small beyond-the-zone extrapolation at full zones)
    assert all(h == OK for h in f.health)
    assert abs(obs.rate[0] - 0.25) < 0.12 and abs(obs.rate[1] - 0.15) < 0.1
    s = f.health_summary()
    assert s["ok"] == 6 and s["dead"] == 0 and s["area"]["ok"] == 2 and s["lanes_without_data"] == 0
    assert obs.profile.shape == (N_LANES, f.cfg.horizon) and (obs.profile >= 0).all()
    assert obs.space[0] == pytest.approx(300.0 / 7.5 - obs.queue[0])


def test_advance_crossing_predicts_arrival_at_free_flow_eta():
    f = Fusion(small_net())
    f.update(m.DetectorBatch(time=0.0, readings=[m.DetectorReading("lintas_adv_L0", 1, 0.2)]
                             + [m.DetectorReading(d, 0, 0.0) for d in f.net.det_ids if d != "lintas_adv_L0"]))
    obs = f.observations(0.0)
    eta = ADV / (0.8 * SPEED)  # 3.6 s
    k = int(np.argmax(obs.profile[0]))
    assert abs(k + 1 - eta) <= 1.0 and obs.profile[0].sum() == pytest.approx(1.0)
    assert obs.gap[0] == 0.0 and obs.gap[1] > 1e5


def test_cameras_gone_loops_alone_estimate_the_queue():
    f, _obs, err = run(900, drop=lambda d, t: "cam" in d)
    assert health_of(f, "lintas_cam_L0") == DEAD and health_of(f, "lintas_sl_L0") == OK
    assert err < 2.0  # vehicles, mean absolute error against the true queue (red-phase peaks 8-12)
    assert f.health_summary()["area"]["dead"] == 2


def test_loops_alone_queue_beyond_the_advance_loop_survives_the_start_of_green():
    """Loops only. While a standing vehicle covers the advance loop, the queue beyond it grows at the
    arrival rate; when the queue starts to move, those vehicles are still there until they have crossed
    the loop (the estimate must not collapse to the section between the loops at the start of green),
    and once the loop stays empty and silent the queue beyond it is gone."""
    f = Fusion(small_net())

    def tick(t, sl, adv):
        f.update(m.DetectorBatch(source="test", time=float(t), readings=[
            m.DetectorReading("lintas_sl_L0", sl[0], sl[1], 0), m.DetectorReading("lintas_adv_L0", adv[0], adv[1], 0)]))
        return f.observations(float(t)).queue[0]

    for t in range(300):  # free flow, one vehicle every 5 s
        hit = t % 5 == 0
        tick(t, (int(hit), 0.3 if hit else 0.0), (int(hit), 0.3 if hit else 0.0))
    for t in range(300, 330):  # red: the queue builds between the loops
        hit = t % 5 == 0
        tick(t, (0, 1.0), (int(hit), 0.3 if hit else 0.0))
    for t in range(330, 360):  # the queue reaches the advance loop and stands on it
        q_red = tick(t, (0, 1.0), (0, 1.0))
    beyond = float(f.up[0])
    assert beyond > 3.0
    q_start = [tick(t, (t % 2, 0.3 * (t % 2)), (t % 2, 0.3 * (t % 2))) for t in range(360, 364)]  # green
    assert q_red > beyond
    assert min(q_start) >= beyond  # not only the section between the loops (at most 6.3 vehicles)
    for t in range(364, 400):  # the rest crosses, then the advance loop stays empty and silent
        tick(t, (t % 2, 0.3 * (t % 2)), (int(t < 380 and t % 2), 0.3 * int(t < 380 and t % 2)))
    assert f.up[0] == 0.0


def test_loops_alone_count_drift_is_not_spread_as_arrivals():
    """Loops only, and half the vehicles that cross the advance loop change lanes before the stop line:
    the conservation count between the loops drifts upwards. Only a camera sees moving vehicles the loops
    have not placed; without one that drift must not become predicted arrivals (phantom platoons held
    greens and cost grid4x4 a third of its delay with every camera dead)."""
    f = Fusion(small_net())
    drift = []
    for t in range(200):
        adv = int(t % 3 == 0)
        sl = int(t % 6 == 4)
        f.update(m.DetectorBatch(source="test", time=float(t), readings=[
            m.DetectorReading("lintas_sl_L0", sl, 0.3 * sl, 0), m.DetectorReading("lintas_adv_L0", adv, 0.3 * adv, 0)]))
        obs = f.observations(float(t))
        assert obs.profile[0].sum() <= f.prof_det[0].sum() + 1e-9
        drift.append(f.x[0] - f.prof_det[0].sum())
    assert max(drift) > 2.0  # the count did drift: the guard above is tested


def test_loops_gone_cameras_alone():
    f, obs, err = run(600, drop=lambda d, t: "cam" not in d)
    assert err < 0.05  # the camera halting count (plus a small beyond-the-zone extrapolation at full zones)
    assert health_of(f, "lintas_sl_L1") == DEAD
    assert obs.gap[0] < 60.0  # departures seen by the camera count as crossings
    assert obs.rate[0] > 0.05


def test_everything_gone_places_a_standing_call():
    f, obs, _ = run(200, drop=lambda d, t: "L1" in d)
    assert obs.queue[1] == 1.0 and f.health_summary()["lanes_without_data"] == 1
    assert obs.wait[1] == 0.0  # a standing call is not a starving queue


def _fed_net() -> Network:
    """One junction, three lanes: U_0 (phase 0) feeds approach E, whose lanes are E_0 (phase 1) and E_1
    (phase 1 permissive 'g', phase 2 protected 'G'). Each lane has the three Lintas detectors."""
    from engine.protocol.junction import JunctionSpec

    lanes_ = ["U_0", "E_0", "E_1"]
    ids, dl, kinds, pos, length = _detectors(lanes_)
    spec = JunctionSpec(id="J", n_links=3, green_states=["Grr", "rGg", "rrG"], net_next=[1, 2, 0],
                        fixed_green=[30.0] * 3, min_green=[5.0] * 3, max_green=[60.0] * 3, yellow=[3.0] * 3,
                        allred=[1.0] * 3, net_transitions=[[], [], []], conflicts=["000"] * 3,
                        link_in_lane=lanes_, link_out_lane=["E_0", "", ""], link_via=["", "", ""])
    mv = np.arange(3, dtype=np.int32)
    return Network(
        name="fed", junctions=[spec], lane_ids=lanes_, lane_junction=np.zeros(3, np.int32),
        lane_length=np.full(3, 300.0), lane_speed=np.full(3, SPEED), mov_junction=np.zeros(3, np.int32),
        mov_link=mv, mov_in_lane=mv, mov_out_lane=np.array([1, -1, -1], np.int32), mov_out_lane_id=["E_0", "", ""],
        jn_phase_ptr=np.array([0, 3], np.int32), phase_mov_ptr=np.array([0, 1, 3, 4], np.int32),
        phase_mov_idx=np.array([0, 1, 2, 2], np.int32), phase_min=np.full(3, 5.0), phase_max=np.full(3, 60.0),
        phase_fixed=np.full(3, 30.0), phase_next=np.array([1, 2, 0], np.int32), phase_yellow=np.full(3, 3.0),
        phase_allred=np.full(3, 1.0), det_ids=ids, det_lane=np.array(dl, np.int32),
        det_kind=np.array(kinds, np.int8), det_pos=np.array(pos), det_length=np.array(length),
    )


def _fed_step(f, t, phase, e0_sees):
    """One second: ``phase`` green; U_0 sends a vehicle every 4 s while phase 0 is green; E_0's advance loop
    counts it when ``e0_sees``; E_1 reports nothing (every sensor gone)."""
    f.set_signal(0, phase)
    send = int(phase == 0 and t % 4 == 0)
    counts = {"lintas_sl_U_0": send, "lintas_adv_E_0": send if e0_sees else 0}
    readings = [m.DetectorReading(d, counts.get(d, 0), 0.0) for d in f.net.det_ids if "E_1" not in d]
    f.update(m.DetectorBatch(source="test", time=float(t), readings=readings))
    return f.observations(float(t))


def test_lane_without_sensors_on_a_fed_approach_queues_what_nobody_else_measures():
    """E_1 has no sensor left, but U_0 tells how many vehicles head for its approach and E_0 measures none
    of them: E_1 accumulates them (not a flat standing call), keeps them through a permissive green and
    discharges them at saturation flow on its protected green."""
    f = Fusion(_fed_net())
    for t in range(200):
        obs = _fed_step(f, t, 0, e0_sees=False)
    assert f.health_summary()["lanes_without_data"] == 1
    held = obs.queue[2]
    assert held > 10.0 and held == pytest.approx(f.blind_q[2])  # ~0.2 veh/s smoothed, for 200 s
    assert obs.wait[2] == 0.0
    for t in range(200, 260):
        obs = _fed_step(f, t, 1, e0_sees=False)
    assert obs.queue[2] >= held  # permissive: a left turner can stand there all green
    held = obs.queue[2]
    for t in range(260, 320):
        obs = _fed_step(f, t, 2, e0_sees=False)
    assert obs.queue[2] < held - 10.0  # protected: 0.5 veh/s out, the decaying feed in


def test_lane_without_sensors_whose_neighbour_measures_the_feed_is_recalled_after_a_long_red():
    """E_0 measures every vehicle U_0 sends towards the approach, so nothing is left for E_1: its model
    queue stays empty, and after ``blind_recall`` s without green it is called anyway."""
    f = Fusion(_fed_net())
    recall = f.cfg.blind_recall
    for t in range(int(recall) + 30):
        obs = _fed_step(f, t, 0, e0_sees=True)
        if 10 <= t < recall - 1:
            assert obs.queue[2] < 1.0
        if t >= recall + 1:
            assert obs.queue[2] >= 1.0


def test_stale_then_dead_then_recovers():
    f = Fusion(small_net())
    gone = (100, 150)
    states = {}
    for t, batch, _ in stream(200, drop=lambda d, t: d == "lintas_sl_L0" and gone[0] <= t < gone[1]):
        f.update(batch)
        states[int(t)] = health_of(f, "lintas_sl_L0")
    assert states[99] == OK and states[101] == OK  # 2 s without reading: still ok
    assert states[105] == STALE and states[125] == STALE
    assert states[135] == DEAD and states[149] == DEAD
    assert states[150] == OK


def test_stuck_loop_detected_and_not_used():
    def stuck(d, t):
        return (0, 0.7, 0) if (d == "lintas_adv_L0" and t >= 100) else None

    f, _obs, err = run(500, override=stuck)
    assert health_of(f, "lintas_adv_L0") == STUCK
    assert health_of(f, "lintas_adv_L1") == OK and f.health_summary()["stuck"] == 1
    assert err < 0.05  # the camera still gives the queue


def test_loop_that_never_counts_while_the_camera_sees_traffic_is_dead():
    def zero(d, t):
        return (0, 0.0, 0) if d == "lintas_sl_L0" else None

    f, _obs, _ = run(400, override=zero)
    assert health_of(f, "lintas_sl_L0") == DEAD
    assert health_of(f, "lintas_sl_L1") == OK


def test_stuck_camera_falls_back_to_loops():
    def frozen(d, t):
        return (6, 0.45, 4) if (d == "lintas_cam_L0" and t >= 100) else None

    f, _obs, _err = run(900, override=frozen)
    assert health_of(f, "lintas_cam_L0") == STUCK
    assert health_of(f, "lintas_cam_L1") == OK


def test_no_false_alarms_on_a_long_healthy_run():
    f, _, _ = run(1800, rates=(0.35, 0.05))
    assert f.health_summary()["ok"] == 6


def test_neighbour_plan_becomes_predicted_arrivals_beyond_the_detectors():
    from engine.protocol.junction import JunctionSpec

    net = small_net()
    net.junctions = [JunctionSpec(id="J", n_links=1, green_states=["G"], net_next=[0], fixed_green=[30.0],
                                  min_green=[5.0], max_green=[60.0], yellow=[3.0], allred=[1.0],
                                  net_transitions=[[]], conflicts=["0"], link_in_lane=["L0"],
                                  link_out_lane=["L1"], link_via=[""])]
    net.junction_index = {"J": 0}
    net.jn_phase_ptr = np.array([0, 1], np.int32)
    net.mov_junction = np.array([0], np.int32)
    net.mov_in_lane = np.array([0], np.int32)
    net.mov_out_lane = np.array([1], np.int32)
    net.mov_out_lane_id = ["L1"]
    f = Fusion(net)
    f.on_plan(m.decode(m.encode(m.Plan(junction="J", time=0.0, phase=0, green_end=20.0, next_phase=-1,
                                       lanes=["L1"], flows=[0.5]))))
    f.update(m.DetectorBatch(time=0.0, readings=[m.DetectorReading(d, 0, 0.0) for d in net.det_ids]))
    prof = f.observations(0.0).profile[1]
    tau = 300.0 / (0.8 * SPEED)  # 27 s from the upstream stop line
    assert prof.sum() == pytest.approx(0.5 * 20.0)
    assert prof[: int(tau)].sum() == 0.0 and prof[int(tau) + 1] == pytest.approx(0.5)
    assert f.observations(0.0).profile[0].sum() == 0.0
    # an older plan is ignored; a newer one replaces it
    f.on_plan(m.Plan(junction="J", time=-1.0, green_end=50.0, lanes=["L1"], flows=[1.0]))
    assert f.mov_flow[0] == 0.5
    f.on_plan(m.Plan(junction="J", time=1.0, green_end=1.0, lanes=[], flows=[]))
    assert f.mov_flow[0] == 0.0 and f.plan_rem[0] == 0.0


def _upstream_feed_run(camera_alive):
    """L0 -> L1 (one junction, one phase, green): one vehicle leaves L0's stop line at t = 10; L1's loops
    see nothing yet. Returns L1's profile sum per second."""
    net = small_net(one_phase=True)
    net.mov_out_lane = np.array([1, -1], np.int32)
    net.mov_out_lane_id = ["L1", ""]
    f = Fusion(net)
    f.set_signal(0, 0)
    sums = {}
    for t in range(40):
        readings = [m.DetectorReading(d, int(d == "lintas_sl_L0" and t == 10), 0.0) for d in net.det_ids
                    if camera_alive or d != "lintas_cam_L1"]
        f.update(m.DetectorBatch(source="test", time=float(t), readings=readings))
        obs = f.observations(float(t))
        sums[t] = (float(obs.profile[1].sum()), float(obs.profile[1][0]))
    return f, sums


def test_a_lane_whose_camera_is_gone_sees_upstream_departures_where_the_camera_looked():
    """The vehicle that left upstream at t = 10 is due at L1's stop line 27 s later (300 m at 0.8 x the
    limit). While it is predicted between L1's advance loop (3.6 s) and the end of the camera's range (9 s),
    L1, whose camera is dead, gets it as the camera would have: spread from the stop line over the range.
    Before and after that window, and on a lane whose camera works, it is not there."""
    f, sums = _upstream_feed_run(camera_alive=False)
    assert f.health[f.net.det_index["lintas_cam_L1"]] != OK
    assert sums[20][0] == 0.0  # still beyond the camera's range
    assert sums[31][0] == pytest.approx(1.0) and sums[31][1] > 0.0  # bin 6: inside it, spread from bin 0
    assert sums[36][0] == 0.0  # within the advance loop's reach: only a crossing counts
    _f, seen = _upstream_feed_run(camera_alive=True)
    assert seen[31][0] == 0.0  # the camera saw no vehicle there: none is invented


def test_stop_line_loop_alone_sees_the_queue_a_standing_vehicle_holds():
    """Only the stop-line loop left: while a vehicle stands on it, the queue has stood that long and the
    lane's arrivals since joined it (1 + rate x time covered), instead of the single vehicle it sees."""
    _f, _obs, err = run(900, drop=lambda d, t: d.endswith("L0") and "sl" not in d, lane=0)
    assert err < 3.5  # red-phase peaks 8-12
    f2 = Fusion(small_net())
    peaks = []
    for t, batch, truth in stream(900, drop=lambda d, t: d.endswith("L0") and "sl" not in d):
        f2.update(batch)
        if t > 120 and t % 60 == 28:  # late in the red: the true queue is at its peak
            peaks.append((f2.observations(t).queue[0], truth[0]))
    assert np.mean([q for q, _ in peaks]) > 0.6 * np.mean([tr for _, tr in peaks]) > 2.0


def test_advance_loop_alone_departures_modelled_on_green():
    """Only the advance loop left: arrivals are counted, and the engine's signal state lets vehicles
    leave at saturation flow on green; without it the count could only grow."""
    net = small_net(one_phase=True)
    def only_adv(d, t):
        return d.endswith("L0") and "adv" not in d

    # queues that fit between the loops (peaks ~4 vehicles): the count alone would only ever grow
    _f, _obs, err_model = run(900, net=net, signal=True, drop=only_adv, lane=0, rates=(0.12, 0.1))
    _f, _obs, err_blind = run(900, net=net, signal=False, drop=only_adv, lane=0, rates=(0.12, 0.1))
    assert err_model < 0.5 and err_blind > 3.0


def test_advance_loop_alone_green_discharge_is_not_a_stall_nor_starvation():
    """Only the advance loop left: while the lane shows green and its modelled queue discharges, its gap
    stays short (a queue standing between the loops leaves without crossing the advance loop; an
    advance-loop gap would make the policy call the lane stalled and cut its green at the minimum), and
    its head-of-queue wait restarts (each green serves it: no false starvation)."""
    net = small_net(one_phase=True)
    f = Fusion(net)
    gaps_green, waits = [], []
    for t, batch, _truth in stream(900, drop=lambda d, t: d.endswith("L0") and "adv" not in d, rates=(0.12, 0.1)):
        green = (t % 60) >= 30
        f.set_signal(0, 0 if green else -1)
        f.update(batch)
        obs = f.observations(t)
        if t > 120:
            waits.append(obs.wait[0])
            if green and obs.queue[0] >= 1.0:
                gaps_green.append(obs.gap[0])
    assert gaps_green and max(gaps_green) <= 1.0
    assert max(waits) < 60.0  # at most one red (30 s) plus the green it takes to clear


def test_camera_alone_on_green_moving_vehicles_mean_the_lane_flows():
    """Only the camera left: on green, its count can hold steady while queued vehicles leave and new
    ones enter the zone; vehicles moving in the zone keep the gap short, so the green is not cut as if
    the lane had stalled."""
    net = small_net(one_phase=True)
    f = Fusion(net)
    gaps_green = []
    for t, batch, _truth in stream(900, drop=lambda d, t: d.endswith("L0") and "cam" not in d, rates=(0.4, 0.1)):
        green = (t % 60) >= 30
        f.set_signal(0, 0 if green else -1)
        f.update(batch)
        obs = f.observations(t)
        if t > 120 and green and obs.queue[0] >= 1.0:
            gaps_green.append(obs.gap[0])
    assert gaps_green and max(gaps_green) <= 1.0


def test_a_saturated_lane_that_is_served_every_cycle_is_not_starving():
    """All sensors, demand above capacity: the queue never clears, but the lane discharges on every
    green, so its head-of-queue wait restarts each cycle. (Counting from when the queue formed made every
    saturated approach look starved; the starvation guard then switched at minimum green on every phase
    and the lost time collapsed the junction.)"""
    f = Fusion(small_net(one_phase=True))
    waits, truths = [], []
    for t, batch, truth in stream(900, rates=(0.3, 0.1)):
        f.set_signal(0, 0 if (t % 60) >= 30 else -1)
        f.update(batch)
        obs = f.observations(t)
        if t > 300:
            waits.append(obs.wait[0])
            truths.append(truth[0])
    assert min(truths) >= 1  # the queue never cleared
    assert max(waits) <= 32.0  # one red (30 s) and the step to the first departure


def test_lane_without_sensors_borrows_its_neighbours_queue():
    """Two lanes of one approach served by the same phase: the one whose sensors are all gone takes
    the queue, gap, arrival rate and predicted arrivals of the one that sees its own, and keeps at least a
    standing call (its own queue may stand while the neighbour's clears), with no starvation wait."""
    net = small_net(lane_ids=["E_0", "E_1"], one_phase=True)
    f = Fusion(net)
    for t, batch, _truth in stream(400, drop=lambda d, t: d.endswith("L1"), rates=(0.25, 0.25)):
        f.update(batch)
        obs = f.observations(t)
        if t > 60:
            assert obs.queue[1] == pytest.approx(max(obs.queue[0], 1.0))
            assert obs.wait[1] == 0.0
            # it flows and fills like its neighbour: same gap (a borrowed queue with no crossing of its own
            # looked stalled), same arrival rate and predicted arrivals
            assert obs.gap[1] == obs.gap[0]
            assert obs.rate[1] == pytest.approx(obs.rate[0])
            assert np.allclose(obs.profile[1], obs.profile[0])
    assert f.health_summary()["lanes_without_data"] == 0


def test_the_policies_read_fusions_own_arrays_and_the_layout_is_static():
    """observations() hands the policies fusion's output arrays themselves, the same object every tick (the
    adaptive kernel writes its plan into them and fusion reads it back); the layout is read-only."""
    f = Fusion(small_net())
    obs = f.observations(0.0)
    assert obs is f.observations(1.0)
    assert obs.queue is f.out.queue and obs.profile is f.out.profile
    assert obs.plan_rem is f.plan_rem and obs.plan_next is f.out.plan_next and obs.mov_flow is f.mov_flow
    with pytest.raises(ValueError):
        f.layout.capacity[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.layout.horizon = 30  # type: ignore[misc]


def test_a_network_without_detectors_calls_every_lane():
    net = small_net()
    net.det_ids, net.det_index = [], {}
    net.det_lane, net.det_kind = np.zeros(0, np.int32), np.zeros(0, np.int8)
    net.det_pos, net.det_length = np.zeros(0), np.zeros(0)
    f = Fusion(net)
    for t in range(5):
        f.update(m.DetectorBatch(source="test", time=float(t), readings=[m.DetectorReading("lintas_sl_L0", 1, 0.3)]))
    obs = f.observations(4.0)
    assert (obs.queue == 1.0).all() and (obs.wait == 0.0).all()
    assert f.unknown == 5 and f.health_summary()["lanes_without_data"] == N_LANES


# -- columnar batches and the Numba kernels (docs/performance.md) ---------------------------------------------
def _fields(f):
    arrays = {}
    for part in (f.sensors, f.lanes, f.out):
        for k, v in vars(part).items():
            arrays[f"{type(part).__name__}.{k}"] = v
    return arrays


def test_columnar_batches_give_the_same_estimates_as_readings_bit_for_bit():
    """The same synthetic run fed as readings, as columns by id and as index columns (in shuffled order,
    with a dead detector left out), leaves every array of the model identical."""
    net = small_net(one_phase=True)
    fs = [Fusion(net) for _ in range(3)]
    layout = m.detector_layout(net.det_ids)
    rng = np.random.default_rng(3)
    for t, batch, _truth in stream(240, drop=lambda det, t: det == "lintas_adv_L1" and t > 100):
        for f in fs:
            f.set_signal(0, 0 if (t % 60) >= 30 else -1)
        fs[0].update(batch)
        rs = [batch.readings[i] for i in rng.permutation(len(batch.readings))]
        cols = {"count": [r.count for r in rs], "occupancy": [r.occupancy for r in rs],
                "halting": [r.halting for r in rs]}
        by_id = m.detector_batch("test", t, detectors=[r.detector for r in rs], **cols)
        by_index = m.detector_batch("test", t, index=[net.det_index[r.detector] for r in rs], layout=layout, **cols)
        fs[1].update(m.decode(m.encode(by_id)))
        fs[2].update(m.decode(m.encode(by_index)))
    a = _fields(fs[0])
    for other in fs[1:]:
        b = _fields(other)
        for k, v in a.items():
            assert np.array_equal(v, b[k], equal_nan=True) if isinstance(v, np.ndarray) else v == b[k], k
    assert fs[0].readings > 1000 and fs[0].unknown == 0


def test_index_batches_of_another_layout_and_unknown_ids_are_counted_not_used():
    net = small_net()
    f = Fusion(net)
    f.update(m.detector_batch("x", 1.0, [3, 3], [0.5, 0.5], index=[0, 1], layout="0123456789abcdef"))
    f.update(m.detector_batch("x", 2.0, [3, 3], [0.5, 0.5], detectors=["nope", net.det_ids[0]]))
    f.update(m.detector_batch("x", 3.0, [3], [0.5], index=[99], layout=f.layout_digest))
    assert f.readings == 5 and f.unknown == 4
    assert f.sensors.count[0] == 3 and f.sensors.count[1:].sum() == 0


def test_a_malformed_batch_is_refused_before_anything_changes():
    net = small_net()
    f = Fusion(net)
    good = m.detector_batch("x", 1.0, [1, 2], [0.1, 0.2], index=[0, 1], layout=f.layout_digest)
    short = msgspec_replace(good, occupancy=good.occupancy[:8])
    both = msgspec_replace(good, readings=[m.DetectorReading("a", 1, 0.1)])
    odd = msgspec_replace(good, count=good.count[:5])
    for bad, what in ((short, "occupancy"), (both, "both"), (odd, "count")):
        with pytest.raises(ValueError, match=what):
            f.update(bad)
    assert f.readings == 0 and f.sensors.batches == 0
    assert [r.detector for r in m.batch_readings(good, net.det_ids)] == net.det_ids[:2]


def msgspec_replace(s, **kw):
    import msgspec

    return msgspec.structs.replace(s, **kw)


def test_consume_profile_kernel_equals_its_reference():
    """The Numba kernel of the profile's consumption against the Python reference, on random profiles."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from engine.fusion import model

    fl = st.floats(0.0, 20.0, allow_nan=False, width=64)

    @settings(max_examples=60, deadline=None)
    @given(arrays(np.float64, (7, 5), elements=fl), arrays(np.float64, 7, elements=fl),
           arrays(np.float64, 7, elements=fl))
    def check(prof, q, prev):
        a, b = _lanes_with(prof.copy()), _lanes_with(prof.copy())
        model.consume_profile(a, q, prev)
        model.consume_profile_reference(b, q, prev)
        assert np.array_equal(a.prof_det, b.prof_det)

    check()


def _lanes_with(prof):
    from engine.fusion.state import LaneState

    z = np.zeros(prof.shape[0])
    return LaneState(x=z, P=z, up=z, rate_est=z, sl_cover=z, adv_cover=z, sl_empty=z, adv_quiet=z, idle=z,
                     cam_full=z, cam_prev=z, cam_prev_valid=z.astype(bool), last_cross=z, queue_since=z,
                     prof_det=prof, blind_q=z, red_for=z, en_route=np.zeros((1, 1)), feed_rate=np.zeros(1),
                     beyond=np.zeros(1), green_phase=np.zeros(1, np.int64))


def test_green_sets_kernel_equals_the_dense_reference():
    """The lanes, protected lanes and movements green under any set of phases: the CSR kernel against the
    dense phase tables, on random phase -> movement tables."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from engine.fusion.layout import green_sets, green_sets_reference

    @settings(max_examples=100, deadline=None)
    @given(st.integers(1, 6), st.integers(1, 9), st.integers(0, 2**32 - 1))
    def check(n_p, n_mov, seed):
        rng = np.random.default_rng(seed)
        n_l = max(1, n_mov // 2)
        counts = rng.integers(0, n_mov + 1, n_p)
        ptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        mov = np.concatenate([rng.choice(n_mov, c, replace=False) for c in counts]).astype(np.int64)
        mov_in = rng.integers(0, n_l, n_mov).astype(np.int64)
        lay = _Layout(ptr, mov, mov_in[mov], rng.random(mov.shape[0]) < 0.5, mov_in, n_l)
        gp = rng.choice(n_p, rng.integers(0, n_p + 1), replace=False).astype(np.int64)
        for a, b in zip(green_sets(lay, gp), green_sets_reference(lay, gp)):
            assert np.array_equal(a, b)

    check()


@dataclasses.dataclass
class _Layout:  # the fields green_sets reads
    ph_ptr: np.ndarray
    ph_mov: np.ndarray
    ph_lane: np.ndarray
    ph_prot: np.ndarray
    mov_in: np.ndarray
    n_lanes: int


def test_fusion_with_its_kernels_equals_its_numpy_reference_bit_for_bit():
    """Random detector streams (random counts, occupancies, halting, missing readings, phases, plans) through
    fusion with its Numba kernels and through its NumPy/Python reference: every array equal after every tick."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    net = _fed_net()
    layout = m.detector_layout(net.det_ids)

    @settings(max_examples=12, deadline=None)
    @given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.6))
    def check(seed, p_drop):
        rng = np.random.default_rng(seed)
        fk, fr = Fusion(net), Fusion(net, reference=True)
        n = net.n_detectors
        silent = rng.random(n) < 0.15  # never report: no-data, then stale and dead
        frozen = rng.random(n) < 0.15  # report the same reading every tick
        f_cnt, f_occ = rng.poisson(1.5, n), rng.uniform(0, 1, n)
        for t in range(80):
            phase = int(rng.integers(-1, 3))
            keep = np.flatnonzero((rng.random(n) >= p_drop) & ~silent)
            cnt = rng.poisson(1.5, keep.size)
            u = rng.random(keep.size)
            occ = np.where(u < 0.2, 1.0, np.where(u < 0.5, rng.uniform(0, 1, keep.size),
                                                   rng.uniform(0, 1, keep.size) * (cnt > 0)))
            fz = frozen[keep]
            cnt, occ = np.where(fz, f_cnt[keep], cnt), np.where(fz, f_occ[keep], occ)
            halt = rng.binomial(cnt, 0.5)
            now = 0.5 * t  # half-second ticks: ages fall on the health thresholds (2.5 s stale)
            batch = m.detector_batch("t", now, cnt, occ, halt, index=keep, layout=layout, interval=0.5)
            plan = m.Plan(junction="J", time=now, phase=0, green_end=now + float(rng.integers(0, 30)),
                          next_phase=1, lanes=["E_0"], flows=[float(rng.uniform(0, 0.5))])
            for f in (fk, fr):
                f.set_signal(0, phase)
                if t % 7 == 3:
                    f.on_plan(plan)
                f.update(batch)
                f.observations(now)
            a, b = _fields(fk), _fields(fr)
            for k, v in a.items():
                same = np.array_equal(v, b[k], equal_nan=True) if isinstance(v, np.ndarray) else v == b[k]
                assert same, (t, k)

    check()


def _spill_run(send_until, seconds, zone_full=True):
    """L0 -> L1 (one junction, one green phase): L0's stop line sends a vehicle every 2 s until ``send_until``;
    L1's camera (100 m of its 300 m) shows 13 standing vehicles (``zone_full``) or none, and nothing leaves L1.
    Returns L1's space per second."""
    net = small_net(one_phase=True)
    net.mov_out_lane = np.array([1, -1], np.int32)
    net.mov_out_lane_id = ["L1", ""]
    f = Fusion(net)
    f.set_signal(0, 0)
    space = {}
    n = 13 if zone_full else 0
    for t in range(seconds):
        vals = {"lintas_sl_L0": (int(t < send_until and t % 2 == 0), 0.5, 0),
                "lintas_cam_L1": (n, 1.0 if zone_full else 0.0, n), "lintas_sl_L1": (0, 1.0 if zone_full else 0.0, 0),
                "lintas_adv_L1": (0, 1.0 if zone_full else 0.0, 0)}
        readings = [m.DetectorReading(d, *vals.get(d, (0, 0.0, 0))) for d in net.det_ids]
        f.update(m.DetectorBatch(source="test", time=float(t), readings=readings))
        space[t] = float(f.observations(float(t)).space[1])
    return space


def test_a_queue_beyond_the_cameras_reach_is_seen_from_the_upstream_departures():
    """L1 stores 40 vehicles (300 m / 7.5 m); its camera sees 13 of them standing and nothing enters its zone.
    The 30 vehicles L0 sends towards it in 60 s must be upstream of the camera: L1 is full (space < 1), which
    the camera's halting count alone (space 27) would never show. With the zone empty, what is upstream of it
    is at most what is still on its way: space comes back once L0 stops sending."""
    space = _spill_run(send_until=60, seconds=70)
    assert space[5] > 20.0
    assert space[65] < 1.0
    free = _spill_run(send_until=60, seconds=200, zone_full=False)
    assert free[199] > 38.0
