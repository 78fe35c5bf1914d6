"""The commuters' HTTP API (FastAPI): stops, routes and the next arrivals at a stop, from a static GTFS feed; the
incidents operators enter; the API's own metrics.

What it serves of the timetable today is the *schedule*: an arrival's predicted time is its scheduled time, its
delay 0 and its uncertainty null, and every arrival says so (``"source": "schedule"``). Predictions from the
buses' positions are not here yet (docs/transit.md).

Incidents (``/incidents``) live in an :class:`~transit_api.incidents.IncidentStore`; anyone may read them,
writing (POST, PATCH) takes a bearer token of the config (``transit_api/config.py``), rate-limited per token.
A refused write is counted by reason on ``/metrics`` and logged with the client's address and at most the
first 8 hex digits of the presented token's hash, never the token.

``create_app(feed, store=..., config=...)`` builds the app; ``lintas api --gtfs DIR`` serves it on uvicorn.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from transit_api import examples
from transit_api.auth import RateLimiter, TokenEntry, fingerprint, hash_token
from transit_api.config import ApiConfig
from transit_api.gtfs import Arrival, Feed, Route, Stop
from transit_api.incidents import (
    Cause,
    Effect,
    Incident,
    IncidentInvalid,
    IncidentNotFound,
    IncidentStore,
    Severity,
    Source,
    VersionConflict,
)
from transit_api.realtime import Realtime

__all__ = ["REFUSAL_REASONS", "create_app"]

log = logging.getLogger("lintas.api")

#: why a write (POST, PATCH) was refused: the labels of lintas_api_write_refused_total, all shown from the start
REFUSAL_REASONS = ("missing_token", "wrong_token", "rate_limited", "invalid", "not_found", "version_conflict")

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
    predicted_arrival: datetime = Field(description="the predicted arrival (source: prediction), or the "
                                        "scheduled one (source: schedule)")
    delay_s: float = Field(description="predicted minus scheduled; 0 while the source is the schedule")
    uncertainty_s: float | None = Field(description="one standard deviation of the prediction (s); null: no "
                                        "prediction, so no uncertainty")
    source: Literal["schedule", "prediction"] = Field(description="where the predicted time comes from; "
                                                      "'prediction': a vehicle on its way (docs/transit.md), "
                                                      "'schedule': the static timetable, no vehicle data")
    vehicle_id: str | None = Field(None, description="the vehicle predicted (source: prediction)")
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


Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]
Ids = Annotated[list[Id], Field(max_length=100)]
Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, examples=[-0.0301])]
Lon = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, examples=[109.3312])]
TIME_NOTE = "ISO 8601; without an offset: in the feed's time zone"
_EXAMPLE = {"severity": "SEVERE", "effect": "SIGNIFICANT_DELAYS", "cause": "ACCIDENT",
            "description": "Tabrakan di Jl. Raya Bunda, lajur kiri tertutup", "stop_ids": ["K1E_2"],
            "edges": ["A1_A2"], "lanes": ["A1_A2_0"], "start": "2026-03-02T07:15:00"}


class IncidentIn(BaseModel):
    """A new incident. It needs a place: lat and lon, stop_ids, edges or lanes (any of them, several at once)."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})
    severity: Severity = Field(description="GTFS-Realtime SeverityLevel")
    effect: Effect = Field(description="GTFS-Realtime Alert Effect")
    cause: Cause = Field(Cause.UNKNOWN_CAUSE, description="GTFS-Realtime Alert Cause")
    description: str = Field("", max_length=2000, description="free text for people")
    lat: Lat | None = None
    lon: Lon | None = None
    stop_ids: Ids = Field(default_factory=list, description="GTFS stop ids (must exist in the feed)")
    edges: Ids = Field(default_factory=list, description="road edges (the network's ids, e.g. SUMO edge ids)")
    lanes: Ids = Field(default_factory=list, description="lanes (the network's lane ids)")
    start: datetime | None = Field(None, description=f"start of the active period ({TIME_NOTE}); default: now")
    end: datetime | None = Field(None, description=f"end of the active period ({TIME_NOTE}); null: open-ended")


