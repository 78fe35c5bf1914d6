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
) -> None:
    """Serve the transit API (stops, routes, next arrivals from a static GTFS feed) on uvicorn. Arrivals are
    scheduled times for now (source: schedule); incidents are kept in --db and written with a token of --config;
    see docs/transit.md.

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
    if gtfs is None:
        raise CommandError("--gtfs DIR is needed to serve (or --hash-token to hash a token)")

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

    incidents = f"incidents in {db}" if store else "no incidents (no --db)"
    typer.echo(f"lintas api: {len(feed.stops)} stops, {len(feed.routes)} routes, {len(feed.trips)} trips from "
               f"{gtfs} ({feed.timezone.key}); {incidents}; {len(cfg.tokens)} write token(s); CORS origins: "
               f"{', '.join(cfg.cors_origins) or 'none'}; serving on http://{host}:{port} (docs at /docs)", err=True)
    try:
        uvicorn.run(create_app(feed, store=store, config=cfg), host=host, port=port, log_level="warning")
    finally:
        if store is not None:
            store.close()
