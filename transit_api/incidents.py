"""Incidents: what blocks the road, kept in SQLite so that none is lost on a restart or a ``kill -9``.

An incident has a place (a point, and/or the GTFS stops, SUMO edges or lanes it touches), a severity, a cause
and an effect (the enums of a GTFS-Realtime Alert, so that the alerts feed can carry them unchanged), a text,
an active period (a start, and an end once known), a source (an operator through the API, or a detector) and
bookkeeping: who reported it and who last changed it, when, and a version that every change increments (a
change names the version it edits, so two operators never overwrite each other unseen).

Durability: the file is in WAL mode and every write is one transaction, committed before the method returns
(the API answers only after that), with ``synchronous=FULL``. In WAL mode ``NORMAL`` already survives a crash
of the process (a ``kill -9``: the WAL is in the operating system's cache, and SQLite replays it on the next
open), but a power cut or a kernel panic may roll back the last transactions, ones the API already answered
201 to. ``FULL`` syncs the WAL at every commit, so an answered write survives those too. The cost is one fsync
per write; writes are operators' edits (and, later, detections), a few a minute and rate-limited, and reads do
not sync at all, so the stronger guarantee is nearly free here.

Times are stored as integer microseconds since the epoch (UTC: exact, and ordered for the active-period query)
and come back as aware datetimes in UTC. The store checks the rules an incident must keep whoever writes it
(:func:`check`); the API adds what only it knows (a stop id must exist in the GTFS feed).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = ["Cause", "Effect", "Incident", "IncidentError", "IncidentInvalid", "IncidentNotFound", "IncidentStore",
           "Severity", "Source", "StoreError", "VersionConflict", "check"]

SCHEMA_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class Severity(StrEnum):
    """GTFS-Realtime Alert.SeverityLevel."""
    UNKNOWN_SEVERITY = "UNKNOWN_SEVERITY"
    INFO = "INFO"
    WARNING = "WARNING"
    SEVERE = "SEVERE"


class Cause(StrEnum):
    """GTFS-Realtime Alert.Cause."""
    UNKNOWN_CAUSE = "UNKNOWN_CAUSE"
    OTHER_CAUSE = "OTHER_CAUSE"
    TECHNICAL_PROBLEM = "TECHNICAL_PROBLEM"
    STRIKE = "STRIKE"
    DEMONSTRATION = "DEMONSTRATION"
    ACCIDENT = "ACCIDENT"
    HOLIDAY = "HOLIDAY"
    WEATHER = "WEATHER"
    MAINTENANCE = "MAINTENANCE"
    CONSTRUCTION = "CONSTRUCTION"
    POLICE_ACTIVITY = "POLICE_ACTIVITY"
    MEDICAL_EMERGENCY = "MEDICAL_EMERGENCY"


class Effect(StrEnum):
    """GTFS-Realtime Alert.Effect."""
    NO_SERVICE = "NO_SERVICE"
    REDUCED_SERVICE = "REDUCED_SERVICE"
    SIGNIFICANT_DELAYS = "SIGNIFICANT_DELAYS"
    DETOUR = "DETOUR"
    ADDITIONAL_SERVICE = "ADDITIONAL_SERVICE"
    MODIFIED_SERVICE = "MODIFIED_SERVICE"
    OTHER_EFFECT = "OTHER_EFFECT"
    UNKNOWN_EFFECT = "UNKNOWN_EFFECT"
    STOP_MOVED = "STOP_MOVED"
    NO_EFFECT = "NO_EFFECT"
    ACCESSIBILITY_ISSUE = "ACCESSIBILITY_ISSUE"


class Source(StrEnum):
    """Who entered an incident: an operator (through the API) or a detector (automatic detection)."""
    OPERATOR = "operator"
    DETECTOR = "detector"


#: what a writer may set (and a change may change); the rest is the store's bookkeeping
EDITABLE = ("severity", "cause", "effect", "description", "lat", "lon", "stop_ids", "edges", "lanes", "start", "end")


@dataclass(frozen=True)
class Incident:
    id: int
    severity: Severity
    cause: Cause
    effect: Effect
    description: str
    lat: float | None
    lon: float | None
    stop_ids: tuple[str, ...]
    edges: tuple[str, ...]
    lanes: tuple[str, ...]
    start: datetime
    end: datetime | None
    source: Source
    reported_by: str
    updated_by: str
    created: datetime
    updated: datetime
    version: int

    def active_at(self, at: datetime) -> bool:
        """Inside its active period at ``at`` (the start included, the end not)."""
        return self.start <= at and (self.end is None or at < self.end)


class StoreError(Exception):
    """The incident file cannot be used (not SQLite, another schema, not writable)."""


class IncidentError(Exception):
    """A write refused."""


class IncidentInvalid(IncidentError):
    """An incident that breaks a rule; ``field`` names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class IncidentNotFound(IncidentError):
    def __init__(self, incident_id: int) -> None:
        super().__init__(f"no incident with id {incident_id}")
        self.incident_id = incident_id


