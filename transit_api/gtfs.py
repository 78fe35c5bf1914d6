"""A static GTFS feed: loaded from a folder or a zip, checked, and asked for the scheduled arrivals at a stop.

:func:`load_feed` reads agency, stops, routes, trips, stop_times and calendar (or calendar_dates), and
calendar_dates, shapes and frequencies when present. A broken feed raises :class:`GtfsError`, which lists
every problem found as a :class:`GtfsIssue` naming the file, the line (the header is line 1) and the field:
a missing required file or column, a value that does not parse (a time such as ``25:61:00``, a date, a
number), a duplicate id, a reference to a stop, trip, route, service, shape or agency that does not exist,
a repeated ``stop_sequence`` within a trip, times going backwards along a trip.

Times are seconds after "noon minus 12 h" of the service day, as GTFS defines them, so ``25:10:00`` (a trip
running past midnight) is valid. Rows of a trip need not be in order in stop_times.txt (GTFS does not ask
it); the loader orders them by ``stop_sequence``.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Arrival", "Feed", "Frequency", "GtfsError", "GtfsIssue", "Route", "Service", "Stop", "StopTime",
           "Trip", "format_time", "load_feed", "parse_time"]

#: files a feed must have (calendar.txt may be replaced by calendar_dates.txt, as GTFS allows)
REQUIRED_FILES = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
#: the columns each file must have
REQUIRED_COLUMNS = {
    "agency.txt": ("agency_name", "agency_url", "agency_timezone"),
    "stops.txt": ("stop_id",),
    "routes.txt": ("route_id", "route_type"),
    "trips.txt": ("route_id", "service_id", "trip_id"),
    "stop_times.txt": ("trip_id", "stop_id", "stop_sequence", "arrival_time", "departure_time"),
    "calendar.txt": ("service_id", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
                     "start_date", "end_date"),
    "calendar_dates.txt": ("service_id", "date", "exception_type"),
    "shapes.txt": ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence"),
    "frequencies.txt": ("trip_id", "start_time", "end_time", "headway_secs"),
}
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: the problems listed in the message of a GtfsError (all of them stay in .issues)
SHOWN_ISSUES = 20

_TIME = re.compile(r"^(\d{1,3}):([0-5]\d):([0-5]\d)$")
_DATE = re.compile(r"^\d{8}$")


@dataclass(frozen=True, slots=True)
class GtfsIssue:
    """One problem of a feed: the file, the line in it (1 is the header; None: the file as a whole) and the
    field (None: the row or the file as a whole)."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f" line {self.line}"
        if self.field is not None:
            where += f", field {self.field}"
        return f"{where}: {self.message}"


class GtfsError(ValueError):
    """A feed that cannot be used: every problem found, each naming file, line and field."""

    def __init__(self, source: str, issues: list[GtfsIssue]):
        self.source = source
        self.issues = issues
        shown = "\n".join(f"  {issue}" for issue in issues[:SHOWN_ISSUES])
        more = f"\n  ... and {len(issues) - SHOWN_ISSUES} more" if len(issues) > SHOWN_ISSUES else ""
        super().__init__(f"GTFS feed {source}: {len(issues)} problem(s)\n{shown}{more}")


def parse_time(text: str) -> int:
    """Seconds of a GTFS time ``H:MM:SS`` (hours may pass 24); ValueError for anything else."""
    m = _TIME.match(text.strip())
    if m is None:
        raise ValueError(f"bad time {text!r} (want H:MM:SS, minutes and seconds 00-59; hours may pass 24)")
    return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])


