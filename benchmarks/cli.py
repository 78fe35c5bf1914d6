"""The benchmarks' commands: ``lintas bench engine``, ``loop``, ``quality``, ``zoo`` and ``eta``.

Benchmarks print figures and ratios measured side by side in one run and write JSON (and Markdown) under
``benchmarks/results/``. Only typer is imported here; each command imports what it runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from engine.protocol.service import CommandError
from simulation.cli import ExecutorOpt, SchedulerOpt, check_cluster
from simulation.experiments.catalog import DEMO

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Benchmarks (figures and ratios measured side by side; JSON under benchmarks/results/). "
                       "lintas bench --quick runs every quick bench and fails (exit 1) when a ratio falls below its "
                       "floor or the bus drops a message.")


@app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    quick: Annotated[bool, typer.Option("--quick", help="Every quick bench (small sizes, seconds each): bench "
                                                        "engine --quick (Numba kernels against their references), "
                                                        "bench loop --quick (the closed loop against SUMO alone) and "
                                                        "a small bench bus; exit 1 when a ratio measured in this run "
                                                        "falls below its floor or the bus drops a message. Absolute "
                                                        "times are printed, never gated")] = False,
    only: Annotated[list[str] | None, typer.Option("--only", help="With --quick: only this bench (engine, loop, "
                                                                  "bus); repeat")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="With --quick: write the rows here")] = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        if quick:
            raise CommandError("--quick runs the quick benches by itself: give no subcommand with it")
        return
    if not quick:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    import json
    import time

    from benchmarks import quick as quick_mod
    from benchmarks.runs import code_version, machine

    names = [n for n, _t in quick_mod.QUICK]
    for n in only or ():
        if n not in names:
            raise CommandError(f"--only: unknown quick bench '{n}' (choose from: {', '.join(names)})")
    t0 = time.perf_counter()
    rows, ok = quick_mod.run(only, say=typer.echo)
    took = time.perf_counter() - t0
    failed = [r for r in rows if not r["passed"]]
    typer.echo(f"bench --quick: {len(rows) - len(failed)} of {len(rows)} gates passed in {took:.0f} s"
               f"{'' if ok else ': FAILED ' + '; '.join(r['name'] for r in failed)}")
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps({"benchmark": "quick", "rows": rows, "passed": ok, "seconds": round(took, 1),
                                         "machine": machine(), "code": code_version(),
                                         "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2))
        typer.echo(f"wrote {json_file}")
    if not ok:
        raise typer.Exit(1)

JOBS = max(1, min(2, os.cpu_count() or 1))


def _check(scenario: Path, policies: list[str], transport: str = "inproc") -> None:
    from simulation.experiments.batch import RequestError, check_request
    from simulation.sumo.scenario import ScenarioError

    try:
        check_request(scenario, policies, transport)
    except (RequestError, ScenarioError) as exc:
        raise CommandError(str(exc)) from None


@app.command("loop", help="Simulated seconds per second of the closed loop (adaptive, inproc and tcp, 1-s and "
             "0.2-s steps) against SUMO alone replaying the loop's own signal states, start-up apart; the demo "
             "city, ingolstadt7 and a generated 100-junction grid. Example: lintas bench loop --end 900")
def bench_loop(
    scenario: Annotated[list[Path] | None, typer.Argument(help="Scenarios (default: demo, ingolstadt7, "
                                                               "a 100-junction grid)")] = None,
    end: Annotated[float, typer.Option(help="Simulated seconds per run after the begin (0: the scenario's "
                                            "end)")] = 900.0,
    repeat: Annotated[int, typer.Option(min=1)] = 1,
    transport: Annotated[list[str], typer.Option("--transport")] = ["inproc", "tcp"],  # noqa: B006
    substeps: Annotated[bool, typer.Option(help="Also 0.2-s SUMO steps with control every 1 s")] = True,
    policy: Annotated[str, typer.Option("--policy", "-p")] = "adaptive",
    quick: Annotated[bool, typer.Option(help="The demo city, 300 s, 1-s steps, inproc: seconds")] = False,
) -> None:
    from benchmarks import closed_loop

    if end and end < 2 * closed_loop.MEASURE_FROM:
        raise CommandError(f"--end {end:g}: give at least {2 * closed_loop.MEASURE_FROM:g} s (the first "
                           f"{closed_loop.MEASURE_FROM:g} s are start-up and not timed)")
    scns = None
    if scenario:
        scns = [(p.name, p, "") for p in scenario]
        for p in scenario:
            for tr in transport:
                _check(p, [policy], tr)
    else:
        for tr in transport:
            _check(DEMO, [policy], tr)
    doc = closed_loop.run(scns, end=end or None, repeat=repeat, transports=tuple(transport), substeps=substeps,
                          policy=policy, quick=quick)
    closed_loop.print_table(doc)
    typer.echo(f"wrote {closed_loop.RESULTS / ('closed_loop-quick.json' if quick else 'closed_loop.json')}")


@app.command("engine", help="The engine's tick at city scale (100, 1,000, 10,000 junctions): decoding the batch, "
             "fusion, every policy's kernel against its reference, memory per junction. "
             "Example: lintas bench engine --size 1000")
def bench_engine(
    size: Annotated[list[int] | None, typer.Option("--size", help="Junctions; repeat (default: 100, 1000, "
                                                                  "10000)")] = None,
    ticks: Annotated[int, typer.Option(min=5, help="Ticks per size (the first 3 are not timed)")] = 30,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="Policy; repeat (default: all)")] = None,
    quick: Annotated[bool, typer.Option(help="100 junctions, 8 ticks: seconds")] = False,
) -> None:
    from benchmarks import engine_bench
    from engine.policies import POLICIES

    for p in policy or ():
        if p not in POLICIES:
            raise CommandError(f"--policy: unknown policy '{p}' (choose from: {', '.join(POLICIES)})")
    for n in size or ():
        if n < 100:
            raise CommandError(f"--size {n}: at least 100 junctions (the generated grid it repeats)")
    doc = engine_bench.run(sizes=tuple(size or engine_bench.SIZES), ticks=ticks, policies=tuple(policy or ()) or None,
                           quick=quick)
    engine_bench.print_table(doc)
    typer.echo(f"wrote {engine_bench.RESULTS / ('engine-quick.json' if quick else 'engine.json')}")


@app.command("bus", help="Latency from a detector reading published to the engine's word received at each "
             "controller (forwarder, engine tick, ROUTER/DEALER), N controllers over 2-4 processes on tcp loopback "
             "with CURVE, at 1 tick a second and at 10 a second: p50/p99/max, messages per second, messages "
             "dropped. Example: lintas bench bus --controllers 1000 --procs 2")
def bench_bus(
    controllers: Annotated[int, typer.Option(min=1, help="Junctions (one controller each)")] = 1000,
    procs: Annotated[int, typer.Option(min=1, max=4, help="Processes the controllers are spread over (1-4)")] = 2,
    ticks: Annotated[int, typer.Option(min=1, help="Measured ticks at 1 tick per second")] = 30,
    ticks_10x: Annotated[int, typer.Option("--ticks-10x", min=0, help="Measured ticks at 10 ticks per second "
                                                                      "(0: none)")] = 100,
    policy: Annotated[str, typer.Option("--policy", "-p")] = "maxpressure",
    json_file: Annotated[Path, typer.Option("--json")] = Path("benchmarks/results/bus.json"),
) -> None:
    from benchmarks import bus_bench
    from engine.policies import POLICIES

    if policy not in POLICIES:
        raise CommandError(f"--policy: unknown engine policy '{policy}' (choose from: {', '.join(POLICIES)})")
    if procs > controllers:
        raise CommandError(f"--procs {procs}: more processes than --controllers ({controllers})")
    loads = [bus_bench.Load("1x", 1.0, ticks)] + ([bus_bench.Load("10x", 0.1, ticks_10x)] if ticks_10x else [])
    try:
        doc = bus_bench.run(controllers, procs, tuple(loads), policy=policy, say=lambda s: typer.echo(s, err=True))
    except RuntimeError as exc:
        typer.echo(f"lintas: error: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in bus_bench.table_lines(doc):
        typer.echo(line)
    typer.echo(f"wrote {bus_bench.write(doc, json_file)}")


@app.command("quality", help="Control quality: map x policy (mean ± std over seeds, change against "
             "sumo-static), sensor failures, and waiting/throughput/CO2 of adaptive against sumo-actuated. "
             "Example: lintas bench quality --seeds 5")
def bench_quality(
    map_: Annotated[list[Path] | None, typer.Option("--map", help="Scenario; repeat (default: RESCO maps + "
                                                                  "demo)")] = None,
    seeds: Annotated[int, typer.Option(min=1)] = 5,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p")] = None,
    failures: Annotated[bool, typer.Option(help="Also run the sensor-failure table")] = True,
    out: Annotated[Path, typer.Option()] = Path("benchmarks/results"),
    jobs: Annotated[int, typer.Option(min=1)] = JOBS,
    other_seeds: Annotated[int | None, typer.Option(min=1, help="Seeds for fixed, actuated, maxpressure "
                                                                "(default: --seeds)")] = None,
    failure_seeds: Annotated[int | None, typer.Option(min=0, help="Seeds per sensor failure "
                                                                  "(default: --seeds)")] = None,
    resume: Annotated[bool, typer.Option(help="Reuse the finished runs kept under OUT/work/runs.json")] = False,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
) -> None:
    from benchmarks import quality

    check_cluster(executor, scheduler, connect=False)
    maps = map_ or quality.default_maps()
    policies = policy or quality.POLICIES
    for scenario_path in maps:
        _check(scenario_path, policies)
    check_cluster(executor, scheduler)
    try:
        doc = quality.run(maps, seeds, out, policies=policies, failures=failures, jobs=jobs, other_seeds=other_seeds,
                          failure_seeds=failure_seeds, resume=resume, executor=executor, scheduler=scheduler)
    except KeyboardInterrupt:
        typer.echo(f"lintas: interrupted; finished runs are kept in {out / 'work' / 'runs.json'} (use --resume)",
                   err=True)
        raise typer.Exit(130) from None
    md, js = quality.write(doc, out)
    typer.echo(md.read_text())
    typer.echo(f"wrote {md} and {js}")
    _failed(doc.get("failed") or [])


@app.command("zoo", help="The training zoo (grids, spiders, random nets, an arterial, isolated junctions, "
             "roadworks; light, near-capacity and oversaturated demand) against SUMO's actuated and delay-based "
             "controllers, side by side, with the targets of issue 14 (PASS/FAIL; exit 0 either way). "
             "Example: lintas bench zoo --seeds 5")
def bench_zoo(
    seeds: Annotated[int, typer.Option(min=1, help="Seeds 1..N (each writes its own demand and random nets)")] = 5,
    level: Annotated[list[str] | None, typer.Option("--level", help="light | near | over; repeat "
                                                                    "(default: all three)")] = None,
    family: Annotated[list[str] | None, typer.Option("--family", help="A family of the zoo; repeat "
                                                                      "(default: all)")] = None,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="Policy judged against SUMO's; "
                                                                           "repeat (default: adaptive)")] = None,
    out: Annotated[Path, typer.Option()] = Path("benchmarks/results"),
    jobs: Annotated[int, typer.Option(min=1)] = JOBS,
    resume: Annotated[bool, typer.Option(help="Reuse the finished runs kept under OUT/work/zoo-runs.json")] = False,
    end: Annotated[float | None, typer.Option(help="Stop every run at this simulation time (s; a quick look: "
                                                   "the zoo's runs end at 1500)")] = None,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
) -> None:
    from benchmarks import zoo
    from simulation.experiments.policies import ALL_POLICIES
    from simulation.proofs.training import FAMILIES, LEVELS, ZooError

    check_cluster(executor, scheduler, connect=False)
    policies = policy or list(zoo.POLICIES)
    for p in policies:
        if p not in ALL_POLICIES:
            raise CommandError(f"--policy: unknown policy '{p}' (choose from: {', '.join(ALL_POLICIES)})")
        if p in zoo.BASELINES:
            raise CommandError(f"--policy: {p} is one of the baselines every scenario runs; name another policy")
    known = [f.name for f in FAMILIES]
    for f in family or ():
        if f not in known:
            raise CommandError(f"--family: unknown family '{f}' (choose from: {', '.join(known)})")
    for lv in level or ():
        if lv not in LEVELS:
            raise CommandError(f"--level: unknown level '{lv}' (choose from: {', '.join(LEVELS)})")
    if end is not None and end <= 0:
        raise CommandError(f"--end {end:g}: the zoo's runs begin at 0 s; give a simulation time after it")
    check_cluster(executor, scheduler)
    try:
        doc = zoo.run(out, seeds=seeds, families=family, levels=level, policies=policies, jobs=jobs, resume=resume,
                      end=end, quiet=False, say=lambda msg: typer.echo(msg, err=True), executor=executor,
                      scheduler=scheduler)
    except KeyboardInterrupt:
        typer.echo(f"lintas: interrupted; finished runs are kept in {out / 'work' / 'zoo-runs.json'} (use --resume)",
                   err=True)
        raise typer.Exit(130) from None
    except ZooError as exc:
        raise CommandError(str(exc)) from None
    md, js = zoo.write(doc, out)
    typer.echo(md.read_text())
    typer.echo(f"wrote {md} and {js}")
    _failed(doc.get("failed") or [])


@app.command("eta", help="ETA accuracy against SUMO's ground truth on the demo city's bus lines over the simulated "
             "peak with an incident: MBTA windows, the Cal-ITP band and MAE by horizon, Lintas' predictor against "
             "the schedule-deviation baseline side by side (tuned on --train-seed, reported on --test-seed). "
             "Example: lintas bench eta")
def bench_eta(
    train_seed: Annotated[list[int] | None, typer.Option("--train-seed", help="seeds to tune and learn on; repeat "
                                                         "(default 1 2)")] = None,
    test_seed: Annotated[list[int] | None, typer.Option("--test-seed", help="held-out seeds reported; repeat "
                                                        "(default 4 5 6)")] = None,
    end: Annotated[float, typer.Option(min=600, help="simulated seconds of the peak")] = 3600.0,
    every: Annotated[float, typer.Option(min=1, help="seconds between two rounds of predictions")] = 10.0,
    incident: Annotated[bool, typer.Option(help="inject the incident (a vehicle stopped 10 min in a lane)")] = True,
    out: Annotated[Path, typer.Option()] = Path("benchmarks/results"),
) -> None:
    from benchmarks import eta

    train = tuple(train_seed or eta.TRAIN_SEEDS)
    test = tuple(test_seed or eta.TEST_SEEDS)
    if set(train) & set(test):
        raise CommandError(f"--train-seed and --test-seed share {sorted(set(train) & set(test))}: report on "
                           "held-out seeds")
    try:
        doc = eta.run(train, test, end=end, every=every, incident=incident, out=out,
                      say=lambda msg: typer.echo(msg, err=True))
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    eta.print_table(doc, echo=typer.echo)
    typer.echo(f"wrote {out / 'eta.json'}")


def _failed(failed: list[str]) -> None:
    """A run that failed (here or on a cluster's worker) is said, one line each, and the command exits 1."""
    for line in failed:
        typer.echo(f"lintas: {line}", err=True)
    if failed:
        typer.echo(f"lintas: {len(failed)} run{'s' if len(failed) != 1 else ''} failed; the tables lack them", err=True)
        raise typer.Exit(1)


@app.command("api", help="Requests per second and latency (p50/p99/max) of GET /stops/{id}/arrivals on one uvicorn "
             "worker (lintas api), from a load generator in another process on loopback; target 2,000 req/s with "
             "p99 <= 20 ms. Writes benchmarks/results/api_load.json. Example: lintas bench api --rate 2000 --rate 0")
def bench_api(
    gtfs: Annotated[Path, typer.Option("--gtfs", help="Static GTFS feed served")] = Path("scenarios/bunda_kota/gtfs"),
    rate: Annotated[list[float] | None, typer.Option("--rate", help="Offered requests per second (open loop); 0: "
                                                                    "closed loop, as fast as answered; repeat "
                                                                    "(default: 2000 and 0)")] = None,
    connections: Annotated[int, typer.Option(min=1, max=1000, help="Keep-alive connections")] = 32,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds measured per rate")] = 10.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="Seconds of load before measuring")] = 2.0,
    at: Annotated[str, typer.Option(help="The time the arrivals are asked from")] = "2026-03-02T07:20:00",
    out: Annotated[Path, typer.Option(help="Folder of api_load.json")] = Path("benchmarks/results"),
) -> None:
    from benchmarks import api_load
    from transit_api.gtfs import GtfsError

    rates = rate if rate is not None else [api_load.TARGET_RPS, 0.0]
    if any(r < 0 for r in rates):
        raise CommandError("--rate: requests per second must be 0 (closed loop) or more")
    try:
        api_load.run(gtfs, rates=rates, connections=connections, duration=duration, warmup=warmup, at=at, out=out,
                     say=typer.echo)
    except GtfsError as exc:
        raise CommandError(f"--gtfs {exc}") from None
    except RuntimeError as exc:
        typer.echo(f"lintas: error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {out / 'api_load.json'}")


@app.command("traffic", help="The transit API's travel times and incident detection against SUMO's own record on the "
             "demo city: edge travel times (edgeData) per segment and 5-minute period, and when each injected "
             "stopped vehicle was detected and cleared, other detections listed. Writes "
             "benchmarks/results/traffic.json. Example: lintas bench traffic --case maxpressure:1800:A3_A4.L_0@600:600")
def bench_traffic(
    case: Annotated[list[str] | None, typer.Option("--case", help="POLICY:END[:INCIDENT] (INCIDENT as lintas "
                                                   "simulate --incident); repeat (default: adaptive:3600 and "
                                                   "maxpressure:1800:A3_A4.L_0@600:600)")] = None,
    out: Annotated[Path, typer.Option(help="Folder of traffic.json")] = Path("benchmarks/results"),
) -> None:
    from benchmarks import traffic_check
    from simulation.experiments.policies import ALL_POLICIES
    from simulation.sumo.incident import parse_incident

    cases = []
    for c in case or []:
        policy, _sep, rest = c.partition(":")
        end, _sep, incident = rest.partition(":")
        try:
            end_s = float(end)
            if incident:
                parse_incident(incident)
        except ValueError as exc:
            raise CommandError(f"--case {c!r}: expected POLICY:END[:LANE@T:DURATION] ({exc})") from None
        if policy not in ALL_POLICIES:
            raise CommandError(f"--case {c!r}: unknown policy '{policy}' (choose from: {', '.join(ALL_POLICIES)})")
        cases.append((policy, end_s, incident or None))
    try:
        traffic_check.run(tuple(cases) or traffic_check.CASES, out=out, say=typer.echo)
    except RuntimeError as exc:
        typer.echo(f"lintas: error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {out / 'traffic.json'}")


@app.command("vision", help="The detector: mAP50 on held-out renders (seeds unseen in training), frames per second "
             "at 320 px on one core for the ONNX and the .pt path side by side (detector alone and with tracking "
             "and counting), and the count error against SUMO's truth on rendered clips, day and night. "
             "Example: lintas bench vision --images 120 --clip-seconds 120")
def bench_vision(
    onnx: Annotated[Path | None, typer.Option(help="ONNX model (default: the shipped one)")] = None,
    pt: Annotated[Path | None, typer.Option(help=".pt model (default: the shipped one, when Ultralytics is "
                                                 "installed)")] = None,
    images: Annotated[int, typer.Option(min=1, help="Held-out frames")] = 120,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split")] = 2026,
    clip_seconds: Annotated[float, typer.Option(min=1.0, help="Simulated seconds of each counting clip")] = 120.0,
    fps: Annotated[float, typer.Option(min=1.0, help="Frames per second of the counting clips")] = 5.0,
    out: Annotated[Path, typer.Option()] = Path("benchmarks/results"),
) -> None:
    import importlib.util

    from benchmarks import vision
    from vision.detect import SHIPPED_ONNX, SHIPPED_PT, DetectorError

    onnx = onnx or SHIPPED_ONNX
    if pt is None and importlib.util.find_spec("ultralytics") is not None and SHIPPED_PT.is_file():
        pt = SHIPPED_PT
    try:
        doc = vision.run(onnx, pt, images=images, seed=seed, clip_seconds=clip_seconds, fps=fps, out=out)
    except DetectorError as exc:
        raise CommandError(str(exc)) from None
    vision.print_table(doc)
    typer.echo(f"wrote {out / 'vision.json'}")
