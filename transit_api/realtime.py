"""The API's live state: the vehicles, the signals, the predictions, fed from the bus or a GTFS-Realtime
VehiclePositions feed, read by the HTTP handlers.

:class:`Realtime` takes messages (``on_message``: ``vehicles``, ``state``, ``plan``), keeps the tracker, the
signal board and the predictor (learned history in SQLite when given), and after every vehicle batch
recomputes the predictions of every vehicle (a few per bus), which the handlers read under a lock.
:meth:`Realtime.subscribe` runs a thread with a ZeroMQ SUB on the bus (``lintas api --bus-out``);
:meth:`Realtime.poll_gtfs_rt` a thread that reads a VehiclePositions file or URL every few seconds. A message
that does not decode is dropped and counted (``dropped``), never raised.

Time: the sources' clock is turned into dates by the :class:`~transit_api.vehicles.Clock`; "now" is the wall
clock, or, with ``simulated=True`` (the demo), the time of the latest vehicle batch.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from engine.protocol import messages as m
from transit_api.eta import History, KalmanEta, Params, Prediction, ScheduleDeviation, SignalBoard
from transit_api.gtfs import Feed
from transit_api.vehicles import Clock, Vehicle, VehicleTracker, batch_from_gtfs_rt, run_key

log = logging.getLogger("lintas.api.realtime")

STALE_S = 120.0  # a vehicle not heard from for this long is not predicted from


class Realtime:
    def __init__(self, feed: Feed, clock: Clock, *, history: Path | None = None, params: Params | None = None,
                 simulated: bool = False, wall: Callable[[], datetime] | None = None) -> None:
        self.feed = feed
        self.clock = clock
        self.simulated = simulated
        self.wall = wall or (lambda: datetime.now(UTC))
        self.params = params or Params()
        self.tracker = VehicleTracker(feed, clock)
        self.history = History(history) if history is not None else None
        self.eta = KalmanEta(self.params, history=self.history, signals=SignalBoard(self.params))
        self.baseline = ScheduleDeviation(self.eta.seg_len)
        self.lock = threading.RLock()
        self.predictions: dict[str, list[Prediction]] = {}  # vehicle (or "trip:ID/DATE/START") -> its predictions
        self.by_stop: dict[str, list[Prediction]] = defaultdict(list)
        self.departures: dict[tuple[str, int | None, str], deque[float]] = defaultdict(lambda: deque(maxlen=12))
        self.received = 0
        self.dropped = 0
        self.last_batch_time: float | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._saved = time.monotonic()
        self.upcoming_every: float | None = 1800.0  # trips starting within this many s are predicted (None: off)
        self._upcoming: list = []
        self._upcoming_at: float | None = None

    # ---- time
    def now_t(self) -> float:
        """Now in the sources' clock."""
        if self.simulated:
            return self.tracker.now if self.tracker.now is not None else 0.0
        return self.clock.t(self.wall())

    def now(self) -> datetime:
        return self.clock.dt(self.now_t()).astimezone(self.feed.timezone)

    @property
    def has_vehicles(self) -> bool:
        return bool(self.tracker.vehicles)

    # ---- input
    def on_message(self, msg: m.Message) -> None:
        with self.lock:
            self.received += 1
            if isinstance(msg, m.VehicleBatch):
                self._on_batch(msg)
            elif isinstance(msg, m.ControllerState):
                self.eta.signals.on_state(msg)
            elif isinstance(msg, m.PlanBatch):  # what the engine publishes: every junction's plan in one frame
                for plan in msg.plans:
                    self.eta.signals.on_plan(plan)
            elif isinstance(msg, m.Plan):
                self.eta.signals.on_plan(msg)

    def _on_batch(self, batch: m.VehicleBatch) -> None:
        events = self.tracker.update(batch)
        self.eta.learn(events, self.tracker.vehicles)
        for ev in events:
            if ev.kind == "departure":
                self.departures[ev.run.route_id, ev.run.direction_id, ev.run.calls[ev.index].stop_id].append(ev.time)
        self.last_batch_time = batch.time
        now = self.now_t()
        preds: dict[str, list[Prediction]] = {}
        by_stop: dict[str, list[Prediction]] = defaultdict(list)
        for v in self.tracker.vehicles.values():
            if v.run is None or now - v.time > STALE_S:
                continue
            ps = self.eta.predict(v, max(now, v.time))
            preds[v.id] = ps
            for p in ps:
                by_stop[p.stop_id].append(p)
        if self.upcoming_every is not None and (self._upcoming_at is None or now - self._upcoming_at >= 30.0
                                                or now < self._upcoming_at):
            self._upcoming = self.tracker.upcoming(now, ahead=self.upcoming_every)
            self._upcoming_at = now
        for run in self._upcoming:
            if run_key(run) in self.tracker.seen_runs:
                continue
            ps = self.eta.predict_unstarted(run, now)
            preds["trip:" + "/".join(run_key(run))] = ps
            for p in ps:
                by_stop[p.stop_id].append(p)
        for ps in by_stop.values():
            ps.sort(key=lambda p: p.arrival)
        self.predictions, self.by_stop = preds, by_stop
        if self.history is not None and time.monotonic() - self._saved > 5.0:
            self.eta.save()
            self._saved = time.monotonic()

    def vehicles(self) -> list[Vehicle]:
        with self.lock:
            return sorted(self.tracker.vehicles.values(), key=lambda v: v.id)

    def stop_predictions(self, stop_id: str) -> list[Prediction]:
        with self.lock:
            return list(self.by_stop.get(stop_id, ()))

    # ---- sources
    def subscribe(self, endpoint: str) -> None:
        """A thread with a SUB on ``endpoint`` (a bus's XPUB, or a run's relay) for vehicles, states and plans."""
        import zmq

        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 100000)
        for topic in (m.TOPIC_VEHICLES, m.TOPIC_STATE, m.TOPIC_PLAN):
            sock.setsockopt(zmq.SUBSCRIBE, topic)
        sock.connect(endpoint)

        def serve() -> None:
            poller = zmq.Poller()
            poller.register(sock, zmq.POLLIN)
            try:
                while not self._stop.is_set():
                    if not poller.poll(200):
                        continue
                    while True:
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        msg = None
                        if len(frames) == 2:
                            try:
                                msg = m.decode(frames[1])
                            except Exception:  # noqa: BLE001 - a malformed frame is dropped and counted
                                msg = None
                        if msg is None or msg.v > m.SCHEMA_VERSION:
                            with self.lock:
                                self.dropped += 1
                            continue
                        self.on_message(msg)
            finally:
                sock.close(0)

        self._start(serve, "bus")

    def poll_gtfs_rt(self, source: str, every: float = 5.0) -> None:
        """A thread reading GTFS-Realtime VehiclePositions from a file or an http(s) URL every ``every`` s."""

        def read() -> bytes:
            if source.startswith(("http://", "https://")):
                with urllib.request.urlopen(source, timeout=10) as r:
                    return r.read()
            return Path(source).read_bytes()

        def serve() -> None:
            last = None
            while not self._stop.is_set():
                try:
                    batch = batch_from_gtfs_rt(read(), self.feed, source="gtfs-rt")
                except (OSError, ValueError) as exc:
                    with self.lock:
                        self.dropped += 1
                    log.warning("GTFS-Realtime vehicle positions from %s: %s", source, exc)
                else:
                    if batch.time != last:
                        last = batch.time
                        self.on_message(batch)
                self._stop.wait(every)

        self._start(serve, "gtfs-rt")

    def _start(self, target, name: str) -> None:
        th = threading.Thread(target=target, name=f"lintas-realtime-{name}", daemon=True)
        th.start()
        self._threads.append(th)

    def close(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=2.0)
        with self.lock:
            self.eta.save()
            if self.history is not None:
                self.history.close()
