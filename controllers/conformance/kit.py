"""The conformance kit: the engine's side of the command channel (and a bus forwarder) against one controller,
through scripted cases in real time, judged from the states the controller sends and publishes.

Each requirement of docs/protocol.md ("What a controller must do", C1-C28) gets one :class:`Result`. The cases
(start-up, advance, advance during the minimum and in transition, hold, the refusals, garbage, the `reset` word,
the controller's own clock, silence and return, engine restart) drive the controller; C1, C2 and the safety rules
C20-C23 are judged afterwards over every state seen. The kit speaks like the engine: one word per second, every
time stamped in the controller's clock as estimated from its states (``issued_at`` = the kit's clock minus the
offset), and every ``seq`` above the controller's ``last_seq``.

The safety checks are written here from docs/safety.md and share no code with ``controllers/monitor.py``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import zmq

from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.junction import JunctionSpec
from engine.protocol.messages import Action, Interval, Mode

# the numbers of docs/protocol.md
TICK = 1.0
BACKUP = 4.0
MAX_AGE = 2.0
FUTURE = MAX_AGE + TICK
MIN_GREEN = 5.0
MIN_YELLOW = 3.0
MIN_ALLRED = 1.0
CLEARANCE_MAX = 8.0
OFFSET_WINDOW = 8
EPS = 0.05
RESET_ROOM = 15.0  # s of green left that the reset case wants, to judge that the resets leave the green alone

GREEN = frozenset("Gg")
YELLOW = frozenset("yY")
ACTIVE = frozenset("GgyYoO")
MINOR = frozenset("gyo")
LETTERS = frozenset("GgyYrsuoO")

TITLES = {
    "C1": "connects and sends valid states",
    "C2": "one state per tick, on the command channel and the bus",
    "C3": "comes under engine control",
    "C4": "advance obeyed",
    "C5": "hold obeyed",
    "C6": "advance during the minimum green waits for it",
    "C7": "stale refused",
    "C8": "from-the-future refused",
    "C9": "bad-time refused",
    "C10": "replayed-or-out-of-sequence refused",
    "C11": "a gap in the sequence accepted",
    "C12": "wrong-junction refused",
    "C13": "no-such-phase refused",
    "C14": "in-transition refused, same target accepted",
    "C15": "garbage and unexpected messages ignored",
    "C16": "falls back to local within backup time + 1 s",
    "C17": "returns to engine at a phase boundary",
    "C18": "survives an engine restart, keeps last_seq",
    "C19": "judges commands by its own clock",
    "C20": "safety: no conflicting links active",
    "C21": "safety: minimum green",
    "C22": "safety: yellow in full, never green to red or yellow to green",
    "C23": "safety: all-red in full out of the net's order",
    "C24": "a reset without a latched fault accepted, nothing else changes",
    "C25": "a stale or ill-timed reset refused",
    "C26": "a replayed or out-of-sequence reset refused",
    "C27": "a misaddressed reset refused",
    "C28": "no reset, accepted or refused, disturbs the signals",
}


class KitError(Exception):
    """The kit cannot run (no state from the controller, no socket): one line."""


class CaseFailed(Exception):
    """A case could not go on (the controller did not get where the case needs it)."""


@dataclass(frozen=True)
class Result:
    req: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.req:<4}{'pass' if self.ok else 'FAIL'}  {TITLES[self.req]}: {self.detail}"


@dataclass(frozen=True)
class Seen:
    recv: float  # the kit's clock at receipt
    st: m.ControllerState


def minimum_green(spec: JunctionSpec, k: int) -> float:
    return max(spec.min_green[k], MIN_GREEN)


def local_cycle(spec: JunctionSpec) -> float:
    """An upper bound of one cycle of the net's program as a controller runs it."""
    total = 0.0
    for k in range(spec.n_phases):
        total += max(spec.fixed_green[k], minimum_green(spec, k))
        total += sum(max(d, MIN_YELLOW) for _s, d in spec.net_transitions[k])
        total += max(spec.yellow[k], MIN_YELLOW) + max(spec.allred[k], MIN_ALLRED) + CLEARANCE_MAX
    return total


