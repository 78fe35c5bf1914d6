"""Traffic information from the detectors on the bus: per road segment a travel time and a congestion level (free,
slow, congested, blocked), and short texts for variable-message signs.

The pieces, from the bottom:

- :class:`RoadLayout`: what the API knows of the road network: the engine's compiled network (``lintas compile``
  writes ``network.json``: the incoming lanes of every signalised junction, their detectors and the movements of
  their signals) and, from the SUMO net file when given, every edge's name, length and ends. A *segment* is the
  approach to a junction: an incoming edge of the compiled network with the edges that lead into it without a
  junction of their own (a lane split's ``.p`` node), named after the road (``Jalan Raya Bunda``) and the cross
  street at its end.
- :class:`LaneFeed`: the readings of the last minutes, per lane, in ring buffers (one row per tick of the detector
  clock): vehicles that crossed the stop-line loop, vehicles and halting vehicles in the lane-area zone, its
  occupancy, and whether the lane's signal was green (from the controllers' ``state`` messages on the bus, when
  they are heard). Detector batches are decoded by :mod:`engine.protocol` (never parsed here).
- :func:`segment_states`: travel time by Little's law over the zone (vehicles present / vehicles leaving, over a
  window of a few cycles), plus the rest of the segment at its speed limit; the delay is that minus the free-flow
  time, and the level follows the delay per vehicle of the Highway Capacity Manual's signalised-intersection
  levels of service: free up to 35 s (LOS A-C), slow up to 80 s (D-E), congested above (F), blocked when every
  watched lane of the segment is blocked (an open blocked-lane incident) or nothing left a full zone for the
  whole window.
- :func:`signs`: one text per active incident on a segment and per congested or blocked segment, in Indonesian
  ("Jl. Raya Bunda (Jl. Cempaka) macet, +6 menit").

Everything here is pure computation over arrays; the bus socket and its thread are in :class:`TrafficService`.
"""

from __future__ import annotations

import gzip
import logging
import math
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from engine.network import DET_ADVANCE, DET_AREA, DET_STOPLINE, Network
from engine.protocol import messages as m

__all__ = ["LEVELS", "EdgeInfo", "LaneFeed", "NetError", "RoadLayout", "Segment", "SegmentState", "Sign",
           "TrafficService", "read_net_edges", "segment_states", "signs"]

log = logging.getLogger("lintas.api.traffic")

LEVELS = ("free", "slow", "congested", "blocked", "unknown")
MIN_DATA_S = 180  # a segment's level needs this much data in its window (else "unknown")
SLOW_DELAY_S = 35.0  # HCM signalised LOS C/D boundary, s of delay per vehicle
CONGESTED_DELAY_S = 80.0  # HCM LOS E/F boundary
VEHICLE_SPACE_M = 7.5  # a standing vehicle and its gap: a zone's capacity is its length / 7.5 m
TRAVEL_WINDOW_S = 180  # s of readings behind each travel time (two or three signal cycles)
GREEN_LETTERS = frozenset("Gg")


class NetError(ValueError):
    """A net file that cannot be read (one line naming the file)."""


@dataclass(frozen=True)
class EdgeInfo:
    id: str
    name: str
    from_node: str
    to_node: str
    length: float  # m (its first lane's)
    speed: float  # m/s (its first lane's)