class IncidentPatch(BaseModel):
    """A change to an incident: the version it edits and the fields to change (others stay). ``end``, ``lat`` and
    ``lon`` may be set to null (reopen; drop the point)."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"version": 1, "end": "2026-03-02T07:55:00"}, {"version": 2, "severity": "WARNING", "lanes": []}]})
    version: int = Field(ge=1, description="the version this change edits (the incident's current one, else 409)")
    severity: Severity | None = None
    effect: Effect | None = None
    cause: Cause | None = None
    description: str | None = Field(None, max_length=2000)
    lat: Lat | None = None
    lon: Lon | None = None
    stop_ids: Ids | None = None
    edges: Ids | None = None
    lanes: Ids | None = None
    start: datetime | None = None
    end: datetime | None = None


NULLABLE = {"lat", "lon", "end"}


class IncidentOut(BaseModel):
    id: int
    severity: Severity
    effect: Effect
    cause: Cause
    description: str
    lat: float | None
    lon: float | None
    stop_ids: list[str]
    edges: list[str]
    lanes: list[str]
    start: datetime
    end: datetime | None
    active: bool = Field(description="inside its active period at the time asked about (default: now)")
    source: Source
    reported_by: str = Field(description="the name of the token that created it")
    updated_by: str
    created: datetime
    updated: datetime
    version: int = Field(description="incremented by every change; a PATCH names the version it edits")


class IncidentPage(BaseModel):
    total: int
    limit: int
    offset: int
    at: datetime = Field(description="the time `active` refers to")
    items: list[IncidentOut]


class Metrics:
    """The API's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self, store: IncidentStore | None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("lintas_api_requests", "HTTP requests answered, by method, route (its template) "
                                "and status", ["method", "route", "status"], registry=self.registry)
        self.refused = Counter("lintas_api_write_refused", "Writes (POST, PATCH) refused, by reason", ["reason"],
                               registry=self.registry)
        for reason in REFUSAL_REASONS:
            self.refused.labels(reason)
        self.writes = Counter("lintas_api_incident_writes", "Incidents written, by operation (created, updated)",
                              ["operation"], registry=self.registry)
        for op in ("created", "updated"):
            self.writes.labels(op)
        if store is not None:
            active = Gauge("lintas_api_incidents_active", "Incidents inside their active period now",
                           registry=self.registry)
            active.set_function(lambda: store.count_active())


