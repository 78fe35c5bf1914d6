"""Scenarios nobody here wrote: a step length other than 1 s, random flows, SUMO's own errors, the user's own
SUMO options, and runs that end unsafe. Each through ``lintas simulate``, on real SUMO."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import lintas

from simulation.sumo.options import check_user_args, sumo_command
from simulation.sumo.scenario import ScenarioError
from simulation.sumo.tools import sumo_binary

CFG = """<configuration>
  <input><net-file value="net.net.xml"/><route-files value="{routes}"/>{additional}</input>
  <time><begin value="{begin}"/><end value="{end}"/><step-length value="{step}"/></time>
</configuration>
"""


def make_grid(folder: Path, *, step: float = 1.0, begin: float = 0.0, end: float = 400.0, routes: str = "",
              additional: str = "") -> Path:
    """A 2x2 grid of signals (netgenerate) with 300 s of randomTrips demand (fixed seed); returns the .sumocfg."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sumo_binary("netgenerate"), "--grid", "--grid.number", "2", "--grid.length", "150",
                    "--grid.attach-length", "100", "--tls.set", "A0,A1,B0,B1", "--default.lanenumber", "1",
                    "-o", str(folder / "net.net.xml")], check=True, capture_output=True)
    if not routes:
        tools = Path(os.environ["SUMO_HOME"]) / "tools"
        subprocess.run([sys.executable, str(tools / "randomTrips.py"), "-n", str(folder / "net.net.xml"),
                        "-b", f"{begin:g}", "-e", f"{begin + 300:g}", "-p", "2", "--seed", "7", "--fringe-factor",
                        "100", "-o", str(folder / "trips.rou.xml"), "--validate"], check=True, capture_output=True,
                       cwd=folder)
        (folder / "routes.rou.xml").unlink(missing_ok=True)
        routes = "trips.rou.xml"
    add = f'<additional-files value="{additional}"/>' if additional else ""
    cfg = folder / "grid.sumocfg"
    cfg.write_text(CFG.format(routes=routes, additional=add, begin=f"{begin:g}", end=f"{end:g}", step=f"{step:g}"))
    return cfg


def simulate(cfg: Path, work: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    out = work / "runs.json"
    r = lintas("simulate", str(cfg), "--json", str(out), "--work-dir", str(work), "-q", *args, timeout=600)
    return r, json.loads(out.read_text()) if out.exists() else None


def test_half_second_steps_run_in_seconds_and_yellows_last_three_seconds(tmp_path):
    cfg = make_grid(tmp_path / "grid", step=0.5)
    save = tmp_path / "save.add.xml"
    save.write_text(f'<additional><timedEvent type="SaveTLSStates" dest="{tmp_path / "states.xml"}"/></additional>')
    r, doc = simulate(cfg, tmp_path / "w", "-p", "fixed", "--sumo-arg=-a", f"--sumo-arg={save}")
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = doc["runs"]
    assert run["step_length"] == 0.5 and run["faults"] == 0 and run["vehicles"] > 100
    times = [float(x) for x in re.findall(r'time="([0-9.]+)"', (tmp_path / "states.xml").read_text())]
    assert max(times) >= 399.0  # the run reached the scenario's end in simulated seconds, not 400 steps
    chk = lintas("check-tls", str(tmp_path / "states.xml"), str(cfg), timeout=120)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    assert "yellows shorter than 3 s: 0" in chk.stdout and "conflicting greens: 0" in chk.stdout


def test_random_flows_are_counted_from_the_run(tmp_path):
    grid = tmp_path / "grid"
    make_grid(grid)
    (grid / "random.rou.xml").write_text(
        '<routes><flow id="f" begin="0" end="300" probability="0.2" from="A0B0" to="B0B1"/>'
        '<flow id="g" begin="0" end="300" period="exp(0.1)" from="B1A1" to="A1A0"/></routes>')
    cfg = make_grid(grid, routes="random.rou.xml")
    r, doc = simulate(cfg, tmp_path / "w", "-p", "sumo-static", "-p", "fixed")
    assert r.returncode == 0, r.stderr[-3000:]
    static, fixed = doc["runs"]
    for run in (static, fixed):
        assert run["random_demand"] is True and run["vehicles"] > 30 and run["delay_s"] is not None
    assert static["vehicles"] == fixed["vehicles"]  # the same seed draws the same vehicles


def test_sumo_errors_reach_the_user_with_the_run_named(tmp_path):
    cfg = make_grid(tmp_path / "grid")
    cfg.write_text(cfg.read_text().replace("<time>", '<time><no-such-option value="1"/>'))
    r, doc = simulate(cfg, tmp_path / "w", "-p", "sumo-static", "-p", "fixed")
    assert r.returncode == 1 and doc is None
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("lintas: run")]
    assert len(lines) == 2 and all("No option with the name 'no-such-option' exists" in ln for ln in lines)
    assert {ln.split(" failed:")[0] for ln in lines} == {"lintas: run sumo-static seed 1", "lintas: run fixed seed 1"}
    assert "pickle" not in r.stderr and "Traceback" not in r.stderr


