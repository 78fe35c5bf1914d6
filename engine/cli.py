"""The engine's commands: ``lintas engine``, ``lintas bus``, ``lintas keys`` and ``lintas reset``.

Only typer is imported here; each command imports what it runs, so listing or asking for help loads
neither the policy kernels nor ZeroMQ. ``python -m engine COMMAND ...`` runs the same commands without
the ``lintas`` command tree (a field engine installs with the core alone).

``lintas engine`` starts from a compiled network (``--network``, what ``lintas compile`` writes), so a
field engine needs no SUMO. Given a scenario instead, it asks the command tree above for the network
(``ctx.obj["network_from_scenario"]``, which compiles it with SUMO): nothing here imports simulation/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from engine.protocol.service import CLOCKS, CommandError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The Lintas engine, the bus forwarder, CURVE keys and operators' fault resets.")

KeysOpt = Annotated[Path | None, typer.Option("--keys", help="Key directory (lintas keys DIR): CURVE encryption "
                                                  "and authentication; required to bind beyond loopback")]
MetricsOpt = Annotated[int | None, typer.Option("--metrics-port", help="Serve Prometheus metrics on "
                                                  "http://127.0.0.1:PORT/metrics")]

#: ctx.obj key of the function the command tree passes down to compile a scenario into a network
NETWORK_FROM_SCENARIO = "network_from_scenario"


@app.command(help="Create CURVE key pairs for --keys: NAME.key (public) and NAME.key_secret (0600) per name, "
             "public keys copied to DIR/allowed/ (the allow-list); operators' also to DIR/operators/ (who may reset "
             "faults). Existing pairs are kept. "
             "Example: lintas keys /etc/lintas/keys --name engine --name bus --name field --name J1 --operator budi")
def keys(
    directory: Annotated[Path, typer.Argument(help="Key directory (created, mode 0700)")],
    name: Annotated[list[str] | None, typer.Option("--name", "-n", help="Key pair name; repeat. Default: "
                                                                        "engine, bus, field, operator; controllers "
                                                                        "use their junction id")] = None,
    operator: Annotated[list[str] | None, typer.Option("--operator", help="An operator's key pair (also "
                                                                          "listed in DIR/operators/, for lintas "
                                                                          "reset); repeat")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing pairs")] = False,
) -> None:
    from engine.protocol.security import DEFAULT_NAMES, SecurityError, create_keys, public_file, secret_file

    names = name or ([] if operator else list(DEFAULT_NAMES))
    try:
        existed = {public_file(directory, n) for n in [*names, *(operator or [])] if secret_file(directory, n).exists()}
        paths = create_keys(directory, names, force=force, operators=operator or ())
    except SecurityError as exc:
        raise CommandError(str(exc)) from None
    for p in paths:  # public key files only: a secret never reaches the terminal
        typer.echo(f"{'kept' if p in existed and not force else 'created'} {p}")


@app.command(help="Run the bus forwarder (XSUB/XPUB). Example: lintas bus --bus-in tcp://127.0.0.1:5555 "
             "--bus-out tcp://127.0.0.1:5556")
def bus(
    bus_in: Annotated[str, typer.Option(help="Endpoint publishers connect to")] = "tcp://127.0.0.1:5555",
    bus_out: Annotated[str, typer.Option(help="Endpoint subscribers connect to")] = "tcp://127.0.0.1:5556",
    keys: KeysOpt = None,
    metrics_port: MetricsOpt = None,
) -> None:
    import zmq

    from engine.protocol import bus as b
    from engine.protocol.security import SecurityError, watch_handshakes
    from engine.protocol.service import check_endpoints, endpoint_error, load_security, start_metrics
    from engine.protocol.telemetry import ConnectionCollector

    options = {"--bus-in": bus_in, "--bus-out": bus_out}
    check_endpoints(options)
    ep = b.Endpoints(bus_in, bus_out, "")
    ctx = zmq.Context.instance()
    sec = load_security(keys, "bus", ctx, serves="bus")
    watch = watch_handshakes(ctx, sec)
    stop_metrics = None
    try:
        stop_metrics = start_metrics(metrics_port, ConnectionCollector("bus", sec, watch))
        fwd = b.Forwarder(ep, ctx, security=sec)
        # the banner once both endpoints are bound: a bus that cannot serve prints only its error
        fwd.run(on_ready=lambda: typer.echo(f"lintas bus: {bus_in} -> {bus_out}{' (CURVE)' if sec else ''}"))
    except SecurityError as exc:
        raise CommandError(str(exc)) from None
    except b.EndpointError as exc:
        raise endpoint_error(exc, options) from None
    except KeyboardInterrupt:
        pass
    finally:
        if stop_metrics is not None:
            stop_metrics()
        watch.close()
        if sec is not None:
            sec.close()


def _network(ctx: typer.Context, scenario: Path | None, network: Path | None):
    """The network the engine controls: from ``--network`` (a compiled network.json, no SUMO needed), or
    compiled from a scenario by the function the command tree passed down."""
    from engine.network import Network, NetworkError

    if (scenario is None) == (network is None):
        raise CommandError("name the network: a SCENARIO, or --network FILE (the network.json of lintas compile)")
    if network is not None:
        try:
            return Network.from_json(network)
        except NetworkError as exc:
            raise CommandError(f"--network: {exc}") from None
    compile_scenario: Callable | None = (ctx.obj or {}).get(NETWORK_FROM_SCENARIO)
    if compile_scenario is None:
        raise CommandError(f"{scenario}: starting from a scenario needs the lintas command with SUMO "
                           f"(pip install 'lintas[sim]'); here pass --network FILE (lintas compile writes it)")
    return compile_scenario(scenario)


@app.command(help="Run the engine: detector readings in, commands out to every controller. Example: lintas engine "
             "--network out/bk/network.json --policy adaptive --bus-in tcp://127.0.0.1:5555 --bus-out "
             "tcp://127.0.0.1:5556 --commands tcp://127.0.0.1:5557 --clock wall (or a scenario: lintas engine "
             "scenarios/bunda_kota ...)")
def engine(
    ctx: typer.Context,
    scenario: Annotated[Path | None, typer.Argument(help=".sumocfg or folder: compile the network from it "
                                                         "(needs SUMO); or use --network")] = None,
    network: Annotated[Path | None, typer.Option("--network", help="Compiled network (network.json from "
                                                                   "lintas compile): the engine starts without "
                                                                   "SUMO")] = None,
    policy: Annotated[str, typer.Option("--policy", "-p")] = "maxpressure",
    bus_in: Annotated[str, typer.Option()] = "tcp://127.0.0.1:5555",
    bus_out: Annotated[str, typer.Option()] = "tcp://127.0.0.1:5556",
    commands: Annotated[str, typer.Option()] = "tcp://127.0.0.1:5557",
    clock: Annotated[str, typer.Option(help="bus: ticks from the simulation runner; wall: the wall clock")] = "bus",
    lockstep: Annotated[bool, typer.Option(help="With --clock bus: wait for every controller each tick")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    keys: KeysOpt = None,
    metrics_port: MetricsOpt = None,
    operator_endpoint: Annotated[str | None, typer.Option(help="Serve operators' fault resets (lintas reset) "
                                                               "here; default with --keys: tcp://127.0.0.1:5558, "
                                                               "without: off. 'off' turns it off")] = None,
    feed_alarm_after: Annotated[float, typer.Option(min=0.5, help="Seconds without any detector reading after "
                                                                   "which the engine raises the feed alarm (fault "
                                                                   "feed-lost on the bus, lintas_engine_feed_alarm "
                                                                   "1)")] = 10.0,
    no_data_after: Annotated[float, typer.Option(min=0.0, help="Seconds a detector that never reported is "
                                                                "'no-data' after the first input (the engine's "
                                                                "start without any), then 'dead'")] = 60.0,
) -> None:
    import dataclasses

    import zmq

    from engine.fusion import FusionConfig
    from engine.loop import Engine
    from engine.metrics import EngineCollector
    from engine.operator import DEFAULT_OPERATOR_ENDPOINT
    from engine.policies import POLICIES
    from engine.protocol import bus as b
    from engine.protocol.security import SecurityError, watch_handshakes
    from engine.protocol.service import check_endpoints, endpoint_error, load_security, run_until_stopped

    if policy not in POLICIES:
        raise CommandError(f"--policy: unknown engine policy '{policy}' (choose from: {', '.join(POLICIES)})")
    if clock not in CLOCKS:
        raise CommandError(f"--clock: unknown clock '{clock}' (choose from: {', '.join(CLOCKS)})")
    options = {"--bus-in": bus_in, "--bus-out": bus_out, "--commands": commands}
    if operator_endpoint not in (None, "off"):
        options["--operator-endpoint"] = operator_endpoint
    check_endpoints(options)
    net = _network(ctx, scenario, network)
    ep = b.Endpoints(bus_in, bus_out, commands)
    zctx = zmq.Context.instance()
    sec = load_security(keys, "engine", zctx, serves="engine")
    if operator_endpoint is None:
        operator_endpoint = DEFAULT_OPERATOR_ENDPOINT if sec is not None else "off"
        if operator_endpoint != "off":
            options["--operator-endpoint"] = operator_endpoint
            check_endpoints(options)
    operators = None if operator_endpoint == "off" else operator_endpoint
    if sec is not None and operators and not any((sec.directory / "operators").glob("*.key")):
        typer.echo(f"lintas engine: warning: {sec.directory / 'operators'}/ holds no operator key: nobody can ask "
                   f"for a fault reset (lintas keys {sec.directory} --operator NAME adds one)", err=True)
    watch = watch_handshakes(zctx, sec)  # before the sockets: a client refused once does not try again
    fusion_cfg = dataclasses.replace(FusionConfig(), no_data_after=no_data_after)
    try:
        eng = Engine(net, policy, ep, ctx=zctx, seed=seed, lockstep=lockstep and clock == "bus", security=sec,
                     operator=operators, fusion_cfg=fusion_cfg, feed_alarm_after=feed_alarm_after)
    except (SecurityError, b.EndpointError, zmq.ZMQError) as exc:
        watch.close()
        if sec is not None:
            sec.close()
        if isinstance(exc, b.EndpointError):
            raise endpoint_error(exc, options) from None
        if isinstance(exc, zmq.ZMQError):  # the only socket bus.py does not make: the operator endpoint's
            raise CommandError(f"--operator-endpoint: cannot bind {operators}: {exc.strerror}") from None
        raise CommandError(f"--operator-endpoint: {exc}" if "operator" in str(exc) else str(exc)) from None
    if eng.operator_server is not None:
        watch.add(eng.operator_server.sock, "operator endpoint")  # bound already: each new client is seen
    banner = (f"lintas engine: {len(net.junctions)} junctions, policy {policy}, clock {clock}"
              f"{f', operator resets on {operators}' if operators else ''}")
    run_until_stopped(eng, clock=clock, on_tick=eng.step, collector=EngineCollector(eng), metrics_port=metrics_port,
                      security=sec, on_ready=lambda: typer.echo(banner, err=True))


@app.command(help="Ask the engine to clear a junction's latched fault (it sends the controller an authenticated "
             "reset and waits until the controller reports it cleared). Exit 0 when cleared, 1 when refused, 2 on "
             "no answer. Example: lintas reset A1 --operator budi --keys /etc/lintas/keys")
def reset(
    junction: Annotated[str, typer.Argument(help="Junction (traffic light) id")],
    operator: Annotated[str, typer.Option("--operator", help="Who asks (logged by the engine and the "
                                                             "controller); with --keys, the key pair of that name "
                                                             "if it exists, else 'operator'")],
    keys: Annotated[Path | None, typer.Option("--keys", help="Key directory holding your operator key pair and "
                                                             "engine.key; required for tcp://")] = None,
    endpoint: Annotated[str, typer.Option(help="The engine's --operator-endpoint")] = "tcp://127.0.0.1:5558",
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the answer")] = 10.0,
) -> None:
    import zmq

    from engine.operator import KEYLESS_SCHEMES, OperatorError, request_reset
    from engine.protocol.messages import ResetResult
    from engine.protocol.security import SecurityError, secret_file
    from engine.protocol.service import load_security

    if not operator.strip():
        raise CommandError("--operator: name who asks")
    if keys is None and endpoint.partition("://")[0].lower() not in KEYLESS_SCHEMES:
        raise CommandError(f"--keys DIR is required to reach {endpoint} (the engine accepts only operator keys there)")
    zctx = zmq.Context()
    sec = None
    try:
        if keys is not None:
            try:
                me = operator if secret_file(keys, operator).is_file() else "operator"
            except SecurityError:
                me = "operator"
            sec = load_security(keys, me, zctx)
        try:
            rep = request_reset(endpoint, junction, operator, security=sec, ctx=zctx, timeout=timeout)
        except (OperatorError, SecurityError, zmq.ZMQError) as exc:
            raise CommandError(str(exc)) from None
    finally:
        if sec is not None:
            sec.close()
        zctx.destroy(linger=0)
    typer.echo(f"{rep.junction or junction}: {rep.result.value}: {rep.detail}")
    if rep.result != ResetResult.OK:
        raise typer.Exit(1)
