"""Tests of simulation.experiments.metrics (the RESCO delay metric) and of the SUMO outputs it reads."""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from simulation.experiments.catalog import RESCO_DIR
from simulation.experiments.metrics import compute_metrics, scheduled_departures
from simulation.sumo.outputs import SumoOutputError, read_statistics, sumo_output_args
from simulation.sumo.scenario import load_scenario, parse_sumo_time
from simulation.sumo.tools import sumo_binary


def _scenario(name: str) -> Path:
    cfg = RESCO_DIR / name / f"{name}.sumocfg"
    if not cfg.is_file():
        pytest.skip(f"RESCO scenario {name} not found at {cfg.parent}")
    return cfg


# ------------------------------------------------------------------------------------------
# scheduled_departures
# ------------------------------------------------------------------------------------------

ROUTES = """<?xml version="1.0" encoding="UTF-8"?>
<routes>
    <vType id="t" sigma="0"/>
    <flow id="pre" type="t" begin="0" end="100" period="15" from="e" to="e"/>
    <vehicle id="early" type="t" depart="5"><route edges="e"/></vehicle>
    <trip id="trig" type="t" depart="triggered" from="e" to="e"/>
    <vehicle id="v1" type="t" depart="20.5"><route edges="e"/></vehicle>
    <trip id="t1" type="t" depart="22" from="e" to="e"/>
    <flow id="fn" type="t" begin="30" end="120" number="4" from="e" to="e"/>
    <flow id="fv" type="t" begin="30" end="200" vehsPerHour="100" from="e" to="e"/>
    <flow id="fnp" type="t" begin="40" number="3" period="7" from="e" to="e"/>
    <flow id="fc" type="t" begin="0:00:50" end="0:01:30" period="20" from="e" to="e"/>
    <vehicle id="unsorted" type="t" depart="45"><route edges="e"/></vehicle>
    <vehicle id="atend" type="t" depart="150"><route edges="e"/></vehicle>
</routes>
"""


def test_scheduled_departures_vehicles_trips_flows(tmp_path: Path) -> None:
    rou = tmp_path / "demand.rou.xml"
    rou.write_text(ROUTES)
    got = scheduled_departures(rou, 10.0, 150.0)
    want = {
        # before begin and triggered are out; flow "pre" (begin 0) is numbered from its first
        # vehicle at or after begin, as SUMO does
        "pre.0": 15.0, "pre.1": 30.0, "pre.2": 45.0, "pre.3": 60.0, "pre.4": 75.0, "pre.5": 90.0,
        "v1": 20.5, "t1": 22.0,
        # number with end: period (120 - 30) / 4 = 22.5
        "fn.0": 30.0, "fn.1": 52.5, "fn.2": 75.0, "fn.3": 97.5,
        # 100 veh/h: period 36 s; 138 < 150 (window end) but 174 is outside
        "fv.0": 30.0, "fv.1": 66.0, "fv.2": 102.0, "fv.3": 138.0,
        # number with period and no end: exactly 3
        "fnp.0": 40.0, "fnp.1": 47.0, "fnp.2": 54.0,
        # clock times; the flow's end is exclusive
        "fc.0": 50.0, "fc.1": 70.0,
        # "unsorted" (45 after a flow beginning at 50) is dropped like SUMO does; "atend" is at end
    }
    assert got == pytest.approx(want)
    assert "unsorted" not in got and "atend" not in got and "early" not in got and "trig" not in got

    # with --route-steps -1 SUMO keeps unsorted entries
    loose = scheduled_departures([rou], 10.0, 150.0, drop_unsorted=False)
    assert loose["unsorted"] == 45.0
    assert set(loose) - set(got) == {"unsorted"}


