"""The ``lintas`` command line."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Lintas: real-time traffic signal control over ZeroMQ, validated in SUMO.\n\n"
    "Example: lintas simulate scenarios/bunda_kota --policy sumo-static --policy maxpressure --seeds 3 --report out/",
)

REPO = Path(__file__).resolve().parents[1]
DEMO_SCENARIO = REPO / "scenarios" / "bunda_kota"
DEMO_POLICIES = ["sumo-static", "sumo-actuated", "sumo-delay", "fixed", "actuated", "maxpressure", "adaptive"]


def _fail(msg: str) -> None:
    typer.echo(f"lintas: error: {msg}", err=True)
    raise typer.Exit(2)


def _worker_init() -> None:
    # Ctrl-C is handled by the parent, which cancels the pool and keeps finished runs
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_job(spec, q) -> dict:
    from simulation.runner import run_one

    key = f"{spec.policy}/seed{spec.seed}"

    def progress(done: float, total: float) -> None:
        q.put((key, done, total))

    rec = run_one(spec, progress)
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
) -> tuple[list[dict], bool]:
    """Run every policy x seed; returns (finished runs, interrupted)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from simulation.runner import RunSpec

    specs = [
        RunSpec(scenario, p, s, out_dir, transport=transport, controllers=controllers, sumo_args=list(sumo_args or []),
                end=end, use_traci=traci, gui=gui, params=params_for(p, params), fail_detectors=fail_detectors,
                dead=dead, local_plan=local_plan)
        for p in policies
        for s in range(1, seeds + 1)
    ]
    runs: list[dict] = []
    interrupted = False
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    q = manager.Queue()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), disable=quiet, transient=False) as prog:
        overall = prog.add_task(f"{len(specs)} runs", total=len(specs))
        tasks: dict[str, int] = {}
        # one fresh process per run: libsumo keeps state between runs in one process (results would
        # depend on what ran before), so a worker never runs twice
        pool = ProcessPoolExecutor(max_workers=max(1, min(jobs, len(specs))), mp_context=ctx,
                                   initializer=_worker_init, max_tasks_per_child=1)
        futs = {pool.submit(_run_job, sp, q): sp for sp in specs}
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
                    sp = futs[f]
                    try:
                        runs.append(f.result())
                    except Exception as exc:  # noqa: BLE001 - report the run, keep the others
                        typer.echo(f"lintas: run {sp.policy} seed {sp.seed} failed: {exc}", err=True)
                    prog.advance(overall)
        except KeyboardInterrupt:
            interrupted = True
            typer.echo("\nlintas: interrupted; keeping the finished runs", err=True)
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
    order = {(p, s): i for i, (p, s) in enumerate((sp.policy, sp.seed) for sp in specs)}
    runs.sort(key=lambda r: order.get((r["policy"], r["seed"]), 0))
    return runs, interrupted


def _validate(scenario: Path, policies: list[str], transport: str, controllers: str, local_plan: Path | None = None):
    from engine.bus import TRANSPORTS
    from simulation.runner import ALL_POLICIES, CONTROLLER_MODES
    from simulation.scenario import ScenarioError, load_scenario

    for p in policies:
        if p not in ALL_POLICIES:
            _fail(f"--policy: unknown policy '{p}' (choose from: {', '.join(ALL_POLICIES)})")
    if transport not in TRANSPORTS:
        _fail(f"--transport: unknown transport '{transport}' (choose from: {', '.join(TRANSPORTS)})")
    if controllers not in CONTROLLER_MODES:
        _fail(f"--controllers: unknown mode '{controllers}' (choose from: {', '.join(CONTROLLER_MODES)})")
    if controllers == "process" and transport == "inproc":
        _fail("--controllers process needs --transport ipc or tcp: inproc sockets do not cross processes")
    try:
        scn = load_scenario(scenario)
        from simulation.netcompile import compile_network

        net = compile_network(scn)  # a net without traffic lights fails here, before any run
    except ScenarioError as exc:
        _fail(str(exc))
    if local_plan is not None:
        from controllers.localplan import PlanError, load_plan

        try:
            load_plan(local_plan).check_network(net.junctions)
        except PlanError as exc:
            _fail(str(exc))
    return scn