def test_a_scenario_with_every_light_off_is_one_line(tmp_path):
    """tls.all-off (the wheel's DRT game sets it): there is no signal to control, and Lintas must not switch the
    lights on behind the user's back."""
    cfg = make_grid(tmp_path / "grid")
    cfg.write_text(cfg.read_text().replace("<time>", '<processing><tls.all-off value="true"/></processing><time>'))
    r, _ = simulate(cfg, tmp_path / "w", "-p", "fixed")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "option 'tls.all-off' switches every traffic light off" in lines[0]


def test_railway_signals_are_left_to_sumo(tmp_path):
    """The wheel's railway game: every light guards trains only; Lintas controls road signals, so it says so in one
    line instead of cycling railway switches under moving trains."""
    from simulation.proofs.zoo import stage_game_scenarios

    stage_game_scenarios(tmp_path / "game")  # a copy: runs never write into the installed wheel
    rail = tmp_path / "game" / "rail.sumocfg"
    r, _ = simulate(rail, tmp_path / "w", "-p", "fixed")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "no traffic light Lintas can control" in lines[0] and "a railway signal (trains only)" in lines[0]


@pytest.mark.parametrize("args,needle", [
    (["--end", "100"], "--end 100 is not at least one tick (1 s) after the scenario's begin (3600 s"),
    (["--sumo-arg=--tripinfo-output", "--sumo-arg=x.xml"], "--sumo-arg --tripinfo-output: Lintas sets"),
    (["--sumo-arg=--seed=4"], "use lintas simulate --seeds"),
    (["--sumo-arg=-e", "--sumo-arg=500"], "--sumo-arg -e: Lintas sets --end itself"),
])
def test_options_a_run_cannot_take_are_one_line(tmp_path, args, needle):
    cfg = make_grid(tmp_path / "grid", begin=3600, end=4000)
    r, _ = simulate(cfg, tmp_path / "w", "-p", "fixed", *args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_the_users_sumo_options_win_over_lintas_defaults():
    defaults = ["-c", "s.sumocfg", "--time-to-teleport", "-1", "--no-warnings", "true", "--end", "100"]
    cmd = sumo_command(defaults, ["--time-to-teleport=300", "--step-length", "0.5", "-a", "u.xml"], [Path("d.xml")])
    assert cmd == ["-c", "s.sumocfg", "--no-warnings", "true", "--end", "100", "--time-to-teleport=300",
                   "--step-length", "0.5", "--additional-files", "d.xml,u.xml"]
    assert sumo_command(defaults, [], []) == defaults
    check_user_args(["--time-to-teleport", "300", "--step-length", "0.5"])
    with pytest.raises(ScenarioError, match="--statistic-output"):
        check_user_args(["--statistic-output", "x.xml"])


def test_a_run_with_collisions_is_listed_and_exits_3(tmp_path):
    """A program that shows every approach green at once: SUMO counts collisions, and lintas simulate says
    which run, marks the cell red in the report and exits 3 (the results are written all the same)."""
    grid = tmp_path / "grid"
    cfg = make_grid(grid)
    import xml.etree.ElementTree as ET

    programs = ["<additional>"]
    for tl in ET.parse(grid / "net.net.xml").getroot().iter("tlLogic"):
        n = len(tl.find("phase").get("state"))
        programs.append(f'<tlLogic id="{tl.get("id")}" type="static" programID="allgreen" offset="0">'
                        f'<phase duration="1000" state="{"G" * n}"/></tlLogic>')
    (grid / "allgreen.add.xml").write_text("\n".join([*programs, "</additional>"]))
    cfg = make_grid(grid, routes="trips.rou.xml", additional="allgreen.add.xml")
    r, doc = simulate(cfg, tmp_path / "w", "-p", "sumo-static", "--report", str(tmp_path / "rep"),
                      "--sumo-arg=--collision.check-junctions", "--sumo-arg=true",
                      "--sumo-arg=--collision.action", "--sumo-arg=warn")
    assert doc is not None, r.stderr[-3000:]
    (run,) = doc["runs"]
    assert run["collisions"] > 0
    assert r.returncode == 3, r.stderr[-3000:]
    assert f"lintas: sumo-static seed 1: {run['collisions']} collisions" in r.stderr
    html = (tmp_path / "rep" / "report.html").read_text()
    assert 'class="num bad"' in html and "collisions" in html
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Problems" in md and f"sumo-static seed 1: {run['collisions']} collisions" in md
    assert "- **Step length:** 1 s" in md and "- **SUMO:** 1.28" in md
