"""The transit API's command: ``lintas api``.

Only typer is imported here; the command imports the loader, FastAPI and uvicorn when it runs.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from engine.protocol.service import CommandError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The commuters' transit API.")


@app.command("api")
def api(
    gtfs: Annotated[Path | None, typer.Option("--gtfs", help="static GTFS feed: a folder or a zip (the demo city's: "
                                              "scenarios/bunda_kota/gtfs)")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML file: write tokens (their SHA-256), rate "
                                                "limits, CORS origins (docs/transit.md)")] = None,
    db: Annotated[Path | None, typer.Option("--db", help="SQLite file of the incidents (created if missing); "
                                            "without it /incidents answers 503")] = None,
    hash_token: Annotated[bool, typer.Option("--hash-token", help="read a token from stdin, print its SHA-256 "
                                             "(for --config's tokens) and exit")] = False,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on")] = 8000,
    # --- real time (issue 18, ETA): vehicles, predictions, GTFS-Realtime (docs/transit.md)
    bus_out: Annotated[str | None, typer.Option("--bus-out", help="subscribe to this bus endpoint (a forwarder's "
                                                "XPUB, or a run's relay) for vehicles, signal states and "
                                                "plans")] = None,
    vehicle_positions: Annotated[str | None, typer.Option("--vehicle-positions", help="GTFS-Realtime "
                                                          "VehiclePositions: a file or an http(s) URL, read every "
                                                          "--poll seconds")] = None,
    poll: Annotated[float, typer.Option(min=0.5, help="seconds between reads of --vehicle-positions")] = 5.0,
    history: Annotated[Path | None, typer.Option("--history", help="SQLite file of the predictor's learned "
                                                 "travel times (created if missing; default: learn in memory)")] = None,
    eta_params: Annotated[Path | None, typer.Option("--eta-params", help="the predictor's parameters: a JSON "
                                                    "object, or lintas bench eta's result (its tuned "
                                                    "'params')")] = None,
    sim_zero: Annotated[str | None, typer.Option("--sim-zero", help="the bus's clock is simulation seconds from "
                                                 "this ISO time (default: Unix time, as in the field)")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="simulate the demo city (Bunda Kota) behind the API and serve "
                                       "its feed, buses and predictions")] = False,
    speed: Annotated[float, typer.Option(min=0.01, help="--demo: simulated seconds per wall second")] = 1.0,
    seed: Annotated[int, typer.Option(help="--demo: the simulation's seed")] = 1,
    # --- traffic information and detected incidents (issue 18, sections 4-5; docs/transit.md)
    network: Annotated[Path | None, typer.Option("--network", help="traffic: the compiled network (network.json of "
                                                 "lintas compile) whose detectors --bus-out carries (--demo: the "
                                                 "demo city's, compiled by its simulation)")] = None,
    net: Annotated[Path | None, typer.Option("--net", help="traffic: the SUMO net file, for road names and segment "
                                             "lengths (without it: edge ids; --demo: the demo city's)")] = None,
    detect: Annotated[bool, typer.Option("--detect/--no-detect", help="traffic: write the incidents detected from "
                                         "the detectors to --db (source detector)")] = True,
    incident: Annotated[list[str], typer.Option("--incident", help="--demo: LANE_OR_EDGE@T:DURATION, a vehicle "
                                                "stopped in the lane at simulation second T (e.g. "
                                                "A0_A1.L_0@60:10m); repeat")] = [],  # noqa: B006
) -> None:
    """Serve the transit API (stops, routes, next arrivals from a static GTFS feed) on uvicorn. With a source of
    vehicles (--bus-out, --vehicle-positions or --demo) arrivals are predictions (source: prediction) and
    /vehicles, /routes/{id}/headways and /gtfs-rt/* are served; incidents are kept in --db and written with a
    token of --config; see docs/transit.md.

    Example: lintas api --demo --speed 5, then curl http://127.0.0.1:8000/stops/K1E_3/arrivals

    Traffic and detected incidents: lintas api --demo --speed 10 --db incidents.db --incident A0_A1.L_0@60:10m, then
    curl http://127.0.0.1:8000/traffic/signs

    Example: lintas api --gtfs scenarios/bunda_kota/gtfs --port 8000, then
    curl 'http://127.0.0.1:8000/stops/K1E_2/arrivals?at=2026-03-02T07:20:00'

    A token: python -c "import secrets; print(secrets.token_urlsafe(32))" | tee token | lintas api --hash-token
    """
    from transit_api import auth

    if hash_token:
        token = getpass.getpass("token: ") if sys.stdin.isatty() else sys.stdin.read()
        token = token.strip()
        problem = auth.token_problem(token)
        if problem:
            raise CommandError(f"--hash-token: {problem}")
        typer.echo(auth.hash_token(token))
        return
    if demo:
        from transit_api.demo import DEMO_GTFS

        if gtfs is not None or bus_out is not None or vehicle_positions is not None or sim_zero is not None:
            raise CommandError("--demo serves the demo city's feed and its simulated buses: leave out --gtfs, "
                               "--bus-out, --vehicle-positions and --sim-zero")
        gtfs = DEMO_GTFS
    if gtfs is None:
        raise CommandError("--gtfs DIR is needed to serve (or --demo, or --hash-token to hash a token)")
    if bus_out is not None and vehicle_positions is not None:
        raise CommandError("--bus-out and --vehicle-positions: give one source of vehicles")

    from transit_api.config import ApiConfig, ConfigError, load_config
    from transit_api.gtfs import GtfsError, load_feed
    from transit_api.incidents import IncidentStore, StoreError

    try:
        cfg = load_config(config) if config is not None else ApiConfig()
    except ConfigError as exc:
        raise CommandError(f"--config {exc}") from None
    if len(cfg.tokens) and db is None:
        raise CommandError(f"--config {config} gives write tokens, but there is no --db to keep incidents in")
    try:
        feed = load_feed(gtfs)
    except GtfsError as exc:
        raise CommandError(f"--gtfs {exc}") from None
    try:
        store = IncidentStore(db) if db is not None else None
    except StoreError as exc:
        raise CommandError(f"--db {exc}") from None

    import uvicorn

    from transit_api.app import create_app

    if incident and not demo:
        raise CommandError("--incident injects into the demo's simulation: it needs --demo (or use lintas simulate "
                           "--incident)")
    if network is not None and not demo and bus_out is None:
        raise CommandError("--network: traffic information needs --bus-out ENDPOINT (the bus carrying its "
                           "detectors) or --demo")
    if net is not None and network is None and not demo:
        raise CommandError("--net is for traffic information, which needs --network FILE and --bus-out ENDPOINT")
    network_out = None
    if demo and network is None:
        import tempfile

        network_out = Path(tempfile.mkdtemp(prefix="lintas-api-demo-")) / "network.json"
    params = None
    if eta_params is not None:
        from transit_api.eta import load_params

        try:
            params = load_params(eta_params)
        except ValueError as exc:
            raise CommandError(f"--eta-params {exc}") from None
    live, sim, bus_out, origin = _realtime(feed, bus_out, vehicle_positions, poll, history, sim_zero, demo, speed,
                                           seed, port, network_out=network_out, incidents=incident, params=params)
    try:
        traffic = _traffic(network or network_out, net, bus_out, origin, detect, store, sim)
    except BaseException:
        if sim is not None:
            from transit_api.demo import stop_simulation

            stop_simulation(sim)
        raise
    incidents = f"incidents in {db}" if store else "no incidents (no --db)"
    if traffic is not None:
        incidents += (f"; traffic from {bus_out}: {len(traffic.layout.segments)} segments, "
                      f"{int(traffic.layout.watched.sum())} watched lanes, detection "
                      f"{'on' if traffic.detector is not None else 'off (no --db)' if store is None else 'off'}")
    typer.echo(f"lintas api: {len(feed.stops)} stops, {len(feed.routes)} routes, {len(feed.trips)} trips from "
               f"{gtfs} ({feed.timezone.key}); {incidents}; {len(cfg.tokens)} write token(s); CORS origins: "
               f"{', '.join(cfg.cors_origins) or 'none'}; serving on http://{host}:{port} (docs at /docs)", err=True)
    try:
        if traffic is not None:
            traffic.start()
        uvicorn.run(create_app(feed, store=store, config=cfg, realtime=live, traffic=traffic), host=host, port=port,
                    log_level="warning")
    finally:
        if traffic is not None:
            traffic.stop()
        if sim is not None:
            from transit_api.demo import stop_simulation

            stop_simulation(sim)
        if live is not None:
            live.close()
        if store is not None:
            store.close()


def _realtime(feed, bus_out, vehicle_positions, poll, history, sim_zero, demo, speed, seed, port, network_out=None,
              incidents=(), params=None):
    """The live state and its source (a bus, a GTFS-Realtime feed, or the demo's simulation: its process), the bus
    endpoint heard, and the datetime of the bus clock's 0 (None: Unix time)."""
    if not (bus_out or vehicle_positions or demo):
        return None, None, bus_out, None
    from datetime import datetime

    from transit_api.realtime import Realtime
    from transit_api.vehicles import Clock

    clock, simulated = Clock.unix(), False
    if sim_zero is not None:
        try:
            origin = datetime.fromisoformat(sim_zero)
        except ValueError:
            raise CommandError(f"--sim-zero {sim_zero!r}: not an ISO 8601 time (2026-03-02T07:00:00)") from None
        clock, simulated = Clock(origin if origin.tzinfo else origin.replace(tzinfo=feed.timezone)), True
    sim = None
    if demo:
        import tempfile

        from engine.protocol.bus import _free_tcp_port
        from transit_api.demo import demo_clock, start_simulation

        clock, simulated = demo_clock(feed), True
        bus_out = f"tcp://127.0.0.1:{_free_tcp_port()}"
        log = Path(tempfile.gettempdir()) / f"lintas-api-demo-{port}.log"
        sim = start_simulation(bus_out, speed, seed=seed, log=log, network_out=network_out, incidents=incidents)
        typer.echo(f"lintas api --demo: simulating Bunda Kota at {speed:g}x (pid {sim.pid}, log {log}), buses on "
                   f"{bus_out}; the API's clock is the simulation's (07:00 at its start)", err=True)
    try:
        live = Realtime(feed, clock, history=history, simulated=simulated, params=params)
    except Exception as exc:  # noqa: BLE001 - a history file that SQLite cannot use, said in one line
        raise CommandError(f"--history {history}: {exc}") from None
    if bus_out is not None:
        live.subscribe(bus_out)
    else:
        live.poll_gtfs_rt(vehicle_positions, every=poll)
    return live, sim, bus_out, (clock.origin if simulated else None)


def _traffic(network: Path | None, net: Path | None, bus_out: str | None, origin, detect: bool, store, sim):
    """The traffic service (None without --network and a bus): the layout of --network and --net, the bus clock's
    0. With --demo (``sim``) the network is the one its simulation compiles, waited for, and the net the demo's."""
    if network is None or bus_out is None:
        return None
    from engine.network import NetworkError
    from transit_api.detect import IncidentDetector
    from transit_api.traffic import NetError, RoadLayout, TrafficService

    if sim is not None:
        import time

        from transit_api.demo import DEMO_NET

        net = net or DEMO_NET
        deadline = time.monotonic() + 120
        while not network.exists():  # the simulation writes it before its first step
            if sim.poll() is not None:
                raise CommandError(f"--demo: the simulation ended (exit {sim.returncode}) before it compiled the "
                                   "demo city; its log says why")
            if time.monotonic() > deadline:
                raise CommandError("--demo: the simulation did not compile the demo city within 120 s")
            time.sleep(0.1)
    try:
        layout = RoadLayout.from_files(network, net)
    except NetworkError as exc:
        raise CommandError(f"--network {exc}") from None
    except NetError as exc:
        raise CommandError(f"--net {exc}") from None
    detector = IncidentDetector(layout, store) if detect and store is not None else None
    return TrafficService(layout, bus_out, detector=detector, sim_start=origin)