class Kit:
    """Plays the engine (ROUTER on ``ep.commands``) and the bus (a forwarder on ``ep.bus_in`` / ``ep.bus_out``)."""

    def __init__(self, spec: JunctionSpec, ep: bus.Endpoints, *, security=None, startup_timeout: float = 30.0,
                 wall: Callable[[], float] = time.time, progress: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self.ep = ep
        self.security = security
        self.wall = wall
        self.startup_timeout = startup_timeout
        self.progress = progress or (lambda _s: None)
        # with keys, the sockets live in the context whose ZAP handler the security started (it authenticates the
        # controller's key); without, in a context of the kit's own
        self._own_ctx = security is None
        self.ctx: zmq.Context = zmq.Context() if security is None else security.ctx
        made: list = []
        try:
            self.fwd = bus.Forwarder(ep, self.ctx, security=security).start()
            made.append(self.fwd)
            self.server: bus.CommandServer | None = bus.CommandServer(self.ctx, ep, security=security)
            made.append(self.server)
            self.sub = bus.Subscriber(self.ctx, ep, [m.TOPIC_STATE, m.TOPIC_REFUSAL, m.TOPIC_FAULT],
                                      security=security)
        except (zmq.ZMQError, OSError, ValueError) as exc:  # ValueError: a SecurityError (a key file)
            for x in reversed(made):
                x.stop() if isinstance(x, bus.Forwarder) else x.close()
            if self._own_ctx:
                self.ctx.destroy(linger=0)
            raise KitError(f"cannot bind the engine's and the bus's sockets ({ep.commands}, {ep.bus_in}, "
                           f"{ep.bus_out}): {exc}") from None
        self.states: list[Seen] = []  # on the command channel
        self.bus_states: list[Seen] = []  # on topic `state`
        self.refusals: list[m.Refusal] = []
        self.faults: list[m.Fault] = []  # the controller's, on topic `fault`
        self.misaddressed: list[str] = []  # states from another routing id or junction
        self.dropped = 0  # frames from the controller that did not decode (all ROUTERs)
        self.strangers: set[str] = set()  # other routing ids that connected (ignored)
        self.samples: deque[float] = deque(maxlen=OFFSET_WINDOW)
        self.speaking = True
        self.next_word = 0.0
        self.ticks = 0
        self.sent_max = -1
        self.last_stamp = float("-inf")  # controller-clock stamp of the last word sent
        self.results: dict[str, Result] = {}

    # -- plumbing ------------------------------------------------------------------------------------------
    @property
    def latest(self) -> m.ControllerState:
        return self.states[-1].st

    @property
    def offset(self) -> float:
        """How far the controller's clock is behind the kit's (s): the smallest receipt-minus-time seen lately."""
        return min(self.samples) if self.samples else 0.0

    def ctrl_now(self) -> float:
        return self.wall() - self.offset

    def _pump(self, timeout_ms: int = 20) -> None:
        poller = zmq.Poller()
        if self.server is not None:
            poller.register(self.server.sock, zmq.POLLIN)
        poller.register(self.sub.sock, zmq.POLLIN)
        poller.poll(timeout_ms)
        now = self.wall()
        if self.server is not None:
            for msg in self._from_controller():
                if not isinstance(msg, m.ControllerState):
                    continue
                if msg.junction != self.spec.id:
                    self.misaddressed.append(f"routing id {self.spec.id!r}, junction {msg.junction!r}")
                    continue
                self.states.append(Seen(now, msg))
                if math.isfinite(msg.time):
                    self.samples.append(now - msg.time)
        for topic, msg in self.sub.drain():
            if topic == m.TOPIC_STATE and isinstance(msg, m.ControllerState):
                if msg.junction == self.spec.id:
                    self.bus_states.append(Seen(now, msg))
            elif isinstance(msg, m.Refusal) and msg.junction == self.spec.id:
                self.refusals.append(msg)
            elif isinstance(msg, m.Fault) and msg.source == self.spec.id:
                self.faults.append(msg)
        if self.speaking and self.server is not None and now >= self.next_word:
            self._word(m.Heartbeat(sender="engine", time=self.ctrl_now(), seq=self.ticks))

    def _from_controller(self) -> list[m.Message]:
        """What the controller sent on the command channel since the last call. Frames of other routing ids
        (another controller pointed at the same endpoint) are not its own and are ignored; its own frames that
        do not decode count against C1."""
        assert self.server is not None
        sock, out = self.server.sock, []
        me = self.spec.id.encode()
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            if frames[0] != me:
                self.strangers.add(frames[0].decode(errors="replace"))
                continue
            msg = bus.safe_decode(frames[1], self.server.stats) if len(frames) == 2 else None
            if msg is None:
                self.dropped += 1
            else:
                out.append(msg)

    def _word(self, msg: m.Message) -> None:
        """One word to the controller; the next heartbeat follows a second later."""
        assert self.server is not None
        self.server.send(self.spec.id, msg)
        stamp = getattr(msg, "issued_at", getattr(msg, "time", None))
        if isinstance(msg, m.Heartbeat | m.PhaseCommand) and stamp is not None and math.isfinite(stamp):
            self.last_stamp = max(self.last_stamp, stamp)
        self.ticks += 1
        self.next_word = self.wall() + TICK

    def wait(self, pred: Callable[[], bool], timeout: float) -> bool:
        deadline = self.wall() + timeout
        while True:
            if pred():
                return True
            if self.wall() >= deadline:
                return False
            self._pump()

    def sleep(self, seconds: float) -> None:
        self.wait(lambda: False, seconds)

    def next_seq(self) -> int:
        last = self.latest.last_seq if self.states else -1
        return max(self.sent_max, last) + 1

    def command(self, action: Action, phase: int = -1, *, seq: int | None = None, issued_at: float | None = None,
                junction: str | None = None) -> int:
        seq = self.next_seq() if seq is None else seq
        self.sent_max = max(self.sent_max, seq)
        self._word(m.PhaseCommand(junction=self.spec.id if junction is None else junction, action=action, phase=phase,
                                  seq=seq, issued_at=self.ctrl_now() if issued_at is None else issued_at))
        return seq

    def raw(self, *frames: bytes) -> None:
        assert self.server is not None
        self.server.sock.send_multipart([self.spec.id.encode(), *frames])

    def accepted(self, seq: int, timeout: float = 3.5) -> bool:
        return self.wait(lambda: self.latest.last_seq == seq, timeout)

    def refusal_of(self, seq: int, since: int = 0) -> m.Refusal | None:
        return next((r for r in self.refusals[since:] if r.seq == seq), None)

    def wait_green(self, timeout: float, *, fresh: bool = False) -> m.ControllerState:
        """The latest state once it is an engine-mode green (``fresh``: one that began at most a tick ago)."""
        def ok() -> bool:
            s = self.latest
            return (s.mode in (Mode.ENGINE, Mode.STARTING) and s.interval == Interval.GREEN
                    and (not fresh or s.since <= TICK + EPS))
        if not self.wait(ok, timeout):
            s = self.latest
            raise CaseFailed(f"no {'new ' if fresh else ''}green under engine control within {timeout:.0f} s "
                             f"(last state: phase {s.phase}, {s.interval}, mode {s.mode})")
        return self.latest

    def _set(self, req: str, ok: bool, detail: str) -> None:
        self.results[req] = Result(req, ok, detail)

    def _case(self, reqs: tuple[str, ...], fn: Callable[[], None]) -> None:
        self.progress(f"case {fn.__name__.removeprefix('case_')} ({', '.join(reqs)})")
        try:
            fn()
        except CaseFailed as exc:
            for r in reqs:
                if r not in self.results:
                    self._set(r, False, f"not reached: {exc}")

    # -- the run -------------------------------------------------------------------------------------------
    def run(self) -> list[Result]:
        """Every case, then the checks over every state; one result per requirement, C1 first."""
        try:
            if not self.wait(lambda: bool(self.states), self.startup_timeout):
                raise KitError(f"no state from controller {self.spec.id!r} on {self.ep.commands} within "
                               f"{self.startup_timeout:.0f} s: is it running, connected to these endpoints, with "
                               f"routing id = junction id?")
            self._case(("C3",), self.case_startup)
            self._case(("C4",), self.case_advance)
            self._case(("C6", "C14"), self.case_advance_during_minimum)
            self._case(("C5",), self.case_hold)
            self._case(("C7", "C8", "C9", "C10", "C11", "C12", "C13"), self.case_refusals)
            self._case(("C15",), self.case_garbage)
            self._case(("C24", "C25", "C26", "C27", "C28"), self.case_reset)
            self._case(("C19",), self.case_own_clock)
            self._case(("C16", "C17"), self.case_silence)
            self._case(("C18",), self.case_engine_restart)
            self.sleep(1.5)  # the last states
            self.check_states()
            self.check_safety()
        finally:
            self.close()
        return [self.results[r] for r in TITLES if r in self.results]

    def close(self) -> None:
        for s in (self.server, self.sub):
            if s is not None:
                s.close()
        self.server = None
        self.fwd.stop()
        if self._own_ctx:
            self.ctx.destroy(linger=0)

    def _set_refusals(self, req: str, ok: bool, got: list[str], last: int, st2, n_ref: int, n_sent: int) -> None:
        """A refusal requirement's verdict: each word refused with its reason (``ok``, ``got``), and none of them
        moved ``last_seq`` or went uncounted in ``refused``."""
        if st2.last_seq != last:
            ok = False
            got.append(f"last_seq moved {last} -> {st2.last_seq}")
        if n_ref != n_sent:
            ok = False
            got.append(f"refused counted {n_ref} of {n_sent}")
        self._set(req, ok, "; ".join(got))

    # -- the cases -----------------------------------------------------------------------------------------
    def case_startup(self) -> None:
        first = self.latest
        t0 = self.wall()
        limit = local_cycle(self.spec) + BACKUP + 10
        ok = self.wait(lambda: self.latest.mode == Mode.ENGINE, limit)
        modes = list(dict.fromkeys(s.st.mode.value for s in self.states))
        self._set("C3", ok, f"first state in mode {first.mode}, then {' -> '.join(modes)}"
                  + (f"; engine {self.wall() - t0:.0f} s after the kit's first word" if ok
                     else f"; not engine after {limit:.0f} s of heartbeats"))

    def case_advance(self) -> None:
        spec = self.spec
        st = self.wait_green(local_cycle(spec))
        k = st.phase
        others = [p for p in range(spec.n_phases) if p != k]
        if not others:
            raise CaseFailed("the junction has one green phase only")
        out_of_order = [p for p in others if p != spec.net_next[k]]
        p = (out_of_order or others)[0]
        i0, r0, acc0 = len(self.states), len(self.refusals), st.accepted
        seq = self.command(Action.ADVANCE, p)
        ok_acc = self.accepted(seq)
        refused = self.refusal_of(seq, r0)
        moving = self.wait(lambda: any(s.st.target == p and s.st.interval != Interval.GREEN
                                       for s in self.states[i0:]), minimum_green(spec, k) + 3)
        arrive = max(spec.yellow[k], MIN_YELLOW) + max(spec.allred[k], MIN_ALLRED) + CLEARANCE_MAX + 3 + sum(
            max(d, MIN_YELLOW) for _s, d in spec.net_transitions[k])
        there = self.wait(lambda: self.latest.interval == Interval.GREEN and self.latest.phase == p, arrive)
        acc_counted = self.latest.accepted >= acc0 + 1
        ok = ok_acc and refused is None and moving and there and acc_counted
        why = [w for w, bad in ((f"refused ({refused.reason})" if refused else "", refused is not None),
                                (f"last_seq not {seq}", not ok_acc), ("accepted not counted", not acc_counted),
                                (f"never showed target {p} in yellow/all-red", not moving),
                                (f"not green {p} in time", not there)) if bad]
        self._set("C4", ok, f"advance {k} -> {p} (seq {seq}): " + ("accepted, target shown, green reached"
                                                                  if ok else "; ".join(why)))

    def case_advance_during_minimum(self) -> None:
        spec = self.spec
        st = self.wait_green(local_cycle(spec), fresh=True)
        p = st.phase
        q = next(x for x in [spec.net_next[p], *range(spec.n_phases)] if x != p)
        i0, r0 = len(self.states), len(self.refusals)
        since0 = st.since
        seq = self.command(Action.ADVANCE, q)
        ok_acc = self.accepted(seq)
        refused = self.refusal_of(seq, r0)
        # the green ends once its minimum has run: wait for the first state of the change
        if not self.wait(lambda: any(s.st.interval != Interval.GREEN for s in self.states[i0:]),
                         minimum_green(spec, p) + 3):
            self._set("C6", False, f"advance {p} -> {q} sent {since0:g} s into the green: the green never ended")
            raise CaseFailed("no change")
        change = next(s for s in self.states[i0:] if s.st.interval != Interval.GREEN)
        greens = [s for s in self.states[i0 - 1:] if s.st.interval == Interval.GREEN and s.st.phase == p]
        shown = greens[0].st.since + (change.st.time - greens[0].st.time) if greens else float("nan")
        need = minimum_green(spec, p)
        ok6 = ok_acc and refused is None and change.st.target == q and shown >= need - EPS
        verdict = ("accepted" if ok_acc and refused is None
                   else f"not accepted ({refused.reason if refused else 'last_seq'})")
        self._set("C6", ok6, f"advance {p} -> {q} sent {since0:g} s into the green: {verdict}; "
                  + f"green ended after {shown:g} s (minimum {need:g} s), target {change.st.target}")
        # in transition: another target is refused, the same target accepted
        r1 = len(self.refusals)
        back = change.st.phase if change.st.phase != q else next(x for x in range(spec.n_phases) if x != q)
        seq_other = self.command(Action.ADVANCE, back)
        seq_same = self.command(Action.ADVANCE, q)
        ok_same = self.accepted(seq_same)
        self.wait(lambda: self.refusal_of(seq_other, r1) is not None, 2)
        r_other = self.refusal_of(seq_other, r1)
        r_same = self.refusal_of(seq_same, r1)
        in_trans = change.st.interval in (Interval.YELLOW, Interval.ALLRED)
        ok14 = (in_trans and r_other is not None and r_other.reason == "in-transition" and ok_same
                and r_same is None)
        self._set("C14", ok14, f"during {change.st.interval}: advance to {back} "
                  + (f"refused ({r_other.reason})" if r_other else "not refused")
                  + f", advance to target {q} " + ("accepted" if ok_same and r_same is None
                                                   else f"not accepted ({r_same.reason if r_same else 'last_seq'})"))
        self.wait_green(arrive_time(spec, p) + 5)

    def case_hold(self) -> None:
        spec = self.spec
        st = self.wait_green(local_cycle(spec), fresh=True)
        q = st.phase
        need = minimum_green(spec, q)
        other = next(x for x in range(spec.n_phases) if x != q)
        i0 = len(self.states)
        seq_adv = self.command(Action.ADVANCE, other)
        seq_hold = self.command(Action.HOLD, -1)
        ok_acc = self.accepted(seq_hold)
        room = min(spec.max_green[q], 1e9) >= need + 3
        until = need + 2
        if room:
            held = self.wait(lambda: self.latest.interval != Interval.GREEN or self.latest.since >= until,
                             until + 3) and self.latest.interval == Interval.GREEN and self.latest.phase == q
        else:
            held = all(s.st.interval == Interval.GREEN for s in self.states[i0:])
        ok = ok_acc and held
        self._set("C5", ok, f"advance to {other} (seq {seq_adv}) then hold (seq {seq_hold}) at the start of green {q}: "
                  + ("accepted; " if ok_acc else "hold not accepted; ")
                  + (f"green {q} still shown {until:g} s in (minimum {need:g} s)" if held and room
                     else "green kept" if held else "the green ended: the hold did not withdraw the advance"))

    def case_refusals(self) -> None:
        spec = self.spec
        self.wait_green(local_cycle(spec))
        st = self.latest
        last, ref0, r0 = st.last_seq, st.refused, len(self.refusals)
        base = self.next_seq()
        now = self.ctrl_now()
        plan: list[tuple[str, str, int, m.PhaseCommand]] = []

        def add(req: str, reason: str, seq: int, **kw) -> None:
            kw.setdefault("issued_at", now)
            kw.setdefault("action", Action.HOLD)
            kw.setdefault("junction", spec.id)
            plan.append((req, reason, seq, m.PhaseCommand(seq=seq, **kw)))

        add("C7", "stale", base, issued_at=now - MAX_AGE - 1.0)
        add("C8", "from-the-future", base + 1, issued_at=now + FUTURE + 2.0)
        add("C9", "bad-time", base + 2, issued_at=float("nan"))
        add("C9", "bad-time", base + 3, issued_at=float("inf"))
        add("C9", "bad-time", base + 4, issued_at=float("-inf"))
        add("C10", "replayed-or-out-of-sequence", last)
        add("C10", "replayed-or-out-of-sequence", last - 1)
        add("C12", "wrong-junction", base + 5, junction=spec.id + "-not-me")
        add("C13", "no-such-phase", base + 6, action=Action.ADVANCE, phase=spec.n_phases)
        add("C13", "no-such-phase", base + 7, action=Action.ADVANCE, phase=-1)
        add("C13", "no-such-phase", base + 8, action=Action.ADVANCE, phase=2**40)
        self.sent_max = max(self.sent_max, base + 8)
        for _req, _reason, _seq, cmd in plan:
            self.server.send(spec.id, cmd)  # type: ignore[union-attr]
        self.next_word = self.wall() + TICK
        seqs = [seq for _r, _w, seq, _c in plan]
        self.wait(lambda: all(self.refusal_of(s, r0) is not None for s in seqs), 3)
        self.sleep(1.2)  # a state after the last of them
        st2 = self.latest
        n_ref = st2.refused - ref0
        for req in ("C7", "C8", "C9", "C10", "C12", "C13"):
            mine = [(reason, seq, cmd) for r, reason, seq, cmd in plan if r == req]
            got = []
            ok = True
            for reason, seq, cmd in mine:
                ref = self.refusal_of(seq, r0)
                if ref is None or ref.reason != reason:
                    ok = False
                shown = "no refusal" if ref is None else ref.reason
                got.append(f"{_what(cmd)} -> {shown}")
            self._set_refusals(req, ok, got, last, st2, n_ref, len(plan))
        gap = max(self.sent_max, st2.last_seq) + 5
        seq = self.command(Action.HOLD, -1, seq=gap)
        ok = self.accepted(seq)
        self._set("C11", ok, f"hold with seq {gap} after last_seq {st2.last_seq}: "
                  + ("accepted" if ok else f"not accepted (last_seq {self.latest.last_seq})"))

    def case_garbage(self) -> None:
        spec = self.spec
        st = self.latest
        i0, r0 = len(self.states), len(self.refusals)
        enc = msgspec.msgpack.encode
        nxt = self.next_seq()
        now = self.ctrl_now()
        frames: list[tuple[bytes, ...]] = [
            (b"\xc1",), (b"not messagepack at all",), (b"",), (enc([1, 2, 3]),), (enc({"v": 1}),),
            (enc({"t": "no-such-type", "v": 1}),), (enc({"t": 7}),),
            (m.encode(m.ClockTick(time=now, step=1)),), (m.encode(st),),
            (m.encode(m.Fault(source="engine", time=now, kind="conformance", detail="ignore me")),),
            (m.encode(m.Refusal(junction=spec.id, time=now, seq=nxt, reason="x")),),
            (enc({"t": "command", "v": 1, "junction": spec.id, "action": "advance", "phase": "1", "seq": nxt,
                  "issued_at": now}),),
            (enc({"t": "command", "v": 1, "junction": spec.id, "action": "jump", "phase": 0, "seq": nxt + 1,
                  "issued_at": now}),),
            (enc({"t": "command", "v": 99, "junction": spec.id, "action": "advance", "phase": 0, "seq": nxt + 2,
                  "issued_at": now}),),
            (enc({"t": "heartbeat", "v": 1, "sender": "engine", "time": "now", "seq": 1}),),
            (b"two", b"frames"),
            (bytes(range(256)) * 64,),
        ]
        for f in frames:
            self.raw(*f)
        self.sleep(3.2)
        new = self.states[i0:]
        after = self.latest
        unchanged = (after.last_seq == st.last_seq and after.accepted == st.accepted and after.refused == st.refused)
        no_ref = len(self.refusals) == r0
        going = len(new) >= 2
        seq = self.command(Action.HOLD, -1, seq=max(self.sent_max, after.last_seq, nxt + 2) + 1)
        then = self.accepted(seq)
        ok = unchanged and no_ref and going and then
        checks = (("counters and last_seq unchanged", "counters or last_seq changed", unchanged),
                  ("no refusal", "a refusal published", no_ref),
                  (f"{len(new)} states in 3 s", f"only {len(new)} states in 3 s", going),
                  ("a valid hold accepted after", "the next valid command not accepted", then))
        self._set("C15", ok, f"{len(frames)} bad or unexpected frames: "
                  + "; ".join(good if passed else bad for good, bad, passed in checks))

    def case_reset(self) -> None:
        """The `reset` word. A conforming engine cannot make a controller latch a fault, so the kit resets one that
        has none: a valid reset is accepted (``last_seq`` moves) and changes nothing else; an invalid one is refused
        with ``reset-`` and the command's reason; and no reset, accepted or refused, disturbs the green shown."""
        spec = self.spec
        st = self.wait_green(local_cycle(spec))
        if maximum_green(spec, st.phase) - st.since < RESET_ROOM:  # a green with room: end this one, take the next
            p = next(x for x in [spec.net_next[st.phase], *range(spec.n_phases)] if x != st.phase)
            self.command(Action.ADVANCE, p)
            self.wait(lambda: self.latest.interval != Interval.GREEN, minimum_green(spec, st.phase) + 3)
            st = self.wait_green(arrive_time(spec, st.phase) + 5, fresh=True)
        k, i0, r0, f0 = st.phase, len(self.states), len(self.refusals), len(self.faults)
        room = maximum_green(spec, k) - st.since >= RESET_ROOM
        # C24: a valid reset to a controller without a fault
        seq = self.next_seq()
        self.sent_max = max(self.sent_max, seq)
        self._word(m.FaultReset(junction=spec.id, seq=seq, issued_at=self.ctrl_now(), operator="conformance"))
        ok_acc = self.accepted(seq)
        self.sleep(1.2)  # a state after it
        after = self.latest
        refused = self.refusal_of(seq, r0)
        cleared = [f for f in self.faults[f0:] if f.kind == m.FaultKind.RESET]
        checks = ((f"last_seq {seq}", f"last_seq {after.last_seq}, not {seq}", ok_acc),
                  ("no refusal", f"refused ({refused.reason if refused else ''})", refused is None),
                  ("accepted and refused not counted", f"counters moved (accepted {st.accepted} -> {after.accepted}, "
                   f"refused {st.refused} -> {after.refused})",
                   after.accepted == st.accepted and after.refused == st.refused),
                  (f"mode {after.mode}", f"mode {st.mode} -> {after.mode}", after.mode == st.mode),
                  ("no `reset` fault published", "a `reset` fault published though none was latched", not cleared))
        self._set("C24", all(c[2] for c in checks), f"reset seq {seq} in green {k}: "
                  + "; ".join(good if passed else bad for good, bad, passed in checks))
        # C25-C27: invalid resets, in one burst
        last, ref0, r1 = after.last_seq, after.refused, len(self.refusals)
        base, now = self.next_seq(), self.ctrl_now()
        plan: list[tuple[str, str, m.FaultReset]] = []

        def add(req: str, reason: str, seq: int, issued_at: float = now, junction: str = spec.id) -> None:
            plan.append((req, f"reset-{reason}", m.FaultReset(junction=junction, seq=seq, issued_at=issued_at,
                                                               operator="conformance")))

        add("C25", "stale", base, now - MAX_AGE - 1.0)
        add("C25", "from-the-future", base + 1, now + FUTURE + 2.0)
        add("C25", "bad-time", base + 2, float("nan"))
        add("C26", "replayed-or-out-of-sequence", last)
        add("C26", "replayed-or-out-of-sequence", last - 1)
        add("C27", "wrong-junction", base + 3, junction=spec.id + "-not-me")
        self.sent_max = max(self.sent_max, base + 3)
        for _req, _reason, msg in plan:
            self.server.send(spec.id, msg)  # type: ignore[union-attr]
        self.next_word = self.wall() + TICK
        self.wait(lambda: all(self.refusal_of(msg.seq, r1) is not None for _q, _r, msg in plan), 3)
        self.sleep(1.2)  # a state after the last of them
        st2 = self.latest
        n_ref = st2.refused - ref0
        for req in ("C25", "C26", "C27"):
            got, ok = [], True
            for _q, reason, msg in (x for x in plan if x[0] == req):
                ref = self.refusal_of(msg.seq, r1)
                ok = ok and ref is not None and ref.reason == reason
                stamp = f"{msg.issued_at:.1f}" if math.isfinite(msg.issued_at) else str(msg.issued_at)
                got.append(f"reset seq {msg.seq} issued_at {stamp}"
                           + (f" for {msg.junction!r}" if msg.junction != spec.id else "")
                           + f" -> {'no refusal' if ref is None else ref.reason}")
            self._set_refusals(req, ok, got, last, st2, n_ref, len(plan))
        # C28: every state since the first reset
        window = self.states[i0 - 1:]
        bad: list[str] = []
        for s in window:
            if s.st.mode != st.mode or s.st.interval == Interval.FAILSAFE:
                bad.append(f"t={s.st.time:.0f}: mode {s.st.mode}, {s.st.interval}")
            elif room and not (s.st.interval == Interval.GREEN and s.st.phase == k
                               and s.st.signal == spec.green_states[k]):
                bad.append(f"t={s.st.time:.0f}: {s.st.interval} of phase {s.st.phase}, {s.st.signal!r}")
        for a, b in itertools.pairwise(window):
            if (room and b.st.since - a.st.since < (b.st.time - a.st.time) - EPS) and not bad:
                bad.append(f"t={b.st.time:.0f}: the green restarted (since {a.st.since:g} -> {b.st.since:g})")
        found = safety_violations(spec, [s.st for s in window])
        bad += [v for r in ("C20", "C21", "C22", "C23") for v in found[r]]
        span = window[-1].st.time - window[0].st.time if window else 0.0
        self._set("C28", not bad, f"{len(plan) + 1} resets over {span:.0f} s of green {k}: "
                  + ("the same green shown throughout, its time running on, same mode, no violation" if not bad and room
                     else "same mode, no all-red, no violation" if not bad
                     else f"{len(bad)} problems, first: " + "; ".join(bad[:3])))

    def case_own_clock(self) -> None:
        off = self.offset
        seq = self.command(Action.HOLD, -1)
        ok = self.accepted(seq)
        side = "behind" if off >= 0 else "ahead of"
        self._set("C19", ok, f"its clock is {abs(off):.2f} s {side} the kit's; a hold stamped at its clock "
                  + ("accepted" if ok else f"not accepted (last_seq {self.latest.last_seq})"))

    def case_silence(self) -> None:
        spec = self.spec
        self.wait_green(local_cycle(spec))
        self.speaking = False
        last = self.last_stamp
        i0 = len(self.states)
        fell = self.wait(lambda: any(s.st.mode == Mode.LOCAL for s in self.states[i0:]), BACKUP + 5)
        if fell:
            first = next(s for s in self.states[i0:] if s.st.mode == Mode.LOCAL)
            after = first.st.time - last
            ok = after <= BACKUP + TICK + EPS
            self._set("C16", ok, f"mode local {after:.1f} s after the last word (limit {BACKUP + TICK:g} s)")
        else:
            self._set("C16", False, f"still mode {self.latest.mode} {BACKUP + 5:g} s after the last word")
        self.sleep(2.0)
        self.speaking = True
        i1 = len(self.states)
        limit = local_cycle(spec) + 10
        back = self.wait(lambda: any(s.st.mode == Mode.ENGINE for s in self.states[i1:]), limit)
        if not back:
            self._set("C17", False, f"still mode {self.latest.mode} {limit:.0f} s after the engine spoke again")
            return
        j = next(i for i in range(i1, len(self.states)) if self.states[i].st.mode == Mode.ENGINE)
        s = self.states[j].st
        boundary = s.interval == Interval.GREEN and (
            s.since <= EPS or s.since + TICK >= minimum_green(spec, s.phase) - EPS)
        waited = s.time - self.states[i1].st.time if i1 < len(self.states) else 0.0
        self._set("C17", boundary, f"mode engine again {waited:.0f} s after the engine spoke, in {s.interval} of "
                  f"phase {s.phase} with {s.since:g} s shown (minimum {minimum_green(spec, s.phase):g} s)"
                  + ("" if boundary else ": not a phase boundary"))

    def case_engine_restart(self) -> None:
        spec = self.spec
        self.wait(lambda: self.latest.mode == Mode.ENGINE, local_cycle(spec))
        self.sleep(0.5)
        last = self.latest.last_seq
        assert self.server is not None
        self.server.close()
        self.server = None
        self.sleep(1.0)
        deadline = self.wall() + 5
        while True:
            try:
                self.server = bus.CommandServer(self.ctx, self.ep, security=self.security)
                break
            except zmq.ZMQError as exc:
                if self.wall() > deadline:
                    raise CaseFailed(f"cannot bind {self.ep.commands} again: {exc}") from None
                self.sleep(0.2)
        self.sent_max = -1  # a new engine knows nothing
        i0, r0 = len(self.states), len(self.refusals)
        if not self.wait(lambda: len(self.states) > i0, BACKUP):
            self._set("C18", False, "no state at the new engine's socket within the backup time")
            return
        first = self.states[i0].st
        old = self.command(Action.HOLD, -1, seq=first.last_seq)
        new = self.command(Action.HOLD, -1, seq=first.last_seq + 1)
        ok_new = self.accepted(new)
        self.wait(lambda: self.refusal_of(old, r0) is not None, 2)
        r_old = self.refusal_of(old, r0)
        ok = first.last_seq == last and ok_new and r_old is not None
        self._set("C18", ok, f"first state at the new socket: last_seq {first.last_seq} (was {last}), "
                  f"mode {first.mode}; seq {old} " + (f"refused ({r_old.reason})" if r_old else "not refused")
                  + f", seq {new} " + ("accepted" if ok_new else "not accepted"))

    # -- checks over every state ---------------------------------------------------------------------------
    def check_states(self) -> None:
        spec = self.spec
        bad: list[str] = []
        if self.dropped:
            bad.append(f"{self.dropped} frames from the controller did not decode")
        if self.misaddressed:
            bad.append(f"{len(self.misaddressed)} states misaddressed ({self.misaddressed[0]})")
        for seen in self.states + self.bus_states:
            why = state_problem(spec, seen.st)
            if why:
                bad.append(f"t={seen.st.time:.1f}: {why}")
        self._set("C1", not bad, f"{len(self.states)} states on the command channel"
                  + ("" if not bad else f"; {len(bad)} problems, first: " + "; ".join(bad[:3])))
        problems: list[str] = []
        for name, seq in (("command channel", self.states), ("bus", self.bus_states)):
            times = [s.st.time for s in seq]
            back = sum(1 for a, b in itertools.pairwise(times) if b <= a)
            if back:
                problems.append(f"{name}: time not increasing {back} times")
        times = [s.st.time for s in self.bus_states]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        if len(self.bus_states) < 0.5 * max(len(self.states), 1):
            problems.append(f"only {len(self.bus_states)} states on topic state for {len(self.states)} on the "
                            f"command channel")
        off = [g for g in gaps if abs(g - TICK) > 0.1]
        if len(off) > max(2, 0.05 * len(gaps)) or any(g > 2 * TICK + 0.1 for g in gaps):
            problems.append(f"{len(off)} of {len(gaps)} intervals between states not {TICK:g} s "
                            f"(e.g. {off[:3]})")
        span = f"{times[-1] - times[0]:.0f} s" if times else "0 s"
        self._set("C2", not problems, f"{len(self.bus_states)} states on topic state over {span}"
                  + ("" if not problems else "; " + "; ".join(problems)))

    def check_safety(self) -> None:
        stream = self.bus_states if len(self.bus_states) >= len(self.states) else self.states
        found = safety_violations(self.spec, [s.st for s in stream])
        n = len(stream)
        for req, what in (("C20", "states"), ("C21", "greens"), ("C22", "states"),
                          ("C23", "changes out of the net's order")):
            v = found[req]
            counted = found.get(f"{req}-n", n)
            self._set(req, not v, f"{counted} {what} checked" + ("" if not v else f"; {len(v)} violations, first: "
                                                                 + "; ".join(v[:3])))


def maximum_green(spec: JunctionSpec, k: int) -> float:
    return max(spec.max_green[k], minimum_green(spec, k))


def arrive_time(spec: JunctionSpec, k: int) -> float:
    return (minimum_green(spec, k) + max(spec.yellow[k], MIN_YELLOW) + max(spec.allred[k], MIN_ALLRED)
            + CLEARANCE_MAX + sum(max(d, MIN_YELLOW) for _s, d in spec.net_transitions[k]))


def _what(cmd: m.PhaseCommand) -> str:
    return f"{cmd.action} {cmd.phase} seq {cmd.seq} issued_at {cmd.issued_at:.1f}" + (
        f" for {cmd.junction!r}" if cmd.junction else "")


def state_problem(spec: JunctionSpec, st: m.ControllerState) -> str:
    """Why a state breaks C1, or ''."""
    n = spec.n_phases
    if st.junction != spec.id:
        return f"junction {st.junction!r}"
    if not (0 <= st.phase < n and 0 <= st.target < n):
        return f"phase {st.phase} / target {st.target} outside 0..{n - 1}"
    if not math.isfinite(st.time) or not math.isfinite(st.since) or st.since < 0:
        return f"time {st.time} / since {st.since}"
    if len(st.signal) != spec.n_links or not set(st.signal) <= LETTERS:
        return f"signal {st.signal!r} (want {spec.n_links} letters of {''.join(sorted(LETTERS))})"
    if st.interval == Interval.GREEN and st.mode != Mode.FAILSAFE and st.signal != spec.green_states[st.phase]:
        return f"green phase {st.phase} shows {st.signal!r}, not {spec.green_states[st.phase]!r}"
    if st.interval == Interval.GREEN and st.target != st.phase:
        return f"target {st.target} != phase {st.phase} in green"
    if (st.interval == Interval.FAILSAFE) != (st.mode == Mode.FAILSAFE):
        return f"interval {st.interval} with mode {st.mode}"
    return ""


def _conflict(sig: str, conf: list[list[bool]], yl: list[list[bool]]) -> tuple[int, int] | None:
    active = [a for a, c in enumerate(sig) if c in ACTIVE]
    for i, a in enumerate(active):
        for b in active[i + 1:]:
            if not conf[a][b]:
                continue
            if (sig[a] in MINOR and yl[a][b]) or (sig[b] in MINOR and yl[b][a]):
                continue
            return a, b
    return None


def safety_violations(spec: JunctionSpec, states: list[m.ControllerState]) -> dict[str, list]:
    """The violations of C20-C23 in a run of states (one per tick, in time order), from the spec alone."""
    out: dict[str, list] = {"C20": [], "C21": [], "C22": [], "C23": []}
    uniq: list[m.ControllerState] = []
    for s in states:
        if len(s.signal) == spec.n_links and (not uniq or s.time > uniq[-1].time):
            uniq.append(s)
    states = uniq
    n_links = spec.n_links
    conf = [[c == "1" for c in row] for row in spec.conflicts]
    yl = ([[c == "1" for c in row] for row in spec.yields] if spec.yields
          else [[False] * n_links for _ in range(n_links)])
    pairs = {(a, b) for a, b in spec.net_yellow_to_green}
    # C20: every state
    for s in states:
        c = _conflict(s.signal, conf, yl)
        if c is not None:
            out["C20"].append(f"t={s.time:.0f} {s.signal!r}: links {c[0]} and {c[1]}")
    # C22: per link, consecutive states
    for link in range(n_links):
        run_start: int | None = None  # index of the first state of a yellow run
        for i in range(1, len(states)):
            a, b = states[i - 1].signal[link], states[i].signal[link]
            t = states[i].time
            if b in YELLOW and a not in YELLOW:
                run_start = i
            if a in GREEN and b not in GREEN and b not in YELLOW:
                out["C22"].append(f"t={t:.0f} link {link}: {a} -> {b} without yellow")
            if a in YELLOW and b not in YELLOW:
                net_pair = (states[i - 1].signal, states[i].signal) in pairs
                if b in GREEN and not net_pair:
                    out["C22"].append(f"t={t:.0f} link {link}: yellow straight to green")
                if run_start is not None and not net_pair:
                    dur = t - states[run_start].time
                    if dur < MIN_YELLOW - EPS:
                        out["C22"].append(f"t={t:.0f} link {link}: yellow of {dur:g} s")
                run_start = None
    # C21: greens; C22/C23: changes out of the net's order
    runs: list[tuple[int, int]] = []  # (first, last) index of each green run (one phase)
    i = 0
    while i < len(states):
        s = states[i]
        if s.interval == Interval.GREEN:
            j = i
            while j + 1 < len(states) and states[j + 1].interval == Interval.GREEN and states[j + 1].phase == s.phase:
                j += 1
            runs.append((i, j))
            i = j + 1
        else:
            i += 1
    out["C21-n"] = len(runs)
    n_changes = 0
    for (f1, l1), (f2, _l2) in itertools.pairwise(runs):
        k, p = states[f1].phase, states[f2].phase
        end = states[l1 + 1] if l1 + 1 < len(states) else None
        if end is None or end.interval == Interval.FAILSAFE or any(
                states[x].interval == Interval.FAILSAFE for x in range(l1 + 1, f2)):
            continue
        shown = states[f1].since + (end.time - states[f1].time)
        need = minimum_green(spec, k)
        if shown < need - EPS:
            out["C21"].append(f"t={end.time:.0f} green {k} ended after {shown:g} s (minimum {need:g} s)")
        if p == k:
            continue
        built = p != spec.net_next[k] or not spec.net_transitions[k]
        if not built:
            continue
        n_changes += 1
        both = {x for x in range(n_links) if spec.green_states[k][x] in GREEN and spec.green_states[p][x] in GREEN}
        ending = [x for x in range(n_links) if spec.green_states[k][x] in GREEN and x not in both]
        allred = 0.0
        yellow_of = dict.fromkeys(ending, 0.0)
        for x in range(l1 + 1, f2):
            dur = states[x + 1].time - states[x].time
            sig = states[x].signal
            if all(c not in ACTIVE or y in both for y, c in enumerate(sig)):
                allred += dur
            for y in ending:
                if sig[y] in YELLOW:
                    yellow_of[y] += dur
        need_ar = max(spec.allred[k], MIN_ALLRED)
        if allred < need_ar - EPS:
            out["C23"].append(f"t={states[f2].time:.0f} {k} -> {p}: all-red {allred:g} s (minimum {need_ar:g} s)")
        need_y = max(spec.yellow[k], MIN_YELLOW)
        short = [y for y, d in yellow_of.items() if d < need_y - EPS]
        if short:
            out["C22"].append(f"t={states[f2].time:.0f} {k} -> {p}: yellow of links {short} under {need_y:g} s")
    out["C23-n"] = n_changes
    return out
