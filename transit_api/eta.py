"""Arrival predictions for the vehicles the tracker knows: the schedule-deviation baseline, and the predictor
Lintas serves (segment travel times learned online with a Kalman filter, dwell times, signal-aware
corrections), with learned history kept in SQLite.

**Baseline** (:class:`ScheduleDeviation`, in the manner of OneBusAway): the vehicle's deviation from its
schedule where it is now (at a stop: now minus the scheduled arrival; between two stops: now minus the
scheduled time interpolated by distance) is added to every downstream scheduled arrival.

**Lintas** (:class:`KalmanEta`): a trip is a chain of segments (stop i to stop i+1, and the approach from the
trip's start to its first stop). Each segment's traversal time (departure from i to arrival at i+1) is a
one-dimensional Kalman filter over the observed traversals, as TransitClock does: the estimate moves towards
each new traversal by the gain P/(P+R), the process noise Q lets it follow a day that changes (an incident);
the residuals' variance is the segment's uncertainty. Part of a traversal is waiting at signals (the seconds
the bus stood still on the way, learned as a second filter): from a position inside a segment the time left
is the running time left (in proportion to the distance) plus the wait at the junction ahead as the signals
say it (:class:`SignalBoard`: the junction's current state and the engine's plan: how long the bus's link
stays green or red, from what the controllers' states showed and the plan's green end), or the learned mean
wait when the junction is unknown. Dwell at a stop is learned from the departures that were not held; a route
whose vehicles never left before the scheduled departure is learned to hold to it (timepoints), and then a
predicted departure is never before the schedule. Every prediction carries an uncertainty (one standard
deviation, s): the residual spread of each segment and dwell added in quadrature.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from engine.protocol import messages as m
from transit_api.vehicles import StopEvent, TripRun, Vehicle

GREEN = frozenset("Gg")


@dataclass(frozen=True)
class Prediction:
    vehicle: str
    trip_id: str
    index: int  # into run.calls
    stop_id: str
    stop_sequence: int
    arrival: float  # source clock
    departure: float
    scheduled: float
    uncertainty: float  # s, one standard deviation
    source: str = "prediction"
    run: TripRun | None = field(default=None, compare=False, repr=False)  # the trip instance predicted


@dataclass
class Filter:
    """A one-dimensional Kalman filter on a travel (or dwell, or wait) time, with its residual variance."""

    x: float
    p: float
    r: float  # measurement variance: the spread of single traversals around the estimate
    n: int = 0

    def update(self, z: float, q: float) -> None:
        p = self.p + q
        resid = z - self.x
        k = p / (p + self.r)
        self.x += k * resid
        self.p = (1 - k) * p
        # the residuals' variance, an exponentially weighted mean (the first ones weigh more while n is small)
        a = max(0.1, 1.0 / (self.n + 1))
        self.r = max(4.0, (1 - a) * self.r + a * resid * resid)
        self.n += 1


@dataclass
class Params:
    """The predictor's parameters (chosen on the training seeds, benchmarks/eta.py and docs/transit.md)."""

    q_segment: float = 4.0  # s^2 per traversal: how fast a segment's estimate may move
    r_segment: float = 100.0  # s^2: prior spread of one traversal
    q_dwell: float = 4.0
    r_dwell: float = 25.0
    prior_speed: float = 8.0  # m/s: a segment never seen, from its length (or 60 s)
    hold_min_obs: int = 3  # departures seen before a route is taken to hold to its schedule
    signal_weight: float = 0.5  # the signals' wait against the learned mean wait: 1 signals only, 0 off
    default_green: float = 30.0  # s, a link's green/red durations before any is seen
    default_red: float = 30.0
    change_s: float = 5.0  # s from the end of a green to the next green (yellow and all-red)


