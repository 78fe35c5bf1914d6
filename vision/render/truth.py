"""Ground truth of zones and lines, from the renderer's own knowledge of every vehicle (not from detections).

Zones are polygons and lines are segments ``a -> b``, in the camera's pixels (as a camera's ``[[zones]]`` and
``[[lines]]`` give them). A vehicle's point is where it stands: ``"ground"`` the projection of its footprint's centre
on the road (exact), ``"bottom"`` the bottom centre of its box, ``"center"`` the box's centre (what a counter over
detections uses). The direction of a crossing follows :mod:`vision.count`: the sign of ``(b - a) x v`` for the
vehicle's move ``v`` between the two frames, positive (``names[0]``, "in") when it moves to the right-hand side of
the arrow a -> b as drawn in the image (y down). A crossing counts only where the move meets the segment itself,
between its ends, and once per vehicle and line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vision.render.draw import Truth

ANCHORS = ("ground", "bottom", "center")


def point_of(obj: Truth, anchor: str = "ground") -> tuple[float, float]:
    """The pixel that stands for a vehicle (see the module's doc)."""
    if anchor == "ground":
        return obj.ground
    x0, y0, x1, y1 = obj.box
    if anchor == "bottom":
        return (x0 + x1) / 2, y1
    if anchor == "center":
        return (x0 + x1) / 2, (y0 + y1) / 2
    raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}")


def _inside(p: tuple[float, float], poly: np.ndarray) -> bool:
    x, y = p
    if not (np.isfinite(x) and np.isfinite(y)):
        return False
    inside = False
    n = len(poly)
    for i in range(n):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % n]
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def zone_truth(objects: Iterable[Truth], zones: Mapping[str, Sequence[Sequence[float]]], anchor: str = "ground",
               labelled_only: bool = False) -> dict[str, list[Truth]]:
    """Per zone id, the vehicles whose point lies in the zone's polygon in this frame."""
    polys = {}
    for zid, poly in zones.items():
        p = np.asarray(poly, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3:
            raise ValueError(f"zone {zid!r}: a polygon needs at least 3 points (x, y), got {np.shape(poly)}")
        polys[zid] = p
    out: dict[str, list[Truth]] = {zid: [] for zid in polys}
    for o in objects:
        if labelled_only and not o.labelled:
            continue
        pt = point_of(o, anchor)
        for zid, p in polys.items():
            if _inside(pt, p):
                out[zid].append(o)
    return out


@dataclass(frozen=True)
class Crossing:
    line: str
    vehicle: str
    cls: str
    direction: str


def _crossing_sign(p0, p1, a, b) -> int:
    """+1 / -1 where the move p0 -> p1 meets the segment a-b (the sign of (b - a) x (p1 - p0)), else 0."""
    p0, p1, a, b = (np.asarray(v, dtype=np.float64) for v in (p0, p1, a, b))
    if not (np.all(np.isfinite(p0)) and np.all(np.isfinite(p1))):
        return 0
    r, s = p1 - p0, b - a
    den = r[0] * s[1] - r[1] * s[0]
    if den == 0:
        return 0
    q = a - p0
    t = (q[0] * s[1] - q[1] * s[0]) / den
    u = (q[0] * r[1] - q[1] * r[0]) / den
    if not (0.0 <= t <= 1.0 and 0.0 <= u <= 1.0):
        return 0
    side0 = s[0] * (p0 - a)[1] - s[1] * (p0 - a)[0]
    if side0 == 0 and t == 0.0:  # starting on the line: counted when it left the other side, not again
        return 0
    z = s[0] * r[1] - s[1] * r[0]
    return 1 if z > 0 else -1


class LineTruth:
    """Line crossings frame by frame: feed each frame's objects in order; every vehicle counts at most once per
    line. ``counts`` holds (line, direction, class) -> vehicles."""

    def __init__(self, lines: Mapping[str, Sequence[Sequence[float]]], anchor: str = "ground",
                 names: tuple[str, str] = ("in", "out")):
        self.lines = {}
        for lid, seg in lines.items():
            s = np.asarray(seg, dtype=np.float64)
            if s.shape != (2, 2) or np.allclose(s[0], s[1]):
                raise ValueError(f"line {lid!r}: needs two distinct points (x, y), got {np.shape(seg)}")
            self.lines[lid] = s
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}")
        self.anchor, self.names = anchor, names
        self.last: dict[str, tuple[float, float]] = {}
        self.done: set[tuple[str, str]] = set()
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def step(self, objects: Iterable[Truth]) -> list[Crossing]:
        out = []
        seen = {}
        for o in objects:
            p = point_of(o, self.anchor)
            seen[o.id] = p
            prev = self.last.get(o.id)
            if prev is None:
                continue
            for lid, (a, b) in self.lines.items():
                if (lid, o.id) in self.done:
                    continue
                sign = _crossing_sign(prev, p, a, b)
                if sign:
                    self.done.add((lid, o.id))
                    c = Crossing(lid, o.id, o.cls, self.names[0] if sign > 0 else self.names[1])
                    self.counts[(lid, c.direction, o.cls)] += 1
                    out.append(c)
        self.last = seen
        return out


def line_truth(frames: Iterable[Iterable[Truth]], lines: Mapping[str, Sequence[Sequence[float]]],
               anchor: str = "ground", names: tuple[str, str] = ("in", "out")) -> Counter[tuple[str, str, str]]:
    """Crossings over a whole clip: (line, direction, class) -> vehicles."""
    lt = LineTruth(lines, anchor, names)
    for objs in frames:
        lt.step(objs)
    return lt.counts
