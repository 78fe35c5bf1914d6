"""Batch runs: every policy x seed of one scenario, one fresh process per run, with progress, a stop on
Ctrl-C or SIGTERM that keeps the finished runs, and the checks that refuse a bad request before any run starts.

``lintas simulate``, ``lintas demo``, the drill's baseline and the quality bench all run through
:func:`simulate_runs`; :func:`check_request` and :func:`parse_params` raise :class:`RequestError` (one line
naming the option or file) for what a user typed wrong, and :func:`detector_notes` says which options do
nothing for the policies asked for.

**Stopping.** While :func:`run_specs` runs (or while the caller holds a :class:`StopSignals`), SIGINT and SIGTERM
only record that a stop was asked; the loop sees it within 0.1 s, keeps every run that has finished (the caller
hears of each through ``on_done`` as it finishes, so ``lintas simulate`` has it in its journal already), and
kills the runs under way: each worker and everything it started (a TraCI SUMO, controller processes), with
SIGKILL. A second signal while that happens changes nothing. Each worker also dies with the parent (Linux's
parent-death signal), so even ``kill -9`` of the parent leaves no run behind.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from engine.network import Network
from engine.protocol.bus import TRANSPORTS, ipc_sweep_stale
from simulation.experiments.policies import ALL_POLICIES, LINTAS_POLICIES
from simulation.experiments.runner import CONTROLLER_MODES, EXTRA_KEYS, RUN_KEYS, TICK, RunSpec
from simulation.sumo.netcompile import CompileReport, compile_network
from simulation.sumo.options import check_user_args
from simulation.sumo.scenario import Scenario, load_scenario
from simulation.sumo.tools import sumo_version

__all__ = ["DEAD_KINDS", "RequestError", "StopSignals", "check_request", "detector_notes", "params_for",
           "parse_params", "run_specs", "runs_document", "simulate_runs"]

DEAD_KINDS = ("cameras", "loops")


class RequestError(ValueError):
    """A run request that cannot be honoured (one line naming the option or file)."""


def check_request(scenario: Path, policies: list[str], transport: str = "inproc", controllers: str = "inprocess",
                  local_plan: Path | None = None, dead: str | None = None, end: float | None = None,
                  sumo_args: list[str] | None = None, *, gui: bool = False, cameras: Sequence[str] = ()
                  ) -> tuple[Scenario, Network, CompileReport]:
    """The scenario, its compiled network and what compiling it noticed (the report shows that), once every
    option is known to be valid: before any run starts, so a typo costs nothing. :class:`RequestError`
    (options) or :class:`ScenarioError` (files) otherwise."""
    check_user_args(sumo_args or [])
    if gui and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                         or os.environ.get("WAYLAND_DISPLAY")):
        raise RequestError("--gui: no display here (neither DISPLAY nor WAYLAND_DISPLAY is set), so sumo-gui cannot "
                           "open its window; run without --gui, or from a desktop session")
    for p in policies:
        if p not in ALL_POLICIES:
            raise RequestError(f"--policy: unknown policy '{p}' (choose from: {', '.join(ALL_POLICIES)})")
    if transport not in TRANSPORTS:
        raise RequestError(f"--transport: unknown transport '{transport}' (choose from: {', '.join(TRANSPORTS)})")
    if controllers not in CONTROLLER_MODES:
        raise RequestError(f"--controllers: unknown mode '{controllers}' (choose from: {', '.join(CONTROLLER_MODES)})")
    if controllers == "process" and transport == "inproc":
        raise RequestError("--controllers process needs --transport ipc or tcp: inproc sockets do not cross processes")
    if dead not in (None, *DEAD_KINDS):
        raise RequestError(f"--dead: unknown kind '{dead}' (choose from: {', '.join(DEAD_KINDS)})")
    scn = load_scenario(scenario)
    if scn.tls_all_off:
        raise RequestError(f"{scn.sumocfg}: option 'tls.all-off' switches every traffic light off, so there is no "
                           f"signal to control or to compare with; remove it from the configuration to run")
    # at least one tick: an --end within a tick of begin (0.5, 1e-9 where begin is 0) ran no step of the loop
    # and printed a table of dashes with exit 0; nan compared False with everything and reached SUMO
    if end is not None and not math.isfinite(end):
        raise RequestError(f"--end {end:g}: not a finite time")
    if end is not None and end < scn.begin + TICK:
        raise RequestError(f"--end {end:g} is not at least one tick ({TICK:g} s) after the scenario's begin "
                           f"({scn.begin:g} s, {_clock(scn.begin)}): --end is a simulation time, not a duration")
    rep = CompileReport()
    with warnings.catch_warnings():  # what compiling noticed is in the report, not on stderr
        warnings.simplefilter("ignore")
        net = compile_network(scn, report=rep)  # a net without traffic lights fails here, before any run
    if local_plan is not None:
        from controllers.localplan import PlanError, load_plan

        try:
            load_plan(local_plan).check_network(net.junctions)
        except PlanError as exc:
            raise RequestError(str(exc)) from None
    if cameras:
        from simulation.sumo.cameras import check_cameras

        check_cameras(net, cameras)
    return scn, net, rep


def _clock(t: float) -> str:
    t = int(t)
    return f"{t // 3600}:{t % 3600 // 60:02d}:{t % 60:02d}"


def parse_params(items: list[str], policies: list[str]) -> dict[str, float]:
    """``--param NAME=VALUE`` overrides, each checked against the parameters of the Lintas policies asked for."""
    from engine.policies import get_policy

    out: dict[str, float] = {}
    for it in items:
        name, sep, value = it.partition("=")
        if not sep:
            raise RequestError(f"--param: expected NAME=VALUE, got '{it}'")
        try:
            v = float(value)
        except ValueError:
            raise RequestError(f"--param: expected NAME=VALUE with a number, got '{it}'") from None
        if not math.isfinite(v):  # float() takes nan and inf; no parameter means them
            raise RequestError(f"--param {name.strip()}={value.strip()}: not a finite number")
        out[name.strip()] = v
    known = {n for p in policies if p in LINTAS_POLICIES for n in get_policy(p).param_names}
    for name in out:
        if name.upper() not in known:
            raise RequestError(f"--param: no policy among {', '.join(policies)} has a parameter '{name}'"
                               f" (known: {', '.join(sorted(known)) or 'none'})")
    return out


def detector_notes(policies: list[str], dead: str | None = None, fail_detectors: float = 0.0) -> list[str]:
    """What ``--dead`` and ``--fail-detectors`` do not reach: the sumo-* policies read no Lintas detector (SUMO
    runs those lights itself), so with only them the options do nothing, and with both kinds they apply only
    to the Lintas policies. One line each, for stderr."""
    opts = [o for o, on in ((f"--dead {dead}", dead is not None), (f"--fail-detectors {fail_detectors:g}",
                                                                     fail_detectors > 0)) if on]
    if not opts:
        return []
    what = " and ".join(opts)
    ours = [p for p in policies if p in LINTAS_POLICIES]
    theirs = [p for p in policies if p not in LINTAS_POLICIES]
    if not theirs:
        return []
    if not ours:
        return [f"{what} changes nothing here: under {', '.join(theirs)} SUMO runs the lights itself and reads no "
                f"Lintas detector"]
    return [f"{what} applies only to the Lintas policies ({', '.join(ours)}): under {', '.join(theirs)} SUMO runs "
            f"the lights itself"]


def params_for(policy: str, params: dict[str, float] | None) -> dict[str, float]:
    """The overrides that apply to ``policy`` (a parameter of another policy is left out)."""
    from engine.policies import get_policy

    if not params or policy not in LINTAS_POLICIES:
        return {}
    names = set(get_policy(policy).param_names)
    return {k: v for k, v in params.items() if k.upper() in names}


class StopSignals:
    """While held (``with``, in the main thread), SIGINT and SIGTERM only record that a stop was asked: ``signum``
    is the first one's number, None until then; later ones are ignored. Work polls ``signum`` and stops where it
    is safe to, so a second Ctrl-C cannot cut short the keeping of what the first one stopped. A signal that was
    ignored when this began (``nohup``) stays ignored. Outside the main thread it installs nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._saved: dict[int, Any] = {}

    def _handle(self, signum: int, _frame) -> None:
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()

    @property
    def name(self) -> str:
        return "" if self.signum is None else signal.Signals(self.signum).name