class VersionConflict(IncidentError):
    def __init__(self, incident_id: int, current: int, expected: int) -> None:
        super().__init__(f"incident {incident_id} is at version {current}, not {expected}: read it again and "
                         f"apply the change to version {current}")
        self.current = current


def check(values: dict[str, Any]) -> None:
    """The rules every incident keeps (raises :class:`IncidentInvalid` naming the field): enums of their types,
    a place (a point, stops, edges or lanes), lat and lon together and in range, aware times, an end after the
    start, ids that are non-empty strings without spaces."""
    for name, enum in (("severity", Severity), ("cause", Cause), ("effect", Effect)):
        if not isinstance(values[name], enum):
            raise IncidentInvalid(name, f"must be one of {', '.join(enum)}, got {values[name]!r}")
    if not isinstance(values["description"], str):
        raise IncidentInvalid("description", "must be text")
    lat, lon = values["lat"], values["lon"]
    if (lat is None) != (lon is None):
        raise IncidentInvalid("lon" if lon is None else "lat", "lat and lon go together: give both or neither")
    if lat is not None:
        if not -90 <= lat <= 90:
            raise IncidentInvalid("lat", f"must be within -90..90, got {lat}")
        if not -180 <= lon <= 180:
            raise IncidentInvalid("lon", f"must be within -180..180, got {lon}")
    for name in ("stop_ids", "edges", "lanes"):
        for i, x in enumerate(values[name]):
            if not isinstance(x, str) or not x or any(c.isspace() for c in x):
                raise IncidentInvalid(name, f"item {i} must be a non-empty id without spaces, got {x!r}")
    if lat is None and not (values["stop_ids"] or values["edges"] or values["lanes"]):
        raise IncidentInvalid("location", "an incident needs a place: lat and lon, stop_ids, edges or lanes")
    for name in ("start", "end"):
        t = values[name]
        if t is not None and (not isinstance(t, datetime) or t.tzinfo is None):
            raise IncidentInvalid(name, "must be a time with a time zone")
    if values["end"] is not None and values["end"] <= values["start"]:
        raise IncidentInvalid("end", f"must be after start ({values['start'].isoformat()}), got "
                              f"{values['end'].isoformat()}")


def _us(t: datetime) -> int:
    return (t - _EPOCH) // _US


def _time(us: int) -> datetime:
    return _EPOCH + us * _US


_SCHEMA = f"""
CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused, not even after a row is gone
    severity    TEXT NOT NULL,
    cause       TEXT NOT NULL,
    effect      TEXT NOT NULL,
    description TEXT NOT NULL,
    lat         REAL,
    lon         REAL,
    stop_ids    TEXT NOT NULL,                       -- JSON arrays of ids
    edges       TEXT NOT NULL,
    lanes       TEXT NOT NULL,
    start_us    INTEGER NOT NULL,                    -- microseconds since 1970-01-01 UTC
    end_us      INTEGER,
    source      TEXT NOT NULL CHECK (source IN ({", ".join(f"'{s}'" for s in Source)})),
    reported_by TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    created_us  INTEGER NOT NULL,
    updated_us  INTEGER NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    CHECK (end_us IS NULL OR end_us > start_us),
    CHECK ((lat IS NULL) = (lon IS NULL))
);
CREATE INDEX incidents_period ON incidents (start_us, end_us);
PRAGMA user_version = {SCHEMA_VERSION};
"""
_COLUMNS = ("id, severity, cause, effect, description, lat, lon, stop_ids, edges, lanes, start_us, end_us, source, "
            "reported_by, updated_by, created_us, updated_us, version")
_ACTIVE = "start_us <= :at AND (end_us IS NULL OR end_us > :at)"


def _row(r: Sequence) -> Incident:
    return Incident(id=r[0], severity=Severity(r[1]), cause=Cause(r[2]), effect=Effect(r[3]), description=r[4],
                    lat=r[5], lon=r[6], stop_ids=tuple(json.loads(r[7])), edges=tuple(json.loads(r[8])),
                    lanes=tuple(json.loads(r[9])), start=_time(r[10]), end=None if r[11] is None else _time(r[11]),
                    source=Source(r[12]), reported_by=r[13], updated_by=r[14], created=_time(r[15]),
                    updated=_time(r[16]), version=r[17])


