"""The whole product path in real SUMO with real ZeroMQ: short closed-loop runs through the CLI.

Every run is its own process (as ``lintas simulate`` does it): libsumo keeps state between runs in
one process.
"""

import json
import subprocess
from pathlib import Path

import pytest
from clirun import lintas, lintas_argv

from simulation.experiments.catalog import DEMO, REPO

FIGURES = ("delay_s", "trip_duration_s", "waiting_s", "queue_veh", "throughput_veh", "teleports", "collisions",
           "vehicles")


def simulate(tmp_path: Path, scenario: Path, *args: str) -> dict:
    out = tmp_path / "runs.json"
    r = lintas("simulate", str(scenario), "--json", str(out), "--work-dir", str(tmp_path / "work"), "-q", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("transport", ["inproc", "ipc", "tcp"])
def test_short_run_on_each_transport(tmp_path, transport):
    doc = simulate(tmp_path, DEMO, "-p", "maxpressure", "--end", "400", "--transport", transport)
    assert doc["scenario"] == "bunda_kota" and doc["sumo_version"].startswith("1.28")
    (run,) = doc["runs"]
    assert run["transport"] == transport
    assert run["vehicles"] > 100 and run["throughput_veh"] > 20
    assert run["commands_sent"] > 0 and run["commands_accepted"] == run["commands_sent"]
    assert run["faults"] == 0 and run["fallbacks"] == 0 and run["collisions"] == 0 and run["locks"] == 0
    assert set(FIGURES) <= set(run)


def test_same_seed_same_figures_and_other_seed_differs(tmp_path):
    a = simulate(tmp_path / "a", DEMO, "-p", "actuated", "--end", "900", "--seeds", "2")["runs"]
    b = simulate(tmp_path / "b", DEMO, "-p", "actuated", "--end", "900", "--seeds", "2")["runs"]
    for ra, rb in zip(a, b):
        assert {k: ra[k] for k in FIGURES} == {k: rb[k] for k in FIGURES}
    assert a[0]["delay_s"] != a[1]["delay_s"]


def test_controllers_as_processes_over_tcp_equal_in_process(tmp_path):
    """One ``lintas controller`` process per junction gives the same run as in-process controllers."""
    inproc = simulate(tmp_path / "a", DEMO, "-p", "fixed", "--end", "300")["runs"][0]
    procs = simulate(tmp_path / "b", DEMO, "-p", "fixed", "--end", "300", "--transport", "tcp",
                     "--controllers", "process")
    run = procs["runs"][0]
    assert {k: run[k] for k in FIGURES} == {k: inproc[k] for k in FIGURES}


def test_fixed_through_the_loop_matches_sumo_static_on_cologne1(tmp_path, resco_dir):
    import xml.etree.ElementTree as ET

    doc = simulate(tmp_path, resco_dir / "cologne1", "-p", "sumo-static", "-p", "fixed")
    static_run, fixed_run = doc["runs"]
    static, fixed = static_run["delay_s"], fixed_run["delay_s"]
    assert abs(fixed - static) / static < 0.02, (fixed, static)
    assert 40 < static < 46  # the reference figure for SUMO 1.28, seed 1 (../shared/notes/control.md)
    assert static_run["vehicles"] == 2015 and static_run["never_inserted"] == 0
    assert static_run["teleports"] == 0 and static_run["collisions"] == 0
    # every vehicle was inserted, so the RESCO metric equals SUMO's own trip statistics (timeLoss + departDelay
    # averaged over every vehicle, the ones still running included)
    stats = tmp_path / "work" / "runs" / "cologne1" / "sumo-static-seed1" / "statistics.xml"
    trip = ET.parse(stats).getroot().find("vehicleTripStatistics")
    assert static == pytest.approx(float(trip.get("timeLoss")) + float(trip.get("departDelay")), abs=0.02)


def test_sumo_actuated_on_cologne1_runs_its_own_program_and_samples_queues(tmp_path, resco_dir):
    (run,) = simulate(tmp_path, resco_dir / "cologne1", "-p", "sumo-actuated", "--seeds", "1")["runs"]
    assert (tmp_path / "work" / "runs" / "cologne1" / "sumo-actuated-seed1" / "program-actuated.add.xml").is_file()
    assert run["vehicles"] == 2015 and 20.0 < run["delay_s"] < 150.0  # reference 66.4 ± 10.9 over seeds 1-3
    assert run["queue_veh"] > 0 and run["transport"] is None


def test_report_and_table(tmp_path):
    rep = tmp_path / "rep"
    r = lintas("simulate", str(DEMO), "-p", "sumo-static", "-p", "fixed", "--end", "300", "--report", str(rep), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "sumo-static" in r.stdout and "fixed" in r.stdout
    for f in ("report.md", "report.html", "delay_over_time.png", "queue_per_junction.png"):
        assert (rep / f).stat().st_size > 0
    md = (rep / "report.md").read_text()
    assert "| fixed |" in md


def _netgen(tmp_path: Path, *extra: str) -> Path:
    import sumo  # noqa: F401
    import sumolib

    net = tmp_path / "grid.net.xml"
    subprocess.run([sumolib.checkBinary("netgenerate"), "--grid", "--grid.number", "3", "-o", str(net), *extra],
                   check=True, capture_output=True)
    cfg = tmp_path / "grid.sumocfg"
    cfg.write_text('<configuration><input><net-file value="grid.net.xml"/></input></configuration>')
    return cfg


@pytest.mark.parametrize(
    "case",
    ["missing-path", "no-cfg", "no-traffic-lights", "missing-edge", "unknown-policy", "unknown-transport",
     "unknown-controllers", "process-over-inproc", "bad-sumocfg"],
)
def test_bad_input_one_line_exit_2(tmp_path, case):
    args: list[str]
    if case == "missing-path":
        args, needle = [str(tmp_path / "nope")], "nope"
    elif case == "no-cfg":
        (tmp_path / "empty").mkdir()
        args, needle = [str(tmp_path / "empty")], "empty"
    elif case == "no-traffic-lights":
        args, needle = [str(_netgen(tmp_path))], "grid.net.xml"
    elif case == "missing-edge":
        import shutil

        d = tmp_path / "bk"
        shutil.copytree(DEMO, d, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        rou = d / "bunda_kota.rou.xml"
        rou.write_text(rou.read_text().replace('edges="', 'edges="no_such_edge ', 1))
        args, needle = [str(d)], "no_such_edge"
    elif case == "unknown-policy":
        args, needle = [str(DEMO), "-p", "greedy"], "--policy"
    elif case == "unknown-transport":
        args, needle = [str(DEMO), "--transport", "udp"], "--transport"
    elif case == "unknown-controllers":
        args, needle = [str(DEMO), "--controllers", "cloud"], "--controllers"
    elif case == "process-over-inproc":
        args, needle = [str(DEMO), "--controllers", "process", "--transport", "inproc"], "--transport ipc or tcp"
    else:
        cfg = tmp_path / "x.sumocfg"
        cfg.write_text("<configuration><input></input>")
        args, needle = [str(cfg)], "x.sumocfg"
    r = lintas("simulate", *args, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_failed_detectors_seeded_and_by_kind(tmp_path):
    from engine.network import DET_AREA
    from simulation.experiments.runner import RunSpec, dead_detectors
    from simulation.sumo.netcompile import compile_for_run
    from simulation.sumo.scenario import load_scenario

    net, _ = compile_for_run(load_scenario(DEMO), tmp_path)
    spec = RunSpec(DEMO, "adaptive", 1, tmp_path, fail_detectors=0.3)
    a, b = dead_detectors(net, spec), dead_detectors(net, spec)
    assert a == b and len(a) == round(0.3 * net.n_detectors)
    assert dead_detectors(net, RunSpec(DEMO, "adaptive", 2, tmp_path, fail_detectors=0.3)) != a
    cams = dead_detectors(net, RunSpec(DEMO, "adaptive", 1, tmp_path, dead="cameras"))
    assert cams == {d for d, k in zip(net.det_ids, net.det_kind) if k == DET_AREA}
    loops = dead_detectors(net, RunSpec(DEMO, "adaptive", 1, tmp_path, dead="loops"))
    assert loops.isdisjoint(cams) and len(loops) + len(cams) == net.n_detectors
    # through the CLI: the run completes with the loops dead and says how many were dead
    doc = simulate(tmp_path, DEMO, "-p", "actuated", "--end", "200", "--dead", "loops")
    assert doc["runs"][0]["dead_detectors"] == len(loops)


def test_traci_connection(tmp_path):
    doc = simulate(tmp_path, DEMO, "-p", "fixed", "--end", "120", "--traci")
    assert doc["runs"][0]["vehicles"] > 0


def test_ctrl_c_stops_cleanly_and_keeps_finished_runs(tmp_path):
    import signal
    import time

    out = tmp_path / "runs.json"
    work = tmp_path / "work"
    p = subprocess.Popen(
        lintas_argv("simulate", str(DEMO), "-p", "sumo-static", "-p", "fixed", "-p", "maxpressure", "--jobs", "1",
                    "--end", "1800", "--json", str(out), "--work-dir", str(work), "-q"),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as from a terminal: a test run started in the background (cmd &) would hand SIGINT down ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = work / "runs" / "bunda_kota" / "sumo-static-seed1" / "tripinfo.xml"
    t0 = time.monotonic()
    while not (first.exists() and first.read_text().rstrip().endswith("</tripinfos>")):
        assert p.poll() is None and time.monotonic() - t0 < 300, "first run did not finish"
        time.sleep(0.2)
    time.sleep(1.0)  # let the parent collect it; a later run is under way
    p.send_signal(signal.SIGINT)
    _stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    runs = json.loads(out.read_text())["runs"]
    # the finished runs, in order (on a fast machine the second may finish within that second), never all:
    # 1800 s keeps each closed-loop run several seconds long even on a fast machine
    done = [r["policy"] for r in runs]
    assert 1 <= len(done) < 3 and done == ["sumo-static", "fixed", "maxpressure"][: len(done)]
