"""simulation.proofs.zoo: the scenario zoo (written by SUMO's own tools) and the check that every policy runs
every zoo and ``tools/game`` scenario safely to its end.

Fast tests of the generator and the check first; then, per scenario, every policy through ``lintas simulate``
(a fresh process each, two at a time) for a short span, judged from SUMO's own record.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from simulation.experiments.catalog import REPO
from simulation.proofs import zoo, zoocheck
from simulation.proofs.zoo import ZOO
from simulation.proofs.zoocheck import ZooResult

POLICIES = ("sumo-static", "sumo-actuated", "sumo-delay", "fixed", "actuated", "maxpressure", "adaptive", "random")
JOBS = 2


@pytest.fixture(scope="module")
def zoo_scenarios(tmp_path_factory) -> list[zoo.ZooScenario]:
    return zoo.generate_zoo(tmp_path_factory.mktemp("zoo"), seed=1)


@pytest.fixture(scope="module")
def by_name(zoo_scenarios) -> dict[str, zoo.ZooScenario]:
    return {z.name: z for z in zoo_scenarios}


# ------------------------------------------------------------------------------------------------
# the generator
def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _same_bytes(first: Path, again: Path) -> None:
    """Two zoos written with seed 1 in different folders are the same bytes, with no timestamp and no path of the
    machine that wrote them."""
    a, b = _files(first), _files(again)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    for name, data in a.items():
        raw = gzip.decompress(data) if name.endswith(".gz") else data
        assert b"generated on" not in raw and str(first).encode() not in raw, name


def test_generation_is_deterministic(tmp_path, zoo_scenarios):
    """Seed 1 again: test_lintas_zoo_writes_and_checks_the_zoo compares the zoo the command writes with this
    module's, byte for byte (one full generation fewer in CI than writing a third one here); another seed
    writes other demand."""
    assert [z.name for z in zoo_scenarios] == [z.name for z in ZOO]
    again = zoo.generate_zoo(tmp_path / "again", seed=1, names=["grid", "random"])
    for z in again:
        _same_bytes(zoo_scenarios[[x.name for x in ZOO].index(z.name)].folder, z.folder)
    other = zoo.generate_zoo(tmp_path / "seed2", seed=2, names=["grid"])
    assert (other[0].folder / "veh.rou.xml").read_bytes() != (again[0].folder / "veh.rou.xml").read_bytes()


def test_every_scenario_loads_compiles_and_is_small(zoo_scenarios):
    import warnings

    from simulation.sumo.netcompile import compile_network
    from simulation.sumo.scenario import load_scenario

    assert 12 <= len(zoo_scenarios) <= 18
    for z in zoo_scenarios:
        assert [p.name for p in z.folder.glob("*.sumocfg")] == [f"{z.name}.sumocfg"]
        scn = load_scenario(z.folder)  # every file there, every route on the net
        assert (scn.begin, scn.end) == (z.begin, z.begin + zoo.DEMAND_S + zoo.CLEAR_S)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = compile_network(scn)
        assert len(net.junctions) == z.tls and 4 <= z.tls <= 6, z.name
        assert 0 < z.vehicles <= 300, z.name
        assert z.end == scn.end and z.path == scn.sumocfg


def _cfg_step(cfg: Path) -> float:
    el = ET.parse(cfg).getroot().find("time/step-length")
    return 1.0 if el is None else float(el.get("value"))


def test_every_variation_is_present(zoo_scenarios, by_name):
    zs = zoo_scenarios
    assert {z.net for z in zs} == {"grid", "spider", "random"}
    assert {z.layout for z in zs} == {"opposites", "incoming"}
    assert {z.lefts for z in zs} == {"shared", "permissive", "protected"}
    assert {z.program for z in zs} == {"static", "actuated"}
    assert {z.step_length for z in zs} == {1.0, 0.5, 0.1}
    assert {z.root for z in zs} == {"configuration", "sumoConfiguration"}
    assert any(z.begin > 0 for z in zs) and any(z.begin == 0 for z in zs)
    for flag in ("gzipped", "pedestrians", "bicycles", "tls_in_additional", "two_programs", "detectors",
                 "random_flows"):
        assert sum(getattr(z, flag) for z in zs) >= 1, flag
    assert any(z.static_reference for z in zs) and any(not z.static_reference for z in zs)
    # ... and the files say so, not only the labels
    for z in zs:
        cfg = z.path
        assert ET.parse(cfg).getroot().tag == z.root
        assert _cfg_step(cfg) == z.step_length
        net = next(z.folder.glob("net.net.xml*"))
        assert net.name.endswith(".gz") == z.gzipped
        if z.gzipped:
            assert net.read_bytes()[:2] == b"\x1f\x8b"
        progs = zoo.programs_of(cfg)
        assert {p.type for p in progs.values()} == {z.program}
        text = (gzip.decompress(net.read_bytes()) if z.gzipped else net.read_bytes()).decode()
        assert ('function="crossing"' in text) == z.pedestrians, z.name
        assert ('allow="bicycle"' in text) == z.bicycles, z.name
        assert (text.count("<tlLogic ") == 2 * z.tls) == z.two_programs, z.name
        demand = "".join(p.read_text() for p in z.folder.glob("*.rou.xml"))
        assert ("probability=" in demand) == z.random_flows, z.name
        if not z.random_flows and not z.gzipped:
            assert "<flow" not in demand and 'depart="' in demand  # explicit vehicles
    lefts = {z.lefts: next(iter(zoo.programs_of(z.path).values())) for z in zs if z.net == "grid"}
    assert any("g" in ph.state for ph in lefts["permissive"].phases)
    assert not any("g" in ph.state for ph in lefts["protected"].phases)
    # the program SUMO runs: the additional file's, or the net's last
    sources = {Path(p.source).name for p in zoo.programs_of(by_name["grid_tls_additional"].path).values()}
    assert sources == {"webster.add.xml"}
    assert {p.program_id for p in zoo.programs_of(by_name["grid_two_programs"].path).values()} == {"incoming"}
    inc = next(iter(zoo.programs_of(by_name["grid_incoming"].path).values()))
    assert sum(1 for ph in inc.phases if "G" in ph.state and "y" not in ph.state) == 4
    det = (by_name["grid_detectors"].folder / "e1.add.xml").read_text()
    assert "<e1Detector" in det and "<laneAreaDetector" in (by_name["grid_detectors"].folder / "e2.add.xml").read_text()
    assert by_name["grid_begin"].begin % 90 != 0  # not at a cycle boundary of the 90 s program


def test_static_reference_is_what_lintas_runs_unchanged(by_name):
    assert zoo.static_reference(by_name["grid"].path) == (True, [])
    ok, why = zoo.static_reference(by_name["grid_short_yellow"].path)
    assert not ok and "yellow of green phase 0 shown 3 s, the program's 2 s" in why[0]
    ok, why = zoo.static_reference(by_name["grid_actuated"].path)
    assert not ok and "actuated" in why[0]
    ok, why = zoo.static_reference(by_name["grid_ped_bike"].path)
    # crossings go G -> r (pedestrian clearance, no yellow): Lintas adds a yellow and an all-red
    assert not ok and "yellow of green phase 0 shown 3 s, the program's 0 s" in " ".join(why)
    assert zoo.static_reference(by_name["grid_tls_additional"].path)[0]


def test_game_scenarios_are_the_wheels_signal_scenarios(tmp_path):
    from simulation.sumo.scenario import load_scenario

    cfgs = zoo.game_scenarios()
    names = {p.stem for p in cfgs}
    shipped = {p.stem for p in zoo.game_dir().glob("*.sumocfg")}
    assert names == shipped - set(zoo.GAME_EXCLUDED) and len(names) >= 8
    assert not any(p.name.endswith(".disabled") for p in cfgs)
    for name in zoo.GAME_EXCLUDED:  # named in the docstring with its reason
        assert name in (zoo.game_scenarios.__doc__ or "")
    staged = zoo.stage_game_scenarios(tmp_path / "game")
    assert [p.name for p in staged] == [p.name for p in cfgs]
    for p in staged:
        load_scenario(p)


# ------------------------------------------------------------------------------------------------
# the check, on hand-made records
def _states(path: Path, rows: list[tuple[float, str, str]]) -> None:
    body = "\n".join(f'    <tlsState time="{t:.2f}" id="{i}" programID="0" phase="0" state="{s}"/>' for t, i, s in rows)
    path.write_text(f"<tlsStates>\n{body}\n</tlsStates>\n")


def _statistics(path: Path, end: float, collisions: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<statistics><performance begin="0.00" end="{end:.2f}"/><vehicles loaded="1" inserted="1" '
                    f'running="0" waiting="0"/><teleports total="0" jam="0" yield="0" wrongLane="0"/>'
                    f'<safety collisions="{collisions}" emergencyStops="0" emergencyBraking="0"/></statistics>')


def test_check_zoo_run_reports_each_problem(tmp_path, by_name):
    grid = by_name["grid"]
    run = zoocheck.plan_runs([("zoo/grid", grid.path)], ["fixed"], tmp_path, span=20)[0]
    assert (run.begin, run.end, run.static_reference) == (0.0, 20.0, True)
    args = zoocheck.simulate_args([run])
    assert "--save-tls-states" in args and run.folder.is_dir() and args[args.index("--end") + 1] == "20"
    run.states_xml.parent.mkdir(parents=True)
    good = {"A0": "GGggrrrrGGggrrrr", "A1": "GGggrrrrGGggrrrr", "B0": "GGggrrrrGGggrrrr", "B1": "GGggrrrrGGggrrrr"}
    rows = [(float(t), i, s) for t in range(20) for i, s in good.items()]
    _states(run.states_xml, rows)
    _statistics(run.statistics_xml, 20)
    rec = {"policy": "fixed", "seed": 1, "faults": 0, "collisions": 0, "delay_s": 10.0}
    assert zoocheck.check_zoo_run(run, rec) == []
    # conflicting greens at A0 for 2 s, a 2 s yellow at B0, a latched fault, a collision, stopped at 12 s
    bad = [(t, i, "GGggGGggGGggrrrr" if (i == "A0" and 5 <= t < 7) else s) for t, i, s in rows if t < 12]
    bad = [(t, i, "yyyyrrrryyyyrrrr" if (i == "B0" and 3 <= t < 5) else s) for t, i, s in bad]
    bad = [(t, i, "rrrrrrrrrrrrrrrr" if (i == "B0" and t >= 5) else s) for t, i, s in bad]
    _states(run.states_xml, bad)
    _statistics(run.statistics_xml, 12, collisions=1)
    lock = {"junction": "A0", "lane": "left0A0_0", "since": 3.0, "at": 303.0, "until": None, "green_s": 40.0}
    probs = zoocheck.check_zoo_run(run, {**rec, "faults": 1, "collisions": 1, "locks": 1, "lock_events": [lock]})
    text = "\n".join(probs)
    assert "1 latched faults" in text and "1 collisions" in text
    assert "1 locks (first: lane left0A0_0 of A0 standing from 3 s)" in text
    assert "2 conflicting greens (first: t=5 A0" in text
    assert "yellows under 3 s (first: t=5 B0" in text
    assert "stopped at 12 s of simulated time, not 20" in text
    # a run that failed: the command's own line
    run.json_file.unlink(missing_ok=True)
    line = "lintas: run fixed seed 1 failed: Error: No option with the name 'osg-view' exists."
    assert zoocheck.check_zoo_run(run, None, error=f"{line}\nlintas: no run finished\n")[0] == f"run failed: {line}"
    # ... or the exception that ended a traceback
    tb = "Traceback (most recent call last):\n  ...\nNameError: name 'x' is not\ndefined\n"
    assert zoocheck.check_zoo_run(run, None, error=tb)[0] == "run failed: NameError: name 'x' is not defined"


def test_fixed_vs_static():
    assert zoocheck.check_fixed_vs_static({"delay_s": 10.1}, {"delay_s": 10.0}) == []
    (msg,) = zoocheck.check_fixed_vs_static({"delay_s": 10.5}, {"delay_s": 10.0})
    assert "+5.0 %" in msg
    assert zoocheck.check_fixed_vs_static(None, {"delay_s": 1.0}) == []


# ------------------------------------------------------------------------------------------------
# every policy on every scenario, through the command line
def run_and_check(items: list[tuple[str, Path]], out: Path, policies=POLICIES, span: float = zoocheck.SPAN,
                  jobs: int = JOBS) -> list[ZooResult]:
    """Per scenario, one ``lintas simulate`` of every policy (a fresh process per run, ``jobs`` at a time, SUMO's
    record of the lights kept), then every run checked."""
    runs = zoocheck.plan_runs(items, policies, out, span=span)
    results = []
    for label in dict.fromkeys(r.label for r in runs):
        group = [r for r in runs if r.label == label]
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "cli", *zoocheck.simulate_args(group, jobs)], cwd=REPO,
                           capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - t0
        for run in group:
            rec = zoocheck.read_record(run.json_file, run.policy)
            err = None if rec is not None else (p.stderr or p.stdout or f"exit {p.returncode}")
            res = ZooResult(run, rec, err, zoocheck.check_zoo_run(run, rec, error=err))
            results.append(res)
            print(f"{run.label} {run.policy}: {'; '.join(res.problems) or 'ok'}")
        print(f"{label}: {len(group)} runs in {wall:.1f} s (exit {p.returncode})")
    zoocheck.compare_fixed(results)
    (out / "results.json").write_text(json.dumps(
        [{"label": r.run.label, "policy": r.run.policy, "problems": r.problems} for r in results], indent=2))
    return results


@pytest.fixture(scope="module")
def game_staged(tmp_path_factory) -> dict[str, Path]:
    return {p.stem: p for p in zoo.stage_game_scenarios(tmp_path_factory.mktemp("game") / "game")}


LABELS = [f"zoo/{z.name}" for z in ZOO] + [f"game/{p.stem}" for p in zoo.game_scenarios()]


#: simulated seconds of each run here (``lintas zoo --check`` runs 300): 150 s hold 1.6 cycles or more of every zoo
#: plan (their cycles are 40-90 s), the random policy changes every few seconds, and six of the eleven game
#: scenarios end at 180-220 s anyway; 224 runs in CI, so half the simulated time of each is worth it
SPAN_CI = 150.0


@pytest.mark.parametrize("label", LABELS)
def test_every_policy_runs_safely_to_the_end(label, by_name, game_staged, tmp_path):
    group, name = label.split("/", 1)
    cfg = by_name[name].path if group == "zoo" else game_staged[name]
    results = run_and_check([(label, cfg)], tmp_path, span=SPAN_CI)
    assert [r.run.policy for r in results] == list(POLICIES)
    bad = zoocheck.problem_table(results)[:-1]
    assert not bad, "\n".join(bad)


def test_lintas_zoo_writes_and_checks_the_zoo(tmp_path, zoo_scenarios):
    """The command: the zoo written (the same bytes as this module's, written by the library in another folder:
    generation is deterministic), then (the library's path, not the tests') two policies on every zoo scenario,
    fixed compared with sumo-static where that is a reference; exit 0 and one line per run."""
    r = subprocess.run([sys.executable, "-m", "cli", "zoo", "--out", str(tmp_path / "zoo"), "--check", "--no-game",
                        "-p", "sumo-static", "-p", "fixed", "--span", "30"], cwd=REPO, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"wrote {len(ZOO)} scenarios" in r.stdout
    assert f"{2 * len(ZOO)} runs on {len(ZOO)} scenarios: 0 with problems" in r.stdout
    assert (tmp_path / "zoo" / "check" / "zoo" / "grid" / "work" / "runs" / "grid" / "fixed-seed1" /
            "tls_states.xml").is_file()
    written = tmp_path / "zoo"
    for z in zoo_scenarios:
        _same_bytes(z.folder, written / z.name)
    bad = subprocess.run([sys.executable, "-m", "cli", "zoo", "--out", str(tmp_path / "z2"), "--check", "-p", "x"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--policy: unknown policy 'x'" in bad.stderr
