"""Detector health from each detector's own data (docs/fusion.md, 'Health, per detector, from its own data')."""

from __future__ import annotations

import numpy as np

from engine.fusion.config import DEAD, HEALTH_NAMES, NO_DATA, OK, STALE, STUCK, FusionConfig
from engine.fusion.kernels import assess_kernel, label_kernel
from engine.fusion.layout import FusionLayout
from engine.fusion.state import LaneState, SensorState
from engine.network import DET_ADVANCE, DET_AREA, DET_STOPLINE

KINDS = (DET_STOPLINE, DET_ADVANCE, DET_AREA)


def assess_health(layout: FusionLayout, cfg: FusionConfig, sensors: SensorState, lanes: LaneState, t: float,
                  reference: bool = False) -> None:
    """Stale, dead (silent, or blind to what the lane's other sensors see), stuck (a frozen reading), no-data
    (never reported) or ok. Numba kernels (``kernels.assess_kernel``, ``label_kernel``); ``reference``: the
    NumPy steps below, which the kernels equal bit for bit."""
    if not reference:
        s = sensors
        if s.count.shape[0] == 0:
            return
        s.start = min(s.start, t)
        assess_kernel(float(t), s.count, s.occ, s.halt, s.fresh, s.last_seen, s.first_seen, s.last_change, s.prev,
                      s.other_events, s.events_since_change, layout.det_lane, layout.det_kind_i, layout.is_loop,
                      layout.cam, lanes.cam_prev, lanes.cam_prev_valid, layout.n_lanes)
        label_health(layout, cfg, s, t, s.start)
        return
    n_d = sensors.count.shape[0]
    if n_d == 0:
        return
    s = sensors
    s.start = min(s.start, t)
    fresh = s.fresh
    s.last_seen[fresh] = t
    s.first_seen[fresh] = np.minimum(s.first_seen[fresh], t)
    cur = np.stack([s.count, s.occ, s.halt], axis=1)
    changed = fresh & ~np.all(cur == s.prev, axis=1)
    s.last_change[changed] = t
    s.prev[fresh] = cur[fresh]
    others, self_saw = _events(layout, sensors, lanes)
    # a loop covered by a standing vehicle legitimately counts nothing
    covered = layout.is_loop & fresh & (s.occ >= 0.5)
    s.other_events = np.where(self_saw, 0.0, np.where(covered, s.other_events, s.other_events + others))
    s.events_since_change = np.where(changed, 0.0, s.events_since_change + others)
    label_health(layout, cfg, s, t, s.start, reference=True)


def label_health(layout: FusionLayout, cfg: FusionConfig, sensors: SensorState, t: float, start: float,
                 reference: bool = False) -> None:
    """Each detector's health at time ``t`` from its timers and counters (which this does not change): after
    every batch, and on an engine tick that brought no batch (``Fusion.idle``), so that a silent feed ages.
    A detector that never reported is no-data until ``no_data_after`` s after ``start`` (the first batch)."""
    c, s = cfg, sensors
    if not reference:
        s.health = label_kernel(float(t), float(start), s.count, s.occ, s.halt, s.last_seen, s.first_seen,
                                s.last_change, s.other_events, s.events_since_change, layout.storage, c.stale_after,
                                c.dead_after, c.no_data_after, c.stuck_after, c.stuck_alone_after, c.dead_events,
                                OK, STALE, STUCK, DEAD, NO_DATA)
        return
    n_d = s.count.shape[0]
    h = np.zeros(n_d, dtype=np.int8)
    age = t - s.last_seen
    const_for = t - s.last_change
    nonzero = (s.count > 0) | (s.occ > 0) | (s.halt > 0)
    stuck = nonzero & (
        ((const_for >= c.stuck_after) & (s.events_since_change >= c.dead_events))
        | (const_for >= c.stuck_alone_after)
    )
    dead_silent = s.other_events >= c.dead_events + layout.storage
    h[dead_silent] = DEAD
    h[stuck] = STUCK
    h[age > c.stale_after] = STALE
    h[age > c.dead_after] = DEAD
    # never reported: no-data (as unusable as dead: `usable` takes OK alone), dead once the grace has run out
    if t - start <= c.no_data_after:
        h[np.isinf(s.first_seen)] = NO_DATA
    s.health = h


