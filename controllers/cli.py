"""The controller's command: ``lintas controller`` (or ``python -m controllers``), one process per junction.

It needs the wire protocol (engine/protocol/) and the controller, nothing else: no SUMO, no engine, no
policy kernels, so a roadside cabinet installs Lintas' core alone and runs this.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from engine.protocol.service import CLOCKS, CommandError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="One intersection controller.")


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
    keys: Annotated[Path | None, typer.Option("--keys", help="Key directory (lintas keys DIR): uses the pair "
                                                             "named after the junction id, else the 'controller' "
                                                             "pair")] = None,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help="Serve Prometheus metrics on "
                                                                            "http://127.0.0.1:PORT/metrics")] = None,
    plan: Annotated[Path | None, typer.Option("--plan", help="Time-of-day local plan (TOML) to run when the "
                                                             "engine is silent (default: the net's program)")] = None,
    clock_offset: Annotated[float, typer.Option("--clock-offset", help="With --clock wall: seconds added to the "
                                                                       "wall clock (to test an engine or a kit "
                                                                       "against a controller whose clock is "
                                                                       "wrong)")] = 0.0,
    parent_pid: Annotated[int | None, typer.Option("--parent-pid", help="End with process PID, the one that "
                                                                        "started this controller (Linux: a "
                                                                        "parent-death signal)")] = None,
    stats: Annotated[Path | None, typer.Option("--stats", help="When the controller ends, write its counters "
                                                               "(JSON) to this file")] = None,
) -> None:
    if parent_pid is not None:  # first of all: a controller whose starter is gone must not linger
        from controllers.lifeline import ParentGone, die_with_parent

        try:
            die_with_parent(parent_pid)
        except ParentGone as exc:
            raise CommandError(f"--parent-pid: {exc}") from None
    import signal

    import zmq

    from controllers.controller import Controller, ControllerConfig
    from controllers.localplan import PlanError, load_plan
    from controllers.metrics import ControllerCollector
    from engine.protocol import bus as b
    from engine.protocol.junction import SpecError, read_spec
    from engine.protocol.security import SecurityError, secret_file, watch_handshakes
    from engine.protocol.service import check_endpoints, endpoint_error, load_security, run_until_stopped

    if clock not in CLOCKS:
        raise CommandError(f"--clock: unknown clock '{clock}' (choose from: {', '.join(CLOCKS)})")
    try:
        spec = read_spec(spec_file)
    except SpecError as exc:
        raise CommandError(str(exc)) from None
    cfg = ControllerConfig(lockstep_wait=lockstep_wait)
    local = None
    if plan is not None:
        try:
            local = load_plan(plan).for_junction(spec, cfg.timing)
        except PlanError as exc:
            raise CommandError(str(exc)) from None
    options = {"--bus-in": bus_in, "--bus-out": bus_out, "--commands": commands}
    check_endpoints(options)
    ep = b.Endpoints(bus_in, bus_out, commands)
    sec = None
    if keys is not None:
        try:
            me = spec.id if secret_file(keys, spec.id).is_file() else "controller"
        except SecurityError as exc:
            raise CommandError(str(exc)) from None
        sec = load_security(keys, me, zmq.Context.instance())
    watch = watch_handshakes(zmq.Context.instance(), sec)  # before the sockets: logs "handshake refused by ..."
    try:
        ctrl = Controller(spec, ep, cfg=cfg, lockstep=lockstep and clock == "bus", security=sec, plan=local)
        if clock == "wall" and clock_offset:
            ctrl.do_tick = _offset(ctrl.do_tick, clock_offset)  # type: ignore[method-assign]
    except Exception as exc:
        watch.close()
        if sec is not None:
            sec.close()
        if isinstance(exc, b.EndpointError):
            raise endpoint_error(exc, options) from None
        if isinstance(exc, SecurityError):  # a public key it connects with (bus.key, engine.key) missing or bad
            raise CommandError(str(exc)) from None
        raise
    terminated = []

    def on_sigterm(signum, _frame):  # SIGTERM ends the controller as Ctrl-C does: sockets closed, stats written
        if not terminated:
            terminated.append(signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        run_until_stopped(ctrl, clock=clock, on_tick=ctrl.do_tick, collector=ControllerCollector(ctrl),
                          metrics_port=metrics_port, security=sec)
    finally:
        if stats is not None:
            from controllers.lifeline import write_stats

            try:
                write_stats(ctrl, stats)
            except OSError as exc:
                print(f"lintas controller: --stats: cannot write {stats}: {exc.strerror or exc}", file=sys.stderr)
    if terminated:
        raise typer.Exit(128 + signal.SIGTERM)


def _offset(tick, seconds: float):
    """``tick`` called with its time plus ``seconds`` (``--clock-offset``): the controller's clock runs that far
    ahead of the wall clock (behind when negative)."""
    if not seconds:
        return tick
    return lambda t: tick(t + seconds)
