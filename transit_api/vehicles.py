"""Where the buses are: vehicle positions from the bus (topic ``veh``) or from GTFS-Realtime VehiclePositions,
matched to the static feed's trips, with the stop events (arrival, departure) the predictors learn from.

Time: the tracker keeps every time in the **source's clock** (seconds: simulation time in a run, Unix time
in the field) and turns it into a date and time through a :class:`Clock` (the datetime of the clock's 0).

A vehicle is matched to a trip once, when first seen (again when its ``trip`` changes): by its ``trip`` when
the feed has that timetabled trip; otherwise, on its ``line`` (route_id or route_short_name), among the trips
calling at its next stop, to the instance (service day, and start of a frequencies.txt trip) whose first
departure is nearest to its ``start``, else whose time at its next stop is nearest to now. A vehicle that
matches nothing is still served on /vehicles, without predictions.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from engine.protocol import messages as m
from transit_api.gtfs import Feed

_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Clock:
    """The datetime of the source clock's 0: ``Clock.unix()`` in the field; a service day's 07:00 in the demo."""

    origin: datetime

    @staticmethod
    def unix() -> Clock:
        return Clock(datetime(1970, 1, 1, tzinfo=UTC))

    def dt(self, t: float) -> datetime:
        return self.origin + timedelta(seconds=t)

    def t(self, when: datetime) -> float:
        return (when - self.origin).total_seconds()


def _xy(lat: float, lon: float, lat0: float) -> tuple[float, float]:
    return lon * _M_PER_DEG * math.cos(math.radians(lat0)), lat * _M_PER_DEG


class Shape:
    """A GTFS shape with cumulative distances (m, a local equirectangular projection): a position by distance
    travelled, and the distance of a point projected on it."""

    def __init__(self, points: list[tuple[float, float]]) -> None:
        self.points = points
        self.lat0 = points[0][0] if points else 0.0
        self.xy = [_xy(la, lo, self.lat0) for la, lo in points]
        self.dist = [0.0]
        for a, b in zip(self.xy, self.xy[1:]):
            self.dist.append(self.dist[-1] + math.dist(a, b))

    def at(self, d: float) -> tuple[float, float]:
        """(lat, lon) ``d`` metres along the shape (clamped to its ends)."""
        if len(self.points) == 1:
            return self.points[0]
        d = min(max(d, 0.0), self.dist[-1])
        i = min(max(bisect_right(self.dist, d) - 1, 0), len(self.points) - 2)
        seg = self.dist[i + 1] - self.dist[i]
        f = (d - self.dist[i]) / seg if seg > 0 else 0.0
        (la1, lo1), (la2, lo2) = self.points[i], self.points[i + 1]
        return la1 + f * (la2 - la1), lo1 + f * (lo2 - lo1)

    def project(self, lat: float, lon: float) -> float:
        """Distance along the shape of the point nearest to (lat, lon)."""
        p = _xy(lat, lon, self.lat0)
        best, best_d = 0.0, math.inf
        for i, (a, b) in enumerate(zip(self.xy, self.xy[1:])):
            ax, ay = a
            dx, dy = b[0] - ax, b[1] - ay
            L2 = dx * dx + dy * dy
            f = 0.0 if L2 == 0 else min(max(((p[0] - ax) * dx + (p[1] - ay) * dy) / L2, 0.0), 1.0)
            q = (ax + f * dx, ay + f * dy)
            dd = math.dist(p, q)
            if dd < best_d:
                best_d, best = dd, self.dist[i] + f * math.sqrt(L2)
        return best


@dataclass
class Call:
    """One stop of a trip instance: scheduled times in the source clock."""

    stop_id: str
    seq: int
    arrival: float
    departure: float


@dataclass
class TripRun:
    """A trip instance a vehicle runs: the trip, its service day, its start (frequency-based), its calls."""

    trip_id: str
    route_id: str
    direction_id: int | None
    service_date: date
    start_time: str  # HH:MM:SS of the instance's first departure (GTFS-RT TripDescriptor.start_time)
    headway: int | None  # frequency-based: the headway (s)
    exact_times: bool
    calls: list[Call]
    shape_id: str

    def index(self, stop_id: str) -> int | None:
        for i, c in enumerate(self.calls):
            if c.stop_id == stop_id:
                return i
        return None


@dataclass
class Vehicle:
    """What the API knows of one vehicle: its last position, its trip, and its stop events."""

    id: str
    source: str
    time: float
    pos: m.VehiclePosition
    run: TripRun | None = None
    lat: float | None = None
    lon: float | None = None
    next_index: int | None = None  # index into run.calls of next_stop
    arrivals: dict[int, float] = field(default_factory=dict)  # call index -> when it arrived (source clock)
    departures: dict[int, float] = field(default_factory=dict)
    stopped_s: float = 0.0  # seconds standing still between stops in the current segment (signals, queues)
    prev_trip: str = ""


@dataclass(frozen=True)
class StopEvent:
    """An arrival at or departure from a call of a trip (what the predictors learn from)."""

    kind: str  # "arrival" or "departure"
    vehicle: str
    run: TripRun
    index: int
    time: float
    stopped_s: float = 0.0  # arrivals: seconds the vehicle stood still on the way from the previous call


class VehicleTracker:
    """Vehicles by id from :class:`~engine.protocol.messages.VehicleBatch` messages; ``update`` returns the stop
    events of the batch. Vehicles absent from their source's next batch are gone."""

    def __init__(self, feed: Feed, clock: Clock) -> None:
        self.feed = feed
        self.clock = clock
        self.vehicles: dict[str, Vehicle] = {}
        self.now: float | None = None  # the latest batch's time (the API's "now" in a simulated demo)
        self.batches = 0
        self.unmatched = 0
        self.seen_runs: set[tuple[str, str, str]] = set()  # trip instances a vehicle has run (or runs)
        self.run_vehicle: dict[tuple[str, str, str], str] = {}  # trip instance -> the vehicle that ran it (last)
        self._shapes: dict[str, Shape] = {sid: Shape(pts) for sid, pts in feed.shapes.items() if pts}
        self._by_route: dict[str, str] = {}
        for r in feed.routes.values():
            self._by_route[r.route_id] = r.route_id
            if r.short_name:
                self._by_route.setdefault(r.short_name, r.route_id)

    # ---- matching
    def _instances(self, trip_id: str, day: date) -> Iterable[TripRun]:
        feed = self.feed
        trip = feed.trips[trip_id]
        times = feed.stop_times[trip_id]
        if any(st.arrival is None and st.departure is None for st in times):
            times = [st for st in times if st.arrival is not None or st.departure is not None]
        zero = self.clock.t(feed.service_day_start(day))
        first = times[0].departure if times[0].departure is not None else times[0].arrival
        freqs = feed.frequencies.get(trip_id)
        starts = [(first, None, True)] if not freqs else [
            (s, fr.headway, fr.exact_times) for fr in freqs for s in range(fr.start, fr.end, fr.headway)]
        for s, headway, exact in starts:
            off = s - first
            calls = [Call(st.stop_id, st.stop_sequence,
                          zero + off + (st.arrival if st.arrival is not None else st.departure),
                          zero + off + (st.departure if st.departure is not None else st.arrival)) for st in times]
            yield TripRun(trip_id, trip.route_id, trip.direction_id, day, _hms(s), headway, exact, calls,
                          trip.shape_id)

    def _days(self, t: float) -> list[date]:
        local = self.clock.dt(t).astimezone(self.feed.timezone).date()
        return [local + timedelta(days=k) for k in (-1, 0)]

    def match(self, p: m.VehiclePosition, t: float) -> TripRun | None:
        feed = self.feed
        candidates: list[str]
        if p.trip in feed.trips:
            candidates = [p.trip]
        else:
            route = self._by_route.get(p.line)
            if route is None:
                return None
            candidates = [tid for tid, tr in feed.trips.items() if tr.route_id == route
                          and (not p.next_stop or any(st.stop_id == p.next_stop for st in feed.stop_times[tid]))]
        best, best_cost = None, math.inf
        for tid in candidates:
            for day in self._days(t):
                if not feed.active(feed.trips[tid].service_id, day):
                    continue
                for run in self._instances(tid, day):
                    i = run.index(p.next_stop) if p.next_stop else 0
                    if i is None:
                        continue
                    if p.start and (p.trip not in feed.trips or feed.frequencies.get(tid)):
                        cost = abs(run.calls[0].departure - p.start)
                    else:
                        cost = abs(run.calls[i].arrival - t)
                    if cost < best_cost:
                        best, best_cost = run, cost
        return best

    def upcoming(self, now: float, ahead: float = 1800.0, behind: float = 600.0) -> list[TripRun]:
        """The trip instances whose first departure is within [now - behind, now + ahead] that no vehicle has run
        or runs: the trips not started yet (or late to start)."""
        running = self.seen_runs
        out = []
        for day in self._days(now):
            for tid, trip in self.feed.trips.items():
                if not self.feed.active(trip.service_id, day):
                    continue
                for run in self._instances(tid, day):
                    if now - behind <= run.calls[0].departure <= now + ahead and run_key(run) not in running:
                        out.append(run)
        return out

    # ---- updates
    def update(self, batch: m.VehicleBatch) -> list[StopEvent]:
        t = float(batch.time)
        if not math.isfinite(t):
            return []
        self.now = t if self.now is None else max(self.now, t)
        self.batches += 1
        events: list[StopEvent] = []
        seen = set()
        for p in batch.vehicles:
            seen.add(p.vehicle)
            v = self.vehicles.get(p.vehicle)
            if v is None or v.prev_trip != p.trip or (v.run is None and p.trip):
                v = Vehicle(p.vehicle, batch.source, t, p, prev_trip=p.trip)
                v.run = self.match(p, t)
                if v.run is None:
                    self.unmatched += 1
                else:
                    self.seen_runs.add(run_key(v.run))
                    self.run_vehicle[run_key(v.run)] = p.vehicle
                self.vehicles[p.vehicle] = v
            dt = t - v.time
            v.time, v.pos, v.source = t, p, batch.source
            self._place(v)
            events.extend(self._events(v, p, t, dt))
        for vid in [vid for vid, v in self.vehicles.items() if v.source == batch.source and vid not in seen]:
            del self.vehicles[vid]
        return events

    def _place(self, v: Vehicle) -> None:
        p = v.pos
        if math.isfinite(p.lat) and math.isfinite(p.lon):
            v.lat, v.lon = p.lat, p.lon
            return
        shape = self._shapes.get(v.run.shape_id) if v.run else None
        if shape is not None:
            v.lat, v.lon = shape.at(p.odometer)
        else:
            v.lat = v.lon = None

    def _events(self, v: Vehicle, p: m.VehiclePosition, t: float, dt: float) -> list[StopEvent]:
        run = v.run
        if run is None:
            return []
        out = []
        i = run.index(p.next_stop) if p.next_stop else len(run.calls)
        if i is None:
            return []
        # departures: every call before the next one that it arrived at and has not left
        for k in sorted(v.arrivals):
            if k not in v.departures and (k < i or (k == i and not p.at_stop)):
                v.departures[k] = t
                out.append(StopEvent("departure", v.id, run, k, t))
                v.stopped_s = 0.0
        if i < len(run.calls) and p.at_stop and i not in v.arrivals:
            v.arrivals[i] = t
            out.append(StopEvent("arrival", v.id, run, i, t, v.stopped_s))
        elif not p.at_stop and dt > 0 and p.speed < 0.5:
            v.stopped_s += dt
        v.next_index = i if i < len(run.calls) else None
        return out


