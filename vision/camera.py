"""A camera of the city: its configuration (TOML), the pipeline that turns its frames into counts (detector,
tracker, counter) and the worker that publishes those counts on the bus (``lintas camera``).

The configuration::

    id = "J1-north"                    # the source named in the batches it publishes
    source = "north.mp4"               # a video file, a folder of images, rtsp://... or http(s)://...
    size = [480, 320]                  # the frame size the zones are drawn for (optional: else the first frame's)
    rate = 1.0                         # readings published per second
    network = "out/compiled/network.json"   # optional: the engine's network; lanes are checked against it
    model = "vision/models/lintas-v1.onnx"  # optional: the detector (default: the shipped model)
    anchor = "bottom"                  # the vehicle's point: bottom centre of its box (a pole), or "center"
    halt_px_s = 4.0                    # standing: its point moves less than this (pixels per second)
    zone_tracks = "confirmed"          # zones count confirmed tracks ("all": every track of the frame)

    [ground]                           # optional: four road points in the image and on the road (metres)
    pixels = [[120, 310], [360, 310], [300, 120], [180, 120]]
    metres = [[0, 0], [7, 0], [7, 60], [0, 60]]
    halt_m_s = 1.39                    # then standing is judged in metres per second

    [[zones]]                          # a lane-area detector seen by the camera: vehicles in it, standing, occupancy
    id = "north-0"
    polygon = [[120, 310], [230, 310], [236, 120], [200, 120]]
    lane = "NC_0"                      # optional: the net's lane it watches: it is published as that lane's camera

    [[lines]]                          # counted crossings, by direction and class
    id = "north-stop"
    points = [[100, 300], [260, 300]]
    lane = "NC_0"                      # optional
    names = ["in", "out"]              # optional: crossing to the right of points[0]->points[1], and to the left

A zone with a lane is published as the lane's camera detector, the same reading the simulation's lane-area detector
(the E2 stand-in) publishes (``DetectorReading``: vehicles in the zone, occupancy, halting): with ``network``, the
lane-area detector the network has on that lane; without it, ``lintas_cam_<lane>`` as ``lintas compile`` names them;
``detector = "..."`` on the zone names it outright. Zones without any are counted but not published. Line crossings
are not a reading the engine knows: the worker logs them and ``lintas vision count`` writes them.

Bad input is a :class:`CameraConfigError` naming the file and the key: ``cam.toml: zones[1].polygon: ...``.
"""

from __future__ import annotations

import logging
import math
import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.protocol import messages as m
from vision.count import ANCHORS, DEFAULT_NAMES, ZONE_TRACKS, CameraCounter, Crossing, Line, Zone, homography
from vision.sources import Frame, SourceError, is_stream, open_source
from vision.track import ByteTracker

log = logging.getLogger("lintas.camera")

__all__ = ["CameraConfig", "CameraConfigError", "CameraWorker", "Health", "Pipeline", "load_config"]


class CameraConfigError(ValueError):
    """A camera configuration that cannot be used: the message names the file and the key."""


_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_.#:+\-\[\]]")


def camera_detector_id(lane: str) -> str:
    """The id ``lintas compile`` gives a lane's lane-area (camera) detector (simulation/sumo/detectors.py,
    ``detector_id("cam", lane)``; a test keeps the two equal)."""
    return f"lintas_cam_{_BAD_ID_CHARS.sub('_', lane)}"


@dataclass
class CameraConfig:
    path: Path
    id: str
    source: str
    zones: list[Zone]
    lines: list[Line]
    size: tuple[int, int] | None = None
    rate: float = 1.0
    network: Path | None = None
    model: Path | None = None
    anchor: str = "bottom"
    halt_px_s: float = 4.0
    margin_px: float = 3.0
    zone_tracks: str = "confirmed"
    ground: np.ndarray | None = None  # 3x3 homography, pixels -> metres on the road
    halt_m_s: float = 1.39
    fps: float | None = None  # an image folder's frame rate
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    dead_after_s: float = 30.0
    late_fraction: float = 0.5
    published: dict[str, str] = field(default_factory=dict)  # zone id -> detector id it is published as

    @property
    def base(self) -> Path:
        return self.path.parent

    def check_frame(self, image: np.ndarray, where: str) -> None:
        """Refuse a frame of another size than the zones were drawn for (naming the key and the file)."""
        h, w = image.shape[:2]
        if self.size is None:
            self.size = (w, h)
            self.check_geometry()
        elif (w, h) != tuple(self.size):
            raise CameraConfigError(f"{self.path}: size: the frames of {where} are {w}x{h} pixels, the config says "
                                    f"{self.size[0]}x{self.size[1]}")

    def check_geometry(self) -> None:
        """Every zone and line inside the image (when its size is known)."""
        if self.size is None:
            return
        w, h = self.size
        for i, z in enumerate(self.zones):
            _inside(z.polygon, w, h, self.path, f"zones[{i}].polygon", z.id)
        for i, ln in enumerate(self.lines):
            _inside(np.stack([ln.a, ln.b]), w, h, self.path, f"lines[{i}].points", ln.id)


