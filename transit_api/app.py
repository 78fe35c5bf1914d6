"""The commuters' HTTP API (FastAPI): stops, routes and the next arrivals at a stop, from a static GTFS feed.

What it serves today is the *schedule*: an arrival's predicted time is its scheduled time, its delay 0 and its
uncertainty null, and every arrival says so (``"source": "schedule"``). Predictions from the buses' positions
are not here yet (docs/transit.md).

``create_app(feed)`` builds the app; ``lintas api --gtfs DIR`` serves it on uvicorn.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

from transit_api.gtfs import Arrival, Feed, Route, Stop

__all__ = ["create_app"]

MAX_LIMIT = 1000
# module-level (the endpoints' annotations are strings, resolved in this module's namespace)
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
Offset = Annotated[int, Query(ge=0, description="items to skip")]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    timezone: str = Field(examples=["Asia/Pontianak"])
    stops: int
    routes: int
    trips: int


class StopOut(BaseModel):
    stop_id: str = Field(examples=["K1E_2"])
    name: str = Field(examples=["Pasar Lama"])
    code: str
    lat: float | None = Field(examples=[-0.030072])
    lon: float | None = Field(examples=[109.331354])
    location_type: int
    parent_station: str
    routes: list[str] = Field(description="routes calling here", examples=[["K1"]])


class StopPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[StopOut]


class RouteOut(BaseModel):
    route_id: str = Field(examples=["K1"])
    agency_id: str
    short_name: str = Field(examples=["K1"])
    long_name: str = Field(examples=["Jalan Raya Bunda"])
    route_type: int = Field(description="GTFS route_type (3: bus)", examples=[3])
    color: str
    text_color: str
    desc: str


class RoutePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[RouteOut]


class HeadwayOut(BaseModel):
    trip_id: str
    start_time: str = Field(examples=["07:03:40"])
    end_time: str = Field(examples=["08:03:40"])
    headway_s: int = Field(examples=[720])
    exact_times: bool


class DirectionOut(BaseModel):
    direction_id: int | None
    headsign: str
    stops: list[str] = Field(description="stop ids in order (of the direction's first trip)")
    trips: int
    frequencies: list[HeadwayOut] = Field(description="headway-based service (frequencies.txt)")


class RouteDetail(RouteOut):
    directions: list[DirectionOut]


class ArrivalOut(BaseModel):
    trip_id: str = Field(examples=["bus_K1E_03"])
    route_id: str = Field(examples=["K1"])
    route_short_name: str
    headsign: str = Field(examples=["Balai Kota"])
    stop_sequence: int
    service_date: str = Field(examples=["2026-03-02"])
    scheduled_arrival: datetime
    scheduled_departure: datetime
    predicted_arrival: datetime = Field(description="for now the scheduled arrival (source: schedule)")
    delay_s: float = Field(description="predicted minus scheduled; 0 while the source is the schedule")
    uncertainty_s: float | None = Field(description="null: no prediction, so no uncertainty")
    source: Literal["schedule"] = Field(description="where the predicted time comes from; 'schedule': the "
                                        "static timetable, no vehicle data")
    headway_s: int | None = Field(description="a headway-based trip (frequencies.txt, exact_times 0): the "
                                  "headway; its times are approximate")
    last_stop: bool = Field(description="the trip ends here (no boarding)")


class Arrivals(BaseModel):
    stop_id: str
    at: datetime = Field(description="the time asked about, in the feed's time zone")
    timezone: str
    arrivals: list[ArrivalOut]


def _stop(feed: Feed, s: Stop) -> StopOut:
    return StopOut(stop_id=s.stop_id, name=s.name, code=s.code, lat=s.lat, lon=s.lon,
                   location_type=s.location_type, parent_station=s.parent_station, routes=feed.routes_at(s.stop_id))


def _route(r: Route) -> dict:
    return {"route_id": r.route_id, "agency_id": r.agency_id, "short_name": r.short_name,
            "long_name": r.long_name, "route_type": r.route_type, "color": r.color, "text_color": r.text_color,
            "desc": r.desc}


def _arrival(feed: Feed, a: Arrival) -> ArrivalOut:
    return ArrivalOut(trip_id=a.trip_id, route_id=a.route_id, route_short_name=feed.routes[a.route_id].short_name,
                      headsign=a.headsign, stop_sequence=a.stop_sequence, service_date=a.service_date.isoformat(),
                      scheduled_arrival=a.arrival, scheduled_departure=a.departure, predicted_arrival=a.arrival,
                      delay_s=0.0, uncertainty_s=None, source="schedule", headway_s=a.headway,
                      last_stop=a.last_stop)


def create_app(feed: Feed) -> FastAPI:
    """The API over one loaded feed."""
    from transit_api.gtfs import format_time

    app = FastAPI(title="Lintas transit API",
                  description="Stops, routes and the next arrivals of the city's buses, from the static GTFS feed. "
                  "Arrivals are scheduled times (source: schedule) until real-time predictions arrive.",
                  version="0.1.0")
    stop_ids = sorted(feed.stops)
    route_ids = sorted(feed.routes)

    def get_stop(stop_id: str) -> Stop:
        stop = feed.stops.get(stop_id)
        if stop is None:
            raise HTTPException(404, detail=f"no stop with stop_id {stop_id!r} in the feed")
        return stop

    def get_route(route_id: str) -> Route:
        route = feed.routes.get(route_id)
        if route is None:
            raise HTTPException(404, detail=f"no route with route_id {route_id!r} in the feed")
        return route

    @app.get("/health")
    def health() -> Health:
        """The service is up, and what feed it serves."""
        return Health(timezone=feed.timezone.key, stops=len(feed.stops), routes=len(feed.routes),
                      trips=len(feed.trips))

    @app.get("/stops")
    def stops(limit: Limit = 100, offset: Offset = 0) -> StopPage:
        """Every stop, by stop_id, a page at a time."""
        page = stop_ids[offset:offset + limit]
        return StopPage(total=len(stop_ids), limit=limit, offset=offset,
                        items=[_stop(feed, feed.stops[s]) for s in page])

    @app.get("/stops/{stop_id}", responses={404: {"description": "no such stop"}})
    def stop(stop_id: str) -> StopOut:
        """One stop and the routes that call there."""
        return _stop(feed, get_stop(stop_id))

    @app.get("/stops/{stop_id}/arrivals", responses={404: {"description": "no such stop"}})
    def arrivals(stop_id: str,
                 at: Annotated[datetime | None, Query(description="ISO 8601 time to look from (without an offset: "
                                                      "in the feed's time zone); default: now",
                                                      examples=["2026-03-02T07:20:00"])] = None,
                 limit: Annotated[int, Query(ge=1, le=100, description="arrivals to return")] = 10) -> Arrivals:
        """The next scheduled arrivals at a stop (predicted = scheduled, delay 0, uncertainty null: source
        'schedule')."""
        get_stop(stop_id)
        when = datetime.now(feed.timezone) if at is None else at
        if when.tzinfo is None:
            when = when.replace(tzinfo=feed.timezone)
        found = feed.arrivals(stop_id, when, limit)
        return Arrivals(stop_id=stop_id, at=when.astimezone(feed.timezone), timezone=feed.timezone.key,
                        arrivals=[_arrival(feed, a) for a in found])

    @app.get("/routes")
    def routes(limit: Limit = 100, offset: Offset = 0) -> RoutePage:
        """Every route, by route_id, a page at a time."""
        page = route_ids[offset:offset + limit]
        return RoutePage(total=len(route_ids), limit=limit, offset=offset,
                         items=[RouteOut(**_route(feed.routes[r])) for r in page])

    @app.get("/routes/{route_id}", responses={404: {"description": "no such route"}})
    def route(route_id: str) -> RouteDetail:
        """One route: its directions, their stops in order, trip counts and headways."""
        r = get_route(route_id)
        by_dir: dict[int | None, list[str]] = {}
        for trip in feed.trips.values():
            if trip.route_id == route_id:
                by_dir.setdefault(trip.direction_id, []).append(trip.trip_id)
        directions = []
        for direction_id in sorted(by_dir, key=lambda d: (d is None, d)):
            trips = sorted(by_dir[direction_id])
            first = trips[0]
            freqs = [HeadwayOut(trip_id=f.trip_id, start_time=format_time(f.start), end_time=format_time(f.end),
                                headway_s=f.headway, exact_times=f.exact_times)
                     for t in trips for f in feed.frequencies.get(t, ())]
            directions.append(DirectionOut(direction_id=direction_id, headsign=feed.trips[first].headsign,
                                           stops=[st.stop_id for st in feed.stop_times[first]], trips=len(trips),
                                           frequencies=freqs))
        return RouteDetail(**_route(r), directions=directions)

    return app