def test_scheduled_departures_match_sumo(tmp_path: Path) -> None:
    """The same demand run through SUMO: ids and desired departs (depart - departDelay) agree."""
    import subprocess

    binary = sumo_binary()
    netgen = sumo_binary("netgenerate")
    net = tmp_path / "line.net.xml"
    subprocess.run([netgen, "--grid", "--grid.x-number", "2", "--grid.y-number", "1", "--grid.length", "500",
                    "--default.lanenumber", "1", "-o", str(net)], check=True, capture_output=True)
    rou = tmp_path / "demand.rou.xml"
    rou.write_text(ROUTES.replace('"e"', '"A0B0"'))
    ti = tmp_path / "ti.xml"
    subprocess.run([binary, "-n", str(net), "-r", str(rou), "--begin", "10", "--end", "1000",
                    "--tripinfo-output", str(ti), "--no-step-log", "true", "--no-warnings", "true"],
                   check=True, capture_output=True)
    sumo = {t.get("id"): float(t.get("depart")) - float(t.get("departDelay"))
            for t in ET.parse(ti).getroot().iter("tripinfo")}
    assert scheduled_departures(rou, 10.0, 1000.0) == pytest.approx(sumo)


def test_scheduled_departures_random_flow_raises(tmp_path: Path) -> None:
    rou = tmp_path / "p.rou.xml"
    rou.write_text('<routes><flow id="p" begin="0" end="100" probability="0.1" from="e" to="e"/></routes>')
    with pytest.raises(ValueError, match=r"probability"):
        scheduled_departures(rou, 0, 100)
    rou.write_text('<routes><flow id="x" begin="0" end="100" period="exp(0.1)" from="e" to="e"/></routes>')
    with pytest.raises(ValueError, match=r"random"):
        scheduled_departures(rou, 0, 100)


def test_parse_sumo_time() -> None:
    assert parse_sumo_time("25200") == 25200.0
    assert parse_sumo_time("7:00:00") == 25200.0
    assert parse_sumo_time("1:00:00:10") == 86410.0
    assert parse_sumo_time(3.5) == 3.5


@pytest.mark.parametrize("name,count", [("cologne1", 2015), ("cologne3", 2856), ("ingolstadt7", 3031),
                                        ("grid4x4", 1473)])
def test_scheduled_departures_resco(name: str, count: int) -> None:
    cfg = load_scenario(_scenario(name))
    t0 = time.perf_counter()
    sched = scheduled_departures(cfg.route_files, cfg.begin, cfg.end)
    elapsed = time.perf_counter() - t0
    assert len(sched) == count
    assert min(sched.values()) >= cfg.begin and max(sched.values()) < cfg.end
    assert elapsed < 1.0  # cologne3's 760 KB route file included


# ------------------------------------------------------------------------------------------
# compute_metrics on handmade outputs
# ------------------------------------------------------------------------------------------

TRIPINFO = """<?xml version="1.0" encoding="UTF-8"?>
<tripinfos>
    <tripinfo id="old" depart="95.00" departDelay="0.00" arrival="120.00" duration="25.00"
              waitingTime="0.00" timeLoss="5.00"/>
    <tripinfo id="a" depart="102.00" departDelay="2.00" arrival="160.00" duration="58.00"
              waitingTime="10.00" waitingCount="1" timeLoss="20.00"/>
    <tripinfo id="b" depart="110.00" departDelay="0.00" arrival="450.00" duration="340.00"
              waitingTime="30.00" waitingCount="4" timeLoss="40.00"/>
    <tripinfo id="c" depart="500.00" departDelay="20.00" arrival="-1.00" arrivalLane="" duration="100.00"
              waitingTime="50.00" waitingCount="2" timeLoss="60.00" vaporized="end"/>
    <tripinfo id="e" depart="-1" departDelay="10.00" arrival="-1.00" duration="0.00"
              waitingTime="0.00" timeLoss="0.00"/>
</tripinfos>
"""

STATISTICS = """<?xml version="1.0" encoding="UTF-8"?>
<statistics>
    <vehicles loaded="5" inserted="4" running="1" waiting="1"/>
    <teleports total="2" jam="1" yield="1" wrongLane="0"/>
    <safety collisions="1" emergencyStops="3" emergencyBraking="4"/>
</statistics>
"""


