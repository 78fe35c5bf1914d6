"""Simulation's commands: ``lintas simulate``, ``demo``, ``compile``, ``check-tls``, ``drill``, ``soak`` and
``zoo``.

Only typer is imported here; each command imports what it runs. The work itself lives in the library
(``simulation/experiments/``, ``simulation/proofs/``, ``simulation/sumo/``): a command checks its
options, calls it, and prints.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from engine.protocol.service import CommandError
from simulation.experiments.catalog import DEMO, resco_maps

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="SUMO closed-loop runs, the demo, compiling scenarios, and the safety proofs.")

JOBS = max(1, min(2, os.cpu_count() or 1))

#: ctx.obj key of the function the command tree passes down that gives the camera feed for --cameras (it renders,
#: detects and counts: vision's work, which simulation/ may not import)
CAMERA_FEED = "camera_feed"


def _check(scenario: Path, policies: list[str], transport: str = "inproc", controllers: str = "inprocess",
           local_plan: Path | None = None, dead: str | None = None, end: float | None = None,
           sumo_args: list[str] | None = None, gui: bool = False, cameras: tuple[str, ...] = ()):
    """check_request, its errors as one-line command errors."""
    from simulation.experiments.batch import RequestError, check_request
    from simulation.sumo.scenario import ScenarioError

    try:
        scn, _net, compiled = check_request(scenario, policies, transport, controllers, local_plan, dead, end,
                                            sumo_args, gui=gui, cameras=cameras)
        return scn, compiled
    except (RequestError, ScenarioError) as exc:
        raise CommandError(str(exc)) from None


def _check_outputs(work: Path, work_option: str, json_file: Path | None = None, report: Path | None = None,
                   json_option: str = "--json") -> None:
    """Every path the command will write, tried before the first run (folders created, a probe file written and
    removed): a path that cannot be written costs nothing yet."""
    from simulation.experiments.journal import OutputError, check_output_dir, check_output_file

    try:
        if report is not None:
            check_output_dir("--report", report)
        check_output_dir(work_option, work)
        if json_file is not None:
            check_output_file(json_option, json_file)
    except OutputError as exc:
        raise CommandError(str(exc)) from None


def _err(message: str) -> None:
    typer.echo(f"lintas: {message}", err=True)


#: exit code of simulate/demo when a run finished with a latched fault, a collision or a lock (results are written)
EXIT_UNSAFE = 3


def _write_json(path: Path, doc: dict) -> None:
    """Whole or not at all: a temporary file beside it, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _finish(scenario_name: str, runs: list[dict], json_file: Path | None, report_dir: Path | None,
            compiled=None, gui_only: list[str] | None = None, journal: Path | None = None) -> bool:
    """Print the table, the scenario's notes and the problems, write the JSON and the report; True when a run
    had a latched fault, a collision or a lock. A file that cannot be written after all (a full disk) is said,
    with where the runs are kept, and exits 1."""
    from rich.console import Console

    from simulation.experiments.batch import runs_document
    from simulation.experiments.report import format_table, problems, scenario_notes, write_report

    if not runs:
        _err("no run finished")
        return False
    console = Console()
    if not console.is_terminal:  # files and pipes get the whole table, not an 80-column squeeze
        console = Console(width=200)
    console.print(format_table(runs, title=f"{scenario_name}: {len(runs)} runs"))
    kept = f"; the runs are kept in {journal}" if journal is not None else ""
    if json_file is not None:
        try:
            _write_json(json_file, runs_document(scenario_name, runs))
        except OSError as exc:
            _err(f"error: --json {json_file}: cannot write ({exc.strerror or exc}){kept}")
            raise typer.Exit(1) from None
        typer.echo(f"wrote {json_file}")
    if report_dir is not None:
        try:
            paths = write_report(scenario_name, runs, report_dir, compiled=compiled, gui_only=gui_only or ())
        except OSError as exc:
            _err(f"error: --report {report_dir}: cannot write ({exc.strerror or exc}){kept}")
            raise typer.Exit(1) from None
        typer.echo(f"wrote {paths.get('markdown', report_dir)} and {paths.get('html', '')}")
    for line in scenario_notes(compiled, gui_only or ()):
        _err(f"note: {line.split(' (listed below)')[0]}")
    for line in problems(runs):
        _err(line)
    return any((r.get("faults") or 0) > 0 or (r.get("collisions") or 0) > 0 or (r.get("locks") or 0) > 0
               for r in runs)


