"""simulation.proofs.tlscheck: the independent check of the signal states SUMO showed.

Unit tests on hand-written SaveTLSStates files with a hand-made junction, then real closed-loop runs
through the CLI (each its own process) checked end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from cli import app
from engine.protocol.junction import JunctionSpec
from simulation.experiments.catalog import DEMO, REPO, RESCO_DIR
from simulation.proofs.tlscheck import CLASSES, TlsCheckError, check_tls_states, read_statistics

# links 0, 1: north-south; 2, 3: east-west; every NS link conflicts with every EW link
SPEC = JunctionSpec(
    id="J",
    n_links=4,
    green_states=["GGrr", "rrGG"],
    net_next=[1, 0],
    fixed_green=[20.0, 20.0],
    min_green=[5.0, 5.0],
    max_green=[60.0, 60.0],
    yellow=[3.0, 3.0],
    allred=[1.0, 1.0],
    net_transitions=[[("yyrr", 3.0), ("rrrr", 1.0)], [("rryy", 3.0), ("rrrr", 1.0)]],
    conflicts=["0011", "0011", "1100", "1100"],
    link_in_lane=["n_0", "n_1", "e_0", "e_1"],
    link_out_lane=["s_0", "s_1", "w_0", "w_1"],
    link_via=[":J_0_0", ":J_1_0", ":J_2_0", ":J_3_0"],
)

# a clean cycle: green 10, yellow 3, all-red 1, ... (38 s)
CLEAN = [("GGrr", 10), ("yyrr", 3), ("rrrr", 1), ("rrGG", 10), ("rryy", 3), ("rrrr", 1), ("GGrr", 10)]


def seq(*parts: tuple[str, int], start: float = 0.0) -> list[tuple[float, str]]:
    """(state, seconds) parts -> one record per second."""
    out, t = [], start
    for state, n in parts:
        for _ in range(n):
            out.append((t, state))
            t += 1.0
    return out


def write_states(path: Path, records: list[tuple[float, str]] | dict[str, list[tuple[float, str]]],
                 *, on_change: bool = False) -> Path:
    by_tls = records if isinstance(records, dict) else {"J": records}
    rows = []
    for tid, recs in by_tls.items():
        prev = None
        for t, s in recs:
            if on_change and s == prev:
                continue
            prev = s
            rows.append((t, f'    <tlsState time="{t:.2f}" id="{tid}" programID="online" phase="0" state="{s}"/>'))
    rows.sort(key=lambda r: r[0])
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<tlsStates>\n'
                    + "\n".join(r for _, r in rows) + "\n</tlsStates>\n")
    return path


def check(tmp_path: Path, *parts: tuple[str, int], on_change: bool = False, **kw):
    return check_tls_states(write_states(tmp_path / "s.xml", seq(*parts), on_change=on_change), SPEC, **kw)


def only(rep, cls: str) -> int:
    others = {c: n for c, n in rep.counts.items() if c != cls and n}
    assert not others, f"unexpected {others}"
    return rep.counts[cls]


# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("on_change", [False, True])
def test_clean_cycle_has_no_violation(tmp_path, on_change):
    rep = check(tmp_path, *CLEAN, on_change=on_change)
    assert rep.ok and rep.violations == 0 and rep.counts == dict.fromkeys(CLASSES, 0)
    assert rep.mode == ("on-change" if on_change else "every-step")
    # on change, the record ends one step after the last switch (SUMO writes nothing after it)
    assert rep.tls_checked == ["J"] and rep.begin == 0 and rep.end == (29 if on_change else 38)
    assert rep.summary_lines()[-1] == "OK"
    # judged: the NS and EW greens and yellows after the first (partial) NS green
    assert (rep.judged_greens, rep.shortest_green, rep.judged_yellows, rep.shortest_yellow) == (2, 10.0, 4, 3.0)


def test_conflicting_greens_counted_per_step(tmp_path):
    rep = check(tmp_path, ("GGrr", 10), ("GGGr", 2), ("yyyr", 3), ("rrrr", 2))
    # link 2 also turned yellow with conflicting yellows (3 steps) after a 2 s green
    assert rep.counts == {**dict.fromkeys(CLASSES, 0), "conflict_green": 2, "conflict_green_yellow": 3,
                          "short_green": 1}
    ex = rep.examples["conflict_green"][0]
    assert ex["time"] == 10 and ex["tls"] == "J" and ex["states"] == ["GGGr"]
    assert (0, 2) in ex["pairs"] and (1, 2) in ex["pairs"] and (0, 1) not in ex["pairs"]
    assert rep.per_tls["J"]["conflict_green"] == 2 and not rep.ok


def test_green_with_conflicting_yellow_is_its_own_class(tmp_path):
    # NS goes yellow while EW is already green
    rep = check(tmp_path, ("GGrr", 10), ("yyGG", 3), ("rrGG", 10))
    assert only(rep, "conflict_green_yellow") == 3
    assert rep.examples["conflict_green_yellow"][0]["states"] == ["yyGG"]


def test_short_yellow(tmp_path):
    rep = check(tmp_path, ("rrrr", 2), ("GGrr", 10), ("yyrr", 2), ("rrrr", 5))
    assert only(rep, "short_yellow") == 1
    ex = rep.examples["short_yellow"][0]
    assert ex["time"] == 14 and ex["links"] == [0, 1] and ex["run_s"] == [2.0, 2.0]
    assert ex["states"] == ["yyrr", "rrrr"]
    # at the threshold it is fine; a lower threshold accepts 2 s
    assert check(tmp_path, ("rrrr", 2), ("GGrr", 10), ("yyrr", 3), ("rrrr", 5)).ok
    assert check(tmp_path, ("rrrr", 2), ("GGrr", 10), ("yyrr", 2), ("rrrr", 5), yellow_min=2.0).ok


@pytest.mark.parametrize("after", ["r", "s", "u", "o", "O"])
def test_green_to_red_without_yellow(tmp_path, after):
    rep = check(tmp_path, ("rrrr", 2), ("GGrr", 10), (after * 2 + "rr", 5))
    assert only(rep, "green_to_red") == 1
    ex = rep.examples["green_to_red"][0]
    assert ex["time"] == 12 and ex["links"] == [0, 1] and ex["states"] == ["GGrr", after * 2 + "rr"]


def test_short_green_and_partial_first_run(tmp_path):
    rep = check(tmp_path, ("rrrr", 2), ("GGrr", 3), ("yyrr", 3), ("rrrr", 2))
    assert only(rep, "short_green") == 1
    assert rep.examples["short_green"][0]["run_s"] == [3.0, 3.0]
    # a green that starts with the record may be partial: not judged
    assert check(tmp_path, ("GGrr", 2), ("yyrr", 3), ("rrrr", 2)).ok
    # nor is a yellow that starts with it, nor a run still open at the end
    assert check(tmp_path, ("yyrr", 1), ("rrrr", 2), ("rrGG", 2)).ok


def test_green_kept_across_phases_is_one_run(tmp_path):
    # link 0 green 3 s as G, then 3 s as g in the next phase: one 6 s run; link 1 ends after 3 s
    rep = check(tmp_path, ("rrrr", 2), ("GGrr", 3), ("gyrr", 3), ("yrrr", 3), ("rrrr", 2))
    assert only(rep, "short_green") == 1
    assert rep.examples["short_green"][0]["links"] == [1]


def test_yellow_back_to_green(tmp_path):
    rep = check(tmp_path, ("rrrr", 2), ("GGrr", 10), ("yyrr", 3), ("GGrr", 10))
    assert only(rep, "yellow_to_green") == 1
    assert rep.examples["yellow_to_green"][0]["links"] == [0, 1]


def test_yellow_to_green_between_the_nets_own_states_is_no_violation(tmp_path):
    """The net's own program may take a link from yellow straight to green (German turning arrows, a red-amber
    written as 'y', ingolstadt's yellow to links green in the next phase too): between exactly those two
    states it is neither a yellow back to green nor a short yellow; anywhere else it is."""
    spec = msgspec.structs.replace(SPEC, net_yellow_to_green=[("yyrr", "GGrr")])
    parts = (("rrrr", 2), ("GGrr", 10), ("yyrr", 1), ("GGrr", 10))
    rep = check_tls_states(write_states(tmp_path / "s.xml", seq(*parts)), spec)
    assert rep.ok, rep.summary_lines()
    other = (("rrrr", 2), ("GGrr", 10), ("yyrr", 3), ("GGGr", 10))  # not the net's pair (and a conflict)
    rep = check_tls_states(write_states(tmp_path / "o.xml", seq(*other)), spec)
    assert rep.counts["yellow_to_green"] == 1


def test_a_minor_link_that_yields_is_no_conflict(tmp_path):
    """conflicts[a][b] with a showing a minor letter (g, y, o) and yields[a][b]: a gives way to b in SUMO, no
    conflict; both major (G, Y, O), or a minor link that does not yield, still conflict."""
    spec = msgspec.structs.replace(SPEC, yields=["0000", "0010", "0000", "0000"])  # link 1 yields to link 2
    rep = check_tls_states(write_states(tmp_path / "s.xml", seq(("rrrr", 2), ("rgGr", 10), ("ryGr", 3),
                                                                  ("rrGr", 10))), spec)
    assert rep.counts["conflict_green"] == 0 and rep.counts["conflict_green_yellow"] == 0, rep.summary_lines()
    rep = check_tls_states(write_states(tmp_path / "t.xml", seq(("rrrr", 2), ("rGGr", 4), ("rgrG", 3),
                                                                  ("rYGr", 2))), spec)
    assert rep.counts["conflict_green"] == 7 and rep.counts["conflict_green_yellow"] == 2
    assert rep.examples["conflict_green"][1]["pairs"] == [(1, 3)]  # 1 yields to 2, not to 3


def test_the_monitor_and_the_checker_judge_states_alike():
    """The conflict monitor and tlscheck implement the spec's compatibility rule independently: on random
    states of real junctions (the demo city, a German plan, RiLSA's) they agree state by state."""
    import random

    from controllers.monitor import ConflictMonitor
    from simulation.proofs.tlscheck import check_sequence
    from simulation.sumo.netcompile import compile_network

    sys.path.insert(0, str(REPO / "tests" / "controllers"))
    from junctions import foreign_specs

    specs = list(compile_network(DEMO).junctions) + [s for _, s in foreign_specs()]
    rng = random.Random(7)
    seen = {True: 0, False: 0}
    for spec in specs:
        for _ in range(150):
            base = rng.choice([*spec.green_states, *(st for t in spec.net_transitions for st, _ in t)])
            state = "".join(rng.choice("GgyYrru") if rng.random() < 0.15 else c for c in base)
            ok = ConflictMonitor(spec).check(state)
            rep = check_sequence(spec, [(0.0, state)], end=1.0)
            assert ok == (rep.counts["conflict_green"] + rep.counts["conflict_green_yellow"] == 0), (spec.id, state)
            seen[ok] += 1
    assert seen[True] > 100 and seen[False] > 100


def test_malformed_states(tmp_path):
    rep = check(tmp_path, ("GGrr", 3), ("GGr", 1), ("GGrx", 1), ("GGrr", 3))
    assert only(rep, "malformed") == 2
    assert "length 3" in rep.examples["malformed"][0]["why"] and "'x'" in rep.examples["malformed"][1]["why"]


def test_several_lights_and_unknown_ones(tmp_path):
    recs = {"J": seq(*CLEAN), "K": seq(("rrrr", 38))}
    rep = check_tls_states(write_states(tmp_path / "s.xml", recs), [SPEC])
    assert rep.ok and rep.tls_checked == ["J"] and rep.tls_not_in_network == ["K"] and rep.records == 76
    with pytest.raises(TlsCheckError, match="none of its traffic lights"):
        check_tls_states(write_states(tmp_path / "k.xml", {"K": seq(("rrrr", 3))}), [SPEC])


def test_unreadable_inputs(tmp_path):
    with pytest.raises(TlsCheckError, match="does not exist"):
        check_tls_states(tmp_path / "missing.xml", SPEC)
    bad = tmp_path / "bad.xml"
    bad.write_text("<tlsStates><tlsState time='0'")
    with pytest.raises(TlsCheckError, match="not a valid XML"):
        check_tls_states(bad, SPEC)
    empty = tmp_path / "empty.xml"
    empty.write_text("<tlsStates/>")
    with pytest.raises(TlsCheckError, match="no tlsState"):
        check_tls_states(empty, SPEC)


STATS = """<statistics>
    <vehicles loaded="10" inserted="10" running="0" waiting="0"/>
    <teleports total="{tp}" jam="0" yield="0" wrongLane="0"/>
    <safety collisions="{col}" emergencyStops="0" emergencyBraking="1"/>
</statistics>"""


def test_statistics_collisions_fail_teleports_only_reported(tmp_path):
    states = write_states(tmp_path / "s.xml", seq(*CLEAN))
    st = tmp_path / "stats.xml"
    st.write_text(STATS.format(tp=2, col=0))
    rep = check_tls_states(states, SPEC, statistics_xml=st)
    assert rep.ok and rep.collisions == 0 and rep.teleports == 2
    assert read_statistics(st)["emergency_braking"] == 1
    st.write_text(STATS.format(tp=1, col=1))
    rep = check_tls_states(states, SPEC, statistics_xml=st)
    assert not rep.ok and rep.violations == 0 and rep.collisions == 1
    assert "collisions: 1" in rep.summary_lines()
    st.write_text("<statistics/>")
    with pytest.raises(TlsCheckError, match="not a SUMO statistics file"):
        read_statistics(st)


def test_cli_exit_codes(tmp_path):
    spec_json = tmp_path / "J.json"
    spec_json.write_bytes(msgspec.json.encode(SPEC))
    good = write_states(tmp_path / "good.xml", seq(*CLEAN))
    bad = write_states(tmp_path / "bad.xml", seq(("rrrr", 2), ("GGrr", 10), ("rrrr", 2)))
    runner = CliRunner()
    r = runner.invoke(app, ["check-tls", str(good), str(spec_json), "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert "conflicting greens: 0" in r.output and "green to red without yellow: 0" in r.output
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is True
    r = runner.invoke(app, ["check-tls", str(bad), str(spec_json)])
    assert r.exit_code == 1 and "green to red without yellow: 1" in r.output
    r = runner.invoke(app, ["check-tls", str(tmp_path / "missing.xml"), str(spec_json)])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(app, ["check-tls", str(good), str(spec_json), "--statistics", str(good)])
    assert r.exit_code == 2 and "not a SUMO statistics file" in r.output


# ------------------------------------------------------------------------------------------------
# real closed-loop runs
def closed_loop_states(tmp_path: Path, scenario: Path, *args: str) -> tuple[Path, Path]:
    """Run ``lintas simulate -p random`` with SaveTLSStates; returns (states file, statistics file)."""
    states = tmp_path / "tls_states.xml"
    add = tmp_path / "save.add.xml"
    add.write_text(f'<additional><timedEvent type="SaveTLSStates" dest="{states}"/></additional>\n')
    cmd = [sys.executable, "-m", "cli", "simulate", str(scenario), "-p", "random", *args,
           "--work-dir", str(tmp_path / "work"), "--sumo-arg=-a", f"--sumo-arg={add}", "-q"]
    r = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    stats = sorted((tmp_path / "work" / "runs").rglob("statistics.xml"))
    assert len(stats) == 1 and states.is_file()
    return states, stats[0]


def assert_safe(states: Path, stats: Path, scenario: Path, seconds: float) -> None:
    rep = check_tls_states(states, scenario, statistics_xml=stats)
    assert rep.counts == dict.fromkeys(CLASSES, 0), "\n".join(rep.summary_lines())
    assert rep.collisions == 0 and rep.ok
    assert rep.mode == "every-step" and rep.end - rep.begin == seconds and not rep.tls_not_in_file
    # the run did switch: greens and yellows were shown
    assert rep.letters.get("y", 0) > 0 and rep.letters.get("G", 0) > 0
    assert rep.judged_greens > 0 and rep.shortest_green >= 5 and rep.shortest_yellow >= 3
    r = subprocess.run([sys.executable, "-m", "cli", "check-tls", str(states), str(scenario),
                        "--statistics", str(stats)], check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "conflicting greens: 0" in r.stdout and "collisions: 0" in r.stdout


def test_random_policy_on_the_demo_city_is_safe(tmp_path):
    states, stats = closed_loop_states(tmp_path, DEMO, "--end", "600")
    assert_safe(states, stats, DEMO, 600)


def test_random_policy_on_cologne1_is_safe(tmp_path):
    if not RESCO_DIR.is_dir():
        pytest.skip(f"RESCO scenarios not found at {RESCO_DIR}")
    from simulation.sumo.scenario import load_scenario

    scn = RESCO_DIR / "cologne1"
    begin = load_scenario(scn).begin
    states, stats = closed_loop_states(tmp_path, scn, "--end", f"{begin + 600:g}")
    assert_safe(states, stats, scn, 600)
