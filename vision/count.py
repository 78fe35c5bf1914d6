"""Counting over tracks: zone occupancy and line crossings, as pure geometry plus one small state per track.

A vehicle is where its box touches the road: the bottom centre of its box (``anchor="bottom"``, for a camera on a
pole) or the box centre (``anchor="center"``, top-down). Every rule below is about that point.

Zones (``[[zones]]`` of a camera's config) hold what a lane-area detector holds: the vehicles whose point lies in the
polygon now (by class), those of them standing (their point moved less than ``halt_px_s`` pixels per second over
the last second; with a ground homography, less than ``halt_m_s`` metres per second, 1.39 as SUMO's lane-area
detectors) and the fraction of the zone covered by boxes (occupancy). A zone counts confirmed tracks only
(``zone_tracks="confirmed"``), or every track of the frame (``"all"``: for a camera sampled too seldom for a moving
vehicle to be confirmed, one frame a second).

Lines (``[[lines]]``) count crossings. A track crosses line a->b when its point moves from one side to the other:
the side is the sign of the cross product ``(b - a) x (p - a)``, and the crossing vector (from its last point on the
old side to its first point on the new one) must meet the segment itself, between a and b, not the infinite line.
The direction is the sign of ``(b - a) x v`` for that crossing vector ``v``: positive (``names[0]``, default ``in``)
when the vehicle moves to the right-hand side of the arrow a->b as drawn in the image (image y points down: for a
line drawn left to right, moving down the image). The pitfalls of the popular counters are handled here:

- a dead band of ``margin_px`` around the line: a box jittering on the line has no side, so it cannot flicker;
- a new side counts only after it held ``persist`` observations (a one-frame jump of the box across the line and
  back is not a crossing);
- once per track per line: a track is counted at most once on a line, whatever it does afterwards;
- a crossing made by a track the tracker has not confirmed yet waits; it is counted when the track is confirmed
  and dropped if the track dies unconfirmed (a flash of false detections counts nothing);
- a track lost and found again (same id) on the other side: the crossing vector spans the gap, so it is counted
  once, where it was;
- each track and each line on its own: several vehicles crossing in one frame, two-way traffic, motorcycles
  weaving between cars all count, as long as the tracker keeps their ids apart.

The class of a track is the majority of its detections' classes so far (a box that flickers between car and truck
counts as what it mostly was).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

ANCHORS = ("bottom", "center")
ZONE_TRACKS = ("confirmed", "all")  # which tracks a zone counts: confirmed only, or every track seen in the frame
DEFAULT_NAMES = ("in", "out")


# -- geometry (pure) -------------------------------------------------------------------------------------------------
def anchors(boxes: np.ndarray, anchor: str = "bottom") -> np.ndarray:
    """The point of each xyxy box [n, 4] that stands for the vehicle: bottom centre or centre [n, 2]."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x = (b[:, 0] + b[:, 2]) / 2.0
    y = b[:, 3] if anchor == "bottom" else (b[:, 1] + b[:, 3]) / 2.0
    return np.stack([x, y], axis=1)


