"""Pedestrians and bicycles reported beside the vehicles (issue 14, item 4): ``persons``, ``ped_delay_s``,
``ped_wait_max_s``, ``bicycles`` and ``bike_delay_s`` in every run's record, in the report's tables where a run
has them and nowhere else. The parsing on a hand-written tripinfo in SUMO 1.28's format, then real runs (SUMO's
baseline and Lintas' loop) on the zoo's ``grid_ped_bike`` (sidewalks, signalised crossings, bike lanes, randomTrips
persons and bicycles), each in a fresh process, checked against SUMO's own files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from onejunction import one_junction

from simulation.experiments.metrics import bicycle_demand, compute_metrics
from simulation.experiments.report import write_report
from simulation.experiments.runner import PED_BIKE_KEYS

ROUTES = """<routes>
    <vType id="bike" vClass="bicycle"/>
    <vType id="car"/>
    <vTypeDistribution id="bikes"><vType id="bike2" vClass="bicycle"/><vType id="bike3" vClass="bicycle"/>
    </vTypeDistribution>
    <vTypeDistribution id="mixed" vTypes="car bike"/>
    <trip id="c0" type="car" depart="0" from="a" to="b"/>
    <trip id="b0" type="bike" depart="10" from="a" to="b"/>
    <trip id="b1" type="bikes" depart="20" from="a" to="b"/>
    <trip id="b2" type="bike" depart="30" from="a" to="b"/>
    <trip id="m0" type="mixed" depart="35" from="a" to="b"/>
    <flow id="fb" type="DEFAULT_BIKETYPE" begin="40" end="60" period="10" from="a" to="b"/>
    <person id="p0" depart="0"><walk from="a" to="b"/></person>
</routes>
"""

# SUMO 1.28's tripinfo, cut down: c0 arrived, b0 arrived, b1 (drawn type bike2) still riding at the end, b2 never
# inserted (no entry), m0 drew "bike" from the mixed distribution, flow fb: fb.0 arrived, fb.1 never inserted.
# Persons: p0 walked and arrived; p1 arrived on its first walk and is on its second at the end (timeLoss 0, SUMO
# computes it on arrival); p2 only waited at a stop (no walk: not counted); p3 still on its only walk.
TRIPINFO = """<tripinfos>
    <tripinfo id="c0" depart="0.00" departDelay="0.00" arrival="50.00" duration="50.00" waitingTime="5.00"
              waitingCount="1" timeLoss="12.00" vType="car" vaporized=""/>
    <tripinfo id="b0" depart="11.00" departDelay="1.00" arrival="90.00" duration="79.00" waitingTime="20.00"
              waitingCount="1" timeLoss="30.00" vType="bike" vaporized=""/>
    <tripinfo id="b1" depart="20.00" departDelay="0.00" arrival="-1.00" duration="80.00" waitingTime="40.00"
              waitingCount="1" timeLoss="50.00" vType="bike2" vaporized="end"/>
    <tripinfo id="m0" depart="35.00" departDelay="0.00" arrival="80.00" duration="45.00" waitingTime="0.00"
              waitingCount="0" timeLoss="4.00" vType="bike" vaporized=""/>
    <tripinfo id="fb.0" depart="42.00" departDelay="2.00" arrival="95.00" duration="53.00" waitingTime="0.00"
              waitingCount="0" timeLoss="6.00" vType="DEFAULT_BIKETYPE" vaporized=""/>
    <personinfo id="p0" depart="0.00" type="DEFAULT_PEDTYPE" duration="70.00" waitingTime="21.00" timeLoss="25.50">
        <walk depart="0.00" arrival="70.00" duration="70.00" routeLength="63.00" timeLoss="25.50" maxSpeed="1.40"
              waitingTime="21.00"/>
    </personinfo>
    <personinfo id="p1" depart="0.00" type="DEFAULT_PEDTYPE" duration="-1" waitingTime="14.00" timeLoss="35.67">
        <walk depart="0.00" arrival="60.00" duration="60.00" routeLength="40.00" timeLoss="35.67" maxSpeed="1.47"
              waitingTime="14.00"/>
        <stop duration="20.00" arrival="80.00" arrivalPos="89.10" actType="waiting"/>
        <walk depart="80.00" arrival="-1" duration="20.00" routeLength="-1" timeLoss="0.00" maxSpeed="1.47"
              waitingTime="9.00"/>
    </personinfo>
    <personinfo id="p2" depart="0.00" type="DEFAULT_PEDTYPE" duration="-1" waitingTime="0.00" timeLoss="0.00">
        <stop duration="-1" arrival="-0.00" arrivalPos="10.00" actType="waiting"/>
    </personinfo>
    <personinfo id="p3" depart="30.00" type="DEFAULT_PEDTYPE" duration="-1" waitingTime="37.00" timeLoss="0.00">
        <walk depart="30.00" arrival="-1" duration="70.00" routeLength="-1" timeLoss="0.00" maxSpeed="1.30"
              waitingTime="37.00"/>
    </personinfo>