def run_key(run: TripRun) -> tuple[str, str, str]:
    """A trip instance: (trip_id, service date, start time)."""
    return run.trip_id, run.service_date.isoformat(), run.start_time


def _hms(s: int) -> str:
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ---- GTFS-Realtime VehiclePositions as a source
def batch_from_gtfs_rt(data: bytes, feed: Feed, source: str = "gtfs-rt") -> m.VehicleBatch:
    """A :class:`VehicleBatch` (Unix-time clock) from a GTFS-Realtime FeedMessage's VehiclePositions.

    ``next_stop`` is the entity's stop_id, or the trip's stop at ``current_stop_sequence``; ``at_stop`` is
    ``STOPPED_AT``; the odometer is the position projected on the trip's shape when it has none. Raises
    ``ValueError`` naming the problem for bytes that are not a FeedMessage."""
    from google.protobuf.message import DecodeError
    from google.transit import gtfs_realtime_pb2 as rt

    msg = rt.FeedMessage()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise ValueError(f"not a GTFS-Realtime FeedMessage: {exc}") from None
    shapes: dict[str, Shape] = {}
    out = []
    for ent in msg.entity:
        if not ent.HasField("vehicle"):
            continue
        vp = ent.vehicle
        vid = vp.vehicle.id or ent.id
        trip = vp.trip.trip_id
        lat = vp.position.latitude if vp.HasField("position") else math.nan
        lon = vp.position.longitude if vp.HasField("position") else math.nan
        next_stop = vp.stop_id
        if not next_stop and trip in feed.stop_times and vp.HasField("current_stop_sequence"):
            next_stop = next((st.stop_id for st in feed.stop_times[trip]
                              if st.stop_sequence >= vp.current_stop_sequence), "")
        odometer = vp.position.odometer if vp.HasField("position") and vp.position.HasField("odometer") else math.nan
        stop_dist = 0.0
        tr = feed.trips.get(trip)
        if tr is not None and tr.shape_id in feed.shapes and math.isfinite(lat):
            shape = shapes.get(tr.shape_id) or shapes.setdefault(tr.shape_id, Shape(feed.shapes[tr.shape_id]))
            along = shape.project(lat, lon)
            if not math.isfinite(odometer):
                odometer = along
            stop = feed.stops.get(next_stop)
            if stop is not None and stop.lat is not None:
                stop_dist = max(0.0, shape.project(stop.lat, stop.lon) - along)
        out.append(m.VehiclePosition(
            vehicle=vid, line=vp.trip.route_id, trip=trip, x=math.nan, y=math.nan, lat=lat, lon=lon,
            odometer=odometer if math.isfinite(odometer) else 0.0,
            speed=vp.position.speed if vp.HasField("position") else 0.0, next_stop=next_stop, stop_dist=stop_dist,
            at_stop=vp.current_status == rt.VehiclePosition.STOPPED_AT))
    t = float(msg.header.timestamp) if msg.header.timestamp else math.nan
    return m.VehicleBatch(source=source, time=t, vehicles=out)