def _runs(n: int, what: str = "") -> str:
    return f"{n} {what + ' ' if what else ''}run{'' if n == 1 else 's'}"


def _kept_runs(scn, compiled, policies: list[str], seeds: int, work: Path, work_option: str, request: dict,
               resume: bool, json_file: Path | None, report: Path | None, run, notes: list[str] = ()) -> int:
    """The part of simulate and demo that must not lose a run: hold the work folder (a second invocation on it
    is refused), keep the journal (a new one, or the one ``--resume`` goes on from), run what it lacks
    (``run(skip, on_done, stop)``, which appends each run to it as it finishes), then build the table, the JSON
    and the report from the journal. SIGINT and SIGTERM stop the runs and are ignored from then on, until
    everything is written. ``notes`` are said once every check has passed. Returns the exit code."""
    from simulation.experiments.batch import StopSignals
    from simulation.experiments.journal import OutputError, WorkLock

    lock = WorkLock(work, work_option)
    try:
        lock.acquire()
    except OutputError as exc:
        raise CommandError(str(exc)) from None
    try:
        with StopSignals() as stop:
            return _journaled(scn, compiled, policies, seeds, work, request, resume, json_file, report, run, stop,
                              notes)
    finally:
        lock.release()


def _journaled(scn, compiled, policies: list[str], seeds: int, work: Path, request: dict, resume: bool,
               json_file: Path | None, report: Path | None, run, stop, notes) -> int:
    """_kept_runs inside the lock and the signal guard."""
    from simulation.experiments.journal import Journal, JournalError

    try:
        journal = Journal.resume(work, request) if resume else Journal.start(work, request)
    except JournalError as exc:
        raise CommandError(str(exc)) from None
    for line in notes:
        _err(f"note: {line}")
    wanted = {(p, s) for p in policies for s in range(1, seeds + 1)}
    skip = set(journal.runs()) & wanted
    if resume:
        _err(f"note: --resume: {len(skip)} of {_runs(len(wanted))} already in {journal.path}; running the other "
             f"{len(wanted) - len(skip)}")
    try:
        _new, interrupted = run(skip, journal.append, stop)
    except JournalError as exc:
        _err(f"error: {exc}")
        return 1
    runs = journal.ordered(policies, seeds)
    if interrupted:
        n = len(wanted) - len(runs)
        _err(f"interrupted ({stop.name}); keeping the {_runs(len(runs))} that finished (in {journal.path}); the same "
             f"command with --resume runs only the {_runs(n, 'missing')}")
    unsafe = _finish(scn.name, runs, json_file, report, compiled, scn.gui_only, journal=journal.path)
    if interrupted:
        return 128 + (stop.signum or signal.SIGINT)  # 130 after Ctrl-C (SIGINT), 143 after SIGTERM
    if len(runs) < len(wanted):
        return 1
    return EXIT_UNSAFE if unsafe else 0


PolicyOpt = Annotated[list[str], typer.Option("--policy", "-p", help="Policy to run; repeat for several.")]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="local: a pool of fresh processes here (--jobs); dask: "
                                                             "the Dask cluster at --scheduler, each run in a fresh "
                                                             "process on a worker (scenario and work folder on a "
                                                             "shared filesystem; docs/deployment.md)")]
SchedulerOpt = Annotated[str | None, typer.Option("--scheduler", help="With --executor dask: the scheduler's "
                                                                      "address, tcp://HOST:8786")]


def check_cluster(executor: str, scheduler: str | None, *, connect: bool = True) -> None:
    """``--executor``/``--scheduler`` checked, and (``connect``) the scheduler reached, before any run (one line,
    exit 2)."""
    from simulation.experiments.cluster import ClusterError, check_executor, check_scheduler

    try:
        (check_executor if connect else check_scheduler)(executor, scheduler)
    except ClusterError as exc:
        raise CommandError(str(exc)) from None


