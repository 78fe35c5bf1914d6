"""Headway regularity of a line: the gaps between the buses actually on the road, and bunching.

For each direction of a route: the scheduled headway now (frequencies.txt's period covering now; for a
timetabled direction the median gap between the scheduled starts), the vehicles in order along the line
(the one furthest ahead first), and for each pair of consecutive vehicles the **gap** in time at the leader's
next stop: when the follower is predicted there minus when the leader is (its arrival, while it stands
there). Two buses are **bunched** when their gap is under a quarter of the scheduled headway. Regularity is the
coefficient of variation of the gaps (0: perfectly even), and of the headways observed at each stop from the
departures seen (the last 12 per stop).
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field

from transit_api.eta import Prediction
from transit_api.realtime import Realtime
from transit_api.vehicles import Vehicle

BUNCHING_FRACTION = 0.25


@dataclass
class Gap:
    leader: str
    follower: str
    stop_id: str
    gap_s: float
    bunched: bool


@dataclass
class DirectionHeadways:
    direction_id: int | None
    scheduled_headway_s: float | None
    vehicles: list[str]
    gaps: list[Gap]
    gap_cv: float | None
    bunched_pairs: int
    observed: dict[str, list[float]] = field(default_factory=dict)  # stop -> headways seen between departures (s)
    observed_cv: float | None = None


def _cv(xs: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    mean = statistics.fmean(xs)
    return round(statistics.stdev(xs) / mean, 3) if mean > 0 else None


def _scheduled_headway(rt: Realtime, route_id: str, direction_id: int | None, now: float) -> float | None:
    feed = rt.feed
    trips = [t for t in feed.trips.values() if t.route_id == route_id and t.direction_id == direction_id]
    day_zero = rt.clock.t(feed.service_day_start(rt.clock.dt(now).astimezone(feed.timezone).date()))
    secs = now - day_zero
    freqs = [f for t in trips for f in feed.frequencies.get(t.trip_id, ())]
    if freqs:
        inside = [f for f in freqs if f.start <= secs < f.end]
        chosen = inside or sorted(freqs, key=lambda f: min(abs(f.start - secs), abs(f.end - secs)))
        return float(chosen[0].headway)
    starts = sorted(feed.stop_times[t.trip_id][0].departure for t in trips
                    if feed.stop_times[t.trip_id][0].departure is not None)
    gaps = [b - a for a, b in itertools.pairwise(starts) if b > a]
    return float(statistics.median(gaps)) if gaps else None


def _time_at(v: Vehicle, preds: list[Prediction], index: int) -> float | None:
    if index in v.arrivals:
        return v.arrivals[index]
    return next((p.arrival for p in preds if p.index == index), None)


def route_headways(rt: Realtime, route_id: str) -> list[DirectionHeadways]:
    with rt.lock:
        now = rt.now_t()
        dirs = sorted({t.direction_id for t in rt.feed.trips.values() if t.route_id == route_id},
                      key=lambda d: (d is None, d))
        out = []
        for d in dirs:
            head = _scheduled_headway(rt, route_id, d, now)
            vs = [v for v in rt.tracker.vehicles.values()
                  if v.run is not None and v.run.route_id == route_id and v.run.direction_id == d
                  and v.next_index is not None]
            # furthest along first: by the stop it heads for, then by the distance left to it
            vs.sort(key=lambda v: (-v.next_index, v.pos.stop_dist if not v.pos.at_stop else -1.0))
            gaps = []
            for lead, follow in itertools.pairwise(vs):
                # at the leader's next stop (the follower has not reached it): when each is (predicted) there
                j = lead.next_index
                stop = lead.run.calls[j].stop_id
                k = follow.run.index(stop)
                if k is None:
                    continue
                t_l = _time_at(lead, rt.predictions.get(lead.id, []), j)
                t_f = _time_at(follow, rt.predictions.get(follow.id, []), k)
                if t_f is None or t_l is None:
                    continue
                g = t_f - t_l
                gaps.append(Gap(lead.id, follow.id, stop, round(g, 1),
                                head is not None and g < BUNCHING_FRACTION * head))
            observed = {}
            for (r, dd, stop), times in rt.departures.items():
                if r == route_id and dd == d and len(times) >= 2:
                    ts = list(times)
                    observed[stop] = [round(b - a, 1) for a, b in itertools.pairwise(ts)]
            all_obs = [h for hs in observed.values() for h in hs]
            out.append(DirectionHeadways(d, head, [v.id for v in vs], gaps, _cv([g.gap_s for g in gaps]),
                                         sum(g.bunched for g in gaps), observed, _cv(all_obs)))
        return out
