"""Every run counts its locks (simulation/sumo/locks.py), SUMO's baselines and Lintas' policies alike: a junction
whose exit is blocked by a standing vehicle is a lock with its junction and lane, named among the problems, red
in the report, and ``lintas simulate`` exits 3; a normal run has none. Real SUMO, each run in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from clirun import lintas
from onejunction import one_junction

from simulation.experiments.report import problems

RUN = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from simulation.experiments.runner import RunSpec, run_one

    rec = run_one(RunSpec(Path(sys.argv[1]), sys.argv[2], 1, Path(sys.argv[3]), end=float(sys.argv[4])))
    print(json.dumps({k: rec[k] for k in ("locks", "lock_events", "throughput_veh")}))
""")


def run_one_fresh(cfg, policy: str, work, end: float = 700) -> dict:
    """``run_one(RunSpec(...))`` in a process of its own (libsumo keeps state between runs in one process)."""
    r = subprocess.run([sys.executable, "-c", RUN, str(cfg), policy, str(work), f"{end:g}"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_normal_run_has_no_lock(tmp_path):
    cfg = one_junction(tmp_path / "j")
    for policy in ("sumo-static", "fixed"):
        rec = run_one_fresh(cfg, policy, tmp_path / policy)
        assert rec["locks"] == 0 and rec["lock_events"] == [], policy
        assert rec["throughput_veh"] > 150, policy  # traffic flowed through both approaches


def test_a_blocked_exit_is_a_lock_in_every_run_named_red_and_exit_3(tmp_path):
    """A vehicle stands for 2000 s on the exit right after the junction: the queue on WC_0 never moves although
    the light shows it green every cycle. Both paths (SUMO's own program, Lintas' closed loop) count it once."""
    cfg = one_junction(tmp_path / "j", blocker=2000)
    out = tmp_path / "runs.json"
    r = lintas("simulate", str(cfg), "-p", "sumo-static", "-p", "fixed", "--end", "700", "--json", str(out),
               "--report", str(tmp_path / "rep"), "--work-dir", str(tmp_path / "w"), "-q", timeout=300)
    assert r.returncode == 3, r.stderr[-3000:]
    runs = json.loads(out.read_text())["runs"]
    assert [x["policy"] for x in runs] == ["sumo-static", "fixed"]
    for run in runs:
        assert run["locks"] == 1, run["policy"]
        (ev,) = run["lock_events"]
        assert (ev["junction"], ev["lane"], ev["since"], ev["at"], ev["until"]) == ("C", "WC_0", 0.0, 300.0, None)
        assert ev["green_s"] >= 30
        assert not run.get("faults") and run["collisions"] == 0  # nothing else went wrong: the lock alone exits 3
    lines = [ln for ln in problems(runs) if " locked " in ln]  # (the queue backs up: vehicles never inserted too)
    assert len(lines) == 2
    for policy, line in zip(("sumo-static", "fixed"), lines):
        assert line.startswith(f"{policy} seed 1: lane WC_0 of junction C locked from 0 s (no vehicle left for "
                               f"300 s with ")
        assert f"lintas: {line}" in r.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| Locks |" in md and lines[0] in md
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<th>Locks</th>" in html and 'class="num bad">1</td>' in html
    assert "Locks" in r.stdout  # the comparison table printed has the column