def load_params(path: Path) -> Params:
    """Parameters from a JSON file: an object of Params fields, or a benchmark result with one under "params"
    (``lintas bench eta`` writes benchmarks/results/eta.json). ValueError naming the file and the key."""
    import dataclasses
    import json

    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("params"), dict):
        doc = doc["params"]
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object of parameters")
    fields = {f.name: f for f in dataclasses.fields(Params)}
    out = {}
    for key, value in doc.items():
        if key not in fields:
            raise ValueError(f"{path}: key {key!r}: unknown parameter (known: {', '.join(fields)})")
        want = int if fields[key].type in (int, "int") else float
        wrong = want is int and not isinstance(value, int)
        if isinstance(value, bool) or not isinstance(value, int | float) or wrong:
            raise ValueError(f"{path}: key {key!r}: expected a number ({want.__name__}), got {value!r}")
        if value < 0:
            raise ValueError(f"{path}: key {key!r}: must be >= 0, got {value!r}")
        out[key] = want(value)
    if out.get("signal_weight", 0.0) > 1:
        raise ValueError(f"{path}: key 'signal_weight': must be between 0 and 1, got {out['signal_weight']!r}")
    return Params(**out)


# ---- signals
@dataclass
class _Link:
    green: bool
    since: float  # when the current colour began
    mean: dict[bool, float] = field(default_factory=dict)  # colour -> mean duration (EWMA)
    n: dict[bool, int] = field(default_factory=dict)


class SignalBoard:
    """What the junctions show, from the controllers' ``state`` messages, and what the engine plans (``plan``):
    per link, the colour now, since when, and the mean durations of its greens and reds (EWMA)."""

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or Params()
        self.links: dict[tuple[str, int], _Link] = {}
        self.states: dict[str, m.ControllerState] = {}
        self.plans: dict[str, m.Plan] = {}
        self.phase_links: dict[tuple[str, int], frozenset[int]] = {}

    def on_state(self, st: m.ControllerState) -> None:
        prev = self.states.get(st.junction)
        if prev is not None and st.time <= prev.time:
            return
        self.states[st.junction] = st
        if st.interval == m.Interval.GREEN:  # which links each green phase shows
            self.phase_links[st.junction, st.phase] = frozenset(i for i, c in enumerate(st.signal) if c in GREEN)
        for i, c in enumerate(st.signal):
            g = c in GREEN
            key = (st.junction, i)
            link = self.links.get(key)
            if link is None:
                self.links[key] = _Link(g, st.time)
            elif link.green != g:
                dur = st.time - link.since
                n = link.n.get(link.green, 0)
                a = max(0.2, 1.0 / (n + 1))
                link.mean[link.green] = (1 - a) * link.mean.get(link.green, dur) + a * dur
                link.n[link.green] = n + 1
                link.green, link.since = g, st.time

    def on_plan(self, plan: m.Plan) -> None:
        self.plans[plan.junction] = plan

    def wait(self, junction: str, link: int, now: float, at: float) -> float | None:
        """Expected seconds a vehicle reaching ``junction``'s stop line at ``at`` (link ``link``) waits for green;
        None when the board knows nothing of that link."""
        lk = self.links.get((junction, link))
        if lk is None:
            return None
        st = self.states.get(junction)
        if st is None or now - st.time > 5.0:
            return None
        p = self.params
        durations = {True: lk.mean.get(True, p.default_green), False: lk.mean.get(False, p.default_red)}
        green = lk.green
        elapsed = max(0.0, now - lk.since)
        left = max(1.0, durations[green] - elapsed)
        plan = self.plans.get(junction)
        if plan is not None and plan.phase == st.phase and abs(plan.time - now) <= 2.0:
            if green and st.interval == m.Interval.GREEN:  # its green lasts to the plan's end, then yellow
                left = max(0.0, plan.green_end - plan.time) + 3.0
            elif not green and st.interval == m.Interval.GREEN and plan.next_phase >= 0 \
                    and link in self.phase_links.get((junction, plan.next_phase), ()):
                # red until the current green ends and the change to the next phase, which shows it, is done
                left = max(0.0, plan.green_end - plan.time) + self.params.change_s
        if not green and st.interval != m.Interval.GREEN and link in self.phase_links.get((junction, st.target), ()):
            left = max(1.0, self.params.change_s - st.since)  # yellow or all-red towards a phase that shows it
        t = now + left
        while t < at:  # the colours after the current one, at their mean durations
            green = not green
            t += max(1.0, durations[green])
        return 0.0 if green else t - at


