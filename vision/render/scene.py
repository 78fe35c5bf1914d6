"""What a synthetic camera looks at: vehicles (as SUMO has them) and the road they drive on.

Classes are those of the shipped detector: ``CLASSES`` (YOLO class ids are their positions). SUMO's vehicle classes
map onto them with :func:`class_of` (bicycles and pedestrians are not vehicles here: they are not drawn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

CLASSES: tuple[str, ...] = ("car", "bus", "truck", "motorcycle")
CLASS_ID = {name: i for i, name in enumerate(CLASSES)}

_SUMO_CLASS = {
    "passenger": "car", "private": "car", "taxi": "car", "evehicle": "car", "emergency": "car",
    "authority": "car", "army": "car", "vip": "car", "hov": "car", "custom1": "car", "custom2": "car",
    "delivery": "car",
    "bus": "bus", "coach": "bus",
    "truck": "truck", "trailer": "truck",
    "motorcycle": "motorcycle", "moped": "motorcycle",
}

#: SUMO's default size (length, width) of each class, for vehicles given without one
DEFAULT_SIZE = {"car": (4.5, 1.8), "bus": (12.0, 2.5), "truck": (7.1, 2.4), "motorcycle": (2.2, 0.9)}


def class_of(vclass: str) -> str | None:
    """The detector class of a SUMO vehicle class (``passenger`` -> ``car``), or None where it is no vehicle here
    (``bicycle``, ``pedestrian``, rail)."""
    if vclass in CLASSES:
        return vclass
    return _SUMO_CLASS.get(vclass)


@dataclass(frozen=True)
class Vehicle:
    """One vehicle: ``x, y`` the centre of its footprint (metres), ``heading`` the direction it faces (degrees,
    counter-clockwise from east), ``length`` and ``width`` in metres, ``cls`` one of :data:`CLASSES`."""

    id: str
    cls: str
    x: float
    y: float
    heading: float
    length: float
    width: float

    def __post_init__(self) -> None:
        if self.cls not in CLASS_ID:
            raise ValueError(f"vehicle {self.id!r}: class must be one of {', '.join(CLASSES)}, got {self.cls!r}")
        if not (self.length > 0 and self.width > 0):
            raise ValueError(f"vehicle {self.id!r}: length and width must be positive, got {self.length}, "
                             f"{self.width}")
        if not all(math.isfinite(v) for v in (self.x, self.y, self.heading)):
            raise ValueError(f"vehicle {self.id!r}: position and heading must be finite")

    @classmethod
    def from_sumo(cls, vid: str, vclass: str, front: tuple[float, float], angle: float, length: float,
                  width: float) -> Vehicle | None:
        """From SUMO's view of a vehicle: ``front`` its front bumper's position, ``angle`` its compass angle
        (degrees, 0 north, clockwise). None for a SUMO class that is no vehicle here."""
        name = class_of(vclass)
        if name is None:
            return None
        heading = 90.0 - angle
        h = math.radians(heading)
        return cls(vid, name, front[0] - 0.5 * length * math.cos(h), front[1] - 0.5 * length * math.sin(h),
                   heading, length, width)

    def footprint(self) -> np.ndarray:
        """The four ground corners [4, 2] (rear-right, front-right, front-left, rear-left)."""
        h = math.radians(self.heading)
        f = np.array([math.cos(h), math.sin(h)])
        left = np.array([-f[1], f[0]])
        c = np.array([self.x, self.y])
        hl, hw = self.length / 2.0, self.width / 2.0
        return np.array([c - hl * f - hw * left, c + hl * f - hw * left, c + hl * f + hw * left,
                         c - hl * f + hw * left])


@dataclass(frozen=True)
class Lane:
    """A lane's centre line (``shape`` [n, 2], in the direction of travel) and width; ``index`` counts from the
    right-hand edge of its road (0) as in SUMO; ``stop`` marks a lane that ends at a stop line."""

    id: str
    shape: np.ndarray
    width: float
    edge: str
    index: int
    stop: bool = False


@dataclass(frozen=True)
class Scene:
    """The road: lanes, and the paved polygons of junctions ([n, 2] each)."""

    lanes: tuple[Lane, ...]
    junctions: tuple[np.ndarray, ...] = field(default_factory=tuple)

    def bounds(self) -> tuple[float, float, float, float]:
        pts = [lane.shape for lane in self.lanes] + list(self.junctions)
        if not pts:
            return -50.0, -50.0, 50.0, 50.0
        a = np.concatenate(pts)
        return float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 0].max()), float(a[:, 1].max())


def straight_scene(lanes_each_way: int = 2, length: float = 200.0, lane_width: float = 3.2,
                   two_way: bool = True) -> Scene:
    """A straight road along x from ``-length/2`` to ``length/2`` (eastbound lanes south of y = 0, westbound north
    of it), with a stop line at x = 0 on the eastbound lanes: a scene needing no SUMO."""
    lanes = []
    half = length / 2.0
    for i in range(lanes_each_way):
        y = -(lanes_each_way - 1 - i + 0.5) * lane_width
        lanes.append(Lane(f"east_{i}", np.array([[-half, y], [0.0, y]]), lane_width, "east", i, stop=True))
        lanes.append(Lane(f"east2_{i}", np.array([[0.0, y], [half, y]]), lane_width, "east2", i))
        if two_way:
            y2 = (lanes_each_way - 1 - i + 0.5) * lane_width
            lanes.append(Lane(f"west_{i}", np.array([[half, y2], [-half, y2]]), lane_width, "west", i))
    return Scene(tuple(lanes))


def lane_polygon(shape: np.ndarray, width: float) -> np.ndarray:
    """The paved outline of a lane [2n, 2] (its centre line offset by half its width on each side)."""
    left, right = offset_polyline(shape, width / 2.0), offset_polyline(shape, -width / 2.0)
    return np.concatenate([right, left[::-1]])


def offset_polyline(shape: np.ndarray, d: float) -> np.ndarray:
    """The polyline moved ``d`` metres to its left (negative: right), mitred at the joints."""
    p = np.asarray(shape, dtype=np.float64)
    if len(p) < 2:
        return p.copy()
    seg = np.diff(p, axis=0)
    seg /= np.maximum(np.linalg.norm(seg, axis=1, keepdims=True), 1e-9)
    normals = np.stack([-seg[:, 1], seg[:, 0]], axis=1)
    n = np.empty_like(p)
    n[0], n[-1] = normals[0], normals[-1]
    if len(p) > 2:
        mid = normals[:-1] + normals[1:]
        mid /= np.maximum(np.linalg.norm(mid, axis=1, keepdims=True), 1e-9)
        cos = np.clip(np.sum(mid * normals[1:], axis=1), 0.3, 1.0)
        n[1:-1] = mid / cos[:, None]
    return p + d * n
