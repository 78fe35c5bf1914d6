"""Cameras in the loop (``lintas simulate --cameras J1,J2``), SUMO's side: where the cameras of a junction look and
what they see each tick, as plain data.

A junction gets one camera per approach (the edge its controlled lanes belong to). For each controlled lane the site
holds the ground the lane's lane-area detector covers (the E2 stand-in, ``simulation/sumo/detectors.py``): the lane
and its upstream chain, as one polyline in SUMO's metres from upstream to the stop line, cut to the detector's
length. Each tick :func:`site_vehicles` lists the vehicles on those lanes as SUMO has them (front bumper position,
compass angle, class, length, width).

What renders, detects and counts is passed down by the command tree (a *camera feed*: ``feed(sites, seed)`` returns
an object with ``step(t, vehicles_per_site) -> [DetectorReading]``, ``stats() -> dict`` and ``close()``), so
simulation/ never imports vision/ (docs/vision.md, 'Cameras in the loop'). The runner replaces the E2 readings of
the sites' lanes with the feed's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.network import DET_AREA, Network
from simulation.sumo.lanegraph import LaneGraph, read_net
from simulation.sumo.scenario import ScenarioError

__all__ = ["CameraFeed", "CameraLane", "CameraSite", "FeedFactory", "RoadLane", "camera_sites", "check_cameras",
           "site_vehicles"]


@dataclass(frozen=True)
class CameraLane:
    lane: str  # the controlled lane
    detector: str  # its lane-area (camera) detector, whose readings the camera's replace
    shape: np.ndarray  # [n, 2] metres: the ground the detector covers, upstream -> stop line
    width: float  # m
    lanes: tuple[str, ...]  # the SUMO lanes under it (the lane and its upstream chain)


RoadLane = tuple[str, np.ndarray, float, str, int, bool]
"""(lane id, centre line [n, 2] in the direction of travel, width, edge, index from the right, ends at a stop line)"""


@dataclass(frozen=True)
class CameraSite:
    """One camera: an approach (edge) of a junction and its controlled lanes; ``road`` the lanes around it (for
    the picture: oncoming lanes, the junction's exits), ``junction_shape`` the junction's paved outline, ``center``
    and ``radius`` the ground it may see (vehicles farther are not handed over)."""

    junction: str
    edge: str
    lanes: tuple[CameraLane, ...]
    road: tuple[RoadLane, ...]
    junction_shape: np.ndarray
    center: tuple[float, float]
    radius: float


Vehicle = tuple[str, str, float, float, float, float, float]
"""(id, SUMO vehicle class, front x, front y, compass angle (degrees, 0 north, clockwise), length, width)"""


class CameraFeed(Protocol):
    detectors: frozenset[str]  # the lane-area detectors it stands for (a lane no camera sees keeps its E2)

    def step(self, t: float, vehicles: Sequence[Sequence[Vehicle]]) -> list: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


FeedFactory = Callable[[list[CameraSite], int], CameraFeed]


def check_cameras(net: Network, cameras: Sequence[str]) -> None:
    """Every junction of ``--cameras`` is one of the network's (:class:`ScenarioError` naming the option)."""
    known = {j.id for j in net.junctions}
    for jid in cameras:
        if jid not in known:
            raise ScenarioError(f"--cameras: {jid!r} is not a signalised junction of {net.name} "
                                f"(its junctions: {', '.join(sorted(known)[:12])})")
    if len(set(cameras)) != len(cameras):
        raise ScenarioError(f"--cameras: a junction is named twice ({', '.join(cameras)})")


def _polyline_tail(pts: np.ndarray, length: float) -> np.ndarray:
    """The last ``length`` metres of a polyline [n, 2] (all of it when shorter)."""
    seg = np.hypot(*np.diff(pts, axis=0).T)
    total = float(seg.sum())
    if length >= total or len(pts) < 2:
        return pts
    cut = total - length
    acc = np.concatenate([[0.0], np.cumsum(seg)])
    k = int(np.searchsorted(acc, cut, side="right")) - 1
    f = (cut - acc[k]) / max(seg[k], 1e-9)
    start = pts[k] + f * (pts[k + 1] - pts[k])
    return np.vstack([start, pts[k + 1:]])


def _road(conn) -> list[RoadLane]:
    stop = set()
    for tl in conn.trafficlight.getIDList():
        stop.update(conn.trafficlight.getControlledLanes(tl))
    out = []
    for lid in conn.lane.getIDList():
        if lid.startswith(":"):
            continue
        idx = lid.rsplit("_", 1)[-1]
        out.append((lid, np.asarray(conn.lane.getShape(lid), dtype=np.float64), float(conn.lane.getWidth(lid)),
                    conn.lane.getEdgeID(lid), int(idx) if idx.isdigit() else 0, lid in stop))
    return out


def camera_sites(conn, net: Network, net_file: Path, cameras: Sequence[str], margin: float = 40.0
                 ) -> list[CameraSite]:
    """The camera sites of the junctions ``cameras`` (one per approach edge), from the running SUMO ``conn`` (lane
    shapes and widths) and the net file (each lane's upstream chain, as the detectors were placed). A site sees the
    ground within its lanes' reach plus ``margin`` metres."""
    graph = LaneGraph.from_net(read_net(Path(net_file)))
    controlled = frozenset(net.lane_ids)
    road = _road(conn)
    sites = []
    for jid in cameras:
        j = net.junction_index[jid]
        by_edge: dict[str, list[CameraLane]] = {}
        for d, did in enumerate(net.det_ids):
            if int(net.det_kind[d]) != DET_AREA or int(net.lane_junction[net.det_lane[d]]) != j:
                continue
            lane = net.lane_ids[int(net.det_lane[d])]
            length = float(net.det_length[d])
            chain = graph.upstream_chain(lane, length, controlled)
            shape = np.vstack([np.asarray(conn.lane.getShape(cl.lane), dtype=np.float64) for cl in reversed(chain)])
            keep = np.concatenate([[True], np.hypot(*np.diff(shape, axis=0).T) > 1e-6])
            cam_lane = CameraLane(lane, did, _polyline_tail(shape[keep], length), float(conn.lane.getWidth(lane)),
                                  tuple(cl.lane for cl in chain))
            by_edge.setdefault(conn.lane.getEdgeID(lane), []).append(cam_lane)
        jshape = np.asarray(conn.junction.getShape(jid), dtype=np.float64).reshape(-1, 2)
        for edge, lanes in sorted(by_edge.items()):
            pts = np.vstack([cl.shape for cl in lanes])
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            center = (lo + hi) / 2
            radius = float(np.hypot(*(hi - lo))) / 2 + margin
            near = tuple(r for r in road if np.min(np.hypot(*(r[1] - center).T)) <= radius)
            sites.append(CameraSite(jid, edge, tuple(sorted(lanes, key=lambda c: c.lane)), near, jshape,
                                    (float(center[0]), float(center[1])), radius))
        if not by_edge:
            raise ScenarioError(f"--cameras: junction {jid!r} has no lane-area detector for a camera to stand for")
    return sites


def site_vehicles(conn, sites: Sequence[CameraSite], shapes: dict | None = None) -> list[list[Vehicle]]:
    """The vehicles each site may see now (within its radius; ``shapes``: a dict kept between calls, vehicle id ->
    (class, length, width), read from SUMO once per vehicle)."""
    cache = shapes if shapes is not None else {}
    veh = conn.vehicle
    ids = veh.getIDList()
    if not ids:
        return [[] for _ in sites]
    pos = np.array([veh.getPosition(v) for v in ids], dtype=np.float64)
    out = []
    for site in sites:
        near = np.flatnonzero(np.hypot(pos[:, 0] - site.center[0], pos[:, 1] - site.center[1]) <= site.radius)
        seen: list[Vehicle] = []
        for i in near.tolist():
            vid = ids[i]
            k = cache.get(vid)
            if k is None:
                k = cache[vid] = (veh.getVehicleClass(vid), float(veh.getLength(vid)), float(veh.getWidth(vid)))
            seen.append((vid, k[0], float(pos[i, 0]), float(pos[i, 1]), float(veh.getAngle(vid)), k[1], k[2]))
        out.append(seen)
    return out