def format_time(seconds: int) -> str:
    """The GTFS text of a time in seconds (``HH:MM:SS``, hours past 24 kept)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _parse_date(text: str) -> date:
    if not _DATE.match(text.strip()):
        raise ValueError(f"bad date {text!r} (want YYYYMMDD)")
    try:
        return datetime.strptime(text.strip(), "%Y%m%d").date()
    except ValueError:
        raise ValueError(f"bad date {text!r} (no such day)") from None


@dataclass(frozen=True, slots=True)
class Stop:
    stop_id: str
    name: str
    lat: float | None
    lon: float | None
    code: str = ""
    desc: str = ""
    location_type: int = 0
    parent_station: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    route_id: str
    agency_id: str
    short_name: str
    long_name: str
    route_type: int
    color: str = ""
    text_color: str = ""
    desc: str = ""


@dataclass(frozen=True, slots=True)
class Trip:
    trip_id: str
    route_id: str
    service_id: str
    headsign: str = ""
    direction_id: int | None = None
    shape_id: str = ""


@dataclass(frozen=True, slots=True)
class StopTime:
    trip_id: str
    stop_id: str
    stop_sequence: int
    arrival: int | None  # seconds after noon minus 12 h of the service day; None: not a timepoint
    departure: int | None


@dataclass(frozen=True, slots=True)
class Service:
    service_id: str
    days: tuple[bool, ...] = (False,) * 7  # Monday first
    start: date | None = None  # None: calendar_dates.txt alone defines the service
    end: date | None = None


@dataclass(frozen=True, slots=True)
class Frequency:
    """Trips of ``trip_id`` start every ``headway`` seconds from ``start`` until before ``end``; its stop_times
    give the times relative to the first stop. ``exact_times`` False: the headway is kept, the times are not."""

    trip_id: str
    start: int
    end: int
    headway: int
    exact_times: bool


@dataclass(frozen=True, slots=True)
class Arrival:
    """One scheduled call of a trip at a stop (a trip of a frequency-based line: one of its starts)."""

    trip_id: str
    route_id: str
    headsign: str
    stop_sequence: int
    service_date: date
    arrival: datetime  # in the feed's time zone
    departure: datetime
    headway: int | None  # frequency-based (exact_times 0): the headway, the times are approximate
    last_stop: bool


@dataclass(slots=True)
class Feed:
    """A loaded, checked static feed."""

    agencies: list[dict[str, str]]
    stops: dict[str, Stop]
    routes: dict[str, Route]
    trips: dict[str, Trip]
    stop_times: dict[str, list[StopTime]]  # per trip, by stop_sequence
    services: dict[str, Service]
    exceptions: dict[str, dict[date, int]]  # service -> date -> 1 (added) or 2 (removed)
    shapes: dict[str, list[tuple[float, float]]]
    frequencies: dict[str, list[Frequency]]
    timezone: ZoneInfo
    calls: dict[str, list[StopTime]] = field(default_factory=dict)  # per stop: every stop_time there
    # per stop, every call (each start of a headway-based trip) sorted by (arrival s, trip_id): the arrivals' index
    _timeline: dict[str, tuple[list[int], list[tuple]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        calls: dict[str, list[StopTime]] = defaultdict(list)
        for times in self.stop_times.values():
            for st in times:
                calls[st.stop_id].append(st)
        self.calls = dict(calls)
        for stop_id, sts in self.calls.items():
            rows = []
            for st in sts:
                trip = self.trips[st.trip_id]
                last = self.stop_times[st.trip_id][-1].stop_sequence == st.stop_sequence
                for arr, dep, headway in self._instances(st):
                    rows.append((arr, trip.trip_id, dep, headway, trip, st.stop_sequence, last))
            rows.sort(key=lambda r: (r[0], r[1]))
            self._timeline[stop_id] = ([r[0] for r in rows], rows)

    # ---- services
    def active(self, service_id: str, day: date) -> bool:
        """Whether the service runs on ``day`` (calendar.txt, then calendar_dates.txt's exceptions)."""
        exc = self.exceptions.get(service_id, {}).get(day)
        if exc is not None:
            return exc == 1
        svc = self.services.get(service_id)
        if svc is None or svc.start is None or svc.end is None:
            return False
        return svc.start <= day <= svc.end and svc.days[day.weekday()]

    def service_day_start(self, day: date) -> datetime:
        """Noon minus 12 h of ``day`` in the feed's time zone, the zero of GTFS times (in UTC)."""
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=self.timezone)
        return noon.astimezone(UTC) - timedelta(hours=12)

    def routes_at(self, stop_id: str) -> list[str]:
        """The routes calling at a stop, sorted."""
        return sorted({self.trips[st.trip_id].route_id for st in self.calls.get(stop_id, ())})

    # ---- arrivals
    def _instances(self, st: StopTime) -> Iterator[tuple[int, int, int | None]]:
        """(arrival, departure, headway or None) of each start of the trip calling at ``st``, in seconds."""
        arr = st.arrival if st.arrival is not None else st.departure
        dep = st.departure if st.departure is not None else st.arrival
        if arr is None or dep is None:
            return
        freqs = self.frequencies.get(st.trip_id)
        if not freqs:
            yield arr, dep, None
            return
        first = self.stop_times[st.trip_id][0]
        t0 = first.departure if first.departure is not None else first.arrival
        for fr in freqs:
            for start in range(fr.start, fr.end, fr.headway):
                yield start + arr - t0, start + dep - t0, (None if fr.exact_times else fr.headway)

    def arrivals(self, stop_id: str, at: datetime, limit: int = 10) -> list[Arrival]:
        """The next ``limit`` scheduled arrivals at a stop at or after ``at`` (aware; naive is read in the feed's
        time zone), from service days that can reach it (trips past midnight belong to the day before)."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=self.timezone)
        arrs, rows = self._timeline.get(stop_id, ((), ()))
        if not rows:
            return []
        latest = arrs[-1]
        local = at.astimezone(self.timezone).date()
        found: list[tuple[datetime, str, Arrival]] = []
        for k in range(-(latest // 86400 + 1), 2):
            day = local + timedelta(days=k)
            zero = self.service_day_start(day)
            if len(found) >= limit and sorted(it[0] for it in found)[limit - 1] < zero + timedelta(seconds=arrs[0]):
                break  # this day's calls (and the later days') all come after the ``limit`` found already
            taken = 0
            # the calls of this service day from ``at`` on, in order: the first ``limit`` running that day
            for i in range(bisect_left(arrs, (at - zero).total_seconds()), len(rows)):
                arr, trip_id, dep, headway, trip, seq, last = rows[i]
                if not self.active(trip.service_id, day):
                    continue
                when = zero + timedelta(seconds=arr)
                item = Arrival(trip_id, trip.route_id, trip.headsign, seq, day, when.astimezone(self.timezone),
                               (zero + timedelta(seconds=dep)).astimezone(self.timezone), headway, last)
                found.append((when, trip_id, item))
                taken += 1
                if taken == limit:
                    break
        found.sort(key=lambda it: (it[0], it[1]))
        return [it[2] for it in found[:limit]]


# ======================================================================================
# reading
# ======================================================================================
class _Source:
    """The text files of a feed folder or zip."""

    def __init__(self, path: Path):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        if path.is_dir():
            self.names = {p.name for p in path.iterdir() if p.is_file()}
        elif path.is_file() and zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            names = [n for n in self._zip.namelist() if not n.endswith("/")]
            if "agency.txt" not in names:  # a zip of a folder: the folder that holds agency.txt
                inner = [n[: -len("agency.txt")] for n in names if n.endswith("/agency.txt")]
                if len(inner) == 1:
                    self._prefix = inner[0]
            self.names = {n[len(self._prefix):] for n in names if n.startswith(self._prefix)}
        else:
            raise GtfsError(str(path), [GtfsIssue(str(path), None, None,
                                                  "not a folder or a zip file" if path.exists() else "no such file")])

    def rows(self, name: str) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
        """The header and the rows (line number, values stripped) of one file."""
        raw = self._zip.read(self._prefix + name) if self._zip is not None else (self.path / name).read_bytes()
        text = raw.decode("utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip() for h in next(reader, [])]

        def gen() -> Iterator[tuple[int, dict[str, str]]]:
            for row in reader:
                if not row or all(not v.strip() for v in row):
                    continue
                yield reader.line_num, {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header)}

        return header, gen()


class _Loader:
    def __init__(self, source: _Source):
        self.src = source
        self.issues: list[GtfsIssue] = []

    def issue(self, file: str, line: int | None, fld: str | None, message: str) -> None:
        self.issues.append(GtfsIssue(file, line, fld, message))

    def table(self, name: str, required: bool) -> list[tuple[int, dict[str, str]]] | None:
        """The rows of a file, None (and an issue if it is required) when it or a required column is missing."""
        if name not in self.src.names:
            if required:
                self.issue(name, None, None, "required file is missing")
            return None
        try:
            header, rows = self.src.rows(name)
            out = list(rows)
        except (UnicodeDecodeError, csv.Error) as exc:
            self.issue(name, None, None, f"cannot be read as UTF-8 CSV: {exc}")
            return None
        missing = [c for c in REQUIRED_COLUMNS.get(name, ()) if c not in header]
        for col in missing:
            self.issue(name, 1, col, "required column is missing")
        return None if missing else out

    def need(self, file: str, line: int, row: dict[str, str], fld: str) -> str:
        value = row.get(fld, "")
        if not value:
            self.issue(file, line, fld, "required value is empty")
        return value

    def convert(self, file: str, line: int, row: dict[str, str], fld: str, parse, default=None, check=None,
                what: str = ""):
        """``parse(value)`` of an optional field (``default`` when empty), an issue when it fails or ``check``
        rejects it."""
        text = row.get(fld, "")
        if not text:
            return default
        try:
            value = parse(text)
        except ValueError as exc:
            msg = str(exc) if parse in (parse_time, _parse_date) else f"bad value {text!r} (want {what})"
            self.issue(file, line, fld, msg)
            return default
        if check is not None and not check(value):
            self.issue(file, line, fld, f"bad value {text!r} (want {what})")
            return default
        return value

    def unique(self, seen: dict[str, int], file: str, line: int, fld: str, key: str) -> bool:
        if key in seen:
            self.issue(file, line, fld, f"duplicate {fld} {key!r} (first on line {seen[key]})")
            return False
        seen[key] = line
        return True

    def load(self) -> Feed:
        f = "agency.txt"
        agencies: list[dict[str, str]] = []
        timezone: ZoneInfo | None = None
        for line, row in self.table(f, True) or ():
            for col in REQUIRED_COLUMNS[f]:
                self.need(f, line, row, col)
            tz = row.get("agency_timezone", "")
            if tz:
                try:
                    zone = ZoneInfo(tz)
                except (ZoneInfoNotFoundError, ValueError):
                    self.issue(f, line, "agency_timezone", f"unknown time zone {tz!r} (want an IANA name such as "
                               "'Asia/Jakarta')")
                else:
                    if timezone is not None and zone.key != timezone.key:
                        self.issue(f, line, "agency_timezone", f"{tz!r} differs from the first agency's "
                                   f"{timezone.key!r} (GTFS wants one time zone for all agencies)")
                    timezone = timezone or zone
            agencies.append(row)
        agency_ids = {a.get("agency_id", "") for a in agencies}
        if len(agencies) > 1 and "" in agency_ids:
            self.issue(f, None, "agency_id", "required when the feed has more than one agency")

        f = "stops.txt"
        stops: dict[str, Stop] = {}
        seen: dict[str, int] = {}
        parents: list[tuple[int, str]] = []
        for line, row in self.table(f, True) or ():
            sid = self.need(f, line, row, "stop_id")
            ltype = self.convert(f, line, row, "location_type", int, 0, lambda v: 0 <= v <= 4, "0-4")
            lat = self.convert(f, line, row, "stop_lat", float, None, lambda v: -90 <= v <= 90, "a latitude")
            lon = self.convert(f, line, row, "stop_lon", float, None, lambda v: -180 <= v <= 180, "a longitude")
            if ltype in (0, 1, 2):
                for col, value in (("stop_name", row.get("stop_name", "")), ("stop_lat", lat), ("stop_lon", lon)):
                    if value in ("", None) and (col == "stop_name" or row.get(col, "") == ""):
                        self.issue(f, line, col, "required value is empty (location_type 0, 1 and 2 need it)")
            if row.get("parent_station"):
                parents.append((line, row["parent_station"]))
            if sid and self.unique(seen, f, line, "stop_id", sid):
                stops[sid] = Stop(sid, row.get("stop_name", ""), lat, lon, row.get("stop_code", ""),
                                  row.get("stop_desc", ""), ltype, row.get("parent_station", ""))
        for line, parent in parents:
            if parent not in stops:
                self.issue(f, line, "parent_station", f"unknown stop_id {parent!r}")

        f = "routes.txt"
        routes: dict[str, Route] = {}
        seen = {}
        for line, row in self.table(f, True) or ():
            rid = self.need(f, line, row, "route_id")
            rtype = self.convert(f, line, row, "route_type", int, None, None, "an integer route type")
            if not row.get("route_type"):
                self.issue(f, line, "route_type", "required value is empty")
            if not row.get("route_short_name") and not row.get("route_long_name"):
                self.issue(f, line, "route_short_name", "route_short_name or route_long_name is required")
            aid = row.get("agency_id", "")
            if aid and aid not in agency_ids:
                self.issue(f, line, "agency_id", f"unknown agency_id {aid!r}")
            elif not aid and len(agencies) > 1:
                self.issue(f, line, "agency_id", "required value is empty (the feed has more than one agency)")
            for col in ("route_color", "route_text_color"):
                if row.get(col) and not re.fullmatch(r"[0-9A-Fa-f]{6}", row[col]):
                    self.issue(f, line, col, f"bad value {row[col]!r} (want 6 hex digits such as FF8C00)")
            if rid and self.unique(seen, f, line, "route_id", rid):
                routes[rid] = Route(rid, aid, row.get("route_short_name", ""), row.get("route_long_name", ""),
                                    rtype if rtype is not None else -1, row.get("route_color", ""),
                                    row.get("route_text_color", ""), row.get("route_desc", ""))

        services: dict[str, Service] = {}
        exceptions: dict[str, dict[date, int]] = defaultdict(dict)
        has_dates = "calendar_dates.txt" in self.src.names
        f = "calendar.txt"
        seen = {}
        for line, row in self.table(f, not has_dates) or ():
            sid = self.need(f, line, row, "service_id")
            days = tuple(self.convert(f, line, row, d, int, 0, lambda v: v in (0, 1), "0 or 1") == 1 for d in DAYS)
            for d in DAYS:
                self.need(f, line, row, d)
            start = self.convert(f, line, row, "start_date", _parse_date)
            end = self.convert(f, line, row, "end_date", _parse_date)
            for col, value in (("start_date", start), ("end_date", end)):
                if value is None and not row.get(col):
                    self.issue(f, line, col, "required value is empty")
            if start and end and end < start:
                self.issue(f, line, "end_date", f"end_date {row['end_date']} is before start_date "
                           f"{row['start_date']}")
            if sid and self.unique(seen, f, line, "service_id", sid):
                services[sid] = Service(sid, days, start, end)
        f = "calendar_dates.txt"
        for line, row in self.table(f, False) or ():
            sid = self.need(f, line, row, "service_id")
            day = self.convert(f, line, row, "date", _parse_date)
            kind = self.convert(f, line, row, "exception_type", int, None, lambda v: v in (1, 2), "1 or 2")
            for col in ("date", "exception_type"):
                self.need(f, line, row, col)
            if sid and day and kind:
                if day in exceptions[sid]:
                    self.issue(f, line, "date", f"service {sid!r} has {row['date']} twice")
                exceptions[sid][day] = kind
        service_ids = set(services) | set(exceptions)

        f = "shapes.txt"
        shape_pts: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
        shape_seq: dict[tuple[str, int], int] = {}
        for line, row in self.table(f, False) or ():
            sid = self.need(f, line, row, "shape_id")
            lat = self.convert(f, line, row, "shape_pt_lat", float, None, lambda v: -90 <= v <= 90, "a latitude")
            lon = self.convert(f, line, row, "shape_pt_lon", float, None, lambda v: -180 <= v <= 180, "a longitude")
            seq = self.convert(f, line, row, "shape_pt_sequence", int, None, lambda v: v >= 0,
                               "a non-negative integer")
            for col in ("shape_pt_lat", "shape_pt_lon", "shape_pt_sequence"):
                self.need(f, line, row, col)
            if sid and seq is not None:
                if (sid, seq) in shape_seq:
                    self.issue(f, line, "shape_pt_sequence", f"shape {sid!r} has shape_pt_sequence {seq} twice "
                               f"(first on line {shape_seq[sid, seq]})")
                shape_seq[sid, seq] = line
                if lat is not None and lon is not None:
                    shape_pts[sid].append((seq, lat, lon))
        shapes = {sid: [(lat, lon) for _s, lat, lon in sorted(pts)] for sid, pts in shape_pts.items()}
        shape_ids = {sid for sid, _seq in shape_seq}

        f = "trips.txt"
        trips: dict[str, Trip] = {}
        seen = {}
        for line, row in self.table(f, True) or ():
            tid = self.need(f, line, row, "trip_id")
            rid = self.need(f, line, row, "route_id")
            sid = self.need(f, line, row, "service_id")
            if rid and rid not in routes:
                self.issue(f, line, "route_id", f"unknown route_id {rid!r} (not in routes.txt)")
            if sid and sid not in service_ids:
                self.issue(f, line, "service_id", f"unknown service_id {sid!r} (not in calendar.txt or "
                           "calendar_dates.txt)")
            shape = row.get("shape_id", "")
            if shape and shape not in shape_ids:
                self.issue(f, line, "shape_id", f"unknown shape_id {shape!r} (not in shapes.txt)")
            direction = self.convert(f, line, row, "direction_id", int, None, lambda v: v in (0, 1), "0 or 1")
            if tid and self.unique(seen, f, line, "trip_id", tid):
                trips[tid] = Trip(tid, rid, sid, row.get("trip_headsign", ""), direction, shape)

        f = "stop_times.txt"
        by_trip: dict[str, list[tuple[StopTime, int]]] = defaultdict(list)
        for line, row in self.table(f, True) or ():
            tid = self.need(f, line, row, "trip_id")
            sid = self.need(f, line, row, "stop_id")
            self.need(f, line, row, "stop_sequence")
            seq = self.convert(f, line, row, "stop_sequence", int, None, lambda v: v >= 0, "a non-negative integer")
            arr = self.convert(f, line, row, "arrival_time", parse_time)
            dep = self.convert(f, line, row, "departure_time", parse_time)
            if tid and tid not in trips:
                self.issue(f, line, "trip_id", f"unknown trip_id {tid!r} (not in trips.txt)")
            if sid and sid not in stops:
                self.issue(f, line, "stop_id", f"unknown stop_id {sid!r} (not in stops.txt)")
            if arr is not None and dep is not None and dep < arr:
                self.issue(f, line, "departure_time", f"departure_time {row['departure_time']} is before "
                           f"arrival_time {row['arrival_time']}")
            if tid and seq is not None:
                by_trip[tid].append((StopTime(tid, sid, seq, arr, dep), line))
        stop_times: dict[str, list[StopTime]] = {}
        for tid, rows in by_trip.items():
            rows.sort(key=lambda r: r[0].stop_sequence)
            prev: tuple[StopTime, int] | None = None
            last_time: tuple[int, int] | None = None  # (seconds, line)
            for st, line in rows:
                if prev is not None and st.stop_sequence == prev[0].stop_sequence:
                    self.issue(f, line, "stop_sequence", f"trip {tid!r} has stop_sequence {st.stop_sequence} "
                               f"twice (also on line {prev[1]}); stop_sequence must increase along a trip")
                for fld, t in (("arrival_time", st.arrival), ("departure_time", st.departure)):
                    if t is None:
                        continue
                    if last_time is not None and t < last_time[0]:
                        self.issue(f, line, fld, f"trip {tid!r} goes back in time: {format_time(t)} at "
                                   f"stop_sequence {st.stop_sequence} is before {format_time(last_time[0])} on "
                                   f"line {last_time[1]}")
                    last_time = (t, line)
                prev = (st, line)
            for end_st, line in (rows[0], rows[-1]):
                if end_st.arrival is None and end_st.departure is None:
                    self.issue(f, line, "arrival_time", f"the first and last stops of trip {tid!r} need times")
            stop_times[tid] = [st for st, _line in rows]
        for tid in trips:
            if len(stop_times.get(tid, ())) < 2:
                self.issue("trips.txt", seen.get(tid), "trip_id", f"trip {tid!r} has fewer than 2 stop_times")

        f = "frequencies.txt"
        frequencies: dict[str, list[Frequency]] = defaultdict(list)
        for line, row in self.table(f, False) or ():
            tid = self.need(f, line, row, "trip_id")
            start = self.convert(f, line, row, "start_time", parse_time)
            end = self.convert(f, line, row, "end_time", parse_time)
            headway = self.convert(f, line, row, "headway_secs", int, None, lambda v: v > 0, "a positive integer")
            exact = self.convert(f, line, row, "exact_times", int, 0, lambda v: v in (0, 1), "0 or 1")
            for col in ("start_time", "end_time", "headway_secs"):
                self.need(f, line, row, col)
            if tid and tid not in trips:
                self.issue(f, line, "trip_id", f"unknown trip_id {tid!r} (not in trips.txt)")
            if start is not None and end is not None and end <= start:
                self.issue(f, line, "end_time", f"end_time {row['end_time']} is not after start_time "
                           f"{row['start_time']}")
            elif tid in trips and None not in (start, end, headway):
                frequencies[tid].append(Frequency(tid, start, end, headway, exact == 1))

        if self.issues or timezone is None:
            if timezone is None and not self.issues:
                self.issue("agency.txt", None, "agency_timezone", "no agency gives a time zone")
            raise GtfsError(str(self.src.path), self.issues)
        return Feed(agencies, stops, routes, trips, stop_times, services, dict(exceptions), shapes,
                    dict(frequencies), timezone)


def load_feed(path: str | Path) -> Feed:
    """Load and check a GTFS feed from a folder or a zip; :class:`GtfsError` lists every problem."""
    source = _Source(Path(path))
    loader = _Loader(source)
    return loader.load()
