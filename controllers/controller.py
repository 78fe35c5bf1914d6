"""One intersection controller: command channel in, heads out, state on the bus.

The same class runs in-process (the simulation runner pumps it) or as its own process
(``lintas controller``). It times intervals itself (controllers/timing.py), checks every state with
an independent conflict monitor (controllers/monitor.py) and falls back to its local plan when
the engine goes quiet for ``backup_time``: the net's own program, or the time-of-day plan given as
``plan`` (controllers/localplan.py), timed by the same timer.

Time is an input: in lockstep the controller's clock is the runner's ``tick`` messages; it waits
(at most ``lockstep_wait`` wall seconds) for the engine's word on each tick so that runs are
deterministic.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

import zmq

from controllers.drivers import HeadDriver, NullHeads
from controllers.localplan import JunctionPlan
from controllers.monitor import ConflictMonitor
from controllers.timing import Timer, TimingConfig
from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.junction import JunctionSpec
from engine.protocol.messages import Action, FaultKind, Interval, Mode, TickPhase

log = logging.getLogger("lintas.controller")


@dataclass(frozen=True)
class ControllerConfig:
    timing: TimingConfig = field(default_factory=TimingConfig)
    backup_time: float = 4.0  # s without a valid engine word before running the local plan
    max_command_age: float = 2.0  # s; older commands are refused as stale
    lockstep_wait: float = 2.0  # wall s to wait for the engine's word on a lockstep tick
    tick: float = 1.0


@dataclass
class Counters:
    accepted: int = 0
    refused: int = 0
    fallbacks: int = 0
    faults: int = 0
    heartbeat_gaps: int = 0
    refusals: dict[str, int] = field(default_factory=dict)


class Controller:
    def __init__(
        self,
        spec: JunctionSpec,
        ep: bus.Endpoints,
        *,
        cfg: ControllerConfig | None = None,
        heads: HeadDriver | None = None,
        ctx: zmq.Context | None = None,
        lockstep: bool = True,
        security=None,
        wall=time.monotonic,
        plan: JunctionPlan | None = None,
    ) -> None:
        self.spec = spec
        self.plan = plan  # time-of-day local plan (None: the net's program)
        self.plan_name = "net"
        self.id = spec.id
        self.cfg = cfg or ControllerConfig()
        self.heads = heads or NullHeads()
        self.lockstep = lockstep
        self.wall = wall
        ctx = ctx or zmq.Context.instance()
        self.cmd = bus.CommandClient(ctx, ep, spec.id, security=security)
        self.pub = bus.Publisher(ctx, ep, security=security)
        self.sub = bus.Subscriber(ctx, ep, [m.TOPIC_TICK], security=security)
        self.timer = Timer(spec, self.cfg.timing, occupied=self.heads.occupied)
        self.monitor = ConflictMonitor(spec, min_green=self.cfg.timing.min_green, yellow_min=self.cfg.timing.yellow_min)
        self.counters = Counters()
        self.mode: Mode = Mode.ENGINE
        self.now: float | None = None
        self.last_contact: float | None = None  # clock time of the last valid engine word
        self.engine_word: float = float("-inf")  # latest tick the engine has spoken for
        self.last_seq = -1
        self.engine_back = False
        self.stopped = False
        self.ticks_done = 0
        self._ticks: deque[m.ClockTick] = deque()
        self._wait_since: float | None = None
        self._last_tick_time: float | None = None
        self._first_tick: float | None = None

    # -- sockets -----------------------------------------------------------------------------------
    def sockets(self) -> list[zmq.Socket]:
        return [self.cmd.sock, self.sub.sock]

    def pump(self) -> bool:
        """Handle everything waiting now; returns True if anything happened."""
        progressed = False
        for msg in self.cmd.drain():
            self.receive(msg)
            progressed = True
        for _topic, msg in self.sub.drain():
            if isinstance(msg, m.ClockTick):
                self._ticks.append(msg)
        while self._ticks:
            tk = self._ticks[0]
            if tk.phase == TickPhase.STOP:
                self.stopped = True
                self._ticks.clear()
                return True
            if tk.phase == TickPhase.SYNC:
                self._ticks.popleft()
                self._publish_state(tk.time, sync=True)
                progressed = True
                continue
            if not self._ready(tk.time):
                break
            self._ticks.popleft()
            self.do_tick(tk.time)
            progressed = True
        return progressed

    def _ready(self, t: float) -> bool:
        if not self.lockstep or self.engine_word >= t:
            return True
        if t - self.engine_word > self.cfg.backup_time:
            # the engine is silent (any word counts, valid or refused): do not hold the clock for it
            return True
        now = self.wall()
        if self._wait_since is None:
            self._wait_since = now
        return now - self._wait_since > self.cfg.lockstep_wait

    # -- engine words --------------------------------------------------------------------------------
    def _refuse(self, msg: m.PhaseCommand, reason: str) -> None:
        c = self.counters
        c.refused += 1
        c.refusals[reason] = c.refusals.get(reason, 0) + 1
        self.pub.publish(
            m.TOPIC_REFUSAL, m.Refusal(junction=self.id, time=self.now or 0.0, seq=_clip_int(msg.seq), reason=reason)
        )

    def receive(self, msg: m.Message) -> None:
        """One word from the engine (a command, a heartbeat or a fault reset), as the command channel delivers
        it: validated here, refused and counted when it cannot be honoured; never raises."""
        now = self.now if self.now is not None else float("-inf")
        if isinstance(msg, m.Heartbeat):
            if msg.sender == "engine" and _finite(msg.time):
                self.engine_word = max(self.engine_word, msg.time)
                self._contact(msg.time)
            return
        if isinstance(msg, m.FaultReset):
            self._on_reset(msg, now)
            return
        if not isinstance(msg, m.PhaseCommand):
            return
        if _finite(msg.issued_at):
            self.engine_word = max(self.engine_word, msg.issued_at)
        reason = self.validate(msg, now)
        if reason is not None:
            self._refuse(msg, reason)
            return
        self.last_seq = msg.seq
        self.counters.accepted += 1
        self._contact(msg.issued_at)
        if msg.action == Action.HOLD:
            if self.timer.interval == Interval.GREEN:
                self.timer.request = None
        else:
            self.timer.request = msg.phase

    def _on_reset(self, msg: m.FaultReset, now: float) -> None:
        """A fault reset from the engine (the only peer the command channel can carry)."""
        probe = m.PhaseCommand(junction=msg.junction, action=Action.HOLD, phase=-1, seq=msg.seq,
                               issued_at=msg.issued_at)
        reason = self.validate(probe, now)
        if reason is not None:
            self._refuse(probe, f"reset-{reason}")
            return
        self.last_seq = msg.seq
        if self.monitor.fault is None:
            return
        log.warning("junction %s: fault reset by %s (was: %s)", self.id, msg.operator or "engine", self.monitor.fault)
        self.pub.publish(m.TOPIC_FAULT, m.Fault(source=self.id, time=now if now != float("-inf") else 0.0,
                                                 kind=FaultKind.RESET, detail=msg.operator or "engine"))
        self.reset_fault()

    def validate(self, msg: m.PhaseCommand, now: float) -> str | None:
        """Why ``msg`` cannot be honoured, or None."""
        if msg.junction != self.id:
            return "wrong-junction"
        if not _finite(msg.issued_at):
            return "bad-time"
        if msg.seq <= self.last_seq:
            return "replayed-or-out-of-sequence"
        if now != float("-inf"):
            if now - msg.issued_at > self.cfg.max_command_age:
                return "stale"
            if msg.issued_at - now > self.cfg.max_command_age + self.cfg.tick:
                return "from-the-future"
        if msg.action == Action.ADVANCE:
            if not (0 <= msg.phase < self.spec.n_phases):
                return "no-such-phase"
            if self.timer.interval != Interval.GREEN and msg.phase != self.timer.target:
                return "in-transition"
        return None

    def _contact(self, t: float) -> None:
        if (self.last_contact is not None and self.now is not None
                and self.now - self.last_contact > self.cfg.backup_time):
            self.counters.heartbeat_gaps += 1
        self.last_contact = t if self.last_contact is None else max(self.last_contact, t)
        if self.mode == Mode.LOCAL:
            self.engine_back = True

    # -- the tick ------------------------------------------------------------------------------------
    def do_tick(self, t: float) -> str:
        dt = self.cfg.tick if self._last_tick_time is None else max(t - self._last_tick_time, 0.0)
        if dt <= 0:
            dt = self.cfg.tick
        self._last_tick_time = t
        self.now = t
        self._wait_since = None
        horizon = t + self.cfg.max_command_age + self.cfg.tick
        if self.last_contact is not None and self.last_contact > horizon:
            # a word stamped far ahead (a heartbeat, or a command taken before the clock was known)
            # counts as now at most: it must not hold off the local plan for ever
            self.last_contact = horizon
        timer = self.timer
        if self._first_tick is None:
            self._first_tick = t
        silent_since = self.last_contact if self.last_contact is not None else self._first_tick
        if self.mode == Mode.ENGINE and t - silent_since > self.cfg.backup_time:
            self._set_mode(Mode.LOCAL, t)
        if self.mode == Mode.LOCAL:
            k = timer.phase
            if timer.interval == Interval.GREEN:
                timer.request = self.spec.net_next[k] if timer.since >= self.local_green(t, k) else None
        if self.monitor.fault is None:
            signal = timer.tick(dt)
            if not self.monitor.check(signal):
                self.counters.faults += 1
                self._set_mode(Mode.FAILSAFE, t)
                log.error("junction %s: fault latched: %s", self.id, self.monitor.fault)
                self.pub.publish(m.TOPIC_FAULT, m.Fault(source=self.id, time=t, kind=FaultKind.CONFLICT_MONITOR,
                                                        detail=self.monitor.fault or ""))
                signal = self.monitor.failsafe_state()
        else:
            signal = self.monitor.failsafe_state()
        # back to the engine at a phase boundary: a green began with this tick (the timer's ``since``
        # is already dt here), or a green whose minimum has run, where the engine may hold or end it
        # like any other; never in yellow or all-red
        if (self.mode == Mode.LOCAL and self.engine_back and timer.interval == Interval.GREEN
                and (timer.since == dt or timer.green_shown >= timer.min_green[timer.phase])
                and self.last_contact is not None and t - self.last_contact <= self.cfg.backup_time):
            self._set_mode(Mode.ENGINE, t)
        self.heads.show(signal)
        self.monitor.shown(signal, dt)
        self.ticks_done += 1
        self._publish_state(t, since=timer.since - dt)  # seconds shown in this interval before t
        return signal

    def local_green(self, t: float, k: int) -> float:
        """Green seconds of phase ``k`` in the local plan at clock ``t`` (the window in force, else
        the net's); the timer still applies min and max green."""
        if self.plan is None:
            return self.spec.fixed_green[k]
        name, greens = self.plan.at(t)
        if name != self.plan_name:
            log.info("junction %s: local plan %s -> %s at t=%.1f", self.id, self.plan_name, name, t)
            self.plan_name = name
        return greens[k]

    def _set_mode(self, mode: Mode, t: float) -> None:
        if mode == self.mode:
            return
        if mode == Mode.LOCAL:
            self.counters.fallbacks += 1
        log.info("junction %s: mode %s -> %s at t=%.1f", self.id, self.mode, mode, t)
        self.mode = mode
        self.engine_back = False

    def reset_fault(self) -> None:
        """Clear a latched fault (a FaultReset from the engine calls this). The heads showed all red
        since the fault; timing restarts cleanly with a fresh green of the phase that was served, so no
        interval resumes half-way."""
        self.monitor.reset()
        phase = self.timer.phase
        self.timer = Timer(self.spec, self.cfg.timing, occupied=self.heads.occupied)
        self.timer.phase = self.timer.target = phase
        self.timer.since = 0.0
        self.timer.signal = self.spec.green_states[phase]
        if self.mode == Mode.FAILSAFE:
            self._set_mode(Mode.LOCAL, self.now or 0.0)

    def state(self, t: float, since: float | None = None) -> m.ControllerState:
        timer = self.timer
        return m.ControllerState(
            junction=self.id,
            time=t,
            phase=timer.phase,
            target=timer.target if timer.interval != Interval.GREEN else timer.phase,
            interval=Interval.FAILSAFE if self.mode == Mode.FAILSAFE else timer.interval,
            since=timer.since if since is None else since,
            mode=self.mode,
            signal=timer.signal if self.mode != Mode.FAILSAFE else self.monitor.failsafe_state(),
            last_seq=self.last_seq,
            accepted=self.counters.accepted,
            refused=self.counters.refused,
        )

    def _publish_state(self, t: float, *, since: float | None = None, sync: bool = False) -> None:
        st = self.state(t, since)
        self.pub.publish(m.TOPIC_STATE, st)
        self.cmd.send(st)

    def close(self) -> None:
        for s in (self.cmd, self.pub, self.sub):
            s.close()


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and x == x and abs(x) != float("inf")


def _clip_int(x: int) -> int:
    return max(min(int(x), 2**62), -(2**62))
