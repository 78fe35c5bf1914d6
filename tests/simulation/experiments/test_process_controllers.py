"""``lintas simulate --controllers process``: the counters come back from the controller processes, and no
process or socket outlives the run, whatever ends it (Ctrl-C, SIGTERM, SIGKILL). Real processes, real
signals, real ZeroMQ; processes are found in /proc.

Each run gets a TMPDIR of its own, so its ipc folder (``lintas-<pid>-*``) is told apart from other runs'.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
import zmq
from clirun import lintas, lintas_argv

from controllers.lifeline import read_stats
from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.junction import write_specs
from simulation.experiments.catalog import DEMO, REPO

N_DEMO = 12  # junctions (controller processes) of the demo city
FIGURES = ("delay_s", "trip_duration_s", "waiting_s", "queue_veh", "throughput_veh", "teleports", "collisions",
           "vehicles")
COUNTERS = ("commands_sent", "commands_accepted", "commands_refused", "faults", "fallbacks")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


# -- processes, from /proc ----------------------------------------------------------------------------------------
def _table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state letter, command line) of every process now."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(d)] = (int(fields[1]), fields[0], cmd)
    return out


def _descendants(root: int, table: dict) -> set[int]:
    found, todo = set(), [root]
    while todo:
        parent = todo.pop()
        kids = [pid for pid, (ppid, _s, _c) in table.items() if ppid == parent and pid not in found]
        found.update(kids)
        todo.extend(kids)
    return found


def _threads(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("Threads:")), 0)


def _is_controller(cmd: str) -> bool:
    return "-m controllers " in cmd or " controller " in cmd


def _living(pids: set[int], what: Callable[[str], bool]) -> set[int]:
    """Those of ``pids`` still running what ``what`` recognises (a zombie is dead; a reused pid is another)."""
    table = _table()
    return {p for p in pids if p in table and table[p][1] != "Z" and what(table[p][2])}


def _until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def tmpdir_short():
    """A short TMPDIR for one run (an ipc socket's path must stay under 108 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="lt15-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Run:
    """``lintas simulate --controllers process`` (on the demo city unless told) in its own session (as a
    terminal's job)."""

    def __init__(self, tmp: Path, tmpdir: Path, *args: str, scenario: Path = DEMO, end: float = 3600) -> None:
        self.tmp, self.tmpdir = tmp, tmpdir
        tmp.mkdir(parents=True, exist_ok=True)
        self.err_path = tmp / "stderr.txt"
        with open(tmp / "stdout.txt", "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                lintas_argv("simulate", str(scenario), "-p", "maxpressure", "--end", f"{end:g}", "--transport", "ipc",
                            "--controllers", "process", "--json", str(tmp / "runs.json"), "--work-dir",
                            str(tmp / "work"), "-q", *args),
                cwd=REPO, env={**os.environ, "TMPDIR": str(tmpdir)}, stdout=out, stderr=err, start_new_session=True)

    def up(self, n: int = N_DEMO) -> tuple[set[int], int]:
        """Wait until its ``n`` controllers run and the run is under way; returns (their pids, the runner's pid)."""

        def ready():
            assert self.proc.poll() is None, self.stderr()
            table = _table()
            ctrls = {p for p in _descendants(self.proc.pid, table) if _is_controller(table[p][2])}
            # past their start: a ZeroMQ context (its I/O thread) exists only after the tie to the runner is made
            return len(ctrls) == n and self.ipc_folders() and all(_threads(p) > 1 for p in ctrls) and ctrls

        ctrls = _until(ready, 90, f"{n} controller processes")
        runners = {_table()[p][0] for p in ctrls}
        assert len(runners) == 1, runners  # one runner (the pool's worker) started them all
        time.sleep(1.5)  # they have connected and the run is under way
        return ctrls, runners.pop()

    def ipc_folders(self) -> list[Path]:
        return sorted(self.tmpdir.glob("lintas-*"))

    def stderr(self) -> str:
        return self.err_path.read_text()[-3000:]

    def kill(self) -> None:
        """SIGKILL whatever is left of the command's process group (a test may have killed its leader only; the
        batch's multiprocessing helpers may outlive it): the processes of that group that run with our TMPDIR."""
        mine = f"TMPDIR={self.tmpdir}".encode()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
                pgid = int(stat[stat.rindex(")") + 2:].split()[2])
                if pgid == self.proc.pid and mine in Path(f"/proc/{d}/environ").read_bytes().split(b"\0"):
                    os.kill(int(d), signal.SIGKILL)
            except (OSError, ValueError):
                continue
        self.proc.wait(10)


