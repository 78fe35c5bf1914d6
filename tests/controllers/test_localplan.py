"""Time-of-day local plans (controllers/localplan.py): loading errors, and a controller whose engine
is silent following the plan's greens through its own timer."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import zmq
from junctions import RecordingHeads, check_sequence, demo_specs, small_spec

from controllers.controller import Controller
from controllers.localplan import PlanError, load_plan
from engine.protocol import bus
from simulation.experiments.catalog import DEMO, REPO

# small_spec's program: 0 green 'Ggrr', 1-2 its transition, 3 green 'rGrr', 4-5, 6 green 'rrGg', 7
PROGRAM = [0, -1, -1, 1, -1, -1, 2, -1]


def spec():
    return small_spec(program_greens=PROGRAM)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "plan.toml"
    p.write_text(text)
    return p


GOOD = """
start_of_day = "00:00"

[[window]]
name = "early"
from = "00:00"
to = "00:02"
greens = { 0 = 8, 3 = 6, 6 = 9 }

[[window]]
name = "late"
from = "00:02"
to = "00:06"
greens = { 0 = 15, 6 = 20 }
"""


def _window(greens: str, extra: str = "", frm: str = '"00:00"', to: str = '"01:00"') -> str:
    return f"[[window]]\nfrom = {frm}\nto = {to}\ngreens = {{ {greens} }}\n{extra}"


@pytest.mark.parametrize("text, key, words", [
    (_window("0 = 3"), "window[0].greens.0", "below its minimum green 5 s"),
    (_window("0 = 4.5, 3 = 6"), "window[0].greens.0", "below its minimum green"),
    (_window("9 = 10"), "window[0].greens.9", "phase 9 does not exist: the net's program of J has 8 phases"),
    (_window("1 = 10"), "window[0].greens.1", "phase 1 of J is not a green phase"),
    (_window("0 = 100"), "window[0].greens.0", "above its maximum green 20 s"),
    (_window("x = 10"), "window[0].greens.x", "index in the net's program"),
    (_window("0 = -3"), "window[0].greens.0", "positive number"),
    (_window("0 = 10", frm='"25:00"'), "window[0].from", "expected a time"),
    (_window("0 = 10", to='"00:00"'), "window[0].to", "empty window"),
    (_window("0 = 10", "colour = 1\n"), "window[0].colour", "unknown key"),
    ("[[window]]\nfrom = \"01:00\"\ngreens = { 0 = 10 }\n", "window[0].to", "missing"),
    (_window("0 = 10") + _window("0 = 12", frm='"00:30"', to='"02:00"'), "window[1]", "overlaps window[0]"),
    (_window("0 = 10", frm='"23:00"', to='"02:00"') + _window("0 = 12", frm='"01:00"', to='"03:00"'),
     "window[1]", "overlaps window[0]"),
    ("colour = 1\n", "colour", "unknown key"),
    ("start_of_day = \"7am\"\n", "start_of_day", "expected a time"),
    ("[[junction.J.window]]\nfrom = \"00:00\"\nto = \"01:00\"\ngreens = { 4 = 10 }\n",
     "junction.J.window[0].greens.4", "not a green phase"),
])
def test_load_errors_name_the_key_and_the_file(tmp_path, text, key, words):
    p = _write(tmp_path, text)
    with pytest.raises(PlanError) as ei:
        load_plan(p).check_network([spec()])
    msg = str(ei.value)
    assert msg.startswith(f"{p}: {key}: "), msg
    assert words in msg, msg


def test_other_load_errors(tmp_path):
    with pytest.raises(PlanError, match=r"plan\.toml: not valid TOML"):
        load_plan(_write(tmp_path, "[[window]\n"))
    with pytest.raises(PlanError, match=r"absent\.toml: cannot read"):
        load_plan(tmp_path / "absent.toml")
    p = _write(tmp_path, "[[junction.X.window]]\nfrom = \"00:00\"\nto = \"01:00\"\ngreens = { 0 = 10 }\n")
    with pytest.raises(PlanError, match=r"plan\.toml: junction\.X: no traffic light 'X' in the network"):
        load_plan(p).check_network([spec()])
    p = _write(tmp_path, _window("0 = 10, 6 = 12"))
    with pytest.raises(PlanError, match=r"window\[0\]: .*no map of the net's program"):
        load_plan(p).for_junction(small_spec())  # a spec compiled before program_greens existed


def test_duplicate_greens_must_agree(tmp_path):
    dup = small_spec(program_greens=[0, -1, 1, -1, 0, -1, 2, -1])  # the program shows green 0 twice
    plan = load_plan(_write(tmp_path, _window("0 = 10, 4 = 10")))
    assert plan.for_junction(dup).windows[0][1][0] == 10.0
    plan = load_plan(_write(tmp_path, _window("0 = 10, 4 = 12")))
    with pytest.raises(PlanError, match=r"window\[0\]\.greens\.4: phase 4 shows the same green as phase 0"):
        plan.for_junction(dup)


def test_windows_by_time_of_day_with_start_offset_and_midnight(tmp_path):
    text = ('start_of_day = "22:00"\n' + _window("0 = 12", frm='"23:00"', to='"01:30"')
            + "name = \"night\"\n" + _window("0 = 7", frm='"07:00"', to='"21:00"'))
    jp = load_plan(_write(tmp_path, text)).for_junction(spec())
    assert jp.at(0.0) == ("net", (10.0, 6.0, 12.0))  # 22:00
    assert jp.at(3600.0) == ("night", (12.0, 6.0, 12.0))  # 23:00
    assert jp.at(3 * 3600.0 + 1799) == ("night", (12.0, 6.0, 12.0))  # 01:29:59
    assert jp.at(3 * 3600.0 + 1800)[0] == "net"  # 01:30
    assert jp.at(9 * 3600.0) == ("window 1", (7.0, 6.0, 12.0))  # 07:00
    assert jp.at(9 * 3600.0 + 86400) == ("window 1", (7.0, 6.0, 12.0))  # the next day too


# -- a controller in local mode ------------------------------------------------------------------------------
@pytest.fixture
def silent():
    """Controllers whose engine never speaks: they run the local plan from t = 5 on."""
    ctx = zmq.Context()
    made: list[Controller] = []

    def make(sp, plan=None):
        heads = RecordingHeads()
        c = Controller(sp, bus.endpoints("inproc"), heads=heads, ctx=ctx, lockstep=False, plan=plan)
        made.append(c)
        return c, heads

    yield make
    for c in made:
        c.close()
    ctx.destroy(linger=0)


def _greens(sp, shown: list[str]) -> list[tuple[int, int, int]]:
    """(green phase, length, first tick) of every complete green run (the first one may be partial)."""
    out = []
    i = 0
    while i < len(shown):
        if shown[i] in sp.green_states:
            j = i
            while j < len(shown) and shown[j] == shown[i]:
                j += 1
            if i > 0 and j < len(shown):
                out.append((sp.green_states.index(shown[i]), j - i, i))
            i = j
        else:
            i += 1
    return out


def test_local_mode_follows_the_window_in_force_and_switches_at_the_boundary(tmp_path, silent):
    sp = spec()
    jp = load_plan(_write(tmp_path, GOOD)).for_junction(sp)
    ctrl, heads = silent(sp, jp)
    for t in range(360):
        ctrl.do_tick(float(t))
    assert ctrl.mode == "local" and ctrl.plan_name == "late"
    early = {0: 8, 1: 6, 2: 9}
    late = {0: 15, 1: 6, 2: 20}  # phase 3 (green 1) not named in "late": the net's 6 s
    runs = _greens(sp, heads.shown)
    before = [(k, n) for k, n, start in runs if start >= 5 and start + n <= 120]
    after = [(k, n) for k, n, start in runs if start >= 120]
    assert len(before) >= 6 and len(after) >= 6
    assert all(n == early[k] for k, n in before), before
    assert all(n == late[k] for k, n in after), after
    # the green that straddles 120 s ends by the plan in force when it is judged (at least its minimum)
    for k, n, start in runs:
        if start < 120 < start + n:
            assert n == max(early[k], min(late[k], 120 + 1 - start)) or n == late[k], (k, n, start)
    rep = check_sequence(sp, heads.shown)
    assert rep.total == 0, str(rep)
    assert ctrl.monitor.fault is None and ctrl.counters.faults == 0


def test_without_a_plan_or_outside_its_windows_the_net_program_runs(tmp_path, silent):
    sp = spec()
    net = {0: 10, 1: 6, 2: 12}
    night = load_plan(_write(tmp_path, _window("0 = 20, 6 = 25", frm='"22:00"', to='"23:00"'))).for_junction(sp)
    for plan in (None, night):
        ctrl, heads = silent(sp, plan)
        for t in range(200):
            ctrl.do_tick(float(t))
        assert ctrl.mode == "local"
        runs = [(k, n) for k, n, start in _greens(sp, heads.shown) if start >= 5]
        assert len(runs) >= 6 and all(n == net[k] for k, n in runs), runs
        assert check_sequence(sp, heads.shown).total == 0


def test_plan_against_a_compiled_junction_and_the_command_line(tmp_path):
    a1 = next(s for s in demo_specs() if s.id == "A1")
    assert a1.program_greens == [0, -1, 1, -1, 2, -1]
    text = _window("0 = 40, 2 = 12, 4 = 30").replace("[[window]]", "[[junction.A1.window]]")
    ok = load_plan(_write(tmp_path, text)).check_network(demo_specs())
    assert ok["A1"].windows[0][1] == (40.0, 12.0, 30.0)
    assert ok["N1"].windows == () and ok["N1"].at(0.0)[0] == "net"  # no common windows: the net's program
    spec_file = tmp_path / "A1.json"
    spec_file.write_bytes(msgspec.json.encode(a1))
    bad = _write(tmp_path, _window("0 = 40, 1 = 12"))
    r = subprocess.run([sys.executable, "-m", "cli", "controller", str(spec_file), "--plan", str(bad),
                        "--commands", "inproc://x", "--bus-in", "inproc://y", "--bus-out", "inproc://z"],
                       check=False, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == (f"lintas: error: {bad}: window[0].greens.1: phase 1 of A1 is "
                                                       f"not a green phase (a yellow or all-red phase of the net's "
                                                       f"program); green ones: 0, 2, 4")
    r = subprocess.run([sys.executable, "-m", "cli", "simulate", str(DEMO),
                        "--local-plan", str(bad), "-q"], check=False, cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and f"{bad}: window[0].greens.1: phase 1 of A1 is not a green phase" in r.stderr


def test_shipped_demo_plan_is_valid_and_is_the_readme_example(tmp_path):
    shipped = DEMO / "local_plan.toml"
    blocks = re.findall(r"```toml\n(.*?)```", (REPO / "README.md").read_text(), flags=re.DOTALL)
    assert shipped.read_text() in blocks
    doc_blocks = re.findall(r"```toml\n(.*?)```", (REPO / "docs" / "safety.md").read_text(), flags=re.DOTALL)
    assert len(doc_blocks) == 1
    load_plan(_write(tmp_path, doc_blocks[0])).check_network(demo_specs())
    plans = load_plan(shipped).check_network(demo_specs())
    assert plans["A1"].at(0.0) == ("morning-peak", (40.0, 12.0, 30.0))  # clock 0 = 06:00
    assert plans["N1"].at(3 * 3600.0 - 1) == ("morning-peak", (45.0, 42.0))
    assert plans["N1"].at(3 * 3600.0)[0] == "net"  # 09:00
    assert plans["A1"].at(16 * 3600.0) == ("night", (15.0, 10.0, 15.0))  # 22:00
