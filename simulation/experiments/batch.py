"""Batch runs: every policy x seed of one scenario, one fresh process per run, with progress, Ctrl-C that
keeps the finished runs, and the checks that refuse a bad request before any run starts.

``lintas simulate``, ``lintas demo``, the drill's baseline and the quality bench all run through
:func:`simulate_runs`; :func:`check_request` and :func:`parse_params` raise :class:`RequestError` (one line
naming the option or file) for what a user typed wrong.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from engine.network import Network
from engine.protocol.bus import TRANSPORTS
from simulation.experiments.policies import ALL_POLICIES, LINTAS_POLICIES
from simulation.experiments.runner import CONTROLLER_MODES, EXTRA_KEYS, RUN_KEYS, RunSpec
from simulation.sumo.netcompile import CompileReport, compile_network
from simulation.sumo.options import check_user_args
from simulation.sumo.scenario import Scenario, load_scenario
from simulation.sumo.tools import sumo_version

__all__ = ["DEAD_KINDS", "RequestError", "check_request", "params_for", "parse_params", "run_specs",
           "runs_document", "simulate_runs"]

DEAD_KINDS = ("cameras", "loops")


class RequestError(ValueError):
    """A run request that cannot be honoured (one line naming the option or file)."""


def check_request(scenario: Path, policies: list[str], transport: str = "inproc", controllers: str = "inprocess",
                  local_plan: Path | None = None, dead: str | None = None, end: float | None = None,
                  sumo_args: list[str] | None = None) -> tuple[Scenario, Network, CompileReport]:
    """The scenario, its compiled network and what compiling it noticed (the report shows that), once every
    option is known to be valid: before any run starts, so a typo costs nothing. :class:`RequestError`
    (options) or :class:`ScenarioError` (files) otherwise."""
    check_user_args(sumo_args or [])
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
    if end is not None and end <= scn.begin:
        raise RequestError(f"--end {end:g} is not after the scenario's begin ({scn.begin:g} s, "
                           f"{_clock(scn.begin)}): --end is a simulation time, not a duration")
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
            out[name.strip()] = float(value)
        except ValueError:
            raise RequestError(f"--param: expected NAME=VALUE with a number, got '{it}'") from None
    known = {n for p in policies if p in LINTAS_POLICIES for n in get_policy(p).param_names}
    for name in out:
        if name.upper() not in known:
            raise RequestError(f"--param: no policy among {', '.join(policies)} has a parameter '{name}'"
                               f" (known: {', '.join(sorted(known)) or 'none'})")
    return out


def params_for(policy: str, params: dict[str, float] | None) -> dict[str, float]:
    """The overrides that apply to ``policy`` (a parameter of another policy is left out)."""
    from engine.policies import get_policy

    if not params or policy not in LINTAS_POLICIES:
        return {}
    names = set(get_policy(policy).param_names)
    return {k: v for k, v in params.items() if k.upper() in names}


def _worker_init() -> None:
    # Ctrl-C is handled by the parent, which cancels the pool and keeps finished runs
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_job(spec: RunSpec, q, key: str) -> dict:
    from simulation.experiments.runner import RunError, run_one

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
    on_error=None,
) -> tuple[list[dict], bool]:
    """Run every policy x seed; returns (finished runs, interrupted). ``on_error(message)`` hears of each run
    that failed (the others go on)."""
    specs = [
        RunSpec(scenario, p, s, out_dir, transport=transport, controllers=controllers, sumo_args=list(sumo_args or []),
                end=end, use_traci=traci, gui=gui, params=params_for(p, params), fail_detectors=fail_detectors,
                dead=dead, local_plan=local_plan, save_tls_states=save_tls_states)
        for p in policies
        for s in range(1, seeds + 1)
    ]
    done, interrupted = run_specs(specs, jobs=jobs, quiet=quiet,
                                  on_error=None if on_error is None else (lambda _spec, msg: on_error(msg)))
    return [r for r in done if r is not None], interrupted


def run_specs(specs: list[RunSpec], *, jobs: int = 2, quiet: bool = False, label=None, on_error=None,
              on_done=None) -> tuple[list[dict | None], bool]:
    """Run every spec, each in a fresh process, ``jobs`` at a time, with a progress bar (unless ``quiet``);
    returns (the records in the order of ``specs``, ``None`` for a run that failed or never ran; interrupted).
    ``label(spec)`` names a run on its progress bar (default ``policy/seedN``); ``on_error(spec, message)``
    hears of each run that failed (the others go on), ``on_done(spec, record)`` of each that finished, as it
    finishes. Ctrl-C cancels what has not finished and keeps the rest."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    label = label or (lambda sp: f"{sp.policy}/seed{sp.seed}")
    records: list[dict | None] = [None] * len(specs)
    interrupted = False
    if not specs:
        return records, interrupted
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    q = manager.Queue()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), disable=quiet, transient=False) as prog:
        overall = prog.add_task(f"{len(specs)} runs", total=len(specs))
        tasks: dict[str, Any] = {}
        # one fresh process per run: libsumo keeps state between runs in one process (results would
        # depend on what ran before), so a worker never runs twice
        pool = ProcessPoolExecutor(max_workers=max(1, min(jobs, len(specs))), mp_context=ctx,
                                   initializer=_worker_init, max_tasks_per_child=1)
        futs = {pool.submit(_run_job, sp, q, label(sp)): i for i, sp in enumerate(specs)}
        pending = set(futs)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.3, return_when=FIRST_COMPLETED)
                while not q.empty():
                    key, d, total = q.get_nowait()
                    if key not in tasks:
                        tasks[key] = prog.add_task(key, total=total or 1)
                    if d < 0:
                        prog.update(tasks[key], completed=prog.tasks[tasks[key]].total, visible=False)
                    else:
                        prog.update(tasks[key], completed=d, total=total)
                for f in done:
                    i = futs[f]
                    sp = specs[i]
                    try:
                        records[i] = f.result()
                    except Exception as exc:  # noqa: BLE001 - report the run, keep the others
                        if on_error is not None:
                            on_error(sp, f"run {sp.policy} seed {sp.seed} failed: {exc}")
                    else:
                        if on_done is not None:
                            on_done(sp, records[i])
                    prog.advance(overall)
        except KeyboardInterrupt:
            interrupted = True
            for f in pending:
                f.cancel()
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()  # the runs under way are dropped; their SUMO ends with them
            try:
                pool.shutdown(wait=True, cancel_futures=True)
            except Exception:  # noqa: BLE001 - a pool whose workers were terminated may complain
                pass
        else:
            pool.shutdown()
    manager.shutdown()
    return records, interrupted


def runs_document(scenario_name: str, runs: list[dict]) -> dict:
    """The JSON document of ``lintas simulate --json``: the scenario, SUMO's version and every run's figures."""
    return {
        "scenario": scenario_name,
        "sumo_version": sumo_version(),
        "runs": [{"policy": r["policy"], "seed": r["seed"], **{k: r[k] for k in RUN_KEYS},
                  **{k: r[k] for k in EXTRA_KEYS if k in r}} for r in runs],
    }

