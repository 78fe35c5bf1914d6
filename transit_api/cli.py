"""The transit API's command: ``lintas api``.

Only typer is imported here; the command imports the loader, FastAPI and uvicorn when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.protocol.service import CommandError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The commuters' transit API.")


@app.command("api")
def api(
    gtfs: Annotated[Path, typer.Option("--gtfs", help="static GTFS feed: a folder or a zip (the demo city's: "
                                       "scenarios/bunda_kota/gtfs)")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on")] = 8000,
) -> None:
    """Serve the transit API (stops, routes, next arrivals from a static GTFS feed) on uvicorn. Arrivals are
    scheduled times for now (source: schedule); see docs/transit.md.

    Example: lintas api --gtfs scenarios/bunda_kota/gtfs --port 8000, then
    curl 'http://127.0.0.1:8000/stops/K1E_2/arrivals?at=2026-03-02T07:20:00'
    """
    from transit_api.gtfs import GtfsError, load_feed

    try:
        feed = load_feed(gtfs)
    except GtfsError as exc:
        raise CommandError(f"--gtfs {exc}") from None

    import uvicorn

    from transit_api.app import create_app

    typer.echo(f"lintas api: {len(feed.stops)} stops, {len(feed.routes)} routes, {len(feed.trips)} trips from "
               f"{gtfs} ({feed.timezone.key}); serving on http://{host}:{port} (docs at /docs)", err=True)
    uvicorn.run(create_app(feed), host=host, port=port, log_level="warning")