@app.command(help="Run SUMO closed-loop comparisons. Example: lintas simulate ../shared/scenarios/resco/cologne1 "
             "-p sumo-static -p fixed -p maxpressure --seeds 3 --json out/c1.json --report out/c1. Every output path "
             "is tried before the first run; each run is written to WORK/journal.jsonl as it finishes, and the JSON "
             "and the report are built from it; --resume runs only what the journal lacks. One invocation per work "
             "folder at a time. Exit codes: 0 every run finished clean, 1 a run failed (or the results could not be "
             "written), 2 bad input (nothing ran), 3 a run had a latched fault, a collision or a lock (the results "
             "are written all the same), 130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM (the finished runs are "
             "written in both).")
def simulate(
    ctx: typer.Context,
    scenario: Annotated[Path, typer.Argument(help=".sumocfg file or a folder holding one")],
    policy: PolicyOpt = ["maxpressure"],  # noqa: B006
    seeds: Annotated[int, typer.Option(min=1, help="Seeds 1..N for each policy")] = 1,
    transport: Annotated[str, typer.Option(help="inproc | ipc | tcp")] = "inproc",
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the runs as JSON")] = None,
    report: Annotated[Path | None, typer.Option(help="Write report.md/.html and plots here")] = None,
    sumo_arg: Annotated[list[str], typer.Option("--sumo-arg", help="Passed to SUMO unchanged; repeat")] = [],  # noqa: B006
    end: Annotated[float | None, typer.Option(help="Stop at this simulation time (s)")] = None,
    controllers: Annotated[str, typer.Option(help="inprocess | process (one lintas controller per "
                                                  "junction)")] = "inprocess",
    jobs: Annotated[int, typer.Option(min=1, help="Runs in parallel")] = JOBS,
    traci: Annotated[bool, typer.Option("--traci", help="Connect over TraCI instead of libsumo")] = False,
    gui: Annotated[bool, typer.Option("--gui", help="Use sumo-gui (implies --traci)")] = False,
    work_dir: Annotated[Path | None, typer.Option(help="Where run outputs and the journal go (default: the "
                                                       "report dir or ./lintas-runs)")] = None,
    param: Annotated[list[str], typer.Option("--param", help="Policy parameter NAME=VALUE; repeat")] = [],  # noqa: B006
    fail_detectors: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of detectors dead from the "
                                                                         "start (seeded random choice)")] = 0.0,
    dead: Annotated[str | None, typer.Option(help="cameras | loops: every detector of that kind dead")] = None,
    local_plan: Annotated[Path | None, typer.Option(help="Time-of-day plan (TOML) the controllers run when the "
                                                         "engine is silent (default: the net's program)")] = None,
    save_tls_states: Annotated[bool, typer.Option("--save-tls-states", help="SUMO records what every light "
                                                  "showed, every step, in each run's folder "
                                                  "(tls_states.xml, for lintas check-tls)")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Go on from the work folder's journal: run only the "
                                                          "(policy, seed) pairs it lacks (the same request "
                                                          "only; --seeds may grow)")] = False,
    cameras: Annotated[str | None, typer.Option("--cameras", help="Junctions (comma-separated) whose lane-area "
                                                                  "detectors are replaced by rendered cameras: "
                                                                  "frames through the detector, tracker and counter "
                                                                  "(the [vision] install; docs/vision.md)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
    incident: Annotated[list[str], typer.Option("--incident", help="LANE_OR_EDGE@T:DURATION: a vehicle stops in "
                                                "the lane at simulation time T for DURATION s (or 10m); repeat. "
                                                "Seen by lintas api's incident detection")] = [],  # noqa: B006
    bus_tap: Annotated[str | None, typer.Option("--bus-tap", help="also publish the run's detector batches and "
                                                "controller states to this bus (a lintas bus forwarder's "
                                                "--bus-in), for lintas api --bus-out; one run only")] = None,
) -> None:
    from simulation.experiments.batch import RequestError, detector_notes, parse_params, simulate_runs
    from simulation.experiments.journal import request_identity
    from simulation.sumo.incident import parse_incident
    from simulation.sumo.tools import sumo_version

    check_cluster(executor, scheduler, connect=False)  # the options first: a typo costs nothing
    if executor == "dask" and (gui or traci):
        raise CommandError("--gui and --traci watch a run on this machine: run them with --executor local")
    try:
        incidents = [parse_incident(x) for x in incident]
    except ValueError as exc:
        raise CommandError(f"--incident {exc}") from None
    cams = tuple(c.strip() for c in cameras.split(",") if c.strip()) if cameras else ()
    if cameras is not None and not cams:
        raise CommandError("--cameras: expected junction ids, e.g. --cameras J1,J2")
    feed = None
    if cams:  # what renders, detects and counts comes from the command tree: simulation/ never imports vision/
        feed = (ctx.obj or {}).get(CAMERA_FEED)
        if feed is None:
            raise CommandError("--cameras: no camera feed here (run it through the lintas command)")
        feed = feed()
    scn, compiled = _check(scenario, policy, transport, controllers, local_plan, dead, end, sumo_arg, gui=gui,
                           cameras=cams)
    check_cluster(executor, scheduler)
    try:
        params = parse_params(param, policy)
    except RequestError as exc:
        raise CommandError(str(exc)) from None
    if incidents:
        from simulation.sumo.lanegraph import read_net

        sumo_net = read_net(scn.net_file)
        for x in incidents:
            if not (sumo_net.hasEdge(x.target) or any(x.target in (ln.getID() for ln in e.getLanes())
                                                       for e in sumo_net.getEdges())):
                raise CommandError(f"--incident {x}: no lane or edge '{x.target}' in {scn.net_file}")
    if bus_tap is not None and len(policy) * seeds > 1:
        raise CommandError(f"--bus-tap: one run only ({len(policy) * seeds} asked): the runs would mix on one bus")
    work, work_option = ((work_dir, "--work-dir") if work_dir is not None else (report, "--report")
                         if report is not None else (Path("lintas-runs"), "--work-dir"))
    _check_outputs(work, work_option, json_file=json_file, report=report)
    plan = local_plan.resolve() if local_plan is not None else None
    request = request_identity(scn, policy, transport=transport, controllers=controllers, sumo_args=sumo_arg,
                               end=end, traci=traci, gui=gui, params=params, fail_detectors=fail_detectors,
                               dead=dead, local_plan=plan, save_tls_states=save_tls_states,
                               sumo_version=sumo_version(), cameras=cams)
    if incidents:
        request["incidents"] = [str(x) for x in incidents]

    def run(skip, on_done, stop):
        return simulate_runs(
            scenario, policy, seeds, transport=transport, out_dir=work.resolve(), sumo_args=sumo_arg, end=end,
            controllers=controllers, jobs=1 if (gui or traci) else jobs, traci=traci or gui, gui=gui, quiet=quiet,
            params=params, fail_detectors=fail_detectors, dead=dead, local_plan=plan,
            save_tls_states=save_tls_states, cameras=cams, camera_feed=feed, on_error=_err, on_done=on_done,
            skip=skip, stop=stop, executor=executor, scheduler=scheduler,
            incidents=incidents, bus_tap=bus_tap,
        )

    code = _kept_runs(scn, compiled, policy, seeds, work, work_option, request, resume, json_file, report, run,
                      notes=detector_notes(policy, dead, fail_detectors))
    if code:
        raise typer.Exit(code)


@app.command(help="The main job: closed-loop comparison on the shipped demo city (Bunda Kota). "
             "Example: lintas demo --report reports/demo")
def demo(
    report: Annotated[Path, typer.Option(help="Report folder (the runs, their journal and runs.json too)")] = Path(
        "reports/demo"),
    seeds: Annotated[int, typer.Option(min=1)] = 1,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p")] = None,
    jobs: Annotated[int, typer.Option(min=1)] = JOBS,
    resume: Annotated[bool, typer.Option("--resume", help="Run only what the report folder's journal "
                                                          "lacks")] = False,
) -> None:
    from simulation.experiments.batch import simulate_runs
    from simulation.experiments.journal import request_identity
    from simulation.experiments.policies import COMPARISON
    from simulation.sumo.tools import sumo_version

    policies = policy or list(COMPARISON)
    scn, compiled = _check(DEMO, policies)
    json_file = report / "runs.json"
    _check_outputs(report, "--report", json_file=json_file, json_option="--report")
    request = request_identity(scn, policies, transport="inproc", controllers="inprocess", sumo_args=[], end=None,
                               traci=False, gui=False, params={}, fail_detectors=0.0, dead=None, local_plan=None,
                               save_tls_states=False, sumo_version=sumo_version())

    def run(skip, on_done, stop):
        return simulate_runs(DEMO, policies, seeds, out_dir=report.resolve(), jobs=jobs, on_error=_err,
                             on_done=on_done, skip=skip, stop=stop)

    code = _kept_runs(scn, compiled, policies, seeds, report, "--report", request, resume, json_file, report, run)
    if code:
        raise typer.Exit(code)


@app.command(name="compile", help="Compile a scenario's traffic lights into the engine's arrays and junction specs. "
             "Example: lintas compile scenarios/bunda_kota --out out/bk")
def compile_(
    scenario: Annotated[Path, typer.Argument()],
    out: Annotated[Path, typer.Option()] = Path("lintas-compiled"),
) -> None:
    from engine.protocol.junction import write_specs
    from simulation.sumo.netcompile import compile_for_run
    from simulation.sumo.scenario import ScenarioError, load_scenario

    try:
        net, _det = compile_for_run(load_scenario(scenario), out)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    net.to_json(out / "network.json")
    write_specs(net.junctions, out / "junctions")
    typer.echo(f"{len(net.junctions)} junctions, {net.n_phases} green phases, {net.n_lanes} lanes, "
               f"{net.n_detectors} detectors -> {out}")


@app.command(name="check-tls", help="Check the signal states SUMO showed (its SaveTLSStates output) against the "
             "junctions' conflicts, yellow and minimum green; exits 1 on any violation. Example: lintas check-tls "
             "out/tls_states.xml scenarios/bunda_kota --statistics out/runs/bunda_kota/random-seed1/statistics.xml")
def check_tls(
    states_xml: Annotated[Path, typer.Argument(help="SUMO SaveTLSStates (or SaveTLSSwitchStates) output")],
    scenario: Annotated[Path, typer.Argument(help="Scenario (.sumocfg or folder), .net.xml or network.json")],
    statistics: Annotated[Path | None, typer.Option(help="SUMO --statistic-output: collisions fail the check")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON")] = None,
    yellow_min: Annotated[float, typer.Option(help="Shortest yellow allowed (s)")] = 3.0,
    min_green: Annotated[float, typer.Option(help="Shortest green allowed (s)")] = 5.0,
) -> None:
    from simulation.proofs.tlscheck import TlsCheckError, check_tls_states

    try:
        rep = check_tls_states(states_xml, scenario, yellow_min=yellow_min, min_green=min_green,
                               statistics_xml=statistics)
    except TlsCheckError as exc:
        raise CommandError(str(exc)) from None
    for line in rep.summary_lines():
        typer.echo(line)
    if json_file is not None:
        try:
            json_file.parent.mkdir(parents=True, exist_ok=True)
            json_file.write_text(json.dumps(rep.to_dict(), indent=2))
        except OSError as exc:
            raise CommandError(f"--json: cannot write {json_file}: {exc}") from None
        typer.echo(f"wrote {json_file}")
    if not rep.ok:
        raise typer.Exit(1)


@app.command(help="Fault-injection drill over tcp with separate processes and CURVE keys: kill -9 the engine, "
             "restart it, kill a controller, let a keyless process publish. Example: lintas drill scenarios/bunda_kota "
             "--out out/drill")
def drill(
    scenario: Annotated[Path, typer.Argument()] = DEMO,
    out: Annotated[Path, typer.Option(help="Logs, keys and results go here")] = Path("lintas-drill"),
    policy: Annotated[str, typer.Option("--policy", "-p")] = "maxpressure",
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second")] = 2.0,
    kill_engine: Annotated[float, typer.Option(help="s after start")] = 200.0,
    restart_engine: Annotated[float, typer.Option()] = 400.0,
    kill_controller: Annotated[float, typer.Option()] = 600.0,
    rogue: Annotated[float, typer.Option()] = 700.0,
    end: Annotated[float, typer.Option(help="Length of the drill (simulated s)")] = 900.0,
) -> None:
    from simulation.proofs.drill import Timeline
    from simulation.proofs.drill import drill as run

    _check(scenario, [policy], "tcp", "process")
    if not (0 < kill_engine < restart_engine < kill_controller < rogue < end):
        raise CommandError("drill: need 0 < --kill-engine < --restart-engine < --kill-controller < --rogue < --end")
    tl = Timeline(kill_engine, restart_engine, kill_controller, rogue, end)
    # each event and each step's verdict is printed as it happens (typer.echo flushes: a log or a pipe sees it)
    res = run(scenario, out.resolve(), policy=policy, speed=speed, timeline=tl, say=typer.echo)
    typer.echo(f"drill {'PASSED' if res.ok() else 'FAILED'}; wrote {out / 'drill.json'}")
    if not res.ok():
        raise typer.Exit(1)


@app.command(help="Soak the controllers: random command sequences, garbage bytes, wrong junctions, huge and negative "
             "numbers, on every junction of the given scenarios; the shown signals are checked independently. "
             "Example: lintas soak --sequences 100000")
def soak(
    scenario: Annotated[list[Path] | None, typer.Argument(help="Scenarios whose junctions to use (default: the "
                                                               "demo city and the RESCO maps if present)")] = None,
    sequences: Annotated[int, typer.Option(min=1)] = 100_000,
    seed: Annotated[int, typer.Option()] = 1,
    json_file: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    import dataclasses

    from simulation.proofs import soak as soak_mod
    from simulation.sumo.scenario import ScenarioError

    paths = list(scenario or []) or [DEMO, *resco_maps()]
    try:
        junctions = soak_mod.soak_junctions(paths)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    res = soak_mod.soak(junctions, sequences, seed=seed)
    typer.echo(f"{res.sequences} sequences, {res.words} words on {res.junctions} junctions in {res.seconds:.1f} s: "
               f"{res.accepted} accepted, {res.refused} refused, {res.dropped} garbage frames dropped, "
               f"{res.faults_latched} monitor faults, {res.violations} safety violations")
    for line in res.violation_lines[:20]:
        typer.echo(f"  {line}")
    if json_file is not None:
        json_file.write_text(json.dumps(dataclasses.asdict(res), indent=2))
    if res.violations or res.faults_latched:
        raise typer.Exit(1)


@app.command(help="Write the scenario zoo: small SUMO scenarios made by SUMO's own tools, varying what real "
             "scenarios vary. With --check, run every policy on every zoo scenario and on SUMO's tools/game "
             "scenarios for a short span and check each run from SUMO's own record (conflicting greens, yellows "
             "under 3 s, latched faults, collisions, the end reached, fixed against sumo-static); exits 1 on any "
             "problem. Example: lintas zoo --out out/zoo --check")
def zoo(
    out: Annotated[Path, typer.Option(help="Folder of the zoo (one folder per scenario)")] = Path("lintas-zoo"),
    seed: Annotated[int, typer.Option(help="Seed of the random net and the demand")] = 1,
    check: Annotated[bool, typer.Option("--check", help="Run every policy on every scenario and check the "
                                                         "runs")] = False,
    game: Annotated[bool, typer.Option("--game/--no-game", help="With --check: SUMO's tools/game scenarios "
                                                                 "too")] = True,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="With --check: only these "
                                                                             "policies")] = None,
    span: Annotated[float, typer.Option(min=1.0, help="With --check: simulated seconds of each run")] = 300.0,
    work_dir: Annotated[Path | None, typer.Option(help="With --check: where the runs go "
                                                       "(default: OUT/check)")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Scenarios written / runs in parallel")] = JOBS,
) -> None:
    from simulation.experiments.policies import ALL_POLICIES
    from simulation.proofs import zoo as zoo_lib
    from simulation.proofs import zoocheck

    for p in policy or []:
        if p not in ALL_POLICIES:
            raise CommandError(f"--policy: unknown policy '{p}' (choose from: {', '.join(ALL_POLICIES)})")
    try:
        scenarios = zoo_lib.generate_zoo(out, seed=seed, jobs=jobs)
    except zoo_lib.ZooError as exc:
        raise CommandError(str(exc)) from None
    for z in scenarios:
        typer.echo(f"{z.name}: {z.tls} signals, {z.vehicles} trips/flows, step {z.step_length:g} s, "
                   f"{'fixed = sumo-static' if z.static_reference else 'no static reference'}; {', '.join(z.varies)}")
    typer.echo(f"wrote {len(scenarios)} scenarios to {out}")
    if not check:
        return
    results = zoocheck.check_zoo(scenarios, (work_dir or out / "check").resolve(),
                                 policies=policy or list(ALL_POLICIES), span=span, jobs=jobs, game=game,
                                 on_result=lambda r: typer.echo(r.line()))
    for line in zoocheck.problem_table(results):
        typer.echo(line)
    if any(r.problems for r in results):
        raise typer.Exit(1)