def cross2(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The z of the cross product of 2-D vectors (broadcasting)."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def signed_distance(points: np.ndarray, a, b) -> np.ndarray:
    """Signed distance (px) of points [n, 2] from the line through a and b: positive on the right-hand side of a->b
    as drawn in an image (y down)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = b - a
    return cross2(d, np.asarray(points, dtype=np.float64) - a) / float(np.hypot(*d))


def segments_cross(p0, p1, a, b) -> float | None:
    """Where the segment p0->p1 meets the segment a-b (ends included), as the fraction of the way from p0 to p1;
    None where they do not meet."""
    p0, p1, a, b = (np.asarray(x, dtype=np.float64) for x in (p0, p1, a, b))
    r, s = p1 - p0, b - a
    den = float(cross2(r, s))
    if den == 0.0:  # parallel: no crossing (a move along the line is no crossing)
        return None
    q = a - p0
    t = float(cross2(q, s)) / den  # along p0->p1
    u = float(cross2(q, r)) / den  # along a->b
    return t if 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0 else None


def to_ground(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pixels [n, 2] through the 3x3 homography ``h`` (pixels -> metres on the road) [n, 2]."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    q = np.column_stack([p, np.ones(len(p))]) @ np.asarray(h, dtype=np.float64).T
    return q[:, :2] / q[:, 2:3]


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 homography taking the 4 points ``src`` [4, 2] to ``dst`` [4, 2] (direct linear transform); raises
    ValueError for points in a degenerate layout (three on a line)."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    rows = []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    a = np.asarray(rows)
    _, sv, vt = np.linalg.svd(a)
    if sv[-2] < 1e-9 * sv[0]:
        raise ValueError("the four points are in a degenerate layout (three on a line?)")
    h = vt[-1].reshape(3, 3)
    return h / h[2, 2]


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points [n, 2] against one polygon [m, 2]; bool [n]."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64)
    x, y = p[:, 0:1], p[:, 1:2]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddle = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return np.count_nonzero(straddle & (x < xc), axis=1) % 2 == 1


def polygon_area(polygon: np.ndarray) -> float:
    p = np.asarray(polygon, dtype=np.float64)
    return abs(float(np.sum(cross2(p, np.roll(p, -1, axis=0))))) / 2.0


def clip_to_box(polygon: np.ndarray, box) -> np.ndarray:
    """The part of ``polygon`` inside the axis-aligned box (x1, y1, x2, y2) (Sutherland-Hodgman: the clip window is
    convex, the polygon may be any simple polygon; its area is exact)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    pts = [tuple(p) for p in np.asarray(polygon, dtype=np.float64)]
    for axis, bound, keep_above in ((0, x1, True), (0, x2, False), (1, y1, True), (1, y2, False)):
        if not pts:
            break

        def inside(q, ax=axis, bd=bound, up=keep_above) -> bool:
            return q[ax] >= bd if up else q[ax] <= bd

        out = []
        prev = pts[-1]
        for cur in pts:
            if inside(cur):
                if not inside(prev):
                    out.append(_cut(prev, cur, axis, bound))
                out.append(cur)
            elif inside(prev):
                out.append(_cut(prev, cur, axis, bound))
            prev = cur
        pts = out
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def _cut(p, q, axis: int, bound: float) -> tuple[float, float]:
    t = (bound - p[axis]) / (q[axis] - p[axis])
    return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))


# -- the configuration's shapes --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Zone:
    id: str
    polygon: np.ndarray  # [m, 2] pixels
    lane: str | None = None  # lane of the net it watches (its lane-area detector is replaced by this zone)
    detector: str | None = None  # the detector id its readings are published as (default: from the lane)

    @property
    def area(self) -> float:
        return polygon_area(self.polygon)


@dataclass(frozen=True)
class Line:
    id: str
    a: np.ndarray  # [2] pixels
    b: np.ndarray
    lane: str | None = None
    names: tuple[str, str] = DEFAULT_NAMES  # (to the right of a->b, to the left)


# -- one frame's tracks ----------------------------------------------------------------------------------------------
@dataclass
class TrackFrame:
    """The tracker's output for one frame: the tracks seen in it (ids, xyxy boxes, class indices, whether the
    tracker has confirmed each)."""

    ids: np.ndarray
    boxes: np.ndarray
    cls: np.ndarray
    confirmed: np.ndarray

    @classmethod
    def of(cls, rows, *, confirmed=None) -> TrackFrame:
        """From rows ``(id, x1, y1, x2, y2, class)``; all confirmed unless told."""
        a = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        conf = np.ones(len(a), bool) if confirmed is None else np.asarray(confirmed, bool)
        return cls(a[:, 0].astype(np.int64), a[:, 1:5], a[:, 5].astype(np.int64), conf)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Crossing:
    line: str
    track: int
    cls: str
    direction: str
    time: float


@dataclass(frozen=True)
class ZoneReading:
    """One zone now: vehicles in it (confirmed tracks), by class, standing, and the fraction covered by boxes."""

    zone: str
    count: int
    halting: int
    occupancy: float
    by_class: dict[str, int]


@dataclass
class _OnLine:
    side: int = 0  # the last side held (+1 right of a->b, -1 left, 0 not known yet)
    point: np.ndarray | None = None  # the last point on that side
    time: float = 0.0  # when it was there
    cand: int = 0  # a new side being confirmed
    cand_point: np.ndarray | None = None  # the first point on it
    cand_time: float = 0.0
    cand_from: np.ndarray | None = None  # the last point on the old side, when the candidate started
    cand_from_time: float = 0.0
    cand_n: int = 0
    counted: bool = False