@pytest.fixture(scope="module")
def grid4(tmp_path_factory) -> Path:
    """A 2x2 grid of signals: four controller processes. The signal tests need several controllers to show that
    every one of them stops; four are several, and start in a third of the time of the demo city's twelve."""
    from test_any_scenario import make_grid

    return make_grid(tmp_path_factory.mktemp("grid4"), end=3600.0).parent


N_GRID = 4


@pytest.fixture
def run_factory(tmp_path, tmpdir_short, grid4):
    runs: list[Run] = []

    def make(*args: str, **kw) -> Run:
        kw.setdefault("scenario", grid4)
        r = Run(tmp_path / f"run{len(runs)}", tmpdir_short, *args, **kw)
        runs.append(r)
        return r

    yield make
    for r in runs:  # a failed test leaves nothing running either
        r.kill()


def _all_gone(pids: set[int], what=_is_controller, timeout: float = 10.0) -> None:
    _until(lambda: not _living(pids, what), timeout, f"processes {sorted(_living(pids, what))} to end")


# -- the signals ----------------------------------------------------------------------------------------------------
def test_ctrl_c_stops_every_controller_and_leaves_no_sockets(run_factory):
    """Ctrl-C at the terminal (SIGINT to the job's process group): no controller process outlives the command.
    The batch kills its workers outright (SIGKILL), so the runner cannot remove its ipc folder: the batch
    removes the folders of dead runs before it exits."""
    run = run_factory()
    ctrls, runner = run.up(N_GRID)
    os.killpg(run.proc.pid, signal.SIGINT)
    run.proc.wait(30)
    _all_gone(ctrls)
    _all_gone({runner}, what=lambda _c: True)
    assert "Traceback" not in run.stderr()
    assert run.ipc_folders() == []


def test_sigterm_to_the_runner_stops_its_controllers(run_factory):
    """The batch's pool cancels a run with SIGTERM to its worker: the runner stops its controllers (STOP, then
    SIGTERM, then SIGKILL to their process group), removes its sockets, and the run is reported failed."""
    run = run_factory()
    ctrls, runner = run.up(N_GRID)
    os.kill(runner, signal.SIGTERM)
    _all_gone(ctrls)
    _all_gone({runner}, what=lambda _c: True, timeout=10)
    assert run.ipc_folders() == []
    run.proc.wait(30)
    assert "stopped by SIGTERM" in run.stderr(), run.stderr()


def test_sigkill_of_the_runner_kills_its_controllers_and_the_next_start_sweeps_the_sockets(run_factory, tmp_path):
    """SIGKILL of the runner cannot be caught: its controllers die with it all the same (a parent-death
    signal). Its ipc folder stays, and the next run started with that TMPDIR removes it."""
    run = run_factory()
    ctrls, runner = run.up(N_GRID)
    os.kill(runner, signal.SIGKILL)
    _all_gone(ctrls)
    run.proc.wait(30)
    (stale,) = run.ipc_folders()
    assert f"lintas-{runner}-" in stale.name
    from onejunction import one_junction

    cfg = one_junction(tmp_path / "one", end=60.0)
    time.sleep(max(0.0, 2.1 - (time.time() - stale.stat().st_mtime)))  # the sweep leaves a folder younger than 2 s
    nxt = run_factory(scenario=cfg.parent, end=20)
    assert nxt.proc.wait(120) == 0, nxt.stderr()
    assert run.ipc_folders() == [], "the stale folder and the new run's own are removed"


def test_sigkill_of_the_whole_command_stops_the_run_under_way(run_factory):
    """``lintas simulate`` itself killed outright: its pool's worker hears it (a parent-death SIGTERM), stops its
    controllers, removes its sockets and ends, instead of running on orphaned to the end of the run."""
    run = run_factory()
    ctrls, runner = run.up(N_GRID)
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait(10)
    _all_gone(ctrls, timeout=10)
    _all_gone({runner}, what=lambda _c: True, timeout=10)
    assert run.ipc_folders() == []