def read_net_edges(path: Path) -> tuple[dict[str, EdgeInfo], dict[str, str]]:
    """The edges of a SUMO net file (plain or gzipped), internal edges left out, and each junction's type
    (``traffic_light``, ``priority``, ...). :class:`NetError` naming the file when it is not a net."""
    p = Path(path)
    edges: dict[str, EdgeInfo] = {}
    nodes: dict[str, str] = {}
    try:
        with open(p, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        with (gzip.open(p, "rb") if gz else open(p, "rb")) as fh:
            root_seen = False
            edge: dict | None = None
            for event, el in ET.iterparse(fh, events=("start", "end")):
                if event == "start":
                    if not root_seen:
                        root_seen = True
                        if el.tag != "net":
                            raise NetError(f"{p}: not a SUMO net file (root element <{el.tag}>, expected <net>)")
                    if el.tag == "edge":
                        edge = None if el.get("function") == "internal" else dict(el.attrib)
                    elif el.tag == "lane" and edge is not None and "length" not in edge:
                        edge["length"], edge["speed"] = el.get("length", "0"), el.get("speed", "0")
                    elif el.tag == "junction":
                        nodes[el.get("id", "")] = el.get("type", "")
                    continue
                if el.tag == "edge":
                    if edge is not None and edge.get("id"):
                        edges[edge["id"]] = EdgeInfo(edge["id"], edge.get("name", ""), edge.get("from", ""),
                                                     edge.get("to", ""), float(edge.get("length", 0)),
                                                     float(edge.get("speed", 0)))
                    edge = None
                    el.clear()
                elif el.tag == "junction":
                    el.clear()
    except OSError as exc:
        raise NetError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except ET.ParseError as exc:
        raise NetError(f"{p}: not valid XML ({exc})") from None
    except ValueError as exc:
        if isinstance(exc, NetError):
            raise
        raise NetError(f"{p}: a lane's length or speed is not a number ({exc})") from None
    if not edges:
        raise NetError(f"{p}: no edges (not a SUMO net file?)")
    return edges, nodes


def short_name(name: str) -> str:
    """How a sign writes a road: 'Jalan Raya Bunda' -> 'Jl. Raya Bunda'."""
    for long, short in (("Jalan ", "Jl. "), ("jalan ", "Jl. "), ("JALAN ", "JL. ")):
        if name.startswith(long):
            return short + name[len(long):]
    return name


def edge_of(lane_id: str) -> str:
    """A SUMO lane id is ``<edge>_<index>``."""
    edge, sep, index = lane_id.rpartition("_")
    return edge if sep and index.isdigit() else lane_id


@dataclass(frozen=True)
class Segment:
    """An approach to a signalised junction: ``id`` is its last edge (the one the junction's lanes are on)."""
    id: str
    name: str  # the road's name (the edge's), '' when the net gives none
    cross: str  # the name of a cross street at its end, '' when none differs
    junction: str
    edges: tuple[str, ...]  # upstream first
    lanes: tuple[int, ...]  # indexes into RoadLayout.lane_ids
    length_m: float
    free_time_s: float

    @property
    def label(self) -> str:
        """What a sign calls it: the road, where it meets a cross street; the edge id when the net has no name."""
        if not self.name:
            return self.id
        road = short_name(self.name)
        return f"{road} ({short_name(self.cross)})" if self.cross else road


class RoadLayout:
    """Lanes, their detectors, the movements of the signals and the segments, from a compiled network and
    (optionally) the net's edges. Lanes are the network's incoming controlled lanes, in its order."""

    def __init__(self, net: Network, edges: dict[str, EdgeInfo] | None = None,
                 node_types: dict[str, str] | None = None) -> None:
        self.net = net
        self.lane_ids = list(net.lane_ids)
        n = len(self.lane_ids)
        self.lane_index = {lane: i for i, lane in enumerate(self.lane_ids)}
        self.lane_speed = np.asarray(net.lane_speed, dtype=np.float64)
        self.lane_length = np.asarray(net.lane_length, dtype=np.float64)
        self.lane_junction = [net.junctions[int(j)].id for j in net.lane_junction]
        # detectors of each kind per lane (-1: none); the first of a kind wins
        self.sl = np.full(n, -1, np.int64)
        self.adv = np.full(n, -1, np.int64)
        self.area = np.full(n, -1, np.int64)
        self.zone_m = np.zeros(n)
        for d, (lane, kind) in enumerate(zip(net.det_lane, net.det_kind)):
            target = {DET_STOPLINE: self.sl, DET_ADVANCE: self.adv, DET_AREA: self.area}[int(kind)]
            if target[lane] < 0:
                target[lane] = d
                if kind == DET_AREA:
                    self.zone_m[lane] = float(net.det_length[d])
        self.det_index = dict(net.det_index)
        self.det_layout = m.detector_layout(net.det_ids)  # the digest index-columned batches name
        self.capacity = np.maximum(1.0, self.zone_m / VEHICLE_SPACE_M)
        #: lanes watched for blocking and for travel times: a stop-line loop and a lane-area zone
        self.watched = (self.sl >= 0) & (self.area >= 0)
        # signals: per junction, (lane index, link index) of every movement
        self.links: dict[str, list[tuple[int, int]]] = {}
        for k in range(net.n_movements):
            jid = net.junctions[int(net.mov_junction[k])].id
            self.links.setdefault(jid, []).append((int(net.mov_in_lane[k]), int(net.mov_link[k])))
        self.edges = edges or {}
        self.node_types = node_types or {}
        self.segments = self._segments()
        self.segment_index = {s.id: i for i, s in enumerate(self.segments)}
        self.lane_segment = np.zeros(n, np.int64)
        for si, s in enumerate(self.segments):
            for li in s.lanes:
                self.lane_segment[li] = si

    @classmethod
    def from_files(cls, network_json: Path, net_xml: Path | None = None) -> RoadLayout:
        edges, nodes = read_net_edges(net_xml) if net_xml is not None else ({}, {})
        return cls(Network.from_json(network_json), edges, nodes)

    def _segments(self) -> list[Segment]:
        by_edge: dict[str, list[int]] = {}
        for i, lane in enumerate(self.lane_ids):
            by_edge.setdefault(edge_of(lane), []).append(i)
        into: dict[str, list[EdgeInfo]] = {}
        for e in self.edges.values():
            into.setdefault(e.to_node, []).append(e)
        out = []
        for eid, lanes in by_edge.items():
            info = self.edges.get(eid)
            chain = [eid]
            length = float(np.max(self.lane_length[lanes]))
            speed = float(np.min(self.lane_speed[lanes])) or 13.89
            free = length / speed
            name = cross = ""
            junction = self.lane_junction[lanes[0]]
            if info is not None:
                name = info.name
                length, free = info.length, info.length / (info.speed or speed)
                # upstream through nodes that are no junction of their own (one way in, no signal)
                at = info
                while True:
                    ups = [u for u in into.get(at.from_node, ()) if u.from_node != at.to_node]
                    if len(ups) != 1 or self.node_types.get(at.from_node) == "traffic_light" or ups[0].id in chain:
                        break
                    at = ups[0]
                    chain.insert(0, at.id)
                    length += at.length
                    free += at.length / (at.speed or speed)
                names = {e.name for e in self.edges.values()
                         if (e.to_node == info.to_node or e.from_node == info.to_node) and e.name}
                others = sorted(names - {name})
                cross = others[0] if others else ""
            out.append(Segment(eid, name, cross, junction, tuple(chain), tuple(lanes), length, free))
        return out

    def lane_label(self, li: int) -> str:
        return self.segments[int(self.lane_segment[li])].label


class LaneFeed:
    """The last ``window`` ticks of readings per lane, in ring buffers, filled from detector batches and
    controller states. A tick's row is complete when a batch of a later time arrives (several sources may
    report the same tick); until then it is pending."""

    FIELDS = (("out", np.float32), ("count", np.float32), ("halting", np.float32), ("occ", np.float32),
              ("valid", bool), ("green", bool), ("green_known", bool))

    def __init__(self, layout: RoadLayout, window: int = 420) -> None:
        self.layout = layout
        n = len(layout.lane_ids)
        self.window = window
        # each row is written twice, at r and r + window, so that the last rows are always one contiguous view
        self.time = np.full(2 * window, np.nan)
        #: out: vehicles over the stop-line loop during the tick; count, halting: vehicles (standing) in the zone at
        #: its end; occ: the zone's occupancy 0..1; valid: stop-line loop and zone both reported; green: the lane's
        #: signal showed green; green_known: a controller state said what it showed
        self.buf = {name: np.zeros((2 * window, n), dtype) for name, dtype in self.FIELDS}
        self.rows = 0  # rows committed since the start
        self._pending_t: float | None = None
        self._pending = self._fresh()
        self._states: dict[str, list[m.ControllerState]] = {}  # per junction, the latest few, by time
        self.batches = 0
        self.readings_unknown = 0  # readings of detectors the network does not have
        self.dropped_batches = 0  # malformed, or columns of another network's detector table
        self.last_drop = ""

    def _fresh(self) -> dict[str, np.ndarray]:
        k = len(self.layout.det_index)
        return {"count": np.full(k, np.nan), "occ": np.full(k, np.nan), "halting": np.full(k, np.nan)}

    @property
    def latest_time(self) -> float | None:
        if self.rows == 0:
            return None
        return float(self.time[(self.rows - 1) % self.window])

    def add_state(self, st: m.ControllerState) -> None:
        got = self._states.setdefault(st.junction, [])
        got.append(st)
        if len(got) > 4:
            del got[0]

    def add_batch(self, batch: m.DetectorBatch) -> bool:
        """Take one batch (either form of docs/protocol.md, read by ``engine.protocol.messages.batch_columns``); True
        when it completed the previous tick's row (a batch of a later time). A malformed batch, one of another
        network's detector table or one older than the tick being filled is dropped and counted."""
        self.batches += 1
        try:
            cols = m.batch_columns(batch)
        except ValueError as exc:
            return self._drop(str(exc))
        if cols.index is not None:
            if cols.layout != self.layout.det_layout:
                return self._drop(f"detectors batch from {batch.source!r}: layout {cols.layout} is not this "
                                  f"network's ({self.layout.det_layout}): compiled from another scenario?")
            idx = cols.index.astype(np.int64)
            ok = (idx >= 0) & (idx < len(self.layout.det_index))
        else:
            index = self.layout.det_index
            idx = np.asarray([index.get(d, -1) for d in cols.detectors], np.int64)
            ok = idx >= 0
        t = float(batch.time)
        if self._pending_t is not None and t < self._pending_t:
            return self._drop(f"detectors batch from {batch.source!r} at {t:g}: older than the tick being filled")
        committed = self._pending_t is not None and t > self._pending_t
        if committed:
            self._commit()
        self._pending_t = t
        self.readings_unknown += int((~ok).sum())
        p = self._pending
        p["count"][idx[ok]] = cols.count[ok]
        p["occ"][idx[ok]] = cols.occupancy[ok]
        p["halting"][idx[ok]] = cols.halting[ok]
        return committed

    def _drop(self, why: str) -> bool:
        self.dropped_batches += 1
        self.last_drop = why
        return False

    def flush(self) -> None:
        """Commit the pending tick now (the end of a stream)."""
        if self._pending_t is not None:
            self._commit()
            self._pending_t = None

    def _signal_at(self, jid: str, t: float) -> str | None:
        """What the junction's heads showed during the tick ending at ``t``: the state of the latest time before
        ``t`` (a state's signal holds from its time to the next tick), if it is recent."""
        best = None
        for st in self._states.get(jid, ()):
            if st.time < t - 1e-6 and (best is None or st.time > best.time):
                best = st
        if best is None or t - best.time > 5.0:
            return None
        return best.signal

    def _commit(self) -> None:
        lay, p, t = self.layout, self._pending, float(self._pending_t)
        row = self.rows % self.window
        rows = (row, row + self.window)
        self.time[list(rows)] = t
        b = self.buf
        sl, area = lay.sl, lay.area
        has_sl, has_area = sl >= 0, area >= 0
        out = np.where(has_sl, p["count"][np.where(has_sl, sl, 0)], np.nan)
        cnt = np.where(has_area, p["count"][np.where(has_area, area, 0)], np.nan)
        halt = np.where(has_area, p["halting"][np.where(has_area, area, 0)], np.nan)
        occ = np.where(has_area, p["occ"][np.where(has_area, area, 0)], np.nan)
        ok = ~np.isnan(out) & ~np.isnan(cnt)
        for r in rows:
            b["valid"][r] = ok
            b["out"][r] = np.nan_to_num(out)
            b["count"][r] = np.nan_to_num(cnt)
            b["halting"][r] = np.nan_to_num(halt)
            b["occ"][r] = np.nan_to_num(occ)
        green = np.zeros(len(lay.lane_ids), bool)
        known = np.zeros(len(lay.lane_ids), bool)
        for jid, links in lay.links.items():
            sig = self._signal_at(jid, t)
            if sig is None:
                continue
            for li, k in links:
                known[li] = True
                if k < len(sig) and sig[k] in GREEN_LETTERS:
                    green[li] = True
        for r in rows:
            b["green"][r] = green
            b["green_known"][r] = known
        self.rows += 1
        self._pending = self._fresh()

    def recent(self, n: int | None = None) -> dict[str, np.ndarray]:
        """The last ``n`` committed rows (all kept when None), oldest first: views, not copies (read, do not keep)."""
        have = min(self.rows, self.window)
        n = have if n is None else min(n, have)
        end = self.rows % self.window + self.window
        view = {name: a[end - n:end] for name, a in self.buf.items()}
        view["time"] = self.time[end - n:end]
        return view


@dataclass(frozen=True)
class SegmentState:
    segment: Segment
    level: str
    travel_time_s: float | None  # None: nothing left the zone in the window although vehicles stood in it
    delay_s: float | None
    vehicles: float  # mean vehicles in the zones over the window
    outflow_vph: float  # vehicles per hour over the stop lines
    lanes_blocked: tuple[str, ...]
    lanes_watched: int
    time: float  # detector clock: the end of the window
    window_s: float


def segment_states(feed: LaneFeed, blocked_lanes: Iterable[int] = (), window: int = TRAVEL_WINDOW_S
                   ) -> list[SegmentState]:
    """Every segment's travel time and level from the last ``window`` ticks (see the module's docstring)."""
    lay = feed.layout
    r = feed.recent(window)
    blocked = set(blocked_lanes)
    t_end = float(r["time"][-1]) if len(r["time"]) else math.nan
    span = float(len(r["time"]))
    out = []
    valid = r["valid"]
    for seg in lay.segments:
        lanes = [li for li in seg.lanes if lay.watched[li]]
        v = valid[:, lanes]
        n_ok = int(v.sum(axis=0).min()) if lanes else 0
        if n_ok < min(MIN_DATA_S, window):  # no detectors, or too little of their data yet
            out.append(SegmentState(seg, "unknown", None, None, 0.0, 0.0, (), len(lanes), t_end, span))
            continue
        present = float((r["count"][:, lanes] * v).sum()) / n_ok  # vehicles in the zones, mean over ticks
        leaving = float((r["out"][:, lanes] * v).sum()) / n_ok  # vehicles a tick (1 s) over the stop lines
        zone = float(np.mean(lay.zone_m[lanes]))
        speed = seg.length_m / seg.free_time_s if seg.free_time_s > 0 else 13.89
        rest = max(0.0, seg.length_m - zone) / speed
        zone_free = min(zone, seg.length_m) / speed
        cap = float(lay.capacity[lanes].sum())
        b = tuple(lay.lane_ids[li] for li in lanes if li in blocked)
        if leaving > 0:
            travel = max(zone_free, present / leaving) + rest
            delay = max(0.0, travel - seg.free_time_s)
        elif present < 0.05:  # nothing came: free flow
            travel, delay = seg.free_time_s, 0.0
        else:
            travel = delay = None
        if len(b) == len(lanes) or (travel is None and present >= 0.5 * cap):
            level = "blocked"
        elif travel is None and present < 1.0:  # a vehicle or two waited the whole window: no jam, but no estimate
            level = "unknown"
        elif delay is None or delay > CONGESTED_DELAY_S:
            level = "congested"
        elif delay > SLOW_DELAY_S:
            level = "slow"
        else:
            level = "free"
        out.append(SegmentState(seg, level, None if travel is None else round(travel, 1),
                                None if delay is None else round(delay, 1), round(present, 2),
                                round(leaving * 3600.0, 1), b, len(lanes), t_end, span))
    return out


# --- signs
_CAUSE_WORDS = {"ACCIDENT": "kecelakaan", "CONSTRUCTION": "perbaikan jalan", "MAINTENANCE": "pemeliharaan jalan",
                "DEMONSTRATION": "unjuk rasa", "WEATHER": "cuaca buruk", "POLICE_ACTIVITY": "kegiatan polisi",
                "MEDICAL_EMERGENCY": "keadaan darurat", "TECHNICAL_PROBLEM": "gangguan teknis", "STRIKE": "mogok",
                "HOLIDAY": "hari libur"}


@dataclass(frozen=True)
class Sign:
    segment: str
    text: str
    kind: str  # "incident" or "jam"
    incident_id: int | None
    level: str
    delay_min: int | None


def _plus(delay_s: float | None) -> str:
    if delay_s is None:
        return ""
    minutes = math.ceil(delay_s / 60.0 - 1e-9)
    return f", +{minutes} menit" if minutes >= 1 else ""


def signs(states: list[SegmentState], incidents: Iterable, lane_index: dict[str, int], layout: RoadLayout
          ) -> list[Sign]:
    """One sign per active incident on a known segment (its edges or lanes), then one per congested or blocked
    segment that no incident sign covers. ``incidents``: objects with ``id``, ``edges``, ``lanes``, ``cause``,
    ``source`` and ``description``."""
    by_id = {s.segment.id: s for s in states}
    edge_segment = {e: s.id for s in layout.segments for e in s.edges}
    out: list[Sign] = []
    covered: set[str] = set()
    for inc in incidents:
        segs: dict[str, int] = {}
        for lane in inc.lanes:
            li = lane_index.get(lane)
            sid = layout.segments[int(layout.lane_segment[li])].id if li is not None else edge_segment.get(
                edge_of(lane))
            if sid is not None:
                segs[sid] = segs.get(sid, 0) + 1
        for e in inc.edges:
            sid = edge_segment.get(e)
            if sid is not None:
                segs.setdefault(sid, 0)
        for sid, n_lanes in segs.items():
            st = by_id.get(sid)
            if st is None:
                continue
            label = st.segment.label
            cause = str(getattr(inc.cause, "value", inc.cause))
            if str(getattr(inc.source, "value", inc.source)) == "detector" and n_lanes:
                what = f"{n_lanes} lajur tertutup"
            elif cause in _CAUSE_WORDS:
                what = _CAUSE_WORDS[cause] + (f", {n_lanes} lajur tertutup" if n_lanes else "")
            elif n_lanes:
                what = f"{n_lanes} lajur tertutup"
            else:
                what = "gangguan lalu lintas"
            delay = st.delay_s
            out.append(Sign(sid, f"{label}: {what}{_plus(delay)}", "incident", inc.id, st.level,
                            None if delay is None else math.ceil(delay / 60.0 - 1e-9)))
            covered.add(sid)
    for st in states:
        if st.segment.id in covered or st.level not in ("congested", "blocked"):
            continue
        word = "macet total" if st.level == "blocked" else "macet"
        out.append(Sign(st.segment.id, f"{st.segment.label} {word}{_plus(st.delay_s)}", "jam", None, st.level,
                        None if st.delay_s is None else math.ceil(st.delay_s / 60.0 - 1e-9)))
    return out


# --- the live service: a SUB socket on the bus, a thread, snapshots for the API
@dataclass
class Snapshot:
    """What the API serves: the segments and signs as of detector time ``time`` (refreshed every few seconds)."""
    time: float | None = None
    at: datetime | None = None
    states: list[SegmentState] = field(default_factory=list)


def clock_to_datetime(sim_start: datetime | None) -> Callable[[float], datetime]:
    """Detector time to a datetime: seconds since ``sim_start`` (a simulation's clock), or Unix time (the field's
    clock) when None."""
    if sim_start is None:
        return lambda t: datetime.fromtimestamp(t, UTC)
    return lambda t: sim_start + timedelta(seconds=t)


class TrafficService:
    """Hears the bus (topics ``det`` and ``state``) in a thread of its own, feeds :class:`LaneFeed`, runs the
    incident detector (``detector``: a :class:`transit_api.detect.IncidentDetector` or None) every tick and
    recomputes the segments every ``refresh_s`` seconds of detector time. Malformed frames are dropped and
    counted (:attr:`dropped`), never raised."""

    def __init__(self, layout: RoadLayout, bus_out: str | None, *, detector=None, sim_start: datetime | None = None,
                 refresh_s: float = 5.0, security=None) -> None:
        self.layout = layout
        self.feed = LaneFeed(layout)
        self.bus_out = bus_out
        self.detector = detector
        self.to_datetime = clock_to_datetime(sim_start)
        self.refresh_s = refresh_s
        self.security = security
        self.snapshot = Snapshot()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_refresh: float | None = None
        self.error: str | None = None
        self.dropped = 0

    # the work of one message (also called directly by tests and benchmarks)
    def take(self, msg: m.Message) -> None:
        if isinstance(msg, m.ControllerState):
            self.feed.add_state(msg)
        elif isinstance(msg, m.DetectorBatch) and self.feed.add_batch(msg):
            self._tick()

    def _tick(self) -> None:
        t = self.feed.latest_time
        if self.detector is not None:
            self.detector.step(self.feed, t, self.to_datetime)
        if self._last_refresh is None or t - self._last_refresh >= self.refresh_s - 1e-9:
            self.refresh()

    def refresh(self) -> None:
        t = self.feed.latest_time
        if t is None:
            return
        blocked = self.detector.blocked_lanes() if self.detector is not None else ()
        states = segment_states(self.feed, blocked)
        with self.lock:
            self.snapshot = Snapshot(t, self.to_datetime(t), states)
        self._last_refresh = t

    def start(self) -> TrafficService:
        if self.bus_out is None:
            return self
        import zmq

        from engine.protocol import bus

        ctx = zmq.Context.instance()
        ep = bus.Endpoints(bus_in="", bus_out=self.bus_out, commands="")
        self._sub = bus.Subscriber(ctx, ep, [m.TOPIC_DETECTORS, m.TOPIC_STATE], security=self.security)
        self._thread = threading.Thread(target=self._run, name="lintas-api-traffic", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(self._sub.sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            for _topic, msg in self._sub.drain():
                try:
                    self.take(msg)
                except Exception as exc:
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.exception("traffic: a message could not be taken")
            self.dropped = self._sub.stats.dropped

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._sub.close()
            self._thread = None