def _events(layout: FusionLayout, sensors: SensorState, lanes: LaneState) -> tuple[np.ndarray, np.ndarray]:
    """Per detector: the most vehicles any other sensor of its lane saw this tick (every vehicle passes each
    sensor of its lane), and whether it saw traffic itself. Seen: loop crossings, camera departures."""
    s, lane, cam = sensors, layout.det_lane, layout.cam
    fresh = s.fresh
    has_cam = cam >= 0
    seen = np.where(layout.is_loop & fresh, s.count, 0.0)
    if has_cam.any():
        cd = cam[has_cam]
        cv = s.count[cd]
        dep = np.where(lanes.cam_prev_valid[has_cam] & fresh[cd], np.maximum(lanes.cam_prev[has_cam] - cv, 0.0), 0.0)
        seen[cd] = dep
    n_l = layout.n_lanes
    ev = np.zeros((3, n_l))
    for k in KINDS:
        sel = layout.kind_sel[k]
        ev[k] = np.bincount(lane[sel], weights=seen[sel], minlength=n_l)
    others = np.zeros(s.count.shape[0])
    for k in KINDS:
        sel = layout.kind_sel[k]
        rest = [kk for kk in KINDS if kk != k]
        others[sel] = np.maximum(ev[rest[0]], ev[rest[1]])[lane[sel]]
    self_saw = seen > 0
    # a camera that shows vehicles in its zone sees traffic even when none leaves it
    self_saw |= (~layout.is_loop) & fresh & (s.count > 0) & (s.occ > 0)
    return others, self_saw


def usable(sensors: SensorState, det: np.ndarray) -> np.ndarray:
    """Per lane: the lane's detector ``det`` exists, is healthy and reported this tick."""
    have = det >= 0
    out = np.zeros(det.shape[0], dtype=np.bool_)
    if have.any():
        d = det[have]
        out[have] = (sensors.health[d] == OK) & sensors.fresh[d]
    return out


def health_summary(layout: FusionLayout, sensors: SensorState, known: np.ndarray) -> dict[str, int | dict[str, int]]:
    """Detector counts per health state, overall and per kind, and the lanes with no usable sensor."""
    health = sensors.health
    out: dict[str, int | dict[str, int]] = {name: int(np.sum(health == k)) for k, name in enumerate(HEALTH_NAMES)}
    for kind, kname in ((DET_STOPLINE, "stopline"), (DET_ADVANCE, "advance"), (DET_AREA, "area")):
        sel = layout.kind_sel[kind]
        out[kname] = {name: int(np.sum(health[sel] == k)) for k, name in enumerate(HEALTH_NAMES)}
    # `known` is the last batch's; with no healthy detector left (a silent feed, or none yet) no lane has data
    out["lanes_without_data"] = int(np.sum(known == 0)) if (health == OK).any() else layout.n_lanes
    return out


class FeedWatch:
    """Whether any detector reading arrives at all (docs/fusion.md, 'When nothing arrives'). The engine calls
    :meth:`tick` once per control tick with its own clock; a tick that brought no batch ages the detectors'
    health (``Fusion.idle``), and ``alarm_after`` s of that clock without a reading of this network's detectors
    raise the feed alarm, cleared by the next reading."""

    def __init__(self, fusion, alarm_after: float) -> None:
        self.fusion = fusion
        self.alarm_after = alarm_after
        self.alarm = False  # raised: no reading for alarm_after s
        self.alarms = 0  # alarms raised
        self.age = 0.0  # s: since the last reading (since the first tick before any)
        self.start: float | None = None  # engine time of the first tick
        self.last: float | None = None  # engine time of the last tick that brought a reading of a known detector
        self.gap = 0.0  # s: between the last two ticks that brought readings (the first: since the first tick)
        self._known = 0
        self._batches = 0
        self._batch_at = 0.0

    def tick(self, t: float) -> str | None:
        """Once per control tick at engine time ``t``: ``"lost"`` when the alarm is raised, ``"restored"`` when
        readings return after it, else None."""
        s = self.fusion.sensors
        if self.start is None:
            self.start = self._batch_at = t
        known = s.readings - s.unknown
        if known > self._known:
            self._known = known
            self.gap = t - (self.last if self.last is not None else self.start)
            self.last = t
        if s.batches != self._batches:
            self._batches = s.batches
            self._batch_at = t
        else:
            self.fusion.idle(t - self._batch_at)
        self.age = t - (self.last if self.last is not None else self.start)
        if not self.alarm and self.age >= self.alarm_after:
            self.alarm = True
            self.alarms += 1
            return "lost"
        if self.alarm and self.last == t:
            self.alarm = False
            return "restored"
        return None