def _inside(pts: np.ndarray, w: int, h: int, path: Path, key: str, ident: str) -> None:
    bad = (pts[:, 0] < 0) | (pts[:, 0] > w) | (pts[:, 1] < 0) | (pts[:, 1] > h)
    if bad.any():
        x, y = pts[np.flatnonzero(bad)[0]]
        raise CameraConfigError(f"{path}: {key} ({ident!r}): point ({x:g}, {y:g}) is outside the {w}x{h} image")


def _points(value, path: Path, key: str, n: int | None = None, least: int = 1) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        a = None
    if a is None or a.ndim != 2 or a.shape[1] != 2 or not np.isfinite(a).all():
        raise CameraConfigError(f"{path}: {key}: expected a list of [x, y] pixel points, got {value!r}")
    if n is not None and len(a) != n:
        raise CameraConfigError(f"{path}: {key}: expected {n} points, got {len(a)}")
    if len(a) < least:
        raise CameraConfigError(f"{path}: {key}: expected at least {least} points, got {len(a)}")
    return a


def _get(d: dict, key: str, kind, path: Path, where: str, default=None, required: bool = False):
    if key not in d:
        if required:
            raise CameraConfigError(f"{path}: {where}{key}: missing")
        return default
    v = d[key]
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
        raise CameraConfigError(f"{path}: {where}{key}: expected {getattr(kind, '__name__', kind)}, got {v!r}")
    return v


_TOP_KEYS = {"id", "source", "size", "rate", "network", "model", "anchor", "halt_px_s", "margin_px", "fps",
             "zone_tracks", "ground", "zones", "lines", "health"}
_HEALTH_KEYS = {"reconnect_min_s", "reconnect_max_s", "dead_after_s", "late_fraction"}


