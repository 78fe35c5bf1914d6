"""The benchmarks' commands: ``lintas bench loop`` and ``lintas bench quality``.

Benchmarks print figures and ratios measured side by side in one run and write JSON (and Markdown) under
``benchmarks/results/``. Only typer is imported here; each command imports what it runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from engine.protocol.service import CommandError
from simulation.experiments.catalog import DEMO

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Benchmarks (figures and ratios measured side by side; JSON under benchmarks/results/).")

JOBS = max(1, min(2, os.cpu_count() or 1))


def _check(scenario: Path, policies: list[str], transport: str = "inproc") -> None:
    from simulation.experiments.batch import RequestError, check_request
    from simulation.sumo.scenario import ScenarioError

    try:
        check_request(scenario, policies, transport)
    except (RequestError, ScenarioError) as exc:
        raise CommandError(str(exc)) from None


@app.command("loop", help="Steps per second of the closed loop (maxpressure) against SUMO alone. "
             "Example: lintas bench loop scenarios/bunda_kota --end 1800")
def bench_loop(
    scenario: Annotated[Path, typer.Argument()] = DEMO,
    end: Annotated[float | None, typer.Option(help="Stop at this simulation time")] = None,
    repeat: Annotated[int, typer.Option(min=1)] = 1,
    transport: Annotated[list[str], typer.Option("--transport")] = ["inproc"],  # noqa: B006
) -> None:
    from benchmarks import closed_loop

    for tr in transport:
        _check(scenario, ["maxpressure"], tr)
    doc = closed_loop.run(scenario, end=end, repeat=repeat, transports=tuple(transport))
    closed_loop.print_table(doc)
    typer.echo(f"wrote {closed_loop.RESULTS / 'closed_loop.json'}")


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
) -> None:
    from benchmarks import quality

    maps = map_ or quality.default_maps()
    policies = policy or quality.POLICIES
    for scenario_path in maps:
        _check(scenario_path, policies)
    try:
        doc = quality.run(maps, seeds, out, policies=policies, failures=failures, jobs=jobs, other_seeds=other_seeds,
                          failure_seeds=failure_seeds, resume=resume)
    except KeyboardInterrupt:
        typer.echo(f"lintas: interrupted; finished runs are kept in {out / 'work' / 'runs.json'} (use --resume)",
                   err=True)
        raise typer.Exit(130) from None
    md, js = quality.write(doc, out)
    typer.echo(md.read_text())
    typer.echo(f"wrote {md} and {js}")
