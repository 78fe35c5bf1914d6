"""Injected incidents: a vehicle that stops in a lane for a while, through TraCI (or libsumo), so that the
incident detection of the transit API (transit_api/detect.py) can be seen and tested.

``--incident LANE@T:DURATION`` (``lintas simulate``): at simulation time T the vehicle nearest the end of LANE
among those 10 to 90 m before it (where Lintas' lane-area detectors watch the approach; not a bus) is brought to
a standstill where it is, at its own deceleration, and may not change lanes; after DURATION seconds it drives
on. When no vehicle is there at T, the first that comes is taken. An edge id instead of a lane takes the first
of its lanes (by index) that has such a vehicle. Times are simulation seconds; T and DURATION accept ``90``,
``90s``, ``10m``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["IncidentInjector", "IncidentSpec", "parse_incident"]

_SPEC = re.compile(r"^(?P<target>[^@\s]+)@(?P<at>[0-9.]+[sm]?):(?P<dur>[0-9.]+[sm]?)$")
END_MARGIN_M = 10.0  # the stopped vehicle is at least this far before the lane's end
WATCHED_M = 90.0  # and at most this far (inside the 100 m lane-area zone of simulation/sumo/detectors.py)
LANE_CHANGE_DEFAULT = 0b011001010101  # SUMO's default lane change mode (1621)


def _seconds(text: str) -> float:
    if text.endswith("m"):
        return float(text[:-1]) * 60.0
    return float(text.rstrip("s"))


@dataclass(frozen=True)
class IncidentSpec:
    target: str  # a lane id (EDGE_INDEX) or an edge id
    at: float  # simulation s
    duration: float  # s

    def __str__(self) -> str:
        return f"{self.target}@{self.at:g}:{self.duration:g}"


def parse_incident(text: str) -> IncidentSpec:
    """``LANE_OR_EDGE@T:DURATION``; ValueError saying what is wrong."""
    mt = _SPEC.match(text.strip())
    if not mt:
        raise ValueError(f"'{text}': expected LANE_OR_EDGE@T:DURATION, e.g. A1_A2.L_1@300:10m (T and DURATION in "
                         f"simulation seconds, or with s / m)")
    try:
        at, dur = _seconds(mt["at"]), _seconds(mt["dur"])
    except ValueError:
        raise ValueError(f"'{text}': T and DURATION must be numbers (s) or minutes (10m)") from None
    if dur <= 0:
        raise ValueError(f"'{text}': DURATION must be above 0")
    return IncidentSpec(mt["target"], at, dur)


@dataclass
class _Pending:
    spec: IncidentSpec
    vehicle: str | None = None
    lane: str | None = None
    pos: float | None = None
    stopped_at: float | None = None
    released_at: float | None = None


@dataclass
class IncidentInjector:
    """Carries out the incidents of ``specs`` in a running SUMO (``conn``: libsumo or traci); call
    :meth:`step` once per tick, before the simulation advances. :meth:`check` fails on a target the net lacks."""

    conn: object
    specs: list[IncidentSpec]
    pending: list[_Pending] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pending = [_Pending(s) for s in self.specs]

    def check(self) -> None:
        lanes = set(self.conn.lane.getIDList())
        edges = set(self.conn.edge.getIDList())
        for s in self.specs:
            if s.target not in lanes and s.target not in edges:
                raise ValueError(f"--incident {s}: no lane or edge '{s.target}' in the net")

    def _lanes(self, target: str) -> list[str]:
        lanes = set(self.conn.lane.getIDList())
        if target in lanes:
            return [target]
        n = self.conn.edge.getLaneNumber(target)
        return [f"{target}_{i}" for i in range(n)]

    def _pick(self, lane: str) -> tuple[str, float] | None:
        v = self.conn.vehicle
        length = self.conn.lane.getLength(lane)
        best = None
        for vid in self.conn.lane.getLastStepVehicleIDs(lane):
            if v.getVehicleClass(vid) == "bus":
                continue
            pos = v.getLanePosition(vid)
            if length - WATCHED_M <= pos <= length - END_MARGIN_M and (best is None or pos > best[1]):
                best = (vid, pos)
        return best

    def step(self, t: float) -> None:
        v = self.conn.vehicle
        for p in self.pending:
            if p.released_at is not None or t < p.spec.at:
                continue
            if p.vehicle is None:
                for lane in self._lanes(p.spec.target):
                    got = self._pick(lane)
                    if got is not None:
                        p.vehicle, p.pos = got
                        p.lane, p.stopped_at = lane, t
                        v.setLaneChangeMode(p.vehicle, 0)
                        v.setSpeed(p.vehicle, 0.0)
                        break
            elif t >= p.stopped_at + p.spec.duration:
                if p.vehicle in v.getIDList():
                    v.setSpeed(p.vehicle, -1.0)
                    v.setLaneChangeMode(p.vehicle, LANE_CHANGE_DEFAULT)
                p.released_at = t

    @property
    def events(self) -> list[dict]:
        """What was done: per incident the vehicle, lane, its position when stopped, and when (None: not yet)."""
        return [{"incident": str(p.spec), "vehicle": p.vehicle, "lane": p.lane, "pos_m": p.pos,
                 "stopped_at": p.stopped_at, "released_at": p.released_at} for p in self.pending]