def load_config(path: str | Path, *, source: str | None = None, network: Path | None = None) -> CameraConfig:
    """Read and check a camera's TOML file. ``source`` / ``network`` replace the file's (command-line options)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CameraConfigError(f"{path}: no such camera config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CameraConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CameraConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise CameraConfigError(f"{path}: {unknown[0]}: unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
    cid = _get(raw, "id", str, path, "", default=path.stem)
    src = source if source is not None else _get(raw, "source", str, path, "", required=True)
    size = None
    if "size" in raw:
        s = raw["size"]
        if not (isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) and v > 0 for v in s)):
            raise CameraConfigError(f"{path}: size: expected [width, height] in pixels, got {s!r}")
        size = (int(s[0]), int(s[1]))
    rate = _get(raw, "rate", float, path, "", default=1.0)
    if not 0.0 < rate <= 50.0:
        raise CameraConfigError(f"{path}: rate: readings per second must be in (0, 50], got {rate:g}")
    anchor = _get(raw, "anchor", str, path, "", default="bottom")
    if anchor not in ANCHORS:
        raise CameraConfigError(f"{path}: anchor: {anchor!r} is not one of {', '.join(ANCHORS)}")
    halt = _get(raw, "halt_px_s", float, path, "", default=4.0)
    zone_tracks = _get(raw, "zone_tracks", str, path, "", default="confirmed")
    if zone_tracks not in ZONE_TRACKS:
        raise CameraConfigError(f"{path}: zone_tracks: {zone_tracks!r} is not one of {', '.join(ZONE_TRACKS)}")
    ground, halt_m_s = None, 1.39
    if "ground" in raw:
        g = raw["ground"]
        if not isinstance(g, dict) or set(g) - {"pixels", "metres", "halt_m_s"}:
            raise CameraConfigError(f"{path}: ground: expected a table with pixels, metres and halt_m_s")
        px = _points(g.get("pixels"), path, "ground.pixels", n=4)
        mt = _points(g.get("metres"), path, "ground.metres", n=4)
        halt_m_s = _get(g, "halt_m_s", float, path, "ground.", default=1.39)
        try:
            ground = homography(px, mt)
        except ValueError as exc:
            raise CameraConfigError(f"{path}: ground: {exc}") from None
    margin = _get(raw, "margin_px", float, path, "", default=3.0)
    fps = _get(raw, "fps", float, path, "", default=None)
    if fps is not None and not 0 < fps <= 1000:
        raise CameraConfigError(f"{path}: fps: must be in (0, 1000], got {fps:g}")

    def rel(key: str, given: Path | None) -> Path | None:
        if given is not None:
            return Path(given)
        v = _get(raw, key, str, path, "", default=None)
        if v is None:
            return None
        p = Path(v).expanduser()
        return p if p.is_absolute() else path.parent / p

    net_path, model = rel("network", network), rel("model", None)
    if model is not None and not model.is_file():
        raise CameraConfigError(f"{path}: model: {model}: no such file")
    health = raw.get("health", {})
    if not isinstance(health, dict):
        raise CameraConfigError(f"{path}: health: expected a table, got {health!r}")
    unknown = sorted(set(health) - _HEALTH_KEYS)
    if unknown:
        raise CameraConfigError(f"{path}: health.{unknown[0]}: unknown key (known: {', '.join(sorted(_HEALTH_KEYS))})")
    hv = {k: _get(health, k, float, path, "health.", default=None) for k in _HEALTH_KEYS}
    for k, v in hv.items():
        if v is not None and not (v > 0 and (k != "late_fraction" or v <= 1)):
            raise CameraConfigError(f"{path}: health.{k}: must be above 0{' and at most 1' * (k == 'late_fraction')}, "
                                    f"got {v:g}")

    zones, lines, ids = [], [], set()
    for key, items in (("zones", raw.get("zones", [])), ("lines", raw.get("lines", []))):
        if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
            raise CameraConfigError(f"{path}: {key}: expected [[{key}]] tables")
        for i, it in enumerate(items):
            where = f"{key}[{i}]."
            known = {"id", "polygon", "lane", "detector"} if key == "zones" else {"id", "points", "lane", "names"}
            bad = sorted(set(it) - known)
            if bad:
                raise CameraConfigError(f"{path}: {where}{bad[0]}: unknown key (known: {', '.join(sorted(known))})")
            ident = _get(it, "id", str, path, where, required=True)
            if ident in ids:
                raise CameraConfigError(f"{path}: {where}id: {ident!r} is used twice")
            ids.add(ident)
            lane = _get(it, "lane", str, path, where, default=None)
            if key == "zones":
                poly = _points(it.get("polygon"), path, f"{where}polygon", least=3)
                z = Zone(ident, poly, lane, _get(it, "detector", str, path, where, default=None))
                if z.area <= 0:
                    raise CameraConfigError(f"{path}: {where}polygon: the polygon of {ident!r} has no area")
                zones.append(z)
            else:
                pts = _points(it.get("points"), path, f"{where}points", n=2)
                if np.allclose(pts[0], pts[1]):
                    raise CameraConfigError(f"{path}: {where}points: the two points of {ident!r} are the same")
                names = it.get("names", list(DEFAULT_NAMES))
                if not (isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) and n for n in names)
                        and names[0] != names[1]):
                    raise CameraConfigError(f"{path}: {where}names: expected two different direction names, got "
                                            f"{names!r}")
                lines.append(Line(ident, pts[0], pts[1], lane, (names[0], names[1])))
    if not zones and not lines:
        raise CameraConfigError(f"{path}: no [[zones]] and no [[lines]]: nothing to count")
    cfg = CameraConfig(path, cid, src, zones, lines, size, rate, net_path, model, anchor, halt, margin, zone_tracks,
                       ground, halt_m_s, fps, **{k: v for k, v in hv.items() if v is not None})
    cfg.check_geometry()
    cfg.published = _published(cfg)
    return cfg


def _published(cfg: CameraConfig) -> dict[str, str]:
    """The detector id of each published zone; with a network, every lane checked against it."""
    net = None
    if cfg.network is not None:
        from engine.network import DET_AREA, Network, NetworkError

        if not cfg.network.is_file():
            raise CameraConfigError(f"{cfg.path}: network: {cfg.network}: no such file")
        try:
            net = Network.from_json(cfg.network)
        except (NetworkError, ValueError, KeyError, OSError) as exc:
            raise CameraConfigError(f"{cfg.path}: network: {cfg.network}: not a compiled network ({exc})") from None
        lane_index = {lane: i for i, lane in enumerate(net.lane_ids)}
        area = {int(net.det_lane[i]): d for i, d in enumerate(net.det_ids) if int(net.det_kind[i]) == DET_AREA}
        for key, items in (("zones", cfg.zones), ("lines", cfg.lines)):
            for i, it in enumerate(items):
                if it.lane is not None and it.lane not in lane_index:
                    raise CameraConfigError(f"{cfg.path}: {key}[{i}].lane: {it.lane!r} is not a controlled lane of "
                                            f"the network {cfg.network}")
    out = {}
    for i, z in enumerate(cfg.zones):
        if z.detector is not None:
            if net is not None and z.detector not in net.det_index:
                raise CameraConfigError(f"{cfg.path}: zones[{i}].detector: {z.detector!r} is not a detector of the "
                                        f"network {cfg.network}")
            out[z.id] = z.detector
        elif z.lane is not None:
            if net is not None:
                li = lane_index[z.lane]
                if li not in area:
                    raise CameraConfigError(f"{cfg.path}: zones[{i}].lane: lane {z.lane!r} has no lane-area (camera) "
                                            f"detector in the network {cfg.network}")
                out[z.id] = area[li]
            else:
                out[z.id] = camera_detector_id(z.lane)
    dup = [d for d in out.values() if list(out.values()).count(d) > 1]
    if dup:
        raise CameraConfigError(f"{cfg.path}: zones: two zones are published as detector {dup[0]!r}")
    return out


# -- the pipeline: frames in, counts out --------------------------------------------------------------------------
def class_names(detector) -> list[str]:
    """The detector's class names in class-id order (vision/detect.py: ``names``, id -> name)."""
    names = detector.names
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)


