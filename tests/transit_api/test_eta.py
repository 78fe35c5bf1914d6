"""The predictors: the Kalman segment filters learn from observed traversals and keep what they learned in a real
SQLite file, the signal board turns the junction's colours into waits, the baseline propagates the deviation,
and the headways see bunching. Inputs are the demo city's feed and vehicle batches as the bus carries them."""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from pathlib import Path

import pytest

from engine.protocol import messages as m
from transit_api.eta import Filter, History, KalmanEta, Params, ScheduleDeviation, SignalBoard
from transit_api.gtfs import load_feed
from transit_api.vehicles import Clock, VehicleTracker

REPO = Path(__file__).resolve().parents[2]
GTFS = REPO / "scenarios" / "bunda_kota" / "gtfs"


@pytest.fixture(scope="module")
def feed():
    return load_feed(GTFS)


def clock(feed) -> Clock:
    return Clock(datetime(2026, 3, 2, 7, 0, tzinfo=feed.timezone))  # simulation second 0 = 07:00


def pos(vid, stop, dist=0.0, at=False, odo=0.0, speed=10.0, line="K1", start=60.0, tls="", link=-1, tls_dist=0.0):
    return m.VehiclePosition(vehicle=vid, line=line, trip=vid, start=start, odometer=odo, speed=speed,
                             next_stop=stop, stop_dist=dist, at_stop=at, next_tls=tls, tls_link=link,
                             tls_dist=tls_dist)


def drive(tracker, eta, vid, legs, line="K1", start=60.0):
    """Feed a bus through ``legs``: (stop, arrival time, departure time, odometer at the stop), one batch per s."""
    events = []
    prev_dep, prev_odo = start, 0.0
    for stop, arr, dep, odo in legs:
        for t in range(int(prev_dep), int(arr)):
            frac = (t - prev_dep) / (arr - prev_dep)
            d = (odo - prev_odo) * (1 - frac)
            ev = tracker.update(m.VehicleBatch(time=float(t), vehicles=[
                pos(vid, stop, d, odo=odo - d, line=line, start=start)]))
            eta.learn(ev, tracker.vehicles)
            events += ev
        for t in range(int(arr), int(dep)):
            ev = tracker.update(m.VehicleBatch(time=float(t), vehicles=[
                pos(vid, stop, 0.0, True, odo=odo, speed=0.0, line=line, start=start)]))
            eta.learn(ev, tracker.vehicles)
            events += ev
        prev_dep, prev_odo = dep, odo
    return events


K1E_01 = [("K1E_1", 80, 100, 150), ("K1E_2", 150, 170, 550), ("K1E_3", 210, 230, 950), ("K1E_4", 270, 290, 1350),
          ("K1E_5", 330, 350, 1780)]


def test_filter_follows_a_changing_time_and_measures_its_spread():
    f = Filter(60.0, 100.0, 100.0)
    for _ in range(20):
        f.update(60.0, q=25.0)
    assert f.x == pytest.approx(60.0) and f.r < 30
    for _ in range(10):  # the segment got slower (an incident): the estimate follows
        f.update(120.0, q=25.0)
    assert f.x > 110
    assert f.r > 100  # and its spread grew


def test_trip_matching_timetabled_and_headway_based(feed):
    tr = VehicleTracker(feed, clock(feed))
    tr.update(m.VehicleBatch(time=1030.0, vehicles=[
        pos("bus_K1E_03", "K1E_1", 100.0, start=1020.0),
        pos("bus_K2S_02", "K2S_1", 100.0, line="K2", start=900.0),
        pos("bus_K2S_03", "K2S_2", 100.0, line="K2", start=1620.0),
        pos("stray", "NOPE", line="X9")]))
    v = tr.vehicles
    assert v["bus_K1E_03"].run.trip_id == "bus_K1E_03" and v["bus_K1E_03"].run.headway is None
    # frequencies.txt: K2S every 720 s from 07:03:40; the SUMO bus departing at 900 s runs the 07:15:40 start
    assert v["bus_K2S_02"].run.trip_id == "K2S" and v["bus_K2S_02"].run.start_time == "07:15:40"
    assert v["bus_K2S_03"].run.start_time == "07:27:40" and v["bus_K2S_03"].run.headway == 720
    assert v["stray"].run is None and tr.unmatched == 1
    # a vehicle missing from its source's next batch is gone
    tr.update(m.VehicleBatch(time=1031.0, vehicles=[pos("bus_K1E_03", "K1E_1", 90.0, start=1020.0)]))
    assert set(tr.vehicles) == {"bus_K1E_03"}