def _parse_params(items: list[str], policies: list[str]) -> dict[str, float]:
    from engine.policies import get_policy
    from simulation.runner import LINTAS_POLICIES

    out: dict[str, float] = {}
    for it in items:
        name, sep, value = it.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            _fail(f"--param: expected NAME=VALUE with a number, got '{it}'")
        if not sep:
            _fail(f"--param: expected NAME=VALUE, got '{it}'")
    known = {n for p in policies if p in LINTAS_POLICIES for n in get_policy(p).param_names}
    for name in out:
        if name.upper() not in known:
            _fail(f"--param: no policy among {', '.join(policies)} has a parameter '{name}'"
                  f" (known: {', '.join(sorted(known)) or 'none'})")
    return out


def params_for(policy: str, params: dict[str, float] | None) -> dict[str, float]:
    """The overrides that apply to ``policy`` (a parameter of another policy is left out)."""
    from engine.policies import get_policy
    from simulation.runner import LINTAS_POLICIES

    if not params or policy not in LINTAS_POLICIES:
        return {}
    names = set(get_policy(policy).param_names)
    return {k: v for k, v in params.items() if k.upper() in names}


def _sumo_version() -> str:
    try:
        from importlib.metadata import version

        return version("eclipse-sumo")
    except Exception:  # noqa: BLE001
        return "unknown"


def _finish(scn, runs: list[dict], json_file: Path | None, report_dir: Path | None, quiet: bool = False) -> None:
    from rich.console import Console

    from simulation.report import format_table, write_report
    from simulation.runner import EXTRA_KEYS, RUN_KEYS

    if not runs:
        typer.echo("lintas: no run finished", err=True)
        return
    console = Console()
    if not console.is_terminal:  # files and pipes get the whole table, not an 80-column squeeze
        console = Console(width=200)
    console.print(format_table(runs, title=f"{scn.name}: {len(runs)} runs"))
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "scenario": scn.name,
            "sumo_version": _sumo_version(),
            "runs": [{"policy": r["policy"], "seed": r["seed"], **{k: r[k] for k in RUN_KEYS},
                      **{k: r[k] for k in EXTRA_KEYS if k in r}} for r in runs],
        }
        json_file.write_text(json.dumps(doc, indent=2))
        typer.echo(f"wrote {json_file}")
    if report_dir is not None:
        paths = write_report(scn.name, runs, report_dir)
        typer.echo(f"wrote {paths.get('markdown', report_dir)} and {paths.get('html', '')}")


PolicyOpt = Annotated[list[str], typer.Option("--policy", "-p", help="Policy to run; repeat for several.")]


@app.command(help="Run SUMO closed-loop comparisons. Example: lintas simulate ../shared/scenarios/resco/cologne1 "
             "-p sumo-static -p fixed -p maxpressure --seeds 3 --json out/c1.json --report out/c1")
