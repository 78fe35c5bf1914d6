"""The API's real-time routes: /vehicles, /routes/{id}/headways and the GTFS-Realtime feeds (protobuf, or JSON
with ?format=json). ``router(feed, live, store)`` builds them; ``create_app`` includes it."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from transit_api import gtfs_rt
from transit_api.gtfs import Feed
from transit_api.incidents import IncidentStore
from transit_api.realtime import Realtime

PROTOBUF = "application/x-protobuf"
Format = Annotated[Literal["protobuf", "json"], Query(description="protobuf (the GTFS-Realtime wire format) or json "
                                                      "(the same message as JSON, for people)")]


class VehicleOut(BaseModel):
    vehicle_id: str = Field(examples=["bus_K1E_03"])
    trip_id: str | None = Field(description="the GTFS trip it runs (null: not matched to the feed)",
                                examples=["bus_K1E_03"])
    route_id: str | None = Field(examples=["K1"])
    direction_id: int | None
    start_date: str | None = Field(examples=["2026-03-02"])
    start_time: str | None = Field(description="start of the trip instance (frequency-based trips)",
                                   examples=["07:17:40"])
    lat: float | None = Field(examples=[-0.030072])
    lon: float | None = Field(examples=[109.334962])
    speed: float = Field(description="m/s")
    odometer: float = Field(description="m driven since the start of the trip")
    next_stop_id: str | None = Field(examples=["K1E_3"])
    next_stop_sequence: int | None
    at_stop: bool = Field(description="standing at next_stop_id")
    delay_s: float | None = Field(description="predicted minus scheduled arrival at the next stop")
    timestamp: datetime = Field(description="when the position was taken")
    source: str = Field(description="who reported it (sumo, gtfs-rt, an AVL gateway)")


class VehiclePage(BaseModel):
    total: int
    at: datetime = Field(description="now (in a simulated demo: the simulation's time)")
    items: list[VehicleOut]


class GapOut(BaseModel):
    leader: str
    follower: str
    stop_id: str = Field(description="where the gap is measured: the leader's next stop")
    gap_s: float = Field(description="follower's predicted arrival there minus the leader's (actual or "
                         "predicted)")
    bunched: bool = Field(description="gap under a quarter of the scheduled headway")


class DirectionHeadwaysOut(BaseModel):
    direction_id: int | None
    scheduled_headway_s: float | None
    vehicles: list[str] = Field(description="in order along the line, the one furthest ahead first")
    gaps: list[GapOut]
    gap_cv: float | None = Field(description="regularity: coefficient of variation of the gaps (0: even)")
    bunched_pairs: int
    observed_headways_s: dict[str, list[float]] = Field(description="per stop, the headways between the last "
                                                        "departures seen there")
    observed_cv: float | None


class HeadwaysOut(BaseModel):
    route_id: str
    at: datetime
    bunching_fraction: float = Field(0.25, description="bunched: gap < this fraction of the headway")
    directions: list[DirectionHeadwaysOut]


def _pb_or_json(msg, fmt: str) -> Response:
    if fmt == "json":
        import json

        return Response(json.dumps(gtfs_rt.to_json(msg)), media_type="application/json")
    return Response(msg.SerializeToString(), media_type=PROTOBUF)


def router(feed: Feed, live: Realtime | None, store: IncidentStore | None) -> APIRouter:
    from transit_api.headways import BUNCHING_FRACTION, route_headways

    r = APIRouter()
    agency = feed.agencies[0].get("agency_id", "") if feed.agencies else ""

    def need_live() -> Realtime:
        if live is None:
            raise HTTPException(503, detail="no vehicle source: start lintas api with --bus-out ENDPOINT, "
                                "--vehicle-positions FILE_OR_URL or --demo")
        return live

    @r.get("/vehicles", responses={503: {"description": "started without a vehicle source"}})
    def vehicles(route_id: Annotated[str | None, Query(description="only this route's vehicles")] = None
                 ) -> VehiclePage:
        """The vehicles known now: position (lat/lon from the source, or on the GTFS shape by odometer), trip,
        next stop, delay there."""
        lv = need_live()
        if route_id is not None and route_id not in feed.routes:
            raise HTTPException(404, detail=f"no route with route_id {route_id!r} in the feed")
        items = []
        with lv.lock:
            for v in lv.vehicles():
                run = v.run
                if route_id is not None and (run is None or run.route_id != route_id):
                    continue
                nxt = run.calls[v.next_index] if run is not None and v.next_index is not None else None
                pred = next((p for p in lv.predictions.get(v.id, []) if p.index == v.next_index), None)
                items.append(VehicleOut(
                    vehicle_id=v.id, trip_id=run.trip_id if run else None, route_id=run.route_id if run else None,
                    direction_id=run.direction_id if run else None,
                    start_date=run.service_date.isoformat() if run else None,
                    start_time=run.start_time if run else None, lat=v.lat, lon=v.lon,
                    speed=v.pos.speed if math.isfinite(v.pos.speed) else 0.0, odometer=v.pos.odometer,
                    next_stop_id=nxt.stop_id if nxt else None, next_stop_sequence=nxt.seq if nxt else None,
                    at_stop=v.pos.at_stop, delay_s=round(pred.arrival - pred.scheduled, 1) if pred else None,
                    timestamp=lv.clock.dt(v.time).astimezone(feed.timezone), source=v.source))
            at = lv.now()
        return VehiclePage(total=len(items), at=at, items=items)

    @r.get("/routes/{route_id}/headways", responses={404: {"description": "no such route"},
                                                     503: {"description": "started without a vehicle source"}})
    def headways(route_id: str) -> HeadwaysOut:
        """Headway regularity of a route now: per direction, the vehicles in order, the gaps between them, the
        pairs bunched (closer than a quarter of the scheduled headway), the headways seen at each stop."""
        if route_id not in feed.routes:
            raise HTTPException(404, detail=f"no route with route_id {route_id!r} in the feed")
        lv = need_live()
        dirs = route_headways(lv, route_id)
        return HeadwaysOut(route_id=route_id, at=lv.now(), bunching_fraction=BUNCHING_FRACTION, directions=[
            DirectionHeadwaysOut(direction_id=d.direction_id, scheduled_headway_s=d.scheduled_headway_s,
                                 vehicles=d.vehicles, gaps=[GapOut(**g.__dict__) for g in d.gaps], gap_cv=d.gap_cv,
                                 bunched_pairs=d.bunched_pairs, observed_headways_s=d.observed,
                                 observed_cv=d.observed_cv) for d in dirs])

    feed_doc = {200: {"content": {PROTOBUF: {}, "application/json": {}}}}

    @r.get("/gtfs-rt/trip-updates", response_class=Response, responses=feed_doc)
    def trip_updates(format: Format = "protobuf") -> Response:
        """GTFS-Realtime TripUpdates: every tracked trip's predicted arrivals and departures, with uncertainty."""
        return _pb_or_json(gtfs_rt.trip_updates(need_live()), format)

    @r.get("/gtfs-rt/vehicle-positions", response_class=Response, responses=feed_doc)
    def vehicle_positions(format: Format = "protobuf") -> Response:
        """GTFS-Realtime VehiclePositions."""
        return _pb_or_json(gtfs_rt.vehicle_positions(need_live()), format)

    @r.get("/gtfs-rt/alerts", response_class=Response, responses=feed_doc)
    def alerts(format: Format = "protobuf") -> Response:
        """GTFS-Realtime Alerts: the incidents active now or later (from the incident store)."""
        now = live.now() if live is not None else datetime.now(feed.timezone)
        return _pb_or_json(gtfs_rt.alerts(store, now, agency, set(feed.stops)), format)

    return r


