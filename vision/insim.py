"""Cameras in the loop (``lintas simulate --cameras J1,J2``), vision's side: each tick, for every approach of those
junctions, a frame is rendered from SUMO's vehicles (vision/render/), run through the detector, the tracker and the
counter, and the zones' readings go to the engine in place of the lane-area detectors (the E2 stand-in).

The command tree hands :func:`loop_cameras` to the runs (simulation/ never imports vision/; the runner calls it with
the sites of simulation/sumo/cameras.py, plain data). Per approach one camera: on a pole 12 m high over the middle
of the approach, 3 m past the stop line, looking upstream at the traffic coming towards it (the view of a signal's
mast arm), 336 x 224 pixels (the detector works at 320), 60 degrees wide, in a style (time of day, weather, lens)
drawn from the run's seed. Each lane's zone is the ground its lane-area detector covers, projected into the image; a
lane whose zone the camera cannot see keeps its lane-area detector. Standing is judged on the road (the camera's
ground homography) at 1.39 m/s, as SUMO's lane-area detectors judge it.

One frame per tick (the engine's tick is 1 s): too seldom for a moving vehicle to be confirmed by the tracker, so
the zones count every detection in them, and a vehicle is standing when the tracker matched it from the frame before
(one second earlier) and it moved less than 1.39 m in between.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from engine.protocol import messages as m
from vision.camera import class_names, detect
from vision.count import CameraCounter, Zone, clip_to_box, polygon_area
from vision.track import ByteTracker, TrackerConfig

POLE_HEIGHT = 12.0  # m
PAST_STOP_LINE = 3.0  # m: the pole stands this far downstream of the stop line
AIM = 40.0  # m upstream of the stop line: where the camera's axis meets the road
FOV = 60.0  # degrees, horizontal
SIZE = (336, 224)  # the detector sees 320 px: rendering more would be shrunk away
MIN_ZONE_PX = 150.0  # a zone smaller than this in the image is not watched (the lane keeps its E2)
HALT_M_S = 1.39  # SUMO's lane-area detectors' halting speed


def _approach(site) -> tuple[np.ndarray, np.ndarray]:
    """The middle of the stop line of the site's lanes and the direction of travel there (unit vector)."""
    ends = np.array([cl.shape[-1] for cl in site.lanes])
    dirs = np.array([cl.shape[-1] - cl.shape[-2] for cl in site.lanes])
    d = dirs.sum(axis=0)
    return ends.mean(axis=0), d / max(float(np.hypot(*d)), 1e-9)


class _Site:
    """One camera: its view, the backdrop of its clip, and its tracker and counter."""

    def __init__(self, site, seed: int, index: int, names: list[str]) -> None:
        from vision.render.camera import look_at
        from vision.render.draw import Backdrop
        from vision.render.scene import Lane, Scene, lane_polygon
        from vision.render.style import Style

        self.site = site
        stop, d = _approach(site)
        target = stop - AIM * d
        towards = math.degrees(math.atan2(-d[1], -d[0]))  # looking upstream, at the oncoming traffic
        self.camera = look_at((float(target[0]), float(target[1])), AIM + PAST_STOP_LINE, POLE_HEIGHT, towards, FOV,
                              SIZE[0], SIZE[1])
        lanes = tuple(Lane(lid, shape, width, edge, idx, stop_) for lid, shape, width, edge, idx, stop_ in site.road)
        shapes = (site.junction_shape,) if len(site.junction_shape) >= 3 else ()
        self.scene = Scene(lanes, shapes)
        self.style = Style.sample(int(seed) * 1009 + index)
        self.backdrop = Backdrop(self.scene, self.camera, self.style)
        self.seed = int(seed) * 7919 + index * 104729
        w, h = SIZE
        zones, skipped = [], []
        for cl in site.lanes:
            ground = lane_polygon(cl.shape, cl.width)
            pix, _depth = self.camera.project(np.column_stack([ground, np.zeros(len(ground))]))
            poly = clip_to_box(pix[np.isfinite(pix).all(axis=1)], (0, 0, w, h)) if np.isfinite(pix).any() else pix[:0]
            if len(poly) >= 3 and polygon_area(poly) >= MIN_ZONE_PX:
                zones.append(Zone(cl.lane, poly, cl.lane, cl.detector))
            else:
                skipped.append(cl.detector)
        self.zones, self.skipped = zones, skipped
        self.detector_of = {z.id: z.detector for z in zones}
        ground_h = np.linalg.inv(self.camera.ground_homography())  # pixels -> metres on the road
        self.tracker = ByteTracker(TrackerConfig(min_hits=2), fps=1.0)
        self.counter = CameraCounter(zones, [], names, anchor="bottom", ground=ground_h, halt_m_s=HALT_M_S,
                                     zone_tracks="all")
        self.frames = 0


class LoopCameras:
    """The cameras of one run (:class:`simulation.sumo.cameras.CameraFeed`)."""

    def __init__(self, sites: Sequence, seed: int, detector=None) -> None:
        if detector is None:
            from vision.detect import load_detector

            detector = load_detector(None)
        self.detector = detector
        names = class_names(detector)
        self.sites = [_Site(s, seed, i, names) for i, s in enumerate(sites)]
        self.detectors = frozenset(z.detector for s in self.sites for z in s.zones)
        self.ms = {"render": 0.0, "detect": 0.0, "count": 0.0}
        self.frames = 0
        self.detections = 0

    def step(self, t: float, vehicles: Sequence[Sequence[tuple]]) -> list[m.DetectorReading]:
        from vision.render.draw import render_frame
        from vision.render.scene import Vehicle

        out = []
        for s, vs in zip(self.sites, vehicles):
            if not s.zones:
                continue
            drawn = [v for v in (Vehicle.from_sumo(vid, vc, (x, y), ang, ln, wd) for vid, vc, x, y, ang, ln, wd in vs)
                     if v is not None]
            t0 = time.perf_counter()
            frame = render_frame(drawn, s.camera, s.seed + s.frames, backdrop=s.backdrop)
            t1 = time.perf_counter()
            boxes, cls, scores = detect(self.detector, frame.image)
            t2 = time.perf_counter()
            s.counter.update(t, s.tracker.update(t, boxes, cls, scores))
            out += [m.DetectorReading(s.detector_of[z.zone], z.count, round(z.occupancy, 4), z.halting)
                    for z in s.counter.zones_now()]
            t3 = time.perf_counter()
            s.frames += 1
            self.frames += 1
            self.detections += len(boxes)
            self.ms["render"] += (t1 - t0) * 1e3
            self.ms["detect"] += (t2 - t1) * 1e3
            self.ms["count"] += (t3 - t2) * 1e3
        return out

    def stats(self) -> dict:
        n = max(self.frames, 1)
        return {"frames": self.frames, "detections_per_frame": round(self.detections / n, 2),
                "ms_per_frame": {k: round(v / n, 2) for k, v in self.ms.items()},
                "lanes_not_seen": sorted(d for s in self.sites for d in s.skipped)}

    def close(self) -> None:
        self.sites.clear()


def loop_cameras(sites: Sequence, seed: int) -> LoopCameras:
    """The camera feed of ``lintas simulate --cameras`` (what the command tree hands to the runs)."""
    return LoopCameras(sites, seed)