def test_compute_metrics_handmade(tmp_path: Path) -> None:
    ti = tmp_path / "tripinfo.xml"
    st = tmp_path / "statistics.xml"
    ti.write_text(TRIPINFO)
    st.write_text(STATISTICS)
    end = 600.0
    # "old" departed before the window: not scheduled, ignored. "d" never inserted and absent,
    # "e" never inserted and written by --tripinfo-output.write-undeparted.
    scheduled = {"a": 100.0, "b": 110.0, "c": 480.0, "d": 550.0, "e": 590.0}
    q = np.array([[0, 2], [2, 4], [4, 6], [6, 8]], dtype=float)
    m = compute_metrics(ti, st, scheduled, end, q, junction_ids=["J1", "J2"], begin=0.0)

    delays = {"a": 22.0, "b": 40.0, "c": 80.0, "d": 50.0, "e": 10.0}
    assert m.vehicles == 5
    assert m.delay_s == pytest.approx(sum(delays.values()) / 5)  # 40.4
    assert m.trip_duration_s == pytest.approx((58.0 + 340.0) / 2)  # arrived only
    assert m.waiting_s == pytest.approx((10.0 + 30.0 + 50.0) / 3)  # departed only
    assert m.stops_per_veh == pytest.approx((1 + 4 + 2) / 3)  # waitingCount of departed vehicles
    assert m.throughput_veh == 2
    assert m.teleports == 2 and m.collisions == 1
    assert m.emergency_stops == 3 and m.emergency_braking == 4
    assert (m.inserted, m.unfinished, m.never_inserted, m.unscheduled_ignored) == (3, 1, 2, 1)
    assert m.time_loss_s == pytest.approx(40.0) and m.depart_delay_s == pytest.approx(22.0 / 3)
    assert m.delay_max_s == pytest.approx(80.0)
    # bins of 300 s from 0: a arrives at 160 -> [0, 300); b at 450 -> [300, 600);
    # c, d, e end at 600 = end -> last bin [300, 600)
    assert m.delay_by_arrival == [(0.0, pytest.approx(22.0)), (300.0, pytest.approx((40 + 80 + 50 + 10) / 4))]
    assert m.vehicles_by_arrival == [(0.0, 1), (300.0, 4)]
    # queue: mean over steps of the mean over junctions; per junction mean over steps
    assert m.queue_veh == pytest.approx(4.0)
    assert m.queue_by_junction == {"J1": pytest.approx(3.0), "J2": pytest.approx(5.0)}
    d = m.to_dict()
    assert d["delay_s"] == pytest.approx(40.4) and d["queue_by_junction"]["J2"] == pytest.approx(5.0)


def test_compute_metrics_without_queue_or_statistics(tmp_path: Path) -> None:
    ti = tmp_path / "tripinfo.xml"
    ti.write_text(TRIPINFO)
    m = compute_metrics(ti, None, {"a": 100.0}, 600.0, None)
    assert m.delay_s == pytest.approx(22.0)
    assert math.isnan(m.queue_veh) and m.queue_by_junction == {}
    assert m.teleports == 0 and m.collisions == 0
    assert m.to_dict()["queue_veh"] is None


def test_read_statistics(tmp_path: Path) -> None:
    st = tmp_path / "s.xml"
    st.write_text(STATISTICS)
    s = read_statistics(st)
    assert s["teleports"] == 2 and s["collisions"] == 1 and s["waiting"] == 1
    assert s["teleports_jam"] == 1 and s["emergency_braking"] == 4 and s["loaded"] == 5
    with pytest.raises(SumoOutputError, match=r"s.xml: not a SUMO statistics file"):
        st.write_text("<statistics/>")
        read_statistics(st)
    with pytest.raises(SumoOutputError, match=r"does not exist"):
        read_statistics(tmp_path / "missing.xml")


def test_sumo_output_args(tmp_path: Path) -> None:
    args = sumo_output_args(tmp_path)
    assert args[args.index("--tripinfo-output") + 1] == str(tmp_path / "tripinfo.xml")
    assert args[args.index("--statistic-output") + 1] == str(tmp_path / "statistics.xml")
    assert "--tripinfo-output.write-unfinished" in args
    assert "--duration-log.statistics" not in args  # the statistics file is enough; keep stdout quiet