def arrivals_with_predictions(feed: Feed, live: Realtime, stop_id: str, when: datetime, limit: int) -> list:
    """The next arrivals at a stop from ``when``: the predictions (source 'prediction': of the vehicles on their way,
    with their ``vehicle_id``, and of the trips starting within 30 min, from the learned history, without one),
    then the schedule's arrivals no prediction covers (source 'schedule'). On a headway-based route, the
    schedule's approximate arrivals before the last predicted one of the same direction are covered too (the
    vehicles actually ahead replace them)."""
    from transit_api.app import ArrivalOut, _arrival

    preds = live.stop_predictions(stop_id)
    out: list[tuple[datetime, ArrivalOut]] = []
    covered: set[tuple[str, int]] = set()  # (trip_id, scheduled arrival unix s)
    latest_headway: dict[tuple[str, int | None], datetime] = {}
    with live.lock:
        for p in preds:
            run = p.run
            if run is None:
                continue
            pred_at = live.clock.dt(p.arrival).astimezone(feed.timezone)
            sched = live.clock.dt(p.scheduled).astimezone(feed.timezone)
            covered.add((run.trip_id, round(sched.timestamp())))
            if run.headway is not None:
                key = (run.route_id, run.direction_id)
                latest_headway[key] = max(latest_headway.get(key, pred_at), pred_at)
            if pred_at < when:
                continue
            trip = feed.trips[run.trip_id]
            c = run.calls[p.index]
            out.append((pred_at, ArrivalOut(
                trip_id=run.trip_id, route_id=run.route_id, route_short_name=feed.routes[run.route_id].short_name,
                headsign=trip.headsign, stop_sequence=c.seq, service_date=run.service_date.isoformat(),
                scheduled_arrival=sched, scheduled_departure=live.clock.dt(c.departure).astimezone(feed.timezone),
                predicted_arrival=pred_at, delay_s=round(p.arrival - p.scheduled, 1), uncertainty_s=p.uncertainty,
                source="prediction", headway_s=run.headway if not run.exact_times else None,
                last_stop=p.index == len(run.calls) - 1, vehicle_id=p.vehicle or None)))
    for a in feed.arrivals(stop_id, when, limit + len(covered)):
        if (a.trip_id, round(a.arrival.timestamp())) in covered:
            continue
        trip = feed.trips[a.trip_id]
        last = latest_headway.get((trip.route_id, trip.direction_id))
        if a.headway is not None and last is not None and a.arrival <= last:
            continue
        out.append((a.arrival, _arrival(feed, a)))
    out.sort(key=lambda it: it[0])
    return [it[1] for it in out[:limit]]


class RealtimeCollector:
    """/metrics of the vehicle source: messages taken and dropped (malformed, newer version, unreadable feed),
    vehicles known (matched to a trip or not), trip instances predicted."""

    def __init__(self, live: Realtime) -> None:
        self.live = live

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        lv = self.live
        with lv.lock:
            received, dropped = lv.received, lv.dropped
            matched = sum(v.run is not None for v in lv.tracker.vehicles.values())
            unmatched = len(lv.tracker.vehicles) - matched
            predicted = len(lv.predictions)
        msgs = CounterMetricFamily("lintas_api_realtime_messages", "messages from the vehicle source (the bus, or "
                                   "GTFS-Realtime reads), by result", labels=["result"])
        msgs.add_metric(["taken"], received)
        msgs.add_metric(["dropped"], dropped)
        yield msgs
        veh = GaugeMetricFamily("lintas_api_vehicles", "vehicles known now, matched to a trip of the feed or not",
                                labels=["matched"])
        veh.add_metric(["true"], matched)
        veh.add_metric(["false"], unmatched)
        yield veh
        yield GaugeMetricFamily("lintas_api_trips_predicted", "trip instances with predictions now (vehicles on "
                                "their way and trips starting within 30 min)", value=predicted)