</tripinfos>
"""


def test_walks_and_bicycles_from_a_handwritten_tripinfo(tmp_path: Path) -> None:
    (tmp_path / "r.rou.xml").write_text(ROUTES)
    (tmp_path / "t.xml").write_text(TRIPINFO)
    bikes = bicycle_demand(tmp_path / "r.rou.xml")
    assert {"bike", "bike2", "bike3", "bikes", "DEFAULT_BIKETYPE"} == set(bikes.types)  # not "mixed", not "car"
    assert bikes.of("b2") and bikes.of("fb.1") and not bikes.of("c0") and not bikes.of("m0")
    assert bikes.of("m0", "bike")  # what the run drew decides

    sched = {"c0": 0.0, "b0": 10.0, "b1": 20.0, "b2": 30.0, "m0": 35.0, "fb.0": 40.0, "fb.1": 50.0}
    m = compute_metrics(tmp_path / "t.xml", None, sched, 100.0, bicycles=bikes)
    # every vehicle in the RESCO delay, bicycles included: 12, 31, 50, 100-30, 4, 8, 100-50
    assert m.vehicles == 7 and m.delay_s == pytest.approx((12 + 31 + 50 + 70 + 4 + 8 + 50) / 7)
    # the bicycles alone: b0, b1, b2 (never inserted: end - scheduled), m0 (drew "bike"), fb.0, fb.1
    assert m.bicycles == 6 and m.bike_delay_s == pytest.approx((31 + 50 + 70 + 4 + 8 + 50) / 6)
    # persons with a walk: p0 (25.5), p1 (35.67 + the 9 s waited on the walk still going), p3 (37 waited so far)
    assert (m.persons, m.persons_unfinished) == (3, 2)
    assert m.ped_delay_s == pytest.approx((25.5 + 35.67 + 9 + 37) / 3)
    assert m.ped_wait_max_s == 37.0
    # without the scenario's types only SUMO's DEFAULT_BIKETYPE is a bicycle: fb.0 (its tripinfo names it)
    assert compute_metrics(tmp_path / "t.xml", None, sched, 100.0).bicycles == 1


RUN = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from simulation.experiments.runner import RunSpec, run_one

    rec = run_one(RunSpec(Path(sys.argv[1]), sys.argv[2], 1, Path(sys.argv[3])))
    print(json.dumps({k: v for k, v in rec.items() if k not in ("delay_by_arrival", "queue_by_junction")}))
""")