# -- the counters -------------------------------------------------------------------------------------------------
def test_process_mode_counts_what_in_process_counts(tmp_path, tmpdir_short):
    """Same scenario, policy and seed: controllers in other processes give the same figures and the same
    counters as controllers in the runner's process, and those are what each controller process wrote."""
    env = {**os.environ, "TMPDIR": str(tmpdir_short)}
    docs = {}
    for mode in ("inprocess", "process"):
        out = tmp_path / f"{mode}.json"
        r = lintas("simulate", str(DEMO), "-p", "maxpressure", "--end", "300", "--transport", "ipc", "--controllers",
                   mode, "--json", str(out), "--work-dir", str(tmp_path / mode), "-q", env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        docs[mode] = json.loads(out.read_text())["runs"][0]
    a, b = docs["inprocess"], docs["process"]
    assert {k: b[k] for k in FIGURES + COUNTERS} == {k: a[k] for k in FIGURES + COUNTERS}
    assert b["commands_sent"] > 50 and b["commands_accepted"] == b["commands_sent"]
    assert b["commands_refused"] == 0 and b["faults"] == 0 and b["fallbacks"] == 0
    files = sorted((tmp_path / "process" / "runs").glob("*/maxpressure-seed1/controllers/*.json"))
    assert len(files) == N_DEMO
    counted = [read_stats(f) for f in files]
    assert sum(c["accepted"] for c in counted) == b["commands_accepted"]
    assert all(c["ticks"] == 300 and c["mode"] == "engine" for c in counted)
    assert list(tmpdir_short.iterdir()) == []  # both runs removed their ipc folders


def _conflicting(spec):
    """``spec`` with its links 0 and 1 declared foes: phase 0 shows them green together, so the conflict monitor
    latches a fault on the first tick."""
    rows = [list(r) for r in spec.conflicts]
    rows[0][1] = rows[1][0] = "1"
    return msgspec.structs.replace(spec, id="K", conflicts=["".join(r) for r in rows], yields=[])


def test_a_controller_process_writes_what_it_counted(tmp_path, tmpdir_short, monkeypatch):
    """Refusals, a fallback to the local plan and a latched fault, counted in two ``python -m controllers``
    processes driven over real sockets by a stand-in engine and runner: each writes its counters when STOP
    ends it."""
    sys.path.insert(0, str(REPO / "tests" / "controllers"))
    try:
        from junctions import small_spec
    finally:
        sys.path.remove(str(REPO / "tests" / "controllers"))
    monkeypatch.setenv("TMPDIR", str(tmpdir_short))
    monkeypatch.setattr(tempfile, "tempdir", None)
    good = small_spec()
    specs = write_specs([good, _conflicting(good)], tmp_path / "junctions")
    ctx = zmq.Context()
    ep = bus.endpoints("ipc")
    fwd = bus.Forwarder(ep, ctx).start()
    engine = bus.CommandServer(ctx, ep)
    pub = bus.Publisher(ctx, ep)
    procs = {}
    try:
        for jid in ("J", "K"):
            procs[jid] = subprocess.Popen(
                [sys.executable, "-m", "controllers", str(specs[jid]), "--bus-in", ep.bus_in, "--bus-out", ep.bus_out,
                 "--commands", ep.commands, "--lockstep", "--lockstep-wait", "0.05", "--parent-pid", str(os.getpid()),
                 "--stats", str(tmp_path / f"{jid}.json")], cwd=REPO, stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True)
        heard: dict[str, m.ControllerState] = {}

        def states_at(t: float, phase=m.TickPhase.RUN, resend: bool = False) -> bool:
            if resend:
                pub.publish(m.TOPIC_TICK, m.ClockTick(time=t, step=-1, phase=phase))
            time.sleep(0.02)
            for jid, msg in engine.drain():
                if isinstance(msg, m.ControllerState):
                    heard[jid] = msg
            return all(jid in heard and heard[jid].time == t for jid in procs)

        _until(lambda: states_at(-1.0, m.TickPhase.SYNC, resend=True), 30, "both controllers to answer")
        engine.send("J", m.Heartbeat(sender="engine", time=0.0))
        engine.send("J", m.PhaseCommand(junction="J", action=m.Action.HOLD, seq=1, issued_at=0.0))  # accepted
        engine.send("J", m.PhaseCommand(junction="J", action=m.Action.HOLD, seq=1, issued_at=0.0))  # replayed
        engine.send("J", m.PhaseCommand(junction="X", action=m.Action.HOLD, seq=2, issued_at=0.0))  # not J's
        for t in range(10):  # then the engine is silent: J runs its local plan after the backup time (4 s)
            pub.publish(m.TOPIC_TICK, m.ClockTick(time=float(t), step=t, phase=m.TickPhase.RUN))
            _until(lambda t=t: states_at(float(t)), 10, f"the states of t={t}")
        assert heard["J"].mode == m.Mode.LOCAL and heard["K"].mode == m.Mode.FAILSAFE
        assert heard["J"].accepted == 1 and heard["J"].refused == 2
        pub.publish(m.TOPIC_TICK, m.ClockTick(time=0.0, step=-1, phase=m.TickPhase.STOP))
        for jid, p in procs.items():
            assert p.wait(15) == 0, (jid, p.stderr.read())
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(5)
        engine.close()
        pub.close()
        fwd.stop()
        ctx.destroy(linger=0)
        bus.ipc_cleanup(ep)
    j, k = read_stats(tmp_path / "J.json"), read_stats(tmp_path / "K.json")
    assert (j["accepted"], j["refused"], j["fallbacks"], j["faults"], j["ticks"]) == (1, 2, 1, 0, 10), j
    assert j["refusals"] == {"replayed-or-out-of-sequence": 1, "wrong-junction": 1}
    assert (k["accepted"], k["refused"], k["fallbacks"], k["faults"], k["mode"]) == (0, 0, 0, 1, "failsafe"), k
    assert list(tmpdir_short.iterdir()) == []


def test_a_controller_whose_starter_is_gone_does_not_start(tmp_path):
    """``--parent-pid`` of a process that has already ended: the controller says so and exits (it would
    otherwise run on, orphaned)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    spec = tmp_path / "J.json"
    spec.write_text('{"id": "J"}')
    r = subprocess.run([sys.executable, "-m", "controllers", str(spec), "--parent-pid", str(dead.pid)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--parent-pid" in r.stderr and "has ended" in r.stderr, r.stderr


def test_the_run_counters_are_unknown_not_zero_when_a_process_left_none():
    from simulation.experiments.runner import controller_totals

    st = m.ControllerState(junction="B", accepted=7, refused=1)
    full = {"accepted": 3, "refused": 0, "faults": 0, "fallbacks": 2}
    assert controller_totals({"A": full, "B": dict(full, accepted=7, refused=1)}, {}) == {
        "accepted": 10, "refused": 1, "faults": 0, "fallbacks": 4}
    # B's process wrote nothing: its accepted and refused from its last state, faults and fallbacks unknown
    assert controller_totals({"A": full, "B": None}, {"B": st}) == {
        "accepted": 10, "refused": 1, "faults": None, "fallbacks": None}
    assert controller_totals({"A": full, "B": None}, {})["accepted"] is None


def test_the_sweep_removes_only_dead_processes_socket_folders(tmp_path):
    """``bus.ipc_sweep_stale``: a folder of a dead pid holding only sockets nobody listens on goes; one of a live
    pid, one with a listener, one holding another file, and a fresh one stay."""
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    def folder(name: str, *, listen: bool = False, other: bool = False, age: float = 10.0) -> Path:
        d = tmp_path / name
        d.mkdir()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(d / "cmd"))
        if listen:
            s.listen()
            keep.append(s)
        else:
            s.close()
        if other:
            (d / "notes.txt").write_text("mine")
        os.utime(d, (time.time() - age, time.time() - age))
        return d

    keep: list[socket.socket] = []
    try:
        stale = folder(f"lintas-{dead.pid}-abc")
        alive = folder(f"lintas-{os.getpid()}-abc")
        listening = folder(f"lintas-{dead.pid}-lis", listen=True)
        other = folder(f"lintas-{dead.pid}-oth", other=True)
        fresh = folder(f"lintas-{dead.pid}-new", age=0.0)
        legacy_old, legacy_new = folder("lintas-k5kp037d", age=7200), folder("lintas-g4p0c4_2")
        assert sorted(bus.ipc_sweep_stale(str(tmp_path))) == sorted([str(stale), str(legacy_old)])
        assert not stale.exists() and not legacy_old.exists()
        assert all(d.exists() for d in (alive, listening, other, fresh, legacy_new))
    finally:
        for s in keep:
            s.close()