def detect(detector, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes xyxy [n, 4], class ids [n], scores [n]) of ``detector.detect(image)``."""
    d = detector.detect(image)
    return d.boxes, d.classes, d.scores


class Pipeline:
    """Detector, tracker and counter for one camera. ``process(frame)`` per frame; ``readings()`` the published
    zones' readings as of the last frame; ``counter.totals()`` the crossings."""

    def __init__(self, cfg: CameraConfig, detector, *, fps: float | None = None) -> None:
        self.cfg = cfg
        self.detector = detector
        self.tracker = ByteTracker(fps=fps or 10.0)
        self.counter = CameraCounter(cfg.zones, cfg.lines, class_names(detector), anchor=cfg.anchor,
                                     margin_px=cfg.margin_px, halt_px_s=cfg.halt_px_s, ground=cfg.ground,
                                     halt_m_s=cfg.halt_m_s, zone_tracks=cfg.zone_tracks)
        self.frames = 0

    def process(self, frame: Frame, where: str = "the source") -> list[Crossing]:
        self.cfg.check_frame(frame.image, where)
        boxes, cls, scores = detect(self.detector, frame.image)
        tracks = self.tracker.update(frame.time, boxes, cls, scores)
        self.frames += 1
        return self.counter.update(frame.time, tracks)

    def readings(self) -> list[m.DetectorReading]:
        pub = self.cfg.published
        return [m.DetectorReading(pub[z.zone], z.count, round(z.occupancy, 4), z.halting)
                for z in self.counter.zones_now() if z.zone in pub]