def run_one_fresh(cfg: Path, policy: str, work: Path) -> dict:
    """``run_one(RunSpec(...))`` in a process of its own (libsumo keeps state between runs in one process)."""
    r = subprocess.run([sys.executable, "-c", RUN, str(cfg), policy, str(work)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _walks(tripinfo: Path) -> list[list[ET.Element]]:
    return [p.findall("walk") for p in ET.parse(tripinfo).getroot().iter("personinfo")]


def test_pedestrians_and_bicycles_in_every_run_and_the_report(tmp_path: Path) -> None:
    from simulation.proofs.zoo import generate_zoo

    (sc,) = generate_zoo(tmp_path / "zoo", names=["grid_ped_bike"])
    runs = []
    for policy in ("sumo-static", "fixed"):
        rec = run_one_fresh(sc.path, policy, tmp_path / "w")
        runs.append(rec)
        run_dir = tmp_path / "w" / "runs" / "grid_ped_bike" / f"{policy}-seed1"
        walks = [w for w in _walks(run_dir / "tripinfo.xml") if w]
        stats = ET.parse(run_dir / "statistics.xml").getroot()
        assert set(PED_BIKE_KEYS) <= set(rec), policy
        # every person of the demand walked (randomTrips --pedestrians: one walk each), all counted
        assert rec["persons"] == len(walks) == 60 == int(stats.find("pedestrianStatistics").get("number"))
        waits = [float(w.get("waitingTime")) for ws in walks for w in ws]
        assert rec["ped_wait_max_s"] == max(waits) > 0 and all(rec["ped_wait_max_s"] >= x for x in waits)
        going = [ws for ws in walks if any(float(w.get("arrival")) < 0 for w in ws)]
        assert rec["persons_unfinished"] == len(going)
        # SUMO's own mean walk timeLoss counts a walk still going at the end as 0; ours charges its waiting
        sumo_mean = float(stats.find("pedestrianStatistics").get("timeLoss"))
        extra = sum(float(w.get("waitingTime")) for ws in going for w in ws) / len(walks)
        assert rec["ped_delay_s"] == pytest.approx(sumo_mean + extra, abs=0.01)
        assert 10 < rec["ped_delay_s"] < 600
        # the bicycles (vType b_bicycle, vClass bicycle): all inserted and arrived in this scenario, so their RESCO
        # delay is SUMO's bike statistics' timeLoss + departDelay; they are in the vehicle delay too
        bts = stats.find("bikeTripStatistics")
        assert rec["bicycles"] == int(bts.get("count")) == 40 and rec["vehicles"] == 150 + 40
        assert rec["bike_delay_s"] == pytest.approx(float(bts.get("timeLoss")) + float(bts.get("departDelay")),
                                                    abs=0.01)

    md = write_report("grid_ped_bike", runs, tmp_path / "rep")["markdown"].read_text()
    tables = [ln for ln in md.splitlines() if ln.startswith("| Policy |")]
    assert len(tables) == 2  # the summary and the per-run table
    for header in tables:
        assert "| Delay (s) | Pedestrian delay (s) | Pedestrian max wait (s) | Bicycle delay (s) |" in header
    assert "| Vehicles | Persons | Still walking | Bicycles |" in tables[1]
    static = next(ln for ln in md.splitlines() if ln.startswith("| sumo-static | 1 |"))
    assert f"| {runs[0]['ped_wait_max_s']:.1f} |" in static and f"| {runs[0]['bike_delay_s']:.1f} |" in static
    assert "- **Persons:** 60" in md and "- **Bicycles:** 40" in md and "Pedestrian max wait:" in md
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<th>Pedestrian delay (s)</th>" in html and "<th>Bicycle delay (s)</th>" in html


def test_a_scenario_without_persons_or_bicycles_has_none_and_no_column(tmp_path: Path) -> None:
    rec = run_one_fresh(one_junction(tmp_path / "j"), "sumo-static", tmp_path / "w")
    assert (rec["persons"], rec["bicycles"], rec["persons_unfinished"]) == (0, 0, 0)
    assert rec["ped_delay_s"] is None and rec["ped_wait_max_s"] is None and rec["bike_delay_s"] is None
    assert rec["vehicles"] > 100 and not math.isnan(rec["delay_s"])
    paths = write_report("one", [rec], tmp_path / "rep")
    for text in (paths["markdown"].read_text(), paths["html"].read_text()):
        assert "Pedestrian" not in text and "Bicycle" not in text and "Persons" not in text
    assert "ped_delay_s" not in json.loads(paths["summary"].read_text())["policies"][0]["mean"]
