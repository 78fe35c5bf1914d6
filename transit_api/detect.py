"""Incidents detected from the detectors on the bus, written to the incident store with source ``detector``.

Two kinds, per watched lane (a lane with a stop-line loop and a lane-area zone, :class:`~transit_api.traffic.
RoadLayout`), judged every tick of the detector clock over the last minutes of :class:`~transit_api.traffic.LaneFeed`:

**A blocked lane** (severity SEVERE, effect SIGNIFICANT_DELAYS): vehicles stand in the zone and almost nobody
crosses the stop line although the lane shows green. Some span ending now, within the last minutes and since
the zone was last empty, must hold ``block_green_s`` seconds of green with someone standing in the zone
(``block_nosignal_s`` seconds of standing when no controller state tells the lane's signal: the field without
controllers on the bus), and at most ``block_max_out`` vehicles over the stop-line loop plus ``block_rate`` per
such second (a vehicle that changed lanes around the obstacle now and then). A red light alone never counts (no
green: no evidence), and a normal queue discharges at about one vehicle every two seconds of green (0.5 a
second; the threshold is 0.04). The incident starts where the longest such span begins and ends when traffic
flows again (``clear_out`` vehicles over the stop line within ``clear_window_s``) or the zone is empty for
``clear_empty_s`` seconds; the evidence for another one on that lane starts after that.

**Abnormal queue growth** (severity WARNING, effect SIGNIFICANT_DELAYS): the *residual* queue (the fewest
vehicles standing in the zone over ``residual_s`` seconds, green included, so what a cycle did not clear) is at
least ``queue_open`` of the zone's capacity and grew by at least ``queue_growth`` of it over the last
``growth_s`` seconds. It ends when the residual queue is under ``queue_close`` of the capacity. A lane already
blocked is not reported twice.

The thresholds were chosen on the demo city's clean runs and a run with an injected stopped vehicle (seed 1,
docs/transit.md), and checked on other seeds.

What it cannot see: a vehicle stopped upstream of the zone (more than the zone's length, 100 m by default, from
the stop line) until its queue reaches the zone; lanes without a stop-line loop and a zone.

Restarts lose nothing: incidents are in the store from the tick they are detected, and a restarted detector adopts
the open ones (source detector, no end) of its lanes, closing them when their lane clears.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from transit_api.incidents import Cause, Effect, IncidentStore, Severity, Source, VersionConflict
from transit_api.traffic import LaneFeed, RoadLayout

__all__ = ["BLOCKED", "QUEUE", "DetectParams", "IncidentDetector"]

log = logging.getLogger("lintas.api.detect")

BLOCKED = "blocked-lane"
QUEUE = "queue-growth"
DETECTOR_NAME = "lintas-detect"  # reported_by / updated_by of what the detector writes


@dataclass(frozen=True)
class DetectParams:
    block_green_s: float = 40.0
    block_nosignal_s: float = 180.0
    block_max_out: float = 1.0
    block_rate: float = 0.04
    clear_out: float = 5.0
    clear_window_s: int = 30
    clear_empty_s: int = 5
    residual_s: int = 90
    growth_s: int = 300
    queue_open: float = 0.7
    queue_growth: float = 0.4
    queue_close: float = 0.3
    judge_every: int = 5  # ticks between two judgements (the detector's cost; its delay grows by as much)


@dataclass
class Open:
    """An incident the detector holds open: its id in the store and what it is."""
    incident_id: int
    kind: str
    lane: int
    start: float | None  # detector clock (None: adopted from the store)


class IncidentDetector:
    """Judges every watched lane each tick; opens and closes incidents in ``store`` (None: keeps them in memory
    only, :attr:`events`)."""

    def __init__(self, layout: RoadLayout, store: IncidentStore | None, params: DetectParams | None = None) -> None:
        self.layout = layout
        self.store = store
        self.p = params or DetectParams()
        self.open: dict[tuple[int, str], Open] = {}
        self.events: list[tuple[str, str, str, float]] = []  # (opened|closed, kind, lane id, detector time)
        self.writes_failed = 0
        self.cleared: dict[tuple[int, str], float] = {}  # when each (lane, kind) last cleared (detector time)
        if store is not None:
            self._adopt()

    def _adopt(self) -> None:
        """The open detector incidents of a previous run, by lane and kind (from their description's tag)."""
        offset = 0
        while True:
            total, page = self.store.list(limit=500, offset=offset)
            for inc in page:
                if inc.source != Source.DETECTOR or inc.end is not None or len(inc.lanes) != 1:
                    continue
                li = self.layout.lane_index.get(inc.lanes[0])
                if li is None:
                    continue
                kind = QUEUE if inc.severity == Severity.WARNING else BLOCKED
                self.open[(li, kind)] = Open(inc.id, kind, li, None)
            offset += len(page)
            if offset >= total or not page:
                break
        if self.open:
            log.info("detector: adopted %d open incident(s) from the store", len(self.open))

    def blocked_lanes(self) -> list[int]:
        return [li for (li, kind) in self.open if kind == BLOCKED]

    # --- judging
    def step(self, feed: LaneFeed, t: float, to_datetime: Callable[[float], datetime]) -> None:
        if feed.rows % self.p.judge_every:
            return
        r = feed.recent()
        if len(r["time"]) == 0:
            return
        self._blocked(r, t, to_datetime)
        self._queues(r, t, to_datetime)

    def _blocked(self, r: dict, t: float, to_dt) -> None:
        p, lay = self.p, self.layout
        valid = r["valid"]
        standing = (r["halting"] >= 1) & valid
        empty = valid & (r["halting"] < 1) & (r["occ"] < 0.05)
        evidence = standing & np.where(r["green_known"], r["green"], True)
        need = np.where(r["green_known"][-1], p.block_green_s, p.block_nosignal_s)
        # spans ending now, k + 1 ticks long (index k of the reversed cumulative sums)
        ev_r = np.cumsum(evidence[::-1], axis=0, dtype=np.float64)
        out_r = np.cumsum((r["out"] * valid)[::-1], axis=0, dtype=np.float64)
        empty_r = empty[::-1]
        n = ev_r.shape[0]
        first_empty = np.where(empty_r.any(axis=0), empty_r.argmax(axis=0), n)
        k = np.arange(n)[:, None]
        cond = ((ev_r >= need) & (k < first_empty)
                & (np.maximum(out_r - p.block_max_out, 0.0) <= p.block_rate * ev_r))
        times_r = r["time"][::-1]
        for li in np.nonzero(lay.watched)[0]:
            key = (int(li), BLOCKED)
            if key in self.open:
                w = min(p.clear_window_s, n)
                flowing = out_r[w - 1, li] >= p.clear_out
                e = min(p.clear_empty_s, n)
                emptied = e == p.clear_empty_s and bool(empty_r[:e, li].all())
                if flowing or emptied:
                    self._close(key, t, to_dt, "arus pulih" if flowing else "lajur kosong")
                continue
            if not standing[-1, li]:
                continue
            spans = np.nonzero(cond[:, li])[0]
            if key in self.cleared:  # evidence from before the last clearing does not count again
                spans = spans[times_r[spans] > self.cleared[key]]
            if len(spans):
                self._open(key, float(times_r[spans[-1]]), t, to_dt)  # from the start of the longest such span

    def _queues(self, r: dict, t: float, to_dt) -> None:
        p, lay = self.p, self.layout
        n = len(r["time"])
        h = np.where(r["valid"], r["halting"], np.nan)
        if n < p.residual_s:
            return
        with np.errstate(all="ignore"):
            now = np.nanmin(h[-p.residual_s:], axis=0)
            past = (np.nanmin(h[-(p.growth_s + p.residual_s):-p.growth_s], axis=0)
                    if n >= p.growth_s + p.residual_s else np.full(h.shape[1], np.nan))
        cap = lay.capacity
        span = p.growth_s + p.residual_s
        greens = (r["green"][-span:] | ~r["green_known"][-span:]).sum(axis=0)  # a queue never served is not judged
        for li in np.nonzero(lay.watched)[0]:
            key = (int(li), QUEUE)
            if key in self.open:
                if not np.isnan(now[li]) and now[li] < p.queue_close * cap[li]:
                    self._close(key, t, to_dt, "antrean terurai")
                continue
            if (int(li), BLOCKED) in self.open or np.isnan(now[li]) or np.isnan(past[li]):
                continue
            if (now[li] >= p.queue_open * cap[li] and now[li] - past[li] >= p.queue_growth * cap[li]
                    and greens[li] >= 10):
                self._open(key, float(r["time"][-(p.growth_s + p.residual_s)]), t, to_dt)

    # --- writing
    def _open(self, key: tuple[int, str], start: float, t: float, to_dt) -> None:
        li, kind = key
        lane = self.layout.lane_ids[li]
        label = self.layout.lane_label(li)
        seg = self.layout.segments[int(self.layout.lane_segment[li])]
        self.events.append(("opened", kind, lane, t))
        log.info("detector: %s on lane %s (%s) since %g, seen at %g", kind, lane, label, start, t)
        if kind == BLOCKED:
            text = (f"Lajur terhalang di {label} (lajur {lane}): kendaraan berhenti, arus hampir nol saat hijau. "
                    f"Terdeteksi otomatis.")
            severity = Severity.SEVERE
        else:
            text = (f"Antrean tumbuh tidak wajar di {label} (lajur {lane}): antrean tidak habis tiap siklus. "
                    f"Terdeteksi otomatis.")
            severity = Severity.WARNING
        if self.store is None:
            self.open[key] = Open(-1, kind, li, start)
            return
        try:
            inc = self.store.create(source=Source.DETECTOR, reported_by=DETECTOR_NAME, severity=severity,
                                    effect=Effect.SIGNIFICANT_DELAYS, cause=Cause.UNKNOWN_CAUSE, description=text,
                                    edges=[seg.id], lanes=[lane], start=to_dt(start))
        except Exception:
            self.writes_failed += 1
            raise
        self.open[key] = Open(inc.id, kind, li, start)

    def _close(self, key: tuple[int, str], t: float, to_dt, why: str) -> None:
        held = self.open.pop(key)
        self.cleared[key] = t
        lane = self.layout.lane_ids[held.lane]
        self.events.append(("closed", held.kind, lane, t))
        log.info("detector: %s on lane %s cleared at %g (%s)", held.kind, lane, t, why)
        if self.store is None or held.incident_id < 0:
            return
        for _attempt in range(3):
            inc = self.store.get(held.incident_id)
            if inc is None or inc.end is not None:
                return  # removed, or an operator closed it already
            end = max(to_dt(t), inc.start + timedelta(seconds=1))
            try:
                self.store.update(held.incident_id, {"end": end}, version=inc.version, updated_by=DETECTOR_NAME)
                return
            except VersionConflict:
                continue  # an operator changed it meanwhile: read it again
            except Exception:
                self.writes_failed += 1
                raise