# -- the worker: a camera on the bus --------------------------------------------------------------------------------
@dataclass
class Health:
    """What the worker counted (``lintas camera`` prints it when it ends, and logs every change)."""

    state: str = "starting"  # ok, late, lost, dead, ended
    frames: int = 0
    late: int = 0  # frames processed later than the next one was due
    skipped: int = 0  # frames dropped to catch up
    lost: int = 0  # times contact with the source was lost
    reconnects: int = 0  # successful reopenings after a loss
    failed_opens: int = 0
    batches: int = 0
    faults: int = 0
    crossings: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class CameraWorker:
    """Reads frames, counts, and publishes the zones' readings as a ``detectors`` batch every ``1 / rate`` s of
    the clock (``now``, Unix time by default: the field engine's clock), only while fresh frames arrive.

    Health, published as ``fault`` messages (source: the camera's id): ``camera-late`` when more than
    ``late_fraction`` of the frames of a publishing interval were processed after the next frame was due (frames
    are then skipped to stay current), ``camera-lost`` when a stream stops giving frames or cannot be opened (it
    is reopened after 0.5, 1, 2, ... s, up to ``reconnect_max_s``), ``camera-dead`` when no frame came for
    ``dead_after_s``, ``camera-restored`` when frames come again. While it has no frames it publishes no readings:
    the engine's fusion sees the camera go stale, then dead, and falls back to the loops.

    ``publish(topic, msg)`` sends a message; the worker never raises because of what the source does (a file's
    end stops it; a stream's failures are retried for ever), so a failing camera cannot take anything else down.
    """

    def __init__(self, cfg: CameraConfig, detector, publish: Callable[[bytes, m.Message], None], *,
                 opener: Callable[[], object] | None = None, now: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, realtime: bool = True, loop: bool = False,
                 on_open: Callable[[], object] | None = None) -> None:
        self.cfg = cfg
        self.detector = detector
        self.publish = publish
        self.opener = opener or (lambda: open_source(cfg.source, base=cfg.base, fps=cfg.fps))
        self.now, self.sleep = now, sleep
        self.realtime, self.loop = realtime, loop
        self.on_open = on_open  # called once, when the source first opened (a banner)
        self.health = Health()
        self.pipeline: Pipeline | None = None
        self.src = None
        self.stopped = False
        period = 1.0 / cfg.rate
        self.period = period
        self.next_pub = (math.floor(now() / period) + 1) * period
        self._fresh = False
        self._interval_frames = 0
        self._interval_late = 0
        self._last_frame = now()
        self._backoff = cfg.reconnect_min_s
        self._retry_at = 0.0
        self._dead_said = False
        self._t0: float | None = None  # wall time of a file's first frame (pacing)
        self._dropped_seen = 0
        self._ft0 = 0.0

    # -- health ------------------------------------------------------------------------------------------------
    def _fault(self, kind: str, detail: str) -> None:
        self.health.faults += 1
        log.warning("camera %s: %s: %s", self.cfg.id, kind, detail)
        self._send(m.TOPIC_FAULT, m.Fault(source=self.cfg.id, time=self.now(), kind=kind, detail=detail))

    def _send(self, topic: bytes, msg: m.Message) -> None:
        try:
            self.publish(topic, msg)
        except Exception as exc:  # noqa: BLE001 - a bus hiccup must not end the camera
            log.warning("camera %s: cannot publish %s: %s: %s", self.cfg.id, type(msg).__name__,
                        type(exc).__name__, exc)

    def _set(self, state: str) -> None:
        if state != self.health.state:
            log.info("camera %s: %s -> %s", self.cfg.id, self.health.state, state)
            self.health.state = state

    # -- the loop ---------------------------------------------------------------------------------------------------
    def _open(self) -> bool:
        t = self.now()
        if t < self._retry_at:
            return False
        first = self.health.state == "starting"
        try:
            self.src = self.opener()
        except SourceError as exc:
            if first and not is_stream(self.cfg.source):
                raise  # a missing or corrupt file is bad input, said at once
            self.health.failed_opens += 1
            if self.health.state not in ("lost", "dead"):
                self.health.lost += 1
                self._set("lost")
                self._fault(m.FaultKind.CAMERA_LOST, f"{self.cfg.source}: {exc}")
            self._retry_at = t + self._backoff
            self._backoff = min(self._backoff * 2, self.cfg.reconnect_max_s)
            return False
        if self.health.state in ("lost", "dead"):
            self.health.reconnects += 1
        if self.pipeline is None:
            self.pipeline = Pipeline(self.cfg, self.detector, fps=getattr(self.src, "fps", None))
            if self.on_open is not None:
                self.on_open()
        self._t0 = None
        self._dropped_seen = 0
        return True

    def _lose(self, why: str) -> None:
        if self.src is not None:
            try:
                self.src.close()
            except Exception:  # noqa: BLE001 - closing a broken capture
                pass
        self.src = None
        self.health.lost += 1
        self._set("lost")
        self._fault(m.FaultKind.CAMERA_LOST, f"{self.cfg.source}: {why}")
        self._retry_at = self.now() + self._backoff
        self._backoff = min(self._backoff * 2, self.cfg.reconnect_max_s)

    def step(self) -> bool:
        """One frame (or one attempt to get one) and, when due, one batch. False once the worker has ended."""
        if self.stopped:
            return False
        t = self.now()
        if self.src is None and not self._open():
            self._check_dead(t)
            self._maybe_publish(t)
            self.sleep(min(0.05, max(0.0, self._retry_at - t)))
            return True
        frame = self.src.read()
        if frame is None:
            if self.src.live:
                self._lose("no frame from the stream")
                return True
            if self.loop:
                self.src.close()
                self.src = None
                self._retry_at = 0.0
                return True
            self._finish()
            return False
        if self.realtime and not self.src.live and self.src.fps:
            # a recorded source stands in for a camera: its frames at its own pace, late ones skipped
            if self._t0 is None:
                self._t0, self._ft0 = t, frame.time
            due = self._t0 + (frame.time - self._ft0)
            if t > due + 1.0 / self.src.fps:
                self.health.skipped += 1
                self._interval_late += 1
                self._interval_frames += 1
                self._maybe_publish(t)
                return True
            if due > t:
                self.sleep(due - t)
        dropped = getattr(self.src, "dropped", 0)  # a live stream's frames that came while the last was counted
        if dropped > self._dropped_seen:
            n = dropped - self._dropped_seen
            self._dropped_seen = dropped
            self.health.skipped += n
            self._interval_frames += n
            self._interval_late += n
        t_read = self.now()
        crossings = self.pipeline.process(frame, str(self.cfg.source))
        done = self.now()
        self.health.frames += 1
        self.health.crossings += len(crossings)
        for c in crossings:
            log.info("camera %s: %s crossed %s (%s)", self.cfg.id, c.cls, c.line, c.direction)
        self._interval_frames += 1
        if not self.src.live and self.src.fps and done - t_read > 1.0 / self.src.fps:
            self.health.late += 1  # a recorded source: slower than its frame rate (a stream's show as dropped)
            self._interval_late += 1
        if self.health.state in ("lost", "dead", "starting"):
            if self.health.state != "starting":
                self._fault(m.FaultKind.CAMERA_RESTORED, f"{self.cfg.source}: frames again after "
                                                         f"{done - self._last_frame:.1f} s")
            self._set("ok")
            self._backoff = self.cfg.reconnect_min_s
            self._dead_said = False
        self._last_frame = done
        self._fresh = True
        self._maybe_publish(done)
        return True

    def _check_dead(self, t: float) -> None:
        if not self._dead_said and t - self._last_frame >= self.cfg.dead_after_s:
            self._dead_said = True
            self._set("dead")
            self._fault(m.FaultKind.CAMERA_DEAD, f"{self.cfg.source}: no frame for {t - self._last_frame:.0f} s")

    def _maybe_publish(self, t: float) -> None:
        if t < self.next_pub:
            return
        tick = self.next_pub
        self.next_pub = (math.floor(t / self.period) + 1) * self.period
        n, late = self._interval_frames, self._interval_late
        self._interval_frames = self._interval_late = 0
        if n and late > self.cfg.late_fraction * n:
            if self.health.state == "ok":
                self._set("late")
                self._fault(m.FaultKind.CAMERA_LATE, f"{late} of {n} frames late in the last {self.period:g} s")
        elif self.health.state == "late":
            self._set("ok")
        if not self._fresh or self.pipeline is None or not self.cfg.published:
            return  # nothing new, or nothing the engine reads (a camera of lines only)
        self._fresh = False
        rs = self.pipeline.readings()
        batch = m.detector_batch(self.cfg.id, tick, [r.count for r in rs], [r.occupancy for r in rs],
                                 [r.halting for r in rs], detectors=[r.detector for r in rs], interval=self.period)
        self._send(m.TOPIC_DETECTORS, batch)
        self.health.batches += 1

    def _finish(self) -> None:
        if self.src is not None:
            self.src.close()
            self.src = None
        self._maybe_publish(self.now())
        self._set("ended")
        self.stopped = True

    def run(self, stop: Callable[[], bool] = lambda: False) -> Health:
        """Until the source ends (a file without ``loop``) or ``stop()``."""
        try:
            while not stop() and self.step():
                pass
        finally:
            if self.src is not None:
                self.src.close()
                self.src = None
        return self.health