# ---- history
class History:
    """The learned filters in one SQLite file (WAL): segments, dwells, waits and the routes that hold."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(str(self.path), check_same_thread=False)
        self.lock = threading.Lock()
        with self.lock:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS filters (kind TEXT NOT NULL, key TEXT NOT NULL, x REAL NOT "
                            "NULL, p REAL NOT NULL, r REAL NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (kind, key))")
            self.db.execute("CREATE TABLE IF NOT EXISTS holds (route TEXT PRIMARY KEY, held INTEGER NOT NULL, "
                            "early INTEGER NOT NULL)")
            self.db.commit()

    def load(self) -> tuple[dict[tuple[str, str], Filter], dict[str, list[int]]]:
        with self.lock:
            rows = self.db.execute("SELECT kind, key, x, p, r, n FROM filters").fetchall()
            holds = self.db.execute("SELECT route, held, early FROM holds").fetchall()
        return ({(k, key): Filter(x, p, r, n) for k, key, x, p, r, n in rows},
                {route: [held, early] for route, held, early in holds})

    def save(self, filters: dict[tuple[str, str], Filter], holds: dict[str, list[int]]) -> None:
        with self.lock:
            self.db.executemany("INSERT OR REPLACE INTO filters VALUES (?, ?, ?, ?, ?, ?)",
                                [(k, key, f.x, f.p, f.r, f.n) for (k, key), f in filters.items()])
            self.db.executemany("INSERT OR REPLACE INTO holds VALUES (?, ?, ?)",
                                [(r, h, e) for r, (h, e) in holds.items()])
            self.db.commit()

    def close(self) -> None:
        with self.lock:
            self.db.close()


def _start_key(run: TripRun) -> str:
    return f"{run.route_id}>{run.calls[0].stop_id}"


def _seg_key(run: TripRun, i: int) -> str:
    """The segment ending at call i: 'FROM>TO' ('^>TO' for the approach to the first stop)."""
    return f"{run.calls[i - 1].stop_id if i > 0 else '^' + run.route_id}>{run.calls[i].stop_id}"


class KalmanEta:
    """The predictor Lintas serves. ``learn(events)`` after each batch; ``predict(vehicle, now)``."""

    name = "lintas"

    def __init__(self, params: Params | None = None, history: History | None = None,
                 signals: SignalBoard | None = None) -> None:
        self.params = params or Params()
        self.signals = signals or SignalBoard(self.params)
        self.history = history
        self.filters: dict[tuple[str, str], Filter] = {}
        self.holds: dict[str, list[int]] = {}  # route -> [departures at or after schedule, departures before it]
        self.seg_len: dict[str, float] = {}
        self._odo_at: dict[tuple[str, int], float] = {}
        self._dirty = False
        if history is not None:
            self.filters, self.holds = history.load()
            for (kind, key), f in self.filters.items():
                if kind == "len":
                    self.seg_len[key] = f.x

    # ---- learning
    def learn(self, events: list[StopEvent], vehicles: dict[str, Vehicle]) -> None:
        p = self.params
        for ev in events:
            run, i = ev.run, ev.index
            v = vehicles.get(ev.vehicle)
            if ev.kind == "arrival":
                if v is not None:
                    self._odo_at[ev.vehicle, i] = v.pos.odometer
                    if i > 0 and (ev.vehicle, i - 1) in self._odo_at:
                        length = v.pos.odometer - self._odo_at[ev.vehicle, i - 1]
                        if length > 0:
                            self.seg_len[_seg_key(run, i)] = length
                            self.filters["len", _seg_key(run, i)] = Filter(length, 0.0, 0.0, 1)
                    elif i == 0:
                        self.seg_len[_seg_key(run, 0)] = v.pos.odometer
                        self.filters["len", _seg_key(run, 0)] = Filter(v.pos.odometer, 0.0, 0.0, 1)
                if i == 0:  # how late buses reach the first stop (for the trips not started yet)
                    self._observe("start", _start_key(run), ev.time - run.calls[0].arrival, p.q_segment,
                                  p.r_segment)
                if v is None:
                    continue
                start = v.departures.get(i - 1) if i > 0 else v.pos.start
                if start is None or (v.pos.start == 0.0 and i == 0):
                    continue
                key = _seg_key(run, i)
                self._observe("seg", key, ev.time - start, p.q_segment, p.r_segment)
                self._observe("wait", key, ev.stopped_s, p.q_segment, p.r_segment)
            else:  # departure
                if v is None or i not in v.arrivals:
                    continue
                c = run.calls[i]
                dwell = ev.time - v.arrivals[i]
                hold = self.holds.setdefault(run.route_id, [0, 0])
                if ev.time < c.departure - 2.0:
                    hold[1] += 1
                else:
                    hold[0] += 1
                if ev.time > c.departure + 2.0 or not self._holds(run.route_id):  # not held: a real dwell
                    self._observe("dwell", c.stop_id, dwell, p.q_dwell, p.r_dwell)
                self._dirty = True
            self._odo_at = {k: o for k, o in self._odo_at.items() if k[0] in vehicles} \
                if len(self._odo_at) > 4096 else self._odo_at

    def _observe(self, kind: str, key: str, z: float, q: float, r: float) -> None:
        f = self.filters.get((kind, key))
        if f is None:
            self.filters[kind, key] = Filter(z, r, r, 1)
        else:
            f.update(z, q)
        self._dirty = True

    def save(self) -> None:
        if self.history is not None and self._dirty:
            self.history.save(self.filters, self.holds)
            self._dirty = False

    def _holds(self, route: str) -> bool:
        h = self.holds.get(route)
        return h is not None and h[0] >= self.params.hold_min_obs and h[1] == 0

    # ---- predicting
    def _segment(self, run: TripRun, i: int) -> tuple[float, float, float]:
        """(mean traversal, variance, mean wait) of the segment ending at call i."""
        key = _seg_key(run, i)
        f = self.filters.get(("seg", key))
        w = self.filters.get(("wait", key))
        if f is None:
            sched = run.calls[i].arrival - (run.calls[i - 1].departure if i > 0 else run.calls[0].arrival - 60.0)
            length = self.seg_len.get(key)
            mean = length / self.params.prior_speed if length else max(sched, 30.0)
            return mean, self.params.r_segment + mean * mean / 4.0, 0.0
        return f.x, f.r + f.p, (w.x if w is not None else 0.0)

    def _dwell(self, run: TripRun, i: int) -> tuple[float, float]:
        f = self.filters.get(("dwell", run.calls[i].stop_id))
        if f is None:
            c = run.calls[i]
            return max(c.departure - c.arrival, 10.0), self.params.r_dwell
        return f.x, f.r + f.p

    def predict(self, v: Vehicle, now: float) -> list[Prediction]:
        run, p = v.run, v.pos
        if run is None or v.next_index is None:
            return []
        i0 = v.next_index
        holds = self._holds(run.route_id)
        out = []
        var = 0.0
        if p.at_stop:
            t = now
            arr = v.arrivals.get(i0, now)
            d, dv = self._dwell(run, i0)
            dep = max(arr + d, now + 1.0)
            if holds:
                dep = max(dep, run.calls[i0].departure)
            var += dv
            out.append(self._pred(v.id, run, i0, arr, dep, 0.0))
            t = dep
            first = i0 + 1
        else:
            mean, sv, wait = self._segment(run, i0)
            length = self.seg_len.get(_seg_key(run, i0))
            run_time = max(mean - wait, 1.0)
            if length:
                frac = min(max(p.stop_dist / length, 0.0), 1.0)
                left = frac * run_time
            else:  # a segment never traversed: its distance left at the prior speed
                frac = 1.0
                left = max(p.stop_dist, 0.0) / self.params.prior_speed
            mean_w = frac * wait if p.tls_dist <= p.stop_dist else 0.0  # the learned wait, in proportion
            w = None
            sw = self.params.signal_weight
            if sw > 0 and p.next_tls and p.tls_link >= 0 and p.tls_dist <= p.stop_dist and length:
                reach = now + min(p.tls_dist / length, 1.0) * run_time
                w = self.signals.wait(p.next_tls, p.tls_link, now, reach)
            w = mean_w if w is None else sw * w + (1 - sw) * mean_w
            arr = now + left + w
            var += sv * frac
            d, dv = self._dwell(run, i0)
            dep = arr + d
            if holds:
                dep = max(dep, run.calls[i0].departure)
            out.append(self._pred(v.id, run, i0, arr, dep, math.sqrt(var)))
            var += dv
            t = dep
            first = i0 + 1
        return self._downstream(v.id, run, first, t, var, holds, out)

    @staticmethod
    def _pred(vid: str, run: TripRun, i: int, arr: float, dep: float, sd: float) -> Prediction:
        c = run.calls[i]
        return Prediction(vid, run.trip_id, i, c.stop_id, c.seq, arr, max(dep, arr), c.arrival, round(sd, 1), run=run)

    def _downstream(self, vid: str, run: TripRun, first: int, t: float, var: float, holds: bool,
                    out: list[Prediction]) -> list[Prediction]:
        """The calls from ``first`` on, after leaving the previous one at ``t`` (variance ``var`` so far)."""
        for i in range(first, len(run.calls)):
            mean, sv, _w = self._segment(run, i)
            arr = t + mean
            var += sv
            d, dv = self._dwell(run, i)
            dep = arr + d
            if holds:
                dep = max(dep, run.calls[i].departure)
            out.append(self._pred(vid, run, i, arr, dep, math.sqrt(var)))
            var += dv
            t = dep
        return out

    def predict_unstarted(self, run: TripRun, now: float) -> list[Prediction]:
        """A trip no vehicle runs yet: its first stop at the schedule plus how late buses reach it (learned), not
        before now; then as any trip."""
        f = self.filters.get(("start", _start_key(run)))
        late, var = (f.x, f.r + f.p) if f is not None else (0.0, self.params.r_segment)
        first = run.calls[0]
        arr = max(now, first.arrival + late)
        d, dv = self._dwell(run, 0)
        holds = self._holds(run.route_id)
        dep = max(arr + d, first.departure) if holds else arr + d
        out = [self._pred("", run, 0, arr, dep, math.sqrt(var))]
        return self._downstream("", run, 1, dep, var + dv, holds, out)


class ScheduleDeviation:
    """The baseline: the vehicle's current deviation from its schedule, propagated to every stop downstream."""

    name = "schedule-deviation"

    def __init__(self, seg_len: dict[str, float] | None = None) -> None:
        self.seg_len = seg_len if seg_len is not None else {}

    def deviation(self, v: Vehicle, now: float) -> float:
        run, p = v.run, v.pos
        i = v.next_index
        c = run.calls[i]
        if p.at_stop:
            return now - c.arrival if now <= c.departure else now - c.departure
        prev = run.calls[i - 1].departure if i > 0 else None
        length = self.seg_len.get(_seg_key(run, i))
        if prev is None or not length:
            return max(0.0, now - c.arrival)  # before the first stop: late only once its time has passed
        frac = 1.0 - min(max(p.stop_dist / length, 0.0), 1.0)
        return now - (prev + frac * (c.arrival - prev))

    def predict(self, v: Vehicle, now: float) -> list[Prediction]:
        run = v.run
        if run is None or v.next_index is None:
            return []
        d = self.deviation(v, now)
        out = []
        for i in range(v.next_index, len(run.calls)):
            c = run.calls[i]
            arr = max(c.arrival + d, now) if not (i == v.next_index and v.pos.at_stop) else v.arrivals.get(i, now)
            out.append(Prediction(v.id, run.trip_id, i, c.stop_id, c.seq, arr, max(c.departure + d, arr),
                                  c.arrival, float("nan"), "schedule-deviation", run=run))
        return out

    @staticmethod
    def predict_unstarted(run: TripRun, now: float) -> list[Prediction]:
        """A trip not started: the schedule (OneBusAway shows scheduled times until a vehicle is tracked)."""
        return [Prediction("", run.trip_id, i, c.stop_id, c.seq, max(c.arrival, now), max(c.departure, now),
                           c.arrival, float("nan"), "schedule", run=run) for i, c in enumerate(run.calls)]