class RequestCounter:
    """ASGI middleware: counts every answered request by method, route template and status (unmatched paths
    as route "unmatched", so that a scan of random paths cannot grow the label set)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def counting_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()


class WriteGate:
    """Who may write: :meth:`admit` returns the token's entry, or raises 401 (no bearer token, or not one of the
    config's) or 429 (over the token's rate), each counted and logged without the token."""

    def __init__(self, config: ApiConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.limiter = RateLimiter()

    def refuse(self, reason: str, status: int, detail: str, headers: dict[str, str]) -> HTTPException:
        self.metrics.refused.labels(reason).inc()
        return HTTPException(status, detail=detail, headers=headers)

    def admit(self, request: Request) -> TokenEntry:
        what = f"{request.method} {request.url.path} from {request.client.host if request.client else '?'}"
        scheme, _sep, presented = request.headers.get("authorization", "").partition(" ")
        presented = presented.strip()
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not presented:
            log.warning("refused %s: no bearer token", what)
            raise self.refuse("missing_token", 401, "this needs a token: send the header 'Authorization: Bearer "
                              "TOKEN'", challenge)
        tokens = self.config.tokens
        entry = tokens.identify(presented)
        if entry is None:
            log.warning("refused %s: wrong token (its sha256 begins %s)", what, fingerprint(hash_token(presented)))
            raise self.refuse("wrong_token", 401, "the token is not one of this server's" if len(tokens) else
                              "this server takes no writes: it was started without tokens (lintas api --config "
                              "FILE)", challenge)
        wait = self.limiter.take(entry.name, entry.rate, entry.burst)
        if wait > 0:
            retry = RateLimiter.retry_after(wait)
            log.warning("refused %s: token %r over its rate (%g/s, burst %d)", what, entry.name, entry.rate,
                        entry.burst)
            raise self.refuse("rate_limited", 429, f"too many writes for token {entry.name!r} (at most "
                              f"{entry.burst} at once, {entry.rate:g} a second): retry in {retry} s",
                              {"Retry-After": retry})
        return entry


_bearer = HTTPBearer(auto_error=False, description="a token of the API's config (the config keeps its SHA-256)")


def _writer(request: Request, _: Annotated[Any, Depends(_bearer)]) -> TokenEntry:
    """The dependency of every write (``_bearer`` shows the scheme in the OpenAPI docs; the gate decides)."""
    return request.app.state.write_gate.admit(request)


Writer = Annotated[TokenEntry, Depends(_writer)]


def create_app(feed: Feed, *, store: IncidentStore | None = None, config: ApiConfig | None = None,
               realtime: Realtime | None = None, traffic: Any = None) -> FastAPI:
    """The API over one loaded feed; incidents in ``store`` (None: /incidents answers 503); tokens, rate limits
    and CORS origins from ``config`` (None: no writes, no CORS); vehicles and predictions from ``realtime``
    (None: arrivals from the schedule, /vehicles and the GTFS-Realtime trip and vehicle feeds answer 503); traffic
    information from ``traffic`` (a :class:`transit_api.traffic.TrafficService`, started by the caller; None:
    /traffic answers 503)."""
    from transit_api.gtfs import format_time

    config = config or ApiConfig()
    app = FastAPI(title="Lintas transit API",
                  description="Stops, routes and the next arrivals of the city's buses, from the static GTFS feed. "
                  "Arrivals are scheduled times (source: schedule) until real-time predictions arrive. Incidents: "
                  "anyone may read them; operators write them with a bearer token.",
                  version="0.2.0")
    metrics = Metrics(store)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "PATCH"], allow_headers=["Authorization", "Content-Type"],
                           expose_headers=["Location", "Retry-After"])
    app.add_middleware(RequestCounter, metrics=metrics)  # outermost: counts CORS preflights too
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

    @app.get("/health", responses=examples.HEALTH)
    def health() -> Health:
        """The service is up, and what feed it serves."""
        return Health(timezone=feed.timezone.key, stops=len(feed.stops), routes=len(feed.routes),
                      trips=len(feed.trips))

    @app.get("/stops", responses=examples.STOPS)
    def stops(limit: Limit = 100, offset: Offset = 0) -> StopPage:
        """Every stop, by stop_id, a page at a time."""
        page = stop_ids[offset:offset + limit]
        return StopPage(total=len(stop_ids), limit=limit, offset=offset,
                        items=[_stop(feed, feed.stops[s]) for s in page])

    @app.get("/stops/{stop_id}", responses=examples.STOP)
    def stop(stop_id: str) -> StopOut:
        """One stop and the routes that call there."""
        return _stop(feed, get_stop(stop_id))

    # the busiest route (lintas bench api, docs/transit.md): async, so answered on the event loop (it computes from
    # memory, no I/O) rather than through the thread pool a plain `def` goes through, which cost most of a request's
    # time; and its model written as JSON once (pydantic), not validated again and re-encoded by FastAPI
    @app.get("/stops/{stop_id}/arrivals", response_model=Arrivals, responses=examples.ARRIVALS)
    async def arrivals(stop_id: str,
                       at: Annotated[datetime | None, Query(description="ISO 8601 time to look from (without an "
                                                            "offset: in the feed's time zone); default: now",
                                                            examples=["2026-03-02T07:20:00"])] = None,
                       limit: Annotated[int, Query(ge=1, le=100, description="arrivals to return")] = 10
                       ) -> Response:
        """The next scheduled arrivals at a stop (predicted = scheduled, delay 0, uncertainty null: source
        'schedule')."""
        get_stop(stop_id)
        now = realtime.now() if realtime is not None else datetime.now(feed.timezone)
        when = now if at is None else at
        if when.tzinfo is None:
            when = when.replace(tzinfo=feed.timezone)
        if realtime is not None:  # --- real-time predictions (issue 18, ETA): transit_api/live_api.py
            from transit_api.live_api import arrivals_with_predictions

            items = arrivals_with_predictions(feed, realtime, stop_id, when, limit)
        else:
            items = [_arrival(feed, a) for a in feed.arrivals(stop_id, when, limit)]
        body = Arrivals(stop_id=stop_id, at=when.astimezone(feed.timezone), timezone=feed.timezone.key,
                        arrivals=items)
        return Response(body.model_dump_json(), media_type="application/json")

    @app.get("/routes", responses=examples.ROUTES)
    def routes(limit: Limit = 100, offset: Offset = 0) -> RoutePage:
        """Every route, by route_id, a page at a time."""
        page = route_ids[offset:offset + limit]
        return RoutePage(total=len(route_ids), limit=limit, offset=offset,
                         items=[RouteOut(**_route(feed.routes[r])) for r in page])

    @app.get("/routes/{route_id}", responses=examples.ROUTE)
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

    # --- real-time (issue 18, ETA): /vehicles, /routes/{id}/headways, /gtfs-rt/* (transit_api/live_api.py)
    from transit_api.live_api import router as live_router

    app.include_router(live_router(feed, realtime, store))
    if realtime is not None:
        from transit_api.live_api import RealtimeCollector

        metrics.registry.register(RealtimeCollector(realtime))

    # --- incidents
    def refuse(reason: str, status: int, detail: Any, headers: dict[str, str] | None = None) -> HTTPException:
        metrics.refused.labels(reason).inc()
        return HTTPException(status, detail=detail, headers=headers)

    app.state.write_gate = WriteGate(config, metrics)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if request.method in ("POST", "PATCH"):
            metrics.refused.labels("invalid").inc()
        return await request_validation_exception_handler(request, exc)

    def invalid(loc: list, message: str) -> HTTPException:
        return refuse("invalid", 422, [{"type": "value_error", "loc": ["body", *loc], "msg": message}])

    def need_store() -> IncidentStore:
        if store is None:
            raise HTTPException(503, detail="this server keeps no incidents: start it with --db FILE")
        return store

    def local(t: datetime | None) -> datetime | None:
        """A time given without an offset is in the feed's time zone."""
        return t.replace(tzinfo=feed.timezone) if t is not None and t.tzinfo is None else t

    def check_stops(stop_ids: list[str] | None) -> None:
        for i, s in enumerate(stop_ids or ()):
            if s not in feed.stops:
                raise invalid(["stop_ids", i], f"no stop with stop_id {s!r} in the feed")

    def out(i: Incident, at: datetime) -> IncidentOut:
        tz = feed.timezone
        return IncidentOut(id=i.id, severity=i.severity, effect=i.effect, cause=i.cause, description=i.description,
                           lat=i.lat, lon=i.lon, stop_ids=list(i.stop_ids), edges=list(i.edges), lanes=list(i.lanes),
                           start=i.start.astimezone(tz), end=None if i.end is None else i.end.astimezone(tz),
                           active=i.active_at(at), source=i.source, reported_by=i.reported_by,
                           updated_by=i.updated_by, created=i.created.astimezone(tz), updated=i.updated.astimezone(tz),
                           version=i.version)

    not_found = {404: {"description": "no such incident"}}
    write_errors = {401: {"description": "no token, or not one of the config's"},
                    422: {"description": "a bad body: the field is named"},
                    429: {"description": "over the token's write rate; Retry-After says when to retry"}}

    @app.get("/incidents", responses={503: {"description": "started without --db"}})
    def incidents(limit: Limit = 100, offset: Offset = 0,
                  active: Annotated[bool | None, Query(description="true: only incidents active at `at`; false: "
                                                       "only those not active then; absent: all")] = None,
                  at: Annotated[datetime | None, Query(description=f"the time for `active` ({TIME_NOTE}); default: "
                                                       "now", examples=["2026-03-02T07:20:00"])] = None
                  ) -> IncidentPage:
        """Incidents by id, a page at a time; `active=true` keeps those in their active period at `at`."""
        when = local(at) or datetime.now(feed.timezone)
        total, page = need_store().list(active=active, at=when, limit=limit, offset=offset)
        return IncidentPage(total=total, limit=limit, offset=offset, at=when.astimezone(feed.timezone),
                            items=[out(i, when) for i in page])

    @app.get("/incidents/{incident_id}", responses=not_found)
    def incident(incident_id: int) -> IncidentOut:
        """One incident."""
        found = need_store().get(incident_id)
        if found is None:
            raise HTTPException(404, detail=f"no incident with id {incident_id}")
        return out(found, datetime.now(feed.timezone))

    @app.post("/incidents", status_code=201, responses=write_errors)
    def create_incident(body: IncidentIn, who: Writer, response: Response) -> IncidentOut:
        """Enter an incident (an operator's: source 'operator'). Answers 201 once it is on disk."""
        s = need_store()
        check_stops(body.stop_ids)
        fields = body.model_dump()
        fields["start"], fields["end"] = local(body.start), local(body.end)
        try:
            created = s.create(source=Source.OPERATOR, reported_by=who.name, **fields)
        except IncidentInvalid as exc:
            raise invalid([exc.field], exc.message) from None
        metrics.writes.labels("created").inc()
        log.info("incident %d created by %r", created.id, who.name)
        response.headers["Location"] = f"/incidents/{created.id}"
        return out(created, datetime.now(feed.timezone))

    @app.patch("/incidents/{incident_id}", responses={**write_errors, **not_found,
                                                      409: {"description": "the incident is at another version"}})
    def change_incident(incident_id: int, body: IncidentPatch, who: Writer) -> IncidentOut:
        """Change an incident: give the version you edit and the fields to change (e.g. an `end` to close it)."""
        s = need_store()
        changes = {k: getattr(body, k) for k in body.model_fields_set if k != "version"}
        if not changes:
            raise invalid([], "nothing to change: give at least one field besides version")
        for k, v in changes.items():
            if v is None and k not in NULLABLE:
                raise invalid([k], "cannot be null")
        check_stops(changes.get("stop_ids"))
        for k in ("start", "end"):
            if k in changes:
                changes[k] = local(changes[k])
        try:
            changed = s.update(incident_id, changes, version=body.version, updated_by=who.name)
        except IncidentNotFound as exc:
            raise refuse("not_found", 404, str(exc)) from None
        except VersionConflict as exc:
            raise refuse("version_conflict", 409, str(exc)) from None
        except IncidentInvalid as exc:
            raise invalid([exc.field], exc.message) from None
        metrics.writes.labels("updated").inc()
        log.info("incident %d changed to version %d by %r", incident_id, changed.version, who.name)
        return out(changed, datetime.now(feed.timezone))

    # --- traffic information (transit_api/traffic_api.py: /traffic/segments, /traffic/signs)
    from transit_api.traffic_api import traffic_router

    app.include_router(traffic_router(traffic, store, feed.timezone))
    # --- end of traffic information

    @app.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def prometheus() -> Response:
        """Prometheus metrics: requests by route and status, incidents active, writes refused by reason."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