def simulate(
    scenario: Annotated[Path, typer.Argument(help=".sumocfg file or a folder holding one")],
    policy: PolicyOpt = ["maxpressure"],  # noqa: B006
    seeds: Annotated[int, typer.Option(min=1, help="Seeds 1..N for each policy")] = 1,
    transport: Annotated[str, typer.Option(help="inproc | ipc | tcp")] = "inproc",
    json_file: Annotated[Optional[Path], typer.Option("--json", help="Write the runs as JSON")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write report.md/.html and plots here")] = None,
    sumo_arg: Annotated[list[str], typer.Option("--sumo-arg", help="Passed to SUMO unchanged; repeat")] = [],  # noqa: B006
    end: Annotated[Optional[float], typer.Option(help="Stop at this simulation time (s)")] = None,
    controllers: Annotated[str, typer.Option(help="inprocess | process (one lintas controller per junction)")] = "inprocess",
    jobs: Annotated[int, typer.Option(min=1, help="Runs in parallel")] = max(1, min(2, os.cpu_count() or 1)),
    traci: Annotated[bool, typer.Option("--traci", help="Connect over TraCI instead of libsumo")] = False,
    gui: Annotated[bool, typer.Option("--gui", help="Use sumo-gui (implies --traci)")] = False,
    work_dir: Annotated[Optional[Path], typer.Option(help="Where run outputs go (default: the report dir or ./lintas-runs)")] = None,
    param: Annotated[list[str], typer.Option("--param", help="Policy parameter NAME=VALUE; repeat")] = [],  # noqa: B006
    fail_detectors: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of detectors dead from the "
                                                  "start (seeded random choice)")] = 0.0,
    dead: Annotated[Optional[str], typer.Option(help="cameras | loops: every detector of that kind dead")] = None,
    local_plan: Annotated[Optional[Path], typer.Option(help="Time-of-day plan (TOML) the controllers run when the "
                                                       "engine is silent (default: the net's program)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    if dead not in (None, "cameras", "loops"):
        _fail(f"--dead: unknown kind '{dead}' (choose from: cameras, loops)")
    scn = _validate(scenario, policy, transport, controllers, local_plan)
    params = _parse_params(param, policy)
    out = work_dir or report or Path("lintas-runs")
    runs, interrupted = simulate_runs(
        scenario, policy, seeds, transport=transport, out_dir=out.resolve(), sumo_args=sumo_arg, end=end,
        controllers=controllers, jobs=1 if (gui or traci) else jobs, traci=traci or gui, gui=gui, quiet=quiet,
        params=params, fail_detectors=fail_detectors, dead=dead,
        local_plan=local_plan.resolve() if local_plan is not None else None,
    )
    _finish(scn, runs, json_file, report, quiet)
    if interrupted:
        raise typer.Exit(130)
    if len(runs) < len(policy) * seeds:
        raise typer.Exit(1)


@app.command(help="The main job: closed-loop comparison on the shipped demo city (Bunda Kota). "
             "Example: lintas demo --report reports/demo")
def demo(
    report: Annotated[Path, typer.Option(help="Report folder")] = Path("reports/demo"),
    seeds: Annotated[int, typer.Option(min=1)] = 1,
    policy: Annotated[Optional[list[str]], typer.Option("--policy", "-p")] = None,
    jobs: Annotated[int, typer.Option(min=1)] = max(1, min(2, os.cpu_count() or 1)),
) -> None:
    policies = policy or DEMO_POLICIES
    scn = _validate(DEMO_SCENARIO, policies, "inproc", "inprocess")
    runs, interrupted = simulate_runs(DEMO_SCENARIO, policies, seeds, out_dir=report.resolve(), jobs=jobs)
    _finish(scn, runs, report / "runs.json", report)
    if interrupted:
        raise typer.Exit(130)


MetricsOpt = Annotated[Optional[int], typer.Option("--metrics-port", help="Serve Prometheus metrics on "
                                                  "http://127.0.0.1:PORT/metrics")]


def _metrics(port: int | None, kind: str, component):
    """Start the Prometheus endpoint for ``component`` if a port is given; returns a stop function."""
    if port is None:
        return lambda: None
    from engine.telemetry import ControllerCollector, EngineCollector, serve_metrics

    collector = ControllerCollector(component) if kind == "controller" else EngineCollector(component)
    try:
        return serve_metrics(port, collector)
    except OSError as exc:
        _fail(f"--metrics-port: cannot serve on port {port}: {exc.strerror or exc}")


KeysOpt = Annotated[Optional[Path], typer.Option("--keys", help="Key directory (lintas keys DIR): CURVE encryption "
                                                  "and authentication; required to bind beyond loopback")]


def _load_security(keys: Path | None, me: str, ctx):
    """Security for process ``me`` from the key directory, or None without --keys (errors: _fail)."""
    if keys is None:
        return None
    from engine.security import Security, SecurityError

    try:
        return Security.load(keys, me, ctx)
    except SecurityError as exc:
        _fail(str(exc))


@app.command(help="Create CURVE key pairs for --keys: NAME.key (public) and NAME.key_secret (0600) per name, "
             "public keys copied to DIR/allowed/ (the allow-list); operators' also to DIR/operators/ (who may reset "
             "faults). Existing pairs are kept. "
             "Example: lintas keys /etc/lintas/keys --name engine --name bus --name field --name J1 --operator budi")
def keys(
    directory: Annotated[Path, typer.Argument(help="Key directory (created, mode 0700)")],
    name: Annotated[Optional[list[str]], typer.Option("--name", "-n", help="Key pair name; repeat. Default: engine, "
                                                      "bus, field, operator; controllers use their junction id")] = None,
    operator: Annotated[Optional[list[str]], typer.Option("--operator", help="An operator's key pair (also listed "
                                                          "in DIR/operators/, for lintas reset); repeat")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing pairs")] = False,
) -> None:
    from engine.security import DEFAULT_NAMES, SecurityError, create_keys, public_file, secret_file

    names = name or ([] if operator else list(DEFAULT_NAMES))
    try:
        existed = {public_file(directory, n) for n in [*names, *(operator or [])] if secret_file(directory, n).exists()}
        paths = create_keys(directory, names, force=force, operators=operator or ())
    except SecurityError as exc:
        _fail(str(exc))
    for p in paths:  # public key files only: a secret never reaches the terminal
        typer.echo(f"{'kept' if p in existed and not force else 'created'} {p}")


@app.command(help="Run the bus forwarder (XSUB/XPUB). Example: lintas bus --bus-in tcp://127.0.0.1:5555 "
             "--bus-out tcp://127.0.0.1:5556")
def bus(
    bus_in: Annotated[str, typer.Option(help="Endpoint publishers connect to")] = "tcp://127.0.0.1:5555",
    bus_out: Annotated[str, typer.Option(help="Endpoint subscribers connect to")] = "tcp://127.0.0.1:5556",
    keys: KeysOpt = None,
) -> None:
    import zmq

    from engine import bus as b
    from engine.security import SecurityError

    ep = b.Endpoints(bus_in, bus_out, "")
    ctx = zmq.Context.instance()
    sec = _load_security(keys, "bus", ctx)
    try:
        fwd = b.Forwarder(ep, ctx, security=sec)
        typer.echo(f"lintas bus: {bus_in} -> {bus_out}{' (CURVE)' if sec else ''}")
        fwd.run()
    except SecurityError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass
    finally:
        if sec is not None:
            sec.close()


@app.command(help="Run one intersection controller. Example: lintas controller out/junctions/J1.json "
             "--bus-in tcp://127.0.0.1:5555 --bus-out tcp://127.0.0.1:5556 --commands tcp://127.0.0.1:5557")
def controller(
    spec_file: Annotated[Path, typer.Argument(help="Junction spec JSON (lintas compile writes them)")],
    bus_in: Annotated[str, typer.Option()] = "tcp://127.0.0.1:5555",
    bus_out: Annotated[str, typer.Option()] = "tcp://127.0.0.1:5556",
    commands: Annotated[str, typer.Option()] = "tcp://127.0.0.1:5557",
    lockstep: Annotated[bool, typer.Option(help="Clock from the runner's ticks, waiting for the engine")] = True,
    lockstep_wait: Annotated[float, typer.Option()] = 2.0,
    clock: Annotated[str, typer.Option(help="bus: ticks from the simulation runner; wall: the wall clock")] = "bus",
    keys: Annotated[Optional[Path], typer.Option("--keys", help="Key directory (lintas keys DIR): uses the pair named "
                                                 "after the junction id, else the 'controller' pair")] = None,
    metrics_port: MetricsOpt = None,
    plan: Annotated[Optional[Path], typer.Option("--plan", help="Time-of-day local plan (TOML) to run when the "
                                                 "engine is silent (default: the net's program)")] = None,
) -> None:
    import msgspec

    from controllers.controller import Controller, ControllerConfig
    from controllers.localplan import PlanError, load_plan
    from engine import bus as b
    from engine.network import JunctionSpec

    try:
        spec = msgspec.json.decode(spec_file.read_bytes(), type=JunctionSpec)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        _fail(f"{spec_file}: not a junction spec: {exc}")
    cfg = ControllerConfig(lockstep_wait=lockstep_wait)
    local = None
    if plan is not None:
        try:
            local = load_plan(plan).for_junction(spec, cfg.timing)
        except PlanError as exc:
            _fail(str(exc))
    ep = b.Endpoints(bus_in, bus_out, commands)
    sec = None
    if keys is not None:
        import zmq

        from engine.security import SecurityError, secret_file

        try:
            me = spec.id if secret_file(keys, spec.id).is_file() else "controller"
        except SecurityError as exc:
            _fail(str(exc))
        sec = _load_security(keys, me, zmq.Context.instance())
    try:
        ctrl = Controller(spec, ep, cfg=cfg, lockstep=lockstep and clock == "bus", security=sec, plan=local)
    except Exception:
        if sec is not None:
            sec.close()
        raise
    from engine.service import WallTicker, serve

    stop_metrics = _metrics(metrics_port, "controller", ctrl)
    try:
        if clock == "wall":
            serve(ctrl, on_tick=ctrl.do_tick, ticker=WallTicker(1.0))
        else:
            serve(ctrl)
    except KeyboardInterrupt:
        pass
    finally:
        stop_metrics()
        ctrl.close()
        if sec is not None:
            sec.close()


@app.command(help="Run the engine: detector readings in, commands out to every controller. Example: lintas engine "
             "scenarios/bunda_kota --policy maxpressure --bus-in tcp://127.0.0.1:5555 --bus-out tcp://127.0.0.1:5556 "
             "--commands tcp://127.0.0.1:5557 --clock wall")
def engine(
    scenario: Annotated[Path, typer.Argument(help=".sumocfg or folder: the network the engine controls")],
    policy: Annotated[str, typer.Option("--policy", "-p")] = "maxpressure",
    bus_in: Annotated[str, typer.Option()] = "tcp://127.0.0.1:5555",
    bus_out: Annotated[str, typer.Option()] = "tcp://127.0.0.1:5556",
    commands: Annotated[str, typer.Option()] = "tcp://127.0.0.1:5557",
    clock: Annotated[str, typer.Option(help="bus: ticks from the simulation runner; wall: the wall clock")] = "bus",
    lockstep: Annotated[bool, typer.Option(help="With --clock bus: wait for every controller each tick")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    keys: KeysOpt = None,
    metrics_port: MetricsOpt = None,
    operator_endpoint: Annotated[Optional[str], typer.Option(help="Serve operators' fault resets (lintas reset) "
                                                             "here; default with --keys: tcp://127.0.0.1:5558, "
                                                             "without: off. 'off' turns it off")] = None,
) -> None:
    import zmq

    from engine import bus as b
    from engine.loop import Engine
    from engine.operator import DEFAULT_OPERATOR_ENDPOINT
    from engine.service import WallTicker, serve
    from simulation.netcompile import compile_for_run
    from simulation.runner import LINTAS_POLICIES
    from simulation.scenario import ScenarioError, load_scenario

    if policy not in LINTAS_POLICIES:
        _fail(f"--policy: unknown engine policy '{policy}' (choose from: {', '.join(LINTAS_POLICIES)})")
    if clock not in ("bus", "wall"):
        _fail(f"--clock: unknown clock '{clock}' (choose from: bus, wall)")
    import tempfile

    try:
        with tempfile.TemporaryDirectory() as d:  # the same detectors the field places
            net, _ = compile_for_run(load_scenario(scenario), Path(d))
    except ScenarioError as exc:
        _fail(str(exc))
    ep = b.Endpoints(bus_in, bus_out, commands)
    from engine.security import SecurityError

    ctx = zmq.Context.instance()
    sec = _load_security(keys, "engine", ctx)
    if operator_endpoint is None:
        operator_endpoint = DEFAULT_OPERATOR_ENDPOINT if sec is not None else "off"
    desk = None if operator_endpoint == "off" else operator_endpoint
    try:
        eng = Engine(net, policy, ep, ctx=ctx, seed=seed, lockstep=lockstep and clock == "bus", security=sec,
                     operator=desk)
    except SecurityError as exc:
        _fail(f"--operator-endpoint: {exc}" if "operator" in str(exc) else str(exc))
    except zmq.ZMQError as exc:
        _fail(f"cannot bind: {exc}")
    typer.echo(f"lintas engine: {len(net.junctions)} junctions, policy {policy}, clock {clock}"
               f"{f', operator resets on {desk}' if desk else ''}", err=True)
    stop_metrics = _metrics(metrics_port, "engine", eng)
    try:
        if clock == "wall":
            serve(eng, on_tick=eng.step, ticker=WallTicker(1.0))
        else:
            serve(eng)
    except KeyboardInterrupt:
        pass
    finally:
        stop_metrics()
        eng.close()
        if sec is not None:
            sec.close()


@app.command(help="Ask the engine to clear a junction's latched fault (it sends the controller an authenticated "
             "reset and waits until the controller reports it cleared). Exit 0 when cleared, 1 when refused, 2 on "
             "no answer. Example: lintas reset A1 --operator budi --keys /etc/lintas/keys")
def reset(
    junction: Annotated[str, typer.Argument(help="Junction (traffic light) id")],
    operator: Annotated[str, typer.Option("--operator", help="Who asks (logged by the engine and the controller); "
                                          "with --keys, the key pair of that name if it exists, else 'operator'")],
    keys: Annotated[Optional[Path], typer.Option("--keys", help="Key directory holding your operator key pair and "
                                                 "engine.key; required for tcp://")] = None,
    endpoint: Annotated[str, typer.Option(help="The engine's --operator-endpoint")] = "tcp://127.0.0.1:5558",
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the answer")] = 10.0,
) -> None:
    import zmq

    from engine.operator import KEYLESS_SCHEMES, OperatorError, request_reset
    from engine.security import SecurityError, secret_file

    if not operator.strip():
        _fail("--operator: name who asks")
    if keys is None and endpoint.partition("://")[0].lower() not in KEYLESS_SCHEMES:
        _fail(f"--keys DIR is required to reach {endpoint} (the engine accepts only operator keys there)")
    ctx = zmq.Context()
    sec = None
    try:
        if keys is not None:
            try:
                me = operator if secret_file(keys, operator).is_file() else "operator"
            except SecurityError:
                me = "operator"
            sec = _load_security(keys, me, ctx)
        try:
            rep = request_reset(endpoint, junction, operator, security=sec, ctx=ctx, timeout=timeout)
        except (OperatorError, SecurityError, zmq.ZMQError) as exc:
            _fail(str(exc))
    finally:
        if sec is not None:
            sec.close()
        ctx.destroy(linger=0)
    typer.echo(f"{rep.junction or junction}: {rep.result}: {rep.detail}")
    if rep.result != "ok":
        raise typer.Exit(1)


@app.command(name="compile", help="Compile a scenario's traffic lights into the engine's arrays and junction specs. "
             "Example: lintas compile scenarios/bunda_kota --out out/bk")
def compile_(
    scenario: Annotated[Path, typer.Argument()],
    out: Annotated[Path, typer.Option()] = Path("lintas-compiled"),
) -> None:
    import msgspec

    from engine.security import safe_name
    from simulation.netcompile import compile_for_run
    from simulation.scenario import ScenarioError, load_scenario

    try:
        net, det = compile_for_run(load_scenario(scenario), out)
    except ScenarioError as exc:
        _fail(str(exc))
    net.to_json(out / "network.json")
    (out / "junctions").mkdir(parents=True, exist_ok=True)
    for j in net.junctions:
        (out / "junctions" / f"{safe_name(j.id)}.json").write_bytes(
            msgspec.json.encode(j))
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
    from simulation.tlscheck import TlsCheckError, check_tls_states

    try:
        rep = check_tls_states(states_xml, scenario, yellow_min=yellow_min, min_green=min_green,
                               statistics_xml=statistics)
    except TlsCheckError as exc:
        _fail(str(exc))
    for line in rep.summary_lines():
        typer.echo(line)
    if json_file is not None:
        try:
            json_file.parent.mkdir(parents=True, exist_ok=True)
            json_file.write_text(json.dumps(rep.to_dict(), indent=2))
        except OSError as exc:
            _fail(f"--json: cannot write {json_file}: {exc}")
        typer.echo(f"wrote {json_file}")
    if not rep.ok:
        raise typer.Exit(1)


@app.command(help="Fault-injection drill over tcp with separate processes and CURVE keys: kill -9 the engine, "
             "restart it, kill a controller, let a keyless process publish. Example: lintas drill scenarios/bunda_kota "
             "--out out/drill")
def drill(
    scenario: Annotated[Path, typer.Argument()] = DEMO_SCENARIO,
    out: Annotated[Path, typer.Option(help="Logs, keys and results go here")] = Path("lintas-drill"),
    policy: Annotated[str, typer.Option("--policy", "-p")] = "maxpressure",
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second")] = 2.0,
    kill_engine: Annotated[float, typer.Option(help="s after start")] = 200.0,
    restart_engine: Annotated[float, typer.Option()] = 400.0,
    kill_controller: Annotated[float, typer.Option()] = 600.0,
    rogue: Annotated[float, typer.Option()] = 700.0,
    end: Annotated[float, typer.Option(help="Length of the drill (simulated s)")] = 900.0,
) -> None:
    import dataclasses

    from simulation.drill import Timeline, run_drill

    scn = _validate(scenario, [policy], "tcp", "process")
    if not (0 < kill_engine < restart_engine < kill_controller < rogue < end):
        _fail("drill: need 0 < --kill-engine < --restart-engine < --kill-controller < --rogue < --end")
    tl = Timeline(kill_engine, restart_engine, kill_controller, rogue, end)
    res = run_drill(scenario, out.resolve(), policy=policy, speed=speed, timeline=tl)
    static, _ = simulate_runs(scenario, ["sumo-static"], 1, out_dir=(out / "static").resolve(),
                              end=scn.begin + end, jobs=1, quiet=True)
    res.static_delay_s = static[0]["delay_s"] if static else None
    doc = dataclasses.asdict(res) | {"ok": res.ok()}
    (out / "drill.json").write_text(json.dumps(doc, indent=2))
    for ev in res.events:
        typer.echo(f"  {ev}")

    def f(x, unit="s"):
        return "-" if x is None else f"{x:.1f} {unit}"

    typer.echo(f"every controller local after engine kill: {f(res.local_after_kill_s)} (limit {res.backup_time + 1:g} s)")
    typer.echo(f"engine up after restart: {f(res.engine_up_after_restart_s)}; every controller back under engine "
               f"control {f(res.engine_back_after_restart_s)} after that (limit 10 s)")
    typer.echo(f"killed controller marked offline after: {f(res.offline_marked_after_s)}; others still commanded: "
               f"{res.others_commanded_after_kill}")
    typer.echo(f"messages from the keyless process seen on the bus: {res.rogue_messages_seen}; its commands "
               f"refused: {res.rogue_refusals}, accepted: {res.rogue_accepted}")
    typer.echo(f"delay {f(res.delay_s)} vs net's program (sumo-static, same window) {f(res.static_delay_s)}; "
               f"collisions {res.collisions}, teleports {res.teleports}")
    typer.echo(f"drill {'PASSED' if res.ok() else 'FAILED'}; wrote {out / 'drill.json'}")
    if not res.ok():
        raise typer.Exit(1)


@app.command(help="Soak the controllers: random command sequences, garbage bytes, wrong junctions, huge and negative "
             "numbers, on every junction of the given scenarios; the shown signals are checked independently. "
             "Example: lintas soak --sequences 100000")
def soak(
    scenario: Annotated[Optional[list[Path]], typer.Argument(help="Scenarios whose junctions to use "
                                                              "(default: the demo city and the RESCO maps if present)")] = None,
    sequences: Annotated[int, typer.Option(min=1)] = 100_000,
    seed: Annotated[int, typer.Option()] = 1,
    json_file: Annotated[Optional[Path], typer.Option("--json")] = None,
) -> None:
    import dataclasses

    from simulation import soak as soak_mod
    from simulation.scenario import ScenarioError

    paths = list(scenario or [])
    if not paths:
        paths = [DEMO_SCENARIO]
        resco = REPO.parent / "shared" / "scenarios" / "resco"
        paths += [resco / n for n in ("cologne1", "cologne3", "ingolstadt1", "ingolstadt7", "grid4x4") if (resco / n).exists()]
    try:
        junctions = soak_mod.soak_junctions(paths)
    except ScenarioError as exc:
        _fail(str(exc))
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


bench_app = typer.Typer(help="Benchmarks (figures and ratios measured side by side; JSON under benchmarks/results/).")
app.add_typer(bench_app, name="bench")


@bench_app.command("loop", help="Steps per second of the closed loop (maxpressure) against SUMO alone. "
                   "Example: lintas bench loop scenarios/bunda_kota --end 1800")
def bench_loop(
    scenario: Annotated[Path, typer.Argument()] = DEMO_SCENARIO,
    end: Annotated[Optional[float], typer.Option(help="Stop at this simulation time")] = None,
    repeat: Annotated[int, typer.Option(min=1)] = 1,
    transport: Annotated[list[str], typer.Option("--transport")] = ["inproc"],  # noqa: B006
) -> None:
    from benchmarks import closed_loop

    _validate(scenario, ["maxpressure"], transport[0], "inprocess")
    doc = closed_loop.run(scenario, end=end, repeat=repeat, transports=tuple(transport))
    closed_loop.print_table(doc)
    typer.echo(f"wrote {closed_loop.RESULTS / 'closed_loop.json'}")


@bench_app.command("quality", help="Control quality: map x policy (mean ± std over seeds, change against "
                   "sumo-static), sensor failures, and waiting/throughput/CO2 of adaptive against sumo-actuated. "
                   "Example: lintas bench quality --seeds 5")
def bench_quality(
    map_: Annotated[Optional[list[Path]], typer.Option("--map", help="Scenario; repeat (default: RESCO maps + demo)")] = None,
    seeds: Annotated[int, typer.Option(min=1)] = 5,
    policy: Annotated[Optional[list[str]], typer.Option("--policy", "-p")] = None,
    failures: Annotated[bool, typer.Option(help="Also run the sensor-failure table")] = True,
    out: Annotated[Path, typer.Option()] = Path("benchmarks/results"),
    jobs: Annotated[int, typer.Option(min=1)] = max(1, min(2, os.cpu_count() or 1)),
    other_seeds: Annotated[Optional[int], typer.Option(min=1, help="Seeds for fixed, actuated, maxpressure (default: --seeds)")] = None,
    failure_seeds: Annotated[Optional[int], typer.Option(min=0, help="Seeds per sensor failure (default: --seeds)")] = None,
    resume: Annotated[bool, typer.Option(help="Reuse the finished runs kept under OUT/work/runs.json")] = False,
) -> None:
    from benchmarks import quality

    maps = map_ or quality.default_maps()
    policies = policy or quality.POLICIES
    for scenario_path in maps:
        _validate(scenario_path, policies, "inproc", "inprocess")
    try:
        doc = quality.run(maps, seeds, out, policies=policies, failures=failures, jobs=jobs, other_seeds=other_seeds,
                          failure_seeds=failure_seeds, resume=resume)
    except KeyboardInterrupt:
        typer.echo(f"lintas: interrupted; finished runs are kept in {out / 'work' / 'runs.json'} (use --resume)", err=True)
        raise typer.Exit(130) from None
    md, js = quality.write(doc, out)
    typer.echo(md.read_text())
    typer.echo(f"wrote {md} and {js}")


def main() -> None:
    logging.basicConfig(level=os.environ.get("LINTAS_LOG", "WARNING"), format="%(asctime)s %(name)s %(message)s")
    app()


if __name__ == "__main__":
    main()