def test_learns_segments_and_dwell_then_predicts_and_persists(feed, tmp_path):
    db = tmp_path / "history.sqlite"
    tr = VehicleTracker(feed, clock(feed))
    eta = KalmanEta(Params(), history=History(db))
    events = drive(tr, eta, "bus_K1E_01", K1E_01)
    kinds = [(e.kind, e.run.calls[e.index].stop_id) for e in events]
    assert kinds[:3] == [("arrival", "K1E_1"), ("departure", "K1E_1"), ("arrival", "K1E_2")]
    seg = eta.filters["seg", "K1E_1>K1E_2"]
    assert seg.x == pytest.approx(50.0, abs=1.5)  # departure 100 -> arrival 150
    assert eta.seg_len["K1E_1>K1E_2"] == pytest.approx(400.0, abs=1.0)
    eta.save()
    eta.history.close()

    # a second bus on the same line, predicted from a fresh predictor that reads the file
    again = KalmanEta(Params(), history=History(db))
    assert again.filters["seg", "K1E_1>K1E_2"].x == pytest.approx(seg.x)
    tr2 = VehicleTracker(feed, clock(feed))
    tr2.update(m.VehicleBatch(time=560.0, vehicles=[pos("bus_K1E_02", "K1E_2", 400.0, odo=150.0, start=540.0)]))
    tr2.update(m.VehicleBatch(time=561.0, vehicles=[pos("bus_K1E_02", "K1E_2", 390.0, odo=160.0, start=540.0)]))
    v = tr2.vehicles["bus_K1E_02"]
    preds = again.predict(v, 561.0)
    assert [p.stop_id for p in preds] == ["K1E_2", "K1E_3", "K1E_4", "K1E_5"]
    assert all(b.arrival > a.arrival for a, b in itertools.pairwise(preds))
    assert preds[0].arrival == pytest.approx(561 + 50 * 390 / 400, abs=3)
    # the uncertainty grows downstream
    assert all(b.uncertainty >= a.uncertainty for a, b in itertools.pairwise(preds))
    again.history.close()


def test_baseline_propagates_the_deviation(feed):
    tr = VehicleTracker(feed, clock(feed))
    eta = KalmanEta()
    drive(tr, eta, "bus_K1E_01", K1E_01[:1])
    base = ScheduleDeviation(eta.seg_len)
    # standing at K1E_1 at 90 s: scheduled arrival 80 s, so 10 s late (departure 100 s not passed)
    tr.update(m.VehicleBatch(time=90.0, vehicles=[pos("bus_K1E_01", "K1E_1", 0.0, True, odo=150.0)]))
    v = tr.vehicles["bus_K1E_01"]
    assert base.deviation(v, 90.0) == pytest.approx(10.0)
    preds = base.predict(v, 90.0)
    sched = {c.stop_id: c.arrival for c in v.run.calls}
    assert preds[2].arrival == pytest.approx(sched["K1E_3"] + 10.0)


def state(j, t, signal):
    return m.ControllerState(junction=j, time=t, signal=signal, mode=m.Mode.ENGINE)


def test_signal_board_waits_and_the_signal_aware_prediction():
    board = SignalBoard(Params())
    t = 0.0
    for _cycle in range(3):  # link 0: 30 s green, 40 s red
        for _ in range(30):
            board.on_state(state("A3", t, "Gr"))
            t += 1
        for _ in range(40):
            board.on_state(state("A3", t, "rG"))
            t += 1
    for _ in range(30):  # a green, then 10 s of red for link 0
        board.on_state(state("A3", t, "Gr"))
        t += 1
    for _ in range(10):
        board.on_state(state("A3", t, "rG"))
        t += 1
    now = t - 1
    assert board.links["A3", 0].mean[True] == pytest.approx(30, abs=1)
    assert board.links["A3", 0].mean[False] == pytest.approx(40, abs=1)
    wait = board.wait("A3", 0, now, now + 5.0)  # reaching the line 5 s from now: ~25 s of red left then
    assert wait == pytest.approx(40 - 10 - 5, abs=2)
    assert board.wait("A3", 1, now, now + 5.0) == 0.0  # link 1 is green and stays so
    assert board.wait("A3", 0, now, now + 35.0) == 0.0  # by then link 0 is green
    assert board.wait("B9", 0, now, now + 5.0) is None  # a junction never heard of
    # a plan that ends link 1's green early
    board.on_plan(m.Plan(junction="A3", time=now, phase=0, green_end=now + 2.0))
    assert board.wait("A3", 1, now, now + 20.0) > 0


