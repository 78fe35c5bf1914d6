"""Operations that never lose a result and never lie (issue 15, items 1 and 6), through the real command:
``lintas simulate`` in its own process on a one-junction scenario, real signals to it, its processes counted
from /proc.

- output paths that cannot be written are refused before the first run (exit 2, one line);
- each finished run is in the work folder's journal as it finishes, the JSON is built from it, and
  ``--resume`` runs only what it lacks (and refuses another request's journal);
- SIGTERM, and Ctrl-C twice 30 ms apart, keep the finished runs (exit 143 and 130) and leave no process of
  the batch alive (workers, a TraCI SUMO);
- one invocation per work folder; non-finite parameters, an --end within a tick of begin, --gui without a
  display are refused; --dead/--fail-detectors say when they reach no policy.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from clirun import lintas, lintas_argv
from onejunction import one_junction

from simulation.experiments.catalog import REPO

FIGURES = ("delay_s", "trip_duration_s", "waiting_s", "queue_veh", "throughput_veh", "vehicles")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    """One junction, a vehicle every 6 s on each approach for an hour: a closed-loop run of the whole hour
    lasts several seconds, a sumo-static run of it about one."""
    return one_junction(tmp_path_factory.mktemp("oj"), end=3600)


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("lintas: error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]


def _journal(work: Path) -> tuple[dict, list[dict]]:
    lines = (work / "journal.jsonl").read_text().splitlines()
    return json.loads(lines[0]), [json.loads(ln)["run"] for ln in lines[1:] if ln.strip()]


# --- outputs checked before the first run ---------------------------------------------------------------


@pytest.mark.parametrize("case", ["json-in-proc", "json-under-a-file", "report-is-a-file", "work-in-proc",
                                  "work-under-a-file"])
def test_an_output_that_cannot_be_written_is_refused_before_any_run(tmp_path, scenario, case):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    work = tmp_path / "work"
    option, path = {
        "json-in-proc": ("--json", "/proc/lintas-test.json"),
        "json-under-a-file": ("--json", str(afile / "x.json")),
        "report-is-a-file": ("--report", str(afile)),
        "work-in-proc": ("--work-dir", "/proc/lintas-test-work"),
        "work-under-a-file": ("--work-dir", str(afile / "work")),
    }[case]
    args = [option, path] if option == "--work-dir" else [option, path, "--work-dir", str(work)]
    t0 = time.monotonic()
    r = lintas("simulate", str(scenario), "-p", "sumo-static", "--end", "600", "-q", *args, timeout=120)
    line = _one_error_line(r)
    assert option in line and path in line, line
    assert not (work / "runs").exists() and not (work / "journal.jsonl").exists()  # no run started
    assert not list(tmp_path.glob("**/.lintas-probe-*"))  # no probe left behind
    assert afile.read_text() == "not a folder"
    assert time.monotonic() - t0 < 60


# --- small lies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["param-nan", "param-inf", "end-equal-to-begin", "end-within-a-tick", "end-nan",
                                  "gui-without-display"])
def test_a_request_that_would_lie_is_refused_at_once(tmp_path, scenario, case):
    args, needle = {
        "param-nan": (["-p", "maxpressure", "--param", "HYSTERESIS=nan"], "HYSTERESIS"),
        "param-inf": (["-p", "maxpressure", "--param", "WEIGHT=-inf"], "WEIGHT"),
        "end-equal-to-begin": (["--end", "0"], "--end 0"),  # the scenario begins at 0
        "end-within-a-tick": (["--end", "0.5"], "--end 0.5"),  # once a table of dashes and exit 0
        "end-nan": (["--end", "nan"], "--end nan"),
        "gui-without-display": (["--gui"], "--gui"),  # once ~60 s of retries
    }[case]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    t0 = time.monotonic()
    r = lintas("simulate", str(scenario), "--work-dir", str(tmp_path / "work"), "-q", *args, timeout=120, env=env)
    assert needle in _one_error_line(r)
    assert not (tmp_path / "work" / "runs").exists()
    assert time.monotonic() - t0 < 30


def test_dead_detectors_with_only_sumo_policies_are_said_to_change_nothing(tmp_path, scenario):
    out = tmp_path / "runs.json"
    r = lintas("simulate", str(scenario), "-p", "sumo-static", "--dead", "loops", "--fail-detectors", "0.3",
               "--end", "30", "--json", str(out), "--work-dir", str(tmp_path / "work"), "-q", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("lintas: note: ")]
    assert any("--dead loops" in ln and "--fail-detectors 0.3" in ln and "changes nothing" in ln
               for ln in notes), r.stderr
    assert json.loads(out.read_text())["runs"][0]["policy"] == "sumo-static"


# --- the journal and --resume -------------------------------------------------------------------------------


def test_runs_are_journaled_as_they_finish_and_resume_runs_only_the_missing(tmp_path, scenario):
    work = tmp_path / "work"
    out1 = tmp_path / "new" / "folder" / "runs.json"  # a folder that does not exist yet: created
    common = ["-p", "sumo-static", "-p", "fixed", "--end", "120", "--fail-detectors", "0.25", "--work-dir", str(work),
              "-q"]
    r = lintas("simulate", str(scenario), *common, "--json", str(out1), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    # mixed policies: the option is said to reach only the Lintas ones
    assert any(ln.startswith("lintas: note: --fail-detectors 0.25 applies only to the Lintas policies (fixed)")
               for ln in r.stderr.splitlines()), r.stderr
    head, runs = _journal(work)
    assert head["request"]["policies"] == ["sumo-static", "fixed"] and head["request"]["end"] == 120
    assert head["request"]["scenario"] == str(scenario.resolve())
    assert sorted(r["policy"] for r in runs) == ["fixed", "sumo-static"]
    doc1 = json.loads(out1.read_text())["runs"]
    assert [d["policy"] for d in doc1] == ["sumo-static", "fixed"]  # the request's order, not the finishing order
    by_policy = {r["policy"]: r for r in runs}
    for d in doc1:
        assert {k: d[k] for k in FIGURES} == {k: by_policy[d["policy"]][k] for k in FIGURES}

    # as if interrupted before fixed finished: its line is gone; --resume runs fixed alone
    lines = (work / "journal.jsonl").read_text().splitlines(keepends=True)
    (work / "journal.jsonl").write_text("".join(ln for ln in lines if '"policy": "fixed"' not in ln))
    static_trips = work / "runs" / "j" / "sumo-static-seed1" / "tripinfo.xml"
    fixed_trips = work / "runs" / "j" / "fixed-seed1" / "tripinfo.xml"
    static_mtime, fixed_mtime = static_trips.stat().st_mtime_ns, fixed_trips.stat().st_mtime_ns
    out2 = tmp_path / "runs2.json"
    r = lintas("simulate", str(scenario), *common, "--json", str(out2), "--resume", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--resume: 1 of 2 runs already in" in r.stderr and "running the other 1" in r.stderr
    assert static_trips.stat().st_mtime_ns == static_mtime  # not run again
    assert fixed_trips.stat().st_mtime_ns != fixed_mtime  # run again
    doc2 = json.loads(out2.read_text())["runs"]
    assert [{k: d[k] for k in FIGURES} for d in doc2] == [{k: d[k] for k in FIGURES} for d in doc1]
    assert len(_journal(work)[1]) == 2

    # another request's journal is refused, saying what differs
    other = [a if a != "120" else "60" for a in common]
    line = _one_error_line(lintas("simulate", str(scenario), *other, "--resume", timeout=120))
    assert "--resume" in line and "another request" in line and "end: 120" in line and "60" in line
    line = _one_error_line(lintas("simulate", str(scenario), "-p", "fixed", "--work-dir", str(tmp_path / "empty"),
                                  "--resume", timeout=120))
    assert "no journal" in line


# --- signals and processes --------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            out.setdefault(ppid, []).append(int(d))
    return out


def _tree(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        k = kids.get(todo.pop(), [])
        out += k
        todo += k
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has ended (nothing here reaps what init inherits)


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(d))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _start(folder: Path, *args: str) -> subprocess.Popen:
    """``lintas simulate ARGS`` in a session of its own (its process group is what a terminal's Ctrl-C reaches);
    its output goes to files in ``folder`` (a process left behind holding a pipe would hang the test)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "stdout.txt", "w") as out, open(folder / "stderr.txt", "w") as err:
        return subprocess.Popen(lintas_argv("simulate", *args), cwd=REPO, stdout=out, stderr=err,
                                start_new_session=True,
                                # as from a terminal: a test run in the background (cmd &) hands SIGINT down ignored
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _end(p: subprocess.Popen) -> None:
    """Whatever happened: nothing of the test's command is left (its group, orphans included)."""
    if p.poll() is None:
        p.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def _wait_for(what, p: subprocess.Popen, timeout: float = 120.0, message: str = ""):
    t0 = time.monotonic()
    while not (got := what()):
        assert p.poll() is None, f"{message}: the command ended ({p.returncode})"
        assert time.monotonic() - t0 < timeout, message
        time.sleep(0.05)
    return got


def _finished_runs(work: Path) -> int:
    try:
        return len(_journal(work)[1])
    except (OSError, IndexError, ValueError):
        return 0


@pytest.mark.parametrize("how", ["sigterm-to-the-command", "ctrl-c-twice-to-the-group"])
def test_a_stop_keeps_the_finished_runs_and_leaves_no_process(tmp_path, scenario, how):
    """sumo-static finishes (about a second), then maxpressure runs for the whole hour (several seconds); the
    stop comes during maxpressure. SIGTERM goes to the command alone (as ``kill PID`` sends it) while a TraCI
    SUMO runs, so the command itself must end its worker and that SUMO; Ctrl-C goes to the whole group twice,
    30 ms apart, as a hasty user's does."""
    work, out = tmp_path / "work", tmp_path / "runs.json"
    extra = ["--traci"] if how.startswith("sigterm") else []
    p = _start(tmp_path, str(scenario), "-p", "sumo-static", "-p", "maxpressure", "--jobs", "1", "--json", str(out),
               "--work-dir", str(work), "-q", *extra)
    try:
        _wait_for(lambda: _finished_runs(work) == 1, p, message="sumo-static did not finish")
        if how.startswith("sigterm"):
            sumo = _wait_for(lambda: [c for c in _tree(p.pid) if "sumo/bin/sumo" in (cmd := _cmdline(c))
                                      and "maxpressure-seed1" in cmd and _alive(c)], p,
                             message="maxpressure's SUMO did not start")
            procs = _tree(p.pid)
            assert set(sumo) <= set(procs)
            p.send_signal(signal.SIGTERM)
        else:
            _wait_for(lambda: any("spawn_main" in _cmdline(c) for c in _tree(p.pid)), p, message="no worker")
            time.sleep(0.3)  # maxpressure's worker is starting
            procs = _tree(p.pid)
            os.killpg(p.pid, signal.SIGINT)
            time.sleep(0.03)
            os.killpg(p.pid, signal.SIGINT)
        p.wait(timeout=60)
        time.sleep(0.5)
        left = [(c, _cmdline(c)) for c in set(procs) | set(_group(p.pid)) if _alive(c)]
    finally:
        _end(p)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert not left, left
    assert p.returncode == (143 if how.startswith("sigterm") else 130), stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert [r["policy"] for r in json.loads(out.read_text())["runs"]] == ["sumo-static"]
    assert [r["policy"] for r in _journal(work)[1]] == ["sumo-static"]
    assert procs, "no worker seen"


def test_a_second_invocation_on_the_same_work_folder_is_refused(tmp_path, scenario):
    work = tmp_path / "work"
    p = _start(tmp_path, str(scenario), "-p", "maxpressure", "--work-dir", str(work), "-q")
    try:
        _wait_for(lambda: (work / "lintas.lock").exists() and (work / "lintas.lock").read_text().strip(), p,
                  message="the first invocation took no lock")
        r = lintas("simulate", str(scenario), "-p", "sumo-static", "--end", "60", "--work-dir", str(work), "-q",
                   timeout=120)
        assert p.poll() is None, "the first invocation ended before the second was refused"
        line = _one_error_line(r)
        assert str(work) in line and f"pid {p.pid}" in line, line
        assert _journal(work)[0]["pid"] == p.pid  # the first one's journal, untouched
        os.killpg(p.pid, signal.SIGINT)
        p.wait(timeout=60)
    finally:
        _end(p)
    assert p.returncode == 130
