"""The engine's control loop: readings in, state arrays, policy kernel, commands out.

Every tick (``tick`` seconds, default 1) the loop turns the latest detector readings into per-lane
arrays, runs the policy kernel over all junctions at once, and sends each controller one word on the
command channel: a :class:`PhaseCommand` when the policy wants a change, a :class:`Heartbeat`
otherwise. Controllers report their state back on the same channel; the engine plans from what they
report (phase, interval, time in interval), never from what it asked for.

In lockstep (simulation) the clock is the runner's ``tick`` messages and the engine waits, at most
``lockstep_wait`` wall seconds, until every online controller has reported the previous tick.

With ``operator`` (an endpoint) the engine also serves operators' fault-reset requests
(``engine/operator.py``): it checks the junction, sends the controller a ``FaultReset`` and replies
once the controller reports its fault cleared (or after ``reset_timeout`` wall seconds that it did not).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque

import numpy as np
import zmq

from engine.fusion import FeedWatch, Fusion, FusionConfig
from engine.network import DET_ADVANCE, DET_AREA, DET_STOPLINE, Network
from engine.operator import OperatorServer, Request
from engine.policies import IntervalCode, JunctionState, get_policy, policy_net, seed_rng, warmup
from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.messages import Action, FaultKind, Interval, Mode, ResetResult, TickPhase

log = logging.getLogger("lintas.engine")

# what a controller reports -> what the kernels read
OFFSET_WINDOW = 8  # states: a controller's clock offset is the smallest receipt-minus-time of its last 8

INTERVAL_CODE = {Interval.GREEN: IntervalCode.GREEN, Interval.YELLOW: IntervalCode.YELLOW,
                 Interval.ALLRED: IntervalCode.ALLRED, Interval.FAILSAFE: IntervalCode.OFFLINE}


class Engine:
    def __init__(
        self,
        network: Network,
        policy: str,
        ep: bus.Endpoints,
        *,
        ctx: zmq.Context | None = None,
        seed: int = 0,
        params: np.ndarray | None = None,
        lockstep: bool = True,
        lockstep_wait: float = 2.0,
        offline_after: float = 4.0,
        tick: float = 1.0,
        security=None,
        wall=time.monotonic,
        clock=None,
        skew_limit: float = 1.0,
        operator: str | None = None,
        reset_timeout: float = 5.0,
        fusion_cfg: FusionConfig | None = None,
        feed_alarm_after: float = 10.0,
    ) -> None:
        self.net = network
        self.policy = get_policy(policy)
        warmup([policy])  # compile (or load from numba's cache) before the first tick, not during it
        self.params = self.policy.default_params() if params is None else np.asarray(params, dtype=np.float64)
        self.lockstep = lockstep
        self.lockstep_wait = lockstep_wait
        self.offline_after = offline_after
        self.tick = tick
        self.wall = wall
        self.clock = clock  # the engine's clock when a state arrives (None: its tick time + wall time since)
        self.skew_limit = skew_limit  # s: above it a controller's clock is corrected for, and alarmed
        ctx = ctx or zmq.Context.instance()
        self.router = bus.CommandServer(ctx, ep, security=security)
        self.sub = bus.Subscriber(ctx, ep, [m.TOPIC_DETECTORS, m.TOPIC_TICK, m.TOPIC_PLAN], security=security)
        self.pub = bus.Publisher(ctx, ep, security=security)
        try:
            self.operator_server = OperatorServer(ctx, operator, security) if operator else None
        except Exception:
            for s in (self.router, self.sub, self.pub):
                s.close()
            raise
        self.reset_timeout = reset_timeout
        self.resets: Counter[ResetResult] = Counter()  # operator requests by result
        self._pending: dict[int, list[tuple[Request, str, float]]] = {}  # resets awaiting confirmation
        n_j = network.n_junctions
        self.cur_phase = network.jn_phase_ptr[:-1].astype(np.int32).copy()
        self.interval = np.full(n_j, IntervalCode.OFFLINE, dtype=np.int8)
        self.since = np.zeros(n_j)
        self.state_time = np.full(n_j, -np.inf)  # each junction's latest state time, in the engine's clock
        self.ctrl_time = np.full(n_j, -np.inf)  # the same in the controller's own clock
        self.offset = np.zeros(n_j)  # s the controller's clock is behind the engine's, where corrected (else 0)
        self.skewed = np.zeros(n_j, dtype=np.bool_)
        self._offset_samples: list[deque[float]] = [deque(maxlen=OFFSET_WINDOW) for _ in range(n_j)]
        self.online = np.zeros(n_j, dtype=np.bool_)
        self.mode = [Mode.STARTING] * n_j  # each controller's mode, as last reported
        self.seq = np.zeros(n_j, dtype=np.int64)
        self.target = np.full(n_j, -1, dtype=np.int32)
        self.rng = seed_rng(seed, n_j)
        self.pnet = policy_net(network)
        self.fusion = Fusion(network, fusion_cfg)  # sensor fusion with detector health (engine/fusion/)
        self.feed = FeedWatch(self.fusion, feed_alarm_after)  # the feed alarm: no detector reading at all
        self._untaken: tuple[float, float] | None = None  # (time, interval) of readings taken, not yet integrated
        self._untaken_sources: set[str] = set()
        self.commands_sent = 0
        self.ticks_done = 0
        self.stopped = False
        self.now: float | None = None
        self._stepped_at = 0.0  # wall time of the latest step
        self._ticks: deque[m.ClockTick] = deque()
        self._wait_since: float | None = None
        self._hb = 0

    def sockets(self) -> list[zmq.Socket]:
        server = [self.operator_server.sock] if self.operator_server is not None else []
        return [self.router.sock, self.sub.sock, *server]

    # -- inputs --------------------------------------------------------------------------------------
    def pump(self) -> bool:
        progressed = False
        jidx = self.net.junction_index
        for sender, msg in self.router.drain():
            progressed = True
            if isinstance(msg, m.ControllerState):
                j = jidx.get(msg.junction)
                if j is None or msg.junction != sender:
                    self.router.stats.drop("unknown-junction")
                    continue
                self._on_state(j, msg)
        if self.operator_server is not None:
            for req in self.operator_server.drain():
                progressed = True
                self._on_operator(req)
            if self._pending:
                self._expire_resets()
        for _topic, msg in self.sub.drain():
            progressed = True
            if isinstance(msg, m.DetectorBatch):
                try:
                    self._take_batch(msg)
                except ValueError as exc:  # columns of different lengths: dropped and counted, the engine goes on
                    log.warning("dropped a detectors batch: %s", exc)
                    self.sub.stats.drop("malformed-batch")
            elif isinstance(msg, m.ClockTick):
                self._ticks.append(msg)
            elif isinstance(msg, m.PlanBatch):
                for plan in msg.plans:
                    self.fusion.on_plan(plan)
            elif isinstance(msg, m.Plan):
                self.fusion.on_plan(msg)
        while self._ticks:
            tk = self._ticks[0]
            if tk.phase == TickPhase.STOP:
                self.stopped = True
                self._ticks.clear()
                return True
            if tk.phase == TickPhase.SYNC:
                self._ticks.popleft()
                self._heartbeat(tk.time)
                continue
            if not self._ready(tk.time):
                break
            self._ticks.popleft()
            self.step(tk.time)
            progressed = True
        return progressed

    def _take_batch(self, msg: m.DetectorBatch) -> None:
        """Take a source's readings; the model runs once per tick over every source's (``_integrate_taken``), so a
        camera worker publishing apart from the loop cabinets, as in the field, does not make fusion integrate
        its interval twice. A source whose next batch comes before the tick first has the readings pending
        integrated (its previous interval's counts are never overwritten)."""
        if msg.source in self._untaken_sources:
            self._integrate_taken()
        self.fusion.take_batch(msg)
        t = float(msg.time)
        self._untaken = (t if self._untaken is None else max(t, self._untaken[0]), float(msg.interval) or 1.0)
        self._untaken_sources.add(msg.source)

    def _integrate_taken(self) -> None:
        """Run fusion's model once on every reading taken since it last ran."""
        if self._untaken is not None:
            self.fusion.integrate(*self._untaken)
        self._untaken = None
        self._untaken_sources.clear()

    def _on_state(self, j: int, st: m.ControllerState) -> None:
        n_ph = int(self.net.jn_phase_ptr[j + 1] - self.net.jn_phase_ptr[j])
        if not (0 <= st.phase < n_ph) or not np.isfinite(st.time):
            return
        if not (st.time >= self.ctrl_time[j]) and not self._clock_stepped_back(j, st):
            return
        if not self.online[j]:
            log.info("junction %s online (mode %s)", st.junction, st.mode)
            if self.now is not None:
                self.pub.publish(m.TOPIC_FAULT, m.Fault(source="engine", time=st.time, kind=FaultKind.JUNCTION_ONLINE,
                                                        detail=st.junction))
        self.online[j] = True
        self.ctrl_time[j] = st.time
        received = self._clock_offset(j, st)
        self.state_time[j] = received if self.skewed[j] else st.time  # skewed: the engine's receipt time
        self.cur_phase[j] = self.net.jn_phase_ptr[j] + st.phase
        # a controller in `starting` has heard no engine word yet: it is commanded like one in `engine`
        commanded = st.mode in (Mode.ENGINE, Mode.STARTING)
        self.interval[j] = INTERVAL_CODE[st.interval] if commanded else IntervalCode.OFFLINE
        self.fusion.set_signal(j, int(self.cur_phase[j]) if st.interval == Interval.GREEN else -1)
        self.since[j] = st.since
        self.seq[j] = max(self.seq[j], st.last_seq)
        self.mode[j] = st.mode
        if st.mode != Mode.FAILSAFE and j in self._pending:
            for req, who, _deadline in self._pending.pop(j):
                self._answer(req, st.junction, who, ResetResult.OK,
                             f"fault of {st.junction} cleared; its controller runs the local plan and returns to "
                             f"engine control at a phase boundary")

    def _clock_stepped_back(self, j: int, st: m.ControllerState) -> bool:
        """A state older than junction j's last one: a repeated or reordered state (ignored) unless it is more than
        the skew limit older, in the field: the controller's clock was stepped back (NTP) or it restarted with
        another clock. Then its offset samples start again and the state is taken (docs/protocol.md, 'Clocks and
        ticks'); the command sequence does not go back with it (``seq`` only grows), so safety is unchanged."""
        back = float(self.ctrl_time[j]) - st.time
        if self.lockstep or not (back > self.skew_limit) or back == float("inf"):
            return False
        log.warning("junction %s: clock stepped back %.1f s (state time %.1f after %.1f): offset estimated afresh",
                    st.junction, back, st.time, self.ctrl_time[j])
        self._offset_samples[j].clear()
        return True

    def _received(self) -> float | None:
        """The engine's clock now: its latest tick time plus the wall time since that tick (at most a tick)."""
        if self.clock is not None:
            return self.clock()
        if self.now is None:
            return None
        return self.now + min(max(self.wall() - self._stepped_at, 0.0), self.tick)

    def _clock_offset(self, j: int, st: m.ControllerState) -> float:
        """How far junction j's clock is behind the engine's (docs/protocol.md, 'Clocks and ticks'): the smallest
        receipt-minus-time of its last states (delivery only ever adds). Above the skew limit the engine raises
        ``clock-skew`` and corrects for it (receipt times, words stamped in the controller's clock) until the
        offset is back under half the limit. Lockstep runs have one clock, the runner's ticks."""
        received = self._received()
        if self.lockstep or received is None:
            return st.time
        samples = self._offset_samples[j]
        sample = received - st.time
        if samples and abs(sample - min(samples)) > self.skew_limit:
            samples.clear()  # the controller's clock was set (or it restarted with another): start again
        samples.append(sample)
        off = min(samples)
        if abs(off) > self.skew_limit or (self.skewed[j] and abs(off) >= self.skew_limit / 2):
            self.offset[j] = off
            if not self.skewed[j]:
                self.skewed[j] = True
                detail = f"{st.junction}: clock {abs(off):.1f} s {'behind' if off > 0 else 'ahead'}"
                log.warning("clock skew: %s (the engine speaks to it in its own clock)", detail)
                self.pub.publish(m.TOPIC_FAULT, m.Fault(source="engine", time=received, kind=FaultKind.CLOCK_SKEW,
                                                        detail=detail))
        elif self.skewed[j]:
            log.info("junction %s: clock back within %.1f s (offset %.2f s)", st.junction, self.skew_limit / 2, off)
            self.skewed[j] = False
            self.offset[j] = 0.0
        return received

    def _ready(self, t: float) -> bool:
        if not self.lockstep:
            return True
        waiting = self.online & (self.state_time < t - self.tick - 1e-9)
        if not waiting.any():
            self._wait_since = None
            return True
        now = self.wall()
        if self._wait_since is None:
            self._wait_since = now
        return now - self._wait_since > self.lockstep_wait

    # -- the tick ------------------------------------------------------------------------------------
    def step(self, t: float) -> np.ndarray:
        """One control tick at clock time ``t``; returns the targets sent (-1: none)."""
        self.now = t
        self._integrate_taken()  # the readings of every source taken since the last tick, once
        self._stepped_at = self.wall()
        self._wait_since = None
        # (states that came before the first tick could not be timed by the engine's clock: judged from the next)
        stale = self.online & (t - self.state_time > self.offline_after) & (self.ticks_done > 0)
        if stale.any():
            for j in np.flatnonzero(stale):
                jid = self.net.junctions[j].id
                log.warning("junction %s offline: no state for %.1f s", jid, t - self.state_time[j])
                self.pub.publish(m.TOPIC_FAULT, m.Fault(source="engine", time=t, kind=FaultKind.JUNCTION_OFFLINE,
                                                        detail=jid))
            self.online[stale] = False
        # time in interval now, from the last report
        since_now = self.since + np.where(np.isfinite(self.state_time), t - self.state_time, 0.0)
        state = JunctionState(self.cur_phase, self.interval, since_now, self.online)
        obs = self.fusion.observations(t)
        self.target.fill(-1)
        self.policy.kernel(float(t), self.pnet, state, obs, self.params, self.rng, self.target)
        if self.policy.publishes_plans:  # neighbour coordination: every junction's plan on the bus, one frame
            plans = self.fusion.plans(t, state)
            if plans:
                self.pub.publish(m.TOPIC_PLAN, m.PlanBatch(source="engine", time=t, plans=plans))
        self._send(t)
        self._watch_feed(t)
        self.ticks_done += 1
        return self.target

    def _send(self, t: float) -> None:
        ptr = self.net.jn_phase_ptr
        respects = self.policy.respects_limits
        hb = m.Heartbeat(sender="engine", time=t, seq=self.ticks_done)
        for j, spec in enumerate(self.net.junctions):
            if not self.online[j]:
                continue
            k = int(self.target[j])
            if k >= 0 and (not respects or (self.interval[j] == IntervalCode.GREEN and k != self.cur_phase[j])):
                self.seq[j] += 1
                cmd = m.PhaseCommand(junction=spec.id, action=Action.ADVANCE, phase=k - int(ptr[j]),
                                     seq=int(self.seq[j]), issued_at=t - float(self.offset[j]))
                self.router.send(spec.id, cmd)
                self.commands_sent += 1
            else:
                skewed = self.offset[j] != 0.0  # words in the controller's clock (docs/protocol.md, clocks)
                self.router.send(spec.id, m.Heartbeat(sender="engine", time=t - float(self.offset[j]),
                                                      seq=self.ticks_done) if skewed else hb)
        self._heartbeat(t)

    def reset(self, junction: str, operator: str = "") -> bool:
        """Ask a controller to clear its latched fault (travels on the authenticated command channel)."""
        j = self.net.junction_index.get(junction)
        if j is None:
            return False
        self.seq[j] += 1
        t = self.now if self.now is not None else 0.0
        return self.router.send(junction, m.FaultReset(junction=junction, seq=int(self.seq[j]),
                                                       issued_at=t - float(self.offset[j]),
                                                       operator=operator))

    # -- operators -----------------------------------------------------------------------------------
    def _on_operator(self, req: Request) -> None:
        """An operator's reset request: check it, send the FaultReset, answer when the controller
        reports the fault cleared (``_on_state``) or the wait runs out (``_expire_resets``)."""
        msg = req.msg
        if msg is None or not msg.junction or not msg.operator:
            why = req.error or "name the junction and the operator"
            log.warning("operator request from key %s refused: %s", req.key or "-", why)
            self._answer(req, msg.junction if msg else "", "", ResetResult.BAD_REQUEST, f"malformed request: {why} "
                         f"(see the reset-request message in docs/protocol.md)")
            return
        jid = msg.junction
        who = msg.operator if not req.key or req.key == msg.operator else f"{msg.operator} (key {req.key})"
        j = self.net.junction_index.get(jid)
        if j is None:
            ids = [s.id for s in self.net.junctions]
            sample = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            self._answer(req, jid, who, ResetResult.UNKNOWN_JUNCTION, f"no junction {jid!r} in this engine's network "
                         f"({len(ids)} junctions: {sample})")
            return
        if not self.online[j]:
            self._answer(req, jid, who, ResetResult.OFFLINE,
                         f"junction {jid} is offline: its controller does not report")
            return
        if self.mode[j] != Mode.FAILSAFE:
            self._answer(req, jid, who, ResetResult.NOT_FAULTED,
                         f"junction {jid} has no latched fault (mode {self.mode[j].value})")
            return
        if j not in self._pending:
            if not self.reset(jid, who):
                self._answer(req, jid, who, ResetResult.OFFLINE,
                             f"junction {jid} is offline: its controller is not connected")
                return
            log.warning("operator %s: fault reset sent to junction %s", who, jid)
        self._pending.setdefault(j, []).append((req, who, self.wall() + self.reset_timeout))

    def _expire_resets(self) -> None:
        now = self.wall()
        for j in [j for j, reqs in self._pending.items() if all(d <= now for _r, _w, d in reqs)]:
            jid = self.net.junctions[j].id
            for req, who, _deadline in self._pending.pop(j):
                self._answer(req, jid, who, ResetResult.NOT_CONFIRMED,
                             f"reset sent to {jid}, but its controller still reported "
                             f"a fault after {self.reset_timeout:g} s (it may have refused it: see the refusal topic)")

    def _answer(self, req: Request, junction: str, who: str, result: ResetResult, detail: str) -> None:
        self.resets[result] += 1
        if junction:
            log.warning("operator reset of junction %s by %s: %s", junction, who or "-", result)
            self.pub.publish(m.TOPIC_FAULT, m.Fault(source="engine", time=self.now or 0.0,
                                                    kind=FaultKind.OPERATOR_RESET,
                                                    detail=f"{junction} by {who or '-'}: {result}"))
        assert self.operator_server is not None
        self.operator_server.reply(req, m.ResetReply(junction=junction, result=result, detail=detail))

    def _watch_feed(self, t: float) -> None:
        """Raise the feed alarm (log, ``fault`` ``feed-lost``) when no detector reading arrived for
        ``feed.alarm_after`` s, clear it (``feed-restored``) with the next reading (docs/fusion.md)."""
        feed = self.feed
        event = feed.tick(t)
        if event == "lost":
            unknown = self.fusion.unknown
            why = (f"; {unknown} readings so far named no detector of this network" if unknown else "")
            detail = (f"no detector reading for {feed.age:.0f} s"
                      f"{' (none since the engine started)' if feed.last is None else ''}{why}")
            log.error("feed lost: %s", detail)
            self.pub.publish(m.TOPIC_FAULT, m.Fault(source="engine", time=t, kind=FaultKind.FEED_LOST, detail=detail))
        elif event == "restored":
            detail = f"detector readings again after {feed.gap:.0f} s without"
            log.warning("feed restored: %s", detail)
            self.pub.publish(m.TOPIC_FAULT, m.Fault(source="engine", time=t, kind=FaultKind.FEED_RESTORED,
                                                    detail=detail))

    def _heartbeat(self, t: float) -> None:
        self._hb += 1
        self.pub.publish(m.TOPIC_HEARTBEAT, m.Heartbeat(sender="engine", time=t, seq=self._hb))

    def close(self) -> None:
        server = [self.operator_server] if self.operator_server is not None else []
        for s in (self.router, self.sub, self.pub, *server):
            s.close()


__all__ = ["DET_ADVANCE", "DET_AREA", "DET_STOPLINE", "Engine"]