@dataclass
class _Track:
    votes: Counter = field(default_factory=Counter)
    seen: float = 0.0
    confirmed: bool = False
    history: deque = field(default_factory=lambda: deque(maxlen=64))  # (t, x, y)
    lines: dict[str, _OnLine] = field(default_factory=dict)
    pending: list[tuple[str, int, float]] = field(default_factory=list)  # (line, sign, time) before confirmation


class CameraCounter:
    """Zones and lines of one camera over a stream of :class:`TrackFrame`: ``update(t, frame)`` per frame, then
    ``zones_now()`` for the zones' readings, ``crossings`` (every crossing, in order) and ``totals()``."""

    def __init__(self, zones: list[Zone], lines: list[Line], class_names: list[str] | tuple[str, ...], *,
                 anchor: str = "bottom", margin_px: float = 3.0, persist: int = 2, halt_px_s: float = 4.0,
                 forget_s: float = 10.0, ground: np.ndarray | None = None, halt_m_s: float = 1.39,
                 zone_tracks: str = "confirmed") -> None:
        if anchor not in ANCHORS:
            raise ValueError(f"anchor: {anchor!r} is not one of {', '.join(ANCHORS)}")
        self.zones, self.lines = list(zones), list(lines)
        self.class_names = list(class_names)
        self.anchor, self.margin, self.persist = anchor, float(margin_px), max(1, int(persist))
        self.halt_px_s, self.forget_s = float(halt_px_s), float(forget_s)
        # with a ground homography (pixels -> metres on the road) standing is judged in metres per second
        self.ground = None if ground is None else np.asarray(ground, dtype=np.float64).reshape(3, 3)
        self.halt_speed = float(halt_m_s) if self.ground is not None else self.halt_px_s
        if zone_tracks not in ZONE_TRACKS:
            raise ValueError(f"zone_tracks: {zone_tracks!r} is not one of {', '.join(ZONE_TRACKS)}")
        self.zone_tracks = zone_tracks
        self.tracks: dict[int, _Track] = {}
        self.crossings: list[Crossing] = []
        self.dropped_unconfirmed = 0  # crossings of tracks that died before the tracker confirmed them
        self._frame: TrackFrame | None = None
        self._points = np.zeros((0, 2))
        self._t = 0.0
        self._areas = [max(z.area, 1e-9) for z in self.zones]

    def _name(self, c: int) -> str:
        return self.class_names[c] if 0 <= c < len(self.class_names) else str(c)

    def update(self, t: float, frame: TrackFrame) -> list[Crossing]:
        """Take one frame's tracks at time ``t`` (s); returns the crossings counted in it."""
        new: list[Crossing] = []
        pts = anchors(frame.boxes, self.anchor)
        self._frame, self._points, self._t = frame, pts, t
        where = pts if self.ground is None else to_ground(self.ground, pts)
        for i, tid in enumerate(frame.ids.tolist()):
            tr = self.tracks.get(tid)
            if tr is None:
                tr = self.tracks[tid] = _Track()
            tr.votes[int(frame.cls[i])] += 1
            tr.seen = t
            tr.history.append((t, where[i, 0], where[i, 1]))
            for ln in self.lines:
                hit = self._step(tr.lines.setdefault(ln.id, _OnLine()), ln, pts[i], t)
                if hit is not None:
                    tr.pending.append((ln.id, *hit))
            if bool(frame.confirmed[i]):
                tr.confirmed = True
            if tr.confirmed and tr.pending:
                cname = self._name(tr.votes.most_common(1)[0][0])
                for lid, sign, when in tr.pending:
                    ln = next(x for x in self.lines if x.id == lid)
                    c = Crossing(lid, tid, cname, ln.names[0] if sign > 0 else ln.names[1], when)
                    new.append(c)
                tr.pending.clear()
        for tid in [k for k, tr in self.tracks.items() if t - tr.seen > self.forget_s]:
            self.dropped_unconfirmed += len(self.tracks.pop(tid).pending)
        self.crossings.extend(new)
        return new

    def _step(self, st: _OnLine, ln: Line, p: np.ndarray, t: float) -> tuple[int, float] | None:
        """Advance one track's state on one line by its point ``p`` at ``t``; the (sign, time) of a crossing it
        makes, or None."""
        dist = float(signed_distance(p[None, :], ln.a, ln.b)[0])
        side = 1 if dist > self.margin else (-1 if dist < -self.margin else 0)
        if side == 0:  # in the dead band: no side, the last one holds
            return None
        if st.side == 0:
            st.side, st.point, st.time = side, p, t
            return None
        if side == st.side:  # back (or still) on the side it held: a candidate change is forgotten
            st.point, st.time, st.cand, st.cand_n = p, t, 0, 0
            return None
        if st.cand != side:
            st.cand, st.cand_point, st.cand_time, st.cand_n = side, p, t, 0
            st.cand_from, st.cand_from_time = st.point, st.time
        st.cand_n += 1
        if st.cand_n < self.persist:
            return None
        p0, p1, t0, t1 = st.cand_from, st.cand_point, st.cand_from_time, st.cand_time
        st.side, st.point, st.time, st.cand, st.cand_n = side, p, t, 0, 0
        if st.counted:
            return None
        f = segments_cross(p0, p1, ln.a, ln.b)
        if f is None:
            return None
        st.counted = True
        v = p1 - p0  # the crossing vector: its side of the line's direction is the direction of travel
        return (1 if float(cross2(ln.b - ln.a, v)) > 0 else -1), t0 + f * (t1 - t0)

    def zones_now(self) -> list[ZoneReading]:
        """Every zone's reading for the last frame given (confirmed tracks only)."""
        f, pts = self._frame, self._points
        out = []
        if f is None or len(f) == 0:
            return [ZoneReading(z.id, 0, 0, 0.0, {}) for z in self.zones]
        confirmed = np.array([self.tracks[tid].confirmed for tid in f.ids.tolist()], bool)
        ok = confirmed if self.zone_tracks == "confirmed" else np.ones(len(f), bool)
        # standing: a confirmed track whose point moved slower than the threshold over the last second
        moving = ~confirmed | (np.array([self._speed(self.tracks[tid]) for tid in f.ids.tolist()]) >= self.halt_speed)
        for z, area in zip(self.zones, self._areas):
            inside = points_in_polygon(pts, z.polygon) & ok
            by: Counter = Counter()
            cover = 0.0
            for i in np.flatnonzero(inside):
                by[self._name(self.tracks[int(f.ids[i])].votes.most_common(1)[0][0])] += 1
                cover += polygon_area(clip_to_box(z.polygon, f.boxes[i]))
            out.append(ZoneReading(z.id, int(inside.sum()), int((inside & ~moving).sum()),
                                   min(cover / area, 1.0), dict(by)))
        return out

    def _speed(self, tr: _Track, window: float = 1.0) -> float:
        """Pixels (metres, with a ground homography) per second of the track's point over about the last ``window``
        s (inf: too young to say)."""
        h = tr.history
        t1, x1, y1 = h[-1]
        for t0, x0, y0 in reversed(h):
            if t1 - t0 >= window:
                return float(np.hypot(x1 - x0, y1 - y0)) / (t1 - t0)
        t0, x0, y0 = h[0]
        if t1 - t0 >= window / 2:
            return float(np.hypot(x1 - x0, y1 - y0)) / (t1 - t0)
        return float("inf")

    def totals(self) -> dict[str, dict[str, dict[str, int]]]:
        """Crossings so far by line, direction and class (every line and both its directions present)."""
        out: dict[str, dict[str, dict[str, int]]] = {ln.id: {ln.names[0]: {}, ln.names[1]: {}} for ln in self.lines}
        for c in self.crossings:
            d = out[c.line][c.direction]
            d[c.cls] = d.get(c.cls, 0) + 1
        return out


def count_tracks(frames, zones: list[Zone], lines: list[Line], class_names, **kw) -> CameraCounter:
    """Run a :class:`CameraCounter` over ``(t, TrackFrame)`` pairs; returns it (``totals()``, ``crossings``)."""
    c = CameraCounter(zones, lines, class_names, **kw)
    for t, f in frames:
        c.update(t, f)
    return c