_WORKER: dict[str, Any] = {}  # in a worker process: where its progress goes (set by _worker_init)
_STOPS = {signal.SIGINT, signal.SIGTERM}


def _worker_init(progress, parent: int) -> None:
    # Ctrl-C reaches the whole process group: the parent decides, keeps finished runs and ends the workers.
    # The worker was started with SIGINT and SIGTERM blocked (run_specs), so a signal during its start-up
    # (importing, before this) waited: a SIGINT is dropped now, a SIGTERM ends it now
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
    _WORKER["progress"] = progress
    if sys.platform.startswith("linux"):  # die with the parent, even with kill -9 (PR_SET_PDEATHSIG)
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # the parent was gone before the signal was armed
            os._exit(1)


def _run_job(spec: RunSpec, key: str) -> dict:
    from simulation.experiments.runner import RunError, run_one

    q = _WORKER["progress"]

    def progress(done: float, total: float) -> None:
        q.put((key, done, total))

    try:
        rec = run_one(spec, progress)
    except RunError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever it was, the parent must get it (libsumo's cannot be pickled)
        raise RunError(f"{type(exc).__name__}: {exc}") from None
    finally:
        q.put((key, -1, 0))
    return rec


def simulate_runs(
    scenario: Path,
    policies: list[str],
    seeds: int,
    *,
    transport: str = "inproc",
    out_dir: Path,
    sumo_args: list[str] | None = None,
    end: float | None = None,
    controllers: str = "inprocess",
    jobs: int = 2,
    traci: bool = False,
    gui: bool = False,
    quiet: bool = False,
    params: dict[str, float] | None = None,
    fail_detectors: float = 0.0,
    dead: str | None = None,
    local_plan: Path | None = None,
    save_tls_states: bool = False,
    cameras: Sequence[str] = (),
    camera_feed=None,
    on_error=None,
    on_done=None,
    skip: Collection[tuple[str, int]] = (),
    stop: StopSignals | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    incidents: Sequence = (),
    bus_tap: str | None = None,
) -> tuple[list[dict], bool]:
    """Run every policy x seed but the (policy, seed) pairs in ``skip``; returns (the runs that finished here,
    interrupted). ``on_error(message)`` hears of each run that failed (the others go on), ``on_done(record)`` of
    each that finished, as it finishes; ``stop``, ``executor`` and ``scheduler``: see :func:`run_specs`."""
    specs = [
        RunSpec(scenario, p, s, out_dir, transport=transport, controllers=controllers, sumo_args=list(sumo_args or []),
                end=end, use_traci=traci, gui=gui, params=params_for(p, params), fail_detectors=fail_detectors,
                dead=dead, local_plan=local_plan, save_tls_states=save_tls_states, incidents=list(incidents),
                bus_tap=bus_tap, cameras=tuple(cameras), camera_feed=camera_feed)
        for p in policies
        for s in range(1, seeds + 1)
        if (p, s) not in skip
    ]
    done, interrupted = run_specs(specs, jobs=jobs, quiet=quiet, stop=stop, executor=executor, scheduler=scheduler,
                                  on_error=None if on_error is None else (lambda _spec, msg: on_error(msg)),
                                  on_done=None if on_done is None else (lambda _spec, rec: on_done(rec)))
    return [r for r in done if r is not None], interrupted


def _descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (children, theirs, ...), read from /proc (empty where there is none)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for d in entries:
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL every worker of ``pool`` and everything it started (a TraCI SUMO, controller processes): the runs
    under way are dropped, and nothing of them may outlive the command."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.pid is None:
            continue
        for pid in [*_descendants(proc.pid), proc.pid]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def run_specs(specs: list[RunSpec], *, jobs: int = 2, quiet: bool = False, label=None, on_error=None,
              on_done=None, stop: StopSignals | None = None, executor: str = "local",
              scheduler: str | None = None) -> tuple[list[dict | None], bool]:
    """Run every spec, each in a fresh process, ``jobs`` at a time, with a progress bar (unless ``quiet``);
    returns (the records in the order of ``specs``, ``None`` for a run that failed or never ran; interrupted).
    ``label(spec)`` names a run on its progress bar (default ``policy/seedN``); ``on_error(spec, message)``
    hears of each run that failed (the others go on), ``on_done(spec, record)`` of each that finished, as it
    finishes (an exception it raises ends the batch, after the workers). SIGINT or SIGTERM stops the batch:
    what has finished is kept (a run that finishes in the moment the stop is seen too), the rest is killed.
    ``stop``: the caller's :class:`StopSignals`, when the caller must stay uninterruptible after this returns
    (to write what was kept); without it, signals are handled so only while this runs.
    ``executor="dask"``: the runs go to the Dask scheduler at ``scheduler`` instead, each in a fresh process on a
    worker (:mod:`simulation.experiments.cluster`); ``jobs`` is then the cluster's business."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    label = label or (lambda sp: f"{sp.policy}/seed{sp.seed}")
    records: list[dict | None] = [None] * len(specs)
    if not specs:
        return records, False
    if executor == "dask":
        from simulation.experiments.cluster import run_on_cluster

        with contextlib.ExitStack() as stack:
            if stop is None:
                stop = stack.enter_context(StopSignals())
            return run_on_cluster(specs, scheduler or "", label=label, on_error=on_error, on_done=on_done, stop=stop,
                                  quiet=quiet)
    with contextlib.ExitStack() as stack:
        if stop is None:
            stop = stack.enter_context(StopSignals())
        ctx = mp.get_context("spawn")
        q = ctx.SimpleQueue()  # progress from the workers (no manager process: one process fewer to account for)
        prog = stack.enter_context(Progress(TextColumn("{task.description}"), BarColumn(),
                                            TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                                            disable=quiet, transient=False))
        overall = prog.add_task(f"{len(specs)} runs", total=len(specs))
        tasks: dict[str, Any] = {}

        def show_progress() -> None:
            with contextlib.suppress(OSError, EOFError):
                while not q.empty():
                    key, d, total = q.get()
                    if key not in tasks:
                        tasks[key] = prog.add_task(key, total=total or 1)
                    if d < 0:
                        prog.update(tasks[key], completed=prog.tasks[tasks[key]].total, visible=False)
                    else:
                        prog.update(tasks[key], completed=d, total=total)

        broken: list[bool] = []

        def take(f, i: int) -> None:
            sp = specs[i]
            try:
                rec = f.result()
            except Exception as exc:  # noqa: BLE001 - report the run, keep the others
                if isinstance(exc, BrokenProcessPool) and stop.signum is None and not broken:
                    broken.append(True)
                    time.sleep(0.3)  # a signal to the whole process group ends the workers too: let ours be seen
                if stop.signum is None and on_error is not None:  # after a stop: cut short, not failed
                    on_error(sp, f"run {sp.policy} seed {sp.seed} failed: {exc}")
            else:
                records[i] = rec
                if on_done is not None:
                    on_done(sp, rec)
            prog.advance(overall)

        # one fresh process per run: libsumo keeps state between runs in one process (results would
        # depend on what ran before), so a worker never runs twice
        # the workers, and the pool's thread that starts the later ones, begin with SIGINT and SIGTERM blocked
        # (masks pass to threads and through exec), as CPython's own resource tracker does: a Ctrl-C while a
        # worker still imports would print its traceback, a SIGTERM would end it where nobody expects it
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
        try:
            pool = ProcessPoolExecutor(max_workers=max(1, min(jobs, len(specs))), mp_context=ctx,
                                       initializer=_worker_init, initargs=(q, os.getpid()), max_tasks_per_child=1)
            futs = {pool.submit(_run_job, sp, label(sp)): i for i, sp in enumerate(specs)}
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        pending = set(futs)
        try:
            while pending and stop.signum is None:
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                show_progress()
                for f in done:
                    take(f, futs[f])
            if pending:  # stopped: keep what finished meanwhile, then end the rest
                for f in [f for f in pending if f.done() and not f.cancelled()]:
                    pending.discard(f)
                    take(f, futs[f])
        finally:
            if pending:
                for f in pending:
                    f.cancel()
                _kill_workers(pool)
                with contextlib.suppress(Exception):  # a pool whose workers were killed may complain
                    pool.shutdown(wait=True, cancel_futures=True)
                # a killed run could not remove its ipc sockets: remove those of dead runs now, not at the next run
                with contextlib.suppress(OSError):
                    ipc_sweep_stale(min_age_s=0.0)
            else:
                pool.shutdown()
            q.close()
        return records, stop.signum is not None


def runs_document(scenario_name: str, runs: list[dict]) -> dict:
    """The JSON document of ``lintas simulate --json``: the scenario, SUMO's version and every run's figures."""
    return {
        "scenario": scenario_name,
        "sumo_version": sumo_version(),
        "runs": [{"policy": r["policy"], "seed": r["seed"], **{k: r[k] for k in RUN_KEYS},
                  **{k: r[k] for k in EXTRA_KEYS if k in r}} for r in runs],
    }