class IncidentStore:
    """Incidents in one SQLite file (created if missing). Safe to share between threads (one connection behind a
    lock: writes are few and each is short); several processes may share the file too (SQLite's own locking)."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open: {exc}") from None
        try:
            self._open()
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"{self.path}: {exc}") from None
        except StoreError:
            self._db.close()
            raise

    def _open(self) -> None:
        db = self._db
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{self.path}: SQLite refused WAL mode (journal_mode is {mode})")
        db.execute("PRAGMA synchronous=FULL")  # see the module's docstring
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if version == 0 and not tables - {"sqlite_sequence"}:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
            elif version != SCHEMA_VERSION or "incidents" not in tables:
                raise StoreError(f"{self.path}: not a Lintas incident store of schema version {SCHEMA_VERSION} "
                                 f"(user_version {version}, tables {sorted(tables)})")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> IncidentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading
    def get(self, incident_id: int) -> Incident | None:
        with self._lock:
            r = self._db.execute(f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return None if r is None else _row(r)

    def list(self, *, active: bool | None = None, at: datetime | None = None, limit: int = 100,
             offset: int = 0) -> tuple[int, list[Incident]]:
        """``(total, page)``, by id; ``active`` True/False: only those active (or not) at ``at`` (default now)."""
        where, params = "", {"limit": limit, "offset": offset}
        if active is not None:
            params["at"] = _us(at or self._clock())
            where = f"WHERE {_ACTIVE}" if active else f"WHERE NOT ({_ACTIVE})"
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM incidents {where}", params).fetchone()[0]
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM incidents {where} ORDER BY id LIMIT :limit "
                                    f"OFFSET :offset", params).fetchall()
        return total, [_row(r) for r in rows]

    def count_active(self, at: datetime | None = None) -> int:
        with self._lock:
            return self._db.execute(f"SELECT count(*) FROM incidents WHERE {_ACTIVE}",
                                    {"at": _us(at or self._clock())}).fetchone()[0]

    # --- writing (each is one transaction, committed before it returns)
    def create(self, *, source: Source, reported_by: str, severity: Severity, effect: Effect,
               cause: Cause = Cause.UNKNOWN_CAUSE, description: str = "", lat: float | None = None,
               lon: float | None = None, stop_ids: Sequence[str] = (), edges: Sequence[str] = (),
               lanes: Sequence[str] = (), start: datetime | None = None, end: datetime | None = None) -> Incident:
        """A new incident (version 1); ``start`` defaults to now."""
        now = self._clock()
        values = {"severity": severity, "cause": cause, "effect": effect, "description": description, "lat": lat,
                  "lon": lon, "stop_ids": tuple(stop_ids), "edges": tuple(edges), "lanes": tuple(lanes),
                  "start": start or now, "end": end}
        check(values)
        if not isinstance(source, Source):
            raise IncidentInvalid("source", f"must be one of {', '.join(Source)}, got {source!r}")
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO incidents (severity, cause, effect, description, lat, lon, stop_ids, edges, lanes, "
                "start_us, end_us, source, reported_by, updated_by, created_us, updated_us, version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (*self._stored(values), source.value, reported_by, reported_by, _us(now), _us(now)))
            r = self._db.execute(f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (cur.lastrowid,)).fetchone()
        return _row(r)

    def update(self, incident_id: int, changes: dict[str, Any], *, version: int, updated_by: str) -> Incident:
        """Apply ``changes`` (fields of :data:`EDITABLE`) to the incident at ``version``; returns it at the next
        version. Raises :class:`IncidentNotFound`, :class:`VersionConflict` or :class:`IncidentInvalid`."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise IncidentInvalid(sorted(unknown)[0], "cannot be changed")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                r = self._db.execute(f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)).fetchone()
                if r is None:
                    raise IncidentNotFound(incident_id)
                old = _row(r)
                if old.version != version:
                    raise VersionConflict(incident_id, old.version, version)
                changes = {k: tuple(v) if k in ("stop_ids", "edges", "lanes") else v for k, v in changes.items()}
                new = replace(old, **changes, updated_by=updated_by, updated=self._clock(), version=version + 1)
                check({k: getattr(new, k) for k in EDITABLE})
                self._db.execute(
                    "UPDATE incidents SET severity = ?, cause = ?, effect = ?, description = ?, lat = ?, lon = ?, "
                    "stop_ids = ?, edges = ?, lanes = ?, start_us = ?, end_us = ?, updated_by = ?, updated_us = ?, "
                    "version = ? WHERE id = ? AND version = ?",
                    (*self._stored({k: getattr(new, k) for k in EDITABLE}), updated_by, _us(new.updated),
                     new.version, incident_id, version))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            r = self._db.execute(f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return _row(r)

    @staticmethod
    def _stored(v: dict[str, Any]) -> tuple:
        return (v["severity"].value, v["cause"].value, v["effect"].value, v["description"], v["lat"], v["lon"],
                json.dumps(list(v["stop_ids"])), json.dumps(list(v["edges"])), json.dumps(list(v["lanes"])),
                _us(v["start"]), None if v["end"] is None else _us(v["end"]))