def test_signal_aware_prediction_differs_on_red_and_green(feed):
    tr = VehicleTracker(feed, clock(feed))
    eta = KalmanEta(Params(signal_weight=1.0))
    drive(tr, eta, "bus_K1E_01", K1E_01)
    t = 900.0
    for k in range(125):  # link 3 of A2: 40 s green, 40 s red, ..., ending with 5 s of red
        eta.signals.on_state(state("A2", t + k, "rrrG" if (k // 40) % 2 == 0 else "rrrr"))
    now = t + 124
    p = pos("bus_K1E_04", "K1E_3", 300.0, odo=650.0, start=1500.0, tls="A2", link=3, tls_dist=60.0)
    tr.update(m.VehicleBatch(time=now, vehicles=[p]))
    red = eta.predict(tr.vehicles["bus_K1E_04"], now)[0].arrival
    for k in range(1, 3):
        eta.signals.on_state(state("A2", now + k, "rrrG"))
    tr.update(m.VehicleBatch(time=now + 2, vehicles=[p]))
    green = eta.predict(tr.vehicles["bus_K1E_04"], now + 2)[0].arrival
    assert red - (green - 2) > 15  # about the red left, less the time to reach the line


def test_headways_and_bunching(feed):
    from transit_api.headways import route_headways
    from transit_api.realtime import Realtime

    live = Realtime(feed, clock(feed), simulated=True)
    # two K2S buses 200 m apart on the way to K2S_4, a third at the line's start
    live.on_message(m.VehicleBatch(time=1000.0, vehicles=[
        pos("bus_K2S_02", "K2S_4", 100.0, line="K2", start=900.0, odo=900.0),
        pos("bus_K2S_09", "K2S_4", 300.0, line="K2", start=930.0, odo=700.0),
        pos("bus_K2S_03", "K2S_1", 100.0, line="K2", start=1620.0, odo=50.0)]))
    d0 = route_headways(live, "K2")[0]
    assert d0.scheduled_headway_s == 720
    assert d0.vehicles == ["bus_K2S_02", "bus_K2S_09", "bus_K2S_03"]
    first, second = d0.gaps
    assert first.stop_id == "K2S_4" and 0 < first.gap_s < 180 and first.bunched
    # the third is a whole line behind: its gap is several times larger (the demo's line is short: under 720/4 s)
    assert second.gap_s > 4 * first.gap_s
    assert d0.bunched_pairs == first.bunched + second.bunched and d0.gap_cv > 0.5
    live.close()


def test_history_file_is_sqlite_wal(tmp_path):
    import sqlite3

    h = History(tmp_path / "h.sqlite")
    h.save({("seg", "A>B"): Filter(42.0, 1.0, 9.0, 3)}, {"K1": [3, 0]})
    h.close()
    db = sqlite3.connect(tmp_path / "h.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT x, n FROM filters WHERE kind='seg' AND key='A>B'").fetchone() == (42.0, 3)
    db.close()
    filters, holds = History(tmp_path / "h.sqlite").load()
    assert filters["seg", "A>B"].r == 9.0 and holds == {"K1": [3, 0]}
    assert not math.isnan(filters["seg", "A>B"].p)


def test_params_from_a_file_name_the_bad_key(tmp_path):
    import json
    import re
    import subprocess
    import sys

    from transit_api.eta import load_params

    good = tmp_path / "eta.json"
    good.write_text(json.dumps({"benchmark": "eta", "params": {"q_segment": 4.0, "signal_weight": 0.25}}))
    assert (load_params(good).q_segment, load_params(good).signal_weight) == (4.0, 0.25)
    for doc, what in (({"q_segmnt": 4}, "key 'q_segmnt': unknown parameter"),
                      ({"hold_min_obs": 2.5}, "key 'hold_min_obs': expected a number (int)"),
                      ({"signal_weight": 2}, "key 'signal_weight': must be between 0 and 1"),
                      ({"r_dwell": "x"}, "key 'r_dwell': expected a number")):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(doc))
        with pytest.raises(ValueError, match=re.escape(what)):
            load_params(bad)
    lintas = Path(sys.executable).with_name("lintas")
    r = subprocess.run([str(lintas), "api", "--gtfs", str(GTFS), "--bus-out", "tcp://127.0.0.1:9", "--eta-params",
                        str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--eta-params" in r.stderr and "r_dwell" in r.stderr


def test_trips_not_started_are_predicted_from_the_history(feed):
    from transit_api.realtime import Realtime

    live = Realtime(feed, clock(feed), simulated=True)
    tr, eta = live.tracker, live.eta
    # the first K1E bus reaches K1E_1 12 s late: what the next trips' predictions start from
    legs = [("K1E_1", 92, 100, 150), ("K1E_2", 160, 180, 550)]
    drive(tr, eta, "bus_K1E_01", legs)
    live.on_message(m.VehicleBatch(time=200.0, vehicles=[pos("bus_K1E_01", "K1E_3", 300.0, odo=650.0)]))
    keys = [k for k in live.predictions if k.startswith("trip:")]
    assert "trip:bus_K1E_02/2026-03-02/07:09:40" in keys and "trip:bus_K1E_01/2026-03-02/07:01:40" not in keys
    assert "trip:K2S/2026-03-02/07:15:40" in keys  # a frequency instance starting within 30 min
    nxt = live.predictions["trip:bus_K1E_02/2026-03-02/07:09:40"]
    assert nxt[0].vehicle == "" and nxt[0].run.trip_id == "bus_K1E_02"
    assert nxt[0].arrival == pytest.approx(nxt[0].scheduled + 12.0)  # the lateness learned at the first stop
    assert [p.stop_id for p in nxt] == ["K1E_1", "K1E_2", "K1E_3", "K1E_4", "K1E_5"]
    live.close()
