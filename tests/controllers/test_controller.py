"""controllers/controller.py end to end over REAL ZeroMQ sockets (inproc, one context): the engine
side is an engine.protocol.bus.CommandServer plus a bus subscriber behind a real Forwarder. Ticks are driven
by calling ``do_tick`` directly; commands reach the controller only through ``pump``."""

from __future__ import annotations

import itertools
import math
import time

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from junctions import RecordingHeads, check_sequence, demo_specs, resco_specs

from controllers.controller import Controller, ControllerConfig
from engine.protocol import bus
from engine.protocol import messages as m

TIMEOUT = 5.0


# -- the engine side ------------------------------------------------------------------------------------------
class City:
    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.ep = bus.endpoints("inproc")
        self.fwd = bus.Forwarder(self.ep, self.ctx).start()
        self.server = bus.CommandServer(self.ctx, self.ep)
        # a test builds a fresh controller with the same junction id: let it take the id over
        self.server.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.refusal_sub = bus.Subscriber(self.ctx, self.ep, [m.TOPIC_REFUSAL])

    def close(self) -> None:
        self.refusal_sub.close()
        self.server.close()
        self.fwd.stop()
        self.ctx.destroy(linger=0)


@pytest.fixture(scope="module")
def city():
    c = City()
    yield c
    c.close()


@pytest.fixture(scope="module")
def a1():
    return next(s for s in demo_specs() if s.id == "A1")


@pytest.fixture(scope="module")
def cologne1():
    return resco_specs("cologne1")[0]


def _until(pred, what: str):
    t0 = time.monotonic()
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() - t0 > TIMEOUT:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.0002)


class Rig:
    """One controller of ``spec`` wired to the city's command server and bus."""

    def __init__(self, city: City, spec, *, occupied=False, cfg: ControllerConfig | None = None) -> None:
        self.city = city
        self.spec = spec
        self.heads = RecordingHeads(occupied)
        self.ctrl = Controller(spec, city.ep, cfg=cfg, heads=self.heads, ctx=city.ctx, lockstep=False)
        self.id = spec.id
        self.seq = 0
        self.t: float | None = None
        self.published: list[m.Refusal] = []
        c = self.ctrl

        def connected():
            self.city.server.send(self.id, m.Heartbeat(sender="probe"))
            c.pump()
            return c.cmd.stats.received > 0

        _until(connected, "the command channel")

        def bus_up():  # the controller's publisher reaches the test's refusal subscriber
            c.pub.publish(m.TOPIC_REFUSAL, m.Refusal(junction=self.id, reason="probe"))
            return any(r.reason == "probe" for r in self._drain_refusals())

        _until(bus_up, "the bus")
        time.sleep(0.002)
        self._drain_refusals()
        self.published.clear()

    def close(self) -> None:
        self.ctrl.close()

    # engine -> controller
    def _send_frames(self, frames: list[bytes]) -> None:
        sock = self.city.server.sock

        def sent():
            try:
                sock.send_multipart([self.id.encode(), *frames], zmq.NOBLOCK)
                return True
            except zmq.ZMQError:
                return False

        _until(sent, "the controller to be routable")

    def command(self, msg: m.PhaseCommand) -> None:
        """Send one command and pump until the controller has accepted or refused it."""
        c = self.ctrl.counters
        before = c.accepted + c.refused
        self._send_frames([m.encode(msg)])
        self._pump_until(lambda: c.accepted + c.refused > before, "the command")

    def raw(self, frames: list[bytes]) -> None:
        """Send raw frames; pump until the controller has received (or dropped) them."""
        s = self.ctrl.cmd.stats
        before = s.received + s.dropped
        self._send_frames(frames)
        self._pump_until(lambda: s.received + s.dropped > before, "the raw frames")

    def _pump_until(self, cond, what: str) -> None:
        def step():
            self.ctrl.pump()
            return cond()

        _until(step, what)

    def heartbeat(self, t: float) -> None:
        self.raw([m.encode(m.Heartbeat(sender="engine", time=t))])

    def cmd(self, action="advance", phase=0, *, seq=None, issued_at=None, junction=None) -> m.PhaseCommand:
        if seq is None:
            self.seq += 1
            seq = self.seq
        if issued_at is None:
            issued_at = self.t if self.t is not None else 0.0
        return m.PhaseCommand(
            junction=self.id if junction is None else junction,
            action=action,
            phase=phase,
            seq=seq,
            issued_at=issued_at,
        )

    def tick(self, t: float) -> str:
        self.t = t
        s = self.ctrl.do_tick(t)
        for _ in self.city.server.drain():  # states sent back on the command channel
            pass
        return s

    # bus
    def _drain_refusals(self) -> list[m.Refusal]:
        got = [msg for _topic, msg in self.city.refusal_sub.drain() if isinstance(msg, m.Refusal)]
        got = [r for r in got if r.junction == self.id]
        self.published.extend(got)
        return got

    def wait_refusal(self, reason: str) -> m.Refusal:
        def found():
            self._drain_refusals()
            return next((r for r in self.published if r.reason == reason), None)

        return _until(found, f"a Refusal {reason!r} on the bus")

    @property
    def shown(self) -> list[str]:
        return self.heads.shown

    def assert_safe(self) -> None:
        rep = check_sequence(self.spec, self.shown)
        assert rep.total == 0, str(rep)
        assert self.ctrl.monitor.fault is None, self.ctrl.monitor.fault
        assert self.ctrl.counters.faults == 0 and self.ctrl.mode != "failsafe"


@pytest.fixture
def rig(city, a1):
    r = Rig(city, a1)
    yield r
    r.close()


def green_ticks(rig: Rig, phase: int) -> list[int]:
    return [i for i, s in enumerate(rig.shown) if s == rig.spec.green_states[phase]]


# -- min green ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("when", [0, 1, 3])
def test_advance_before_min_green_honoured_only_after_min_green(rig, when):
    g0 = rig.spec.green_states[0]
    for t in range(15):
        rig.heartbeat(t)
        if t == when:
            rig.command(rig.cmd("advance", 1, issued_at=float(t)))
        rig.tick(float(t))
    assert rig.ctrl.counters.accepted == 1 and rig.ctrl.counters.refused == 0
    assert rig.shown[:5] == [g0] * 5  # min green (5 s), though asked at since=0..3
    assert rig.shown[5] == rig.spec.net_transitions[0][0][0]  # the net's yellow, 0 -> 1 is net order
    assert rig.shown[5:9] == [rig.spec.net_transitions[0][0][0]] * 4  # A1's yellow is 4 s
    assert rig.shown[9] == rig.spec.green_states[1]
    assert rig.ctrl.mode == "engine"
    rig.assert_safe()


def test_hold_keeps_green_until_max_green(rig):
    for t in range(70):
        rig.heartbeat(t)
        if t % 3 == 0:
            rig.command(rig.cmd("hold", -1))
        rig.tick(float(t))
    assert rig.shown[:60] == [rig.spec.green_states[0]] * 60  # max green 60 s ends it on its own
    assert rig.shown[60] != rig.spec.green_states[0]
    assert rig.ctrl.mode == "engine"
    rig.assert_safe()


# -- refusals -------------------------------------------------------------------------------------------------
def _start(rig: Rig, n: int = 3) -> None:
    for t in range(n):
        rig.heartbeat(t)
        rig.tick(float(t))


def _refused(rig: Rig, msg: m.PhaseCommand, reason: str) -> None:
    c = rig.ctrl.counters
    before = (c.accepted, c.refused, c.refusals.get(reason, 0))
    rig.command(msg)
    assert (c.accepted, c.refused, c.refusals.get(reason, 0)) == (before[0], before[1] + 1, before[2] + 1), (
        c.refusals
    )
    r = rig.wait_refusal(reason)
    assert r.junction == rig.id and r.time == rig.ctrl.now
    assert r.seq == max(min(msg.seq, 2**62), -(2**62))
    rig.published.remove(r)


def _still_phase0(rig: Rig, until: int) -> None:
    """Nothing changed by the refused commands: phase 0 stays green (A1's max green is 60 s)."""
    t0 = len(rig.shown)
    for t in range(t0, until):
        rig.heartbeat(t)
        rig.tick(float(t))
    assert rig.shown == [rig.spec.green_states[0]] * until
    assert rig.ctrl.timer.request is None
    rig.assert_safe()


def test_command_for_another_junction_refused(rig):
    _start(rig)
    _refused(rig, rig.cmd("advance", 1, junction="A2"), "wrong-junction")
    _refused(rig, rig.cmd("advance", 1, junction=""), "wrong-junction")
    _still_phase0(rig, 12)


def test_replayed_and_out_of_sequence_refused(rig):
    _start(rig)
    rig.command(rig.cmd("hold", -1, seq=5))
    assert rig.ctrl.counters.accepted == 1 and rig.ctrl.last_seq == 5
    _refused(rig, rig.cmd("advance", 1, seq=5), "replayed-or-out-of-sequence")
    _refused(rig, rig.cmd("advance", 1, seq=4), "replayed-or-out-of-sequence")
    _refused(rig, rig.cmd("advance", 1, seq=-(2**63)), "replayed-or-out-of-sequence")
    _still_phase0(rig, 8)
    rig.command(rig.cmd("hold", -1, seq=6))
    assert rig.ctrl.counters.accepted == 2 and rig.ctrl.last_seq == 6


def test_huge_seq_refusal_is_published_with_clipped_seq(rig):
    _start(rig)
    rig.command(rig.cmd("hold", -1, seq=2**63 - 1))
    _refused(rig, rig.cmd("advance", 1, seq=2**63 - 1), "replayed-or-out-of-sequence")


@pytest.mark.parametrize("age", [2.5, 10.0, 1e9, 1e300])
def test_stale_command_refused(rig, age):
    _start(rig)
    _refused(rig, rig.cmd("advance", 1, issued_at=rig.t - age), "stale")
    _still_phase0(rig, 10)


@pytest.mark.parametrize("ahead", [3.5, 10.0, 1e9, 1e300])
def test_command_from_the_future_refused(rig, ahead):
    _start(rig)
    _refused(rig, rig.cmd("advance", 1, issued_at=rig.t + ahead), "from-the-future")
    _still_phase0(rig, 10)


def test_command_from_the_future_does_not_keep_the_controller_out_of_local(rig):
    _start(rig)
    _refused(rig, rig.cmd("hold", -1, issued_at=rig.t + 1e9), "from-the-future")
    for t in range(3, 12):
        rig.tick(float(t))
    assert rig.ctrl.mode == "local"  # last engine word at t=2: silent for more than 4 s


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_issued_at_refused(rig, bad):
    _start(rig)
    _refused(rig, rig.cmd("advance", 1, issued_at=bad), "bad-time")
    _still_phase0(rig, 10)


@pytest.mark.parametrize("phase", [-1, 3, 10**9, -(10**9), 2**63 - 1, -(2**63)])
def test_non_existent_phase_refused(rig, phase):
    assert rig.spec.n_phases == 3
    _start(rig)
    _refused(rig, rig.cmd("advance", phase), "no-such-phase")
    _still_phase0(rig, 10)


def test_advance_to_another_target_during_yellow_refused(rig):
    spec = rig.spec
    yellow = spec.net_transitions[0][0][0]
    for t in range(5):
        rig.heartbeat(t)
        if t == 1:
            rig.command(rig.cmd("advance", 1))
        rig.tick(float(t))
    rig.heartbeat(5)
    assert rig.tick(5.0) == yellow and rig.ctrl.timer.interval == "yellow"
    rig.heartbeat(6)
    _refused(rig, rig.cmd("advance", 2), "in-transition")
    _refused(rig, rig.cmd("advance", 0), "in-transition")
    rig.command(rig.cmd("advance", 1))  # the target itself: fine
    rig.command(rig.cmd("hold", -1))  # a hold during yellow changes nothing
    assert rig.ctrl.counters.accepted == 3
    for t in range(6, 20):
        rig.heartbeat(t)
        rig.tick(float(t))
    assert rig.shown[9:20] == [spec.green_states[1]] * 11  # phase 1 (not 2), held
    rig.assert_safe()


def test_refusal_reasons_are_counted_separately(rig):
    _start(rig)
    _refused(rig, rig.cmd("advance", 1, junction="X"), "wrong-junction")
    _refused(rig, rig.cmd("advance", 99), "no-such-phase")
    _refused(rig, rig.cmd("advance", 1, issued_at=-50.0), "stale")
    c = rig.ctrl.counters
    assert c.refused == 3
    assert c.refusals == {"wrong-junction": 1, "no-such-phase": 1, "stale": 1}


# -- local fallback -------------------------------------------------------------------------------------------
def _plan_greens(rig: Rig) -> list[tuple[int, int, int]]:
    """(phase, length, first tick) of every run of a green phase state shown."""
    out = []
    sig = rig.shown
    i = 0
    while i < len(sig):
        if sig[i] in rig.spec.green_states:
            j = i
            while j < len(sig) and sig[j] == sig[i]:
                j += 1
            out.append((rig.spec.green_states.index(sig[i]), j - i, i))
            i = j
        else:
            i += 1
    return out


def test_silence_falls_back_to_local_plan(rig):
    spec = rig.spec
    modes = []
    for t in range(200):
        rig.tick(float(t))
        modes.append(rig.ctrl.mode)
    assert modes[:5] == ["engine"] * 5 and modes[5] == "local"  # silent for more than backup_time
    assert rig.ctrl.counters.fallbacks == 1
    greens = _plan_greens(rig)
    assert len(greens) >= 5
    for (k, _ln, _), (k2, _, _) in itertools.pairwise(greens):
        assert k2 == spec.net_next[k]  # the net's ring order
    for k, ln, start in greens[:-1]:
        assert ln == max(spec.fixed_green[k], 5.0), (k, ln, start)  # the net's green durations
    rig.assert_safe()


def test_fallback_after_engine_goes_quiet(rig):
    for t in range(30):
        if t <= 10:
            rig.heartbeat(t)
        rig.tick(float(t))
        assert rig.ctrl.mode == ("engine" if t <= 14 else "local"), t


@pytest.mark.parametrize("how", ["commands", "heartbeats"])
@pytest.mark.parametrize("back_at", [20, 36, 40])
def test_engine_back_resumes_at_a_phase_boundary(rig, how, back_at):
    """Back under engine control within a few seconds of the engine's return, but only in a green
    that has run its minimum or that has just begun: never in yellow or all-red, never cutting a green."""
    modes, intervals = [], []
    for t in range(120):
        if t >= back_at:
            if how == "commands":
                rig.command(rig.cmd("hold", -1, issued_at=float(t)))
            else:
                rig.heartbeat(t)
        rig.tick(float(t))
        modes.append(rig.ctrl.mode)
        intervals.append(rig.ctrl.timer.interval)
    assert modes[5] == "local"
    back = modes.index("engine", 5)
    # local plan: phase 0 green 0..33, yellow 34..37, phase 1 green from 38
    assert intervals[back] == "green"
    assert back - back_at <= 6, (back, back_at)  # well within the 10 s the engine may wait after a restart
    if back_at == 36:  # the engine came back during the yellow: the controller waits for the next green
        assert back == 38
    assert all(x == "engine" for x in modes[back:])
    # the engine holds: the green that was running stays green up to the max green (60 s)
    g = rig.shown[back]
    end = back + 1
    while end < len(rig.shown) and rig.shown[end] == g:
        end += 1
    assert end - back >= 20
    assert rig.ctrl.counters.fallbacks == 1
    rig.assert_safe()


# -- garbage on the command channel ----------------------------------------------------------------------------
GARBAGE = [
    [b""],
    [b"\x00"],
    [b"\xff" * 16],
    [b"\x81\xa1t\xa5bogus"],  # unknown message type
    [m.encode(m.PhaseCommand(junction="A1", action="advance", phase=1, seq=99))[:-3]],  # truncated
    [msgspec.msgpack.encode({"t": "command", "junction": "A1", "phase": "one", "seq": 1})],  # bad field
    [msgspec.msgpack.encode({"t": "command", "v": 99, "junction": "A1", "action": "advance", "phase": 1})],
    [msgspec.msgpack.encode({"t": "command", "junction": "A1", "action": "jump", "phase": 1, "seq": 1})],
    [msgspec.msgpack.encode({"t": "command", "junction": "A1", "phase": 1, "seq": 1.5})],  # float seq,
    [m.encode(m.PhaseCommand(junction="A1", action="advance", phase=1, seq=99)), b"second frame"],
    [b"a", b"b", b"c"],
]


def test_garbage_frames_dropped_and_counted(rig):
    _start(rig)
    stats = rig.ctrl.cmd.stats
    for i, frames in enumerate(GARBAGE):
        before = stats.dropped
        rig.raw(frames)
        assert stats.dropped == before + 1, (i, frames, stats.drop_reasons)
        rig.tick(float(3 + i))
    c = rig.ctrl.counters
    assert c.accepted == 0 and c.refused == 0 and rig.ctrl.timer.request is None
    assert {"DecodeError", "ValidationError", "version", "frames"} <= set(stats.drop_reasons)
    # still listening
    rig.command(rig.cmd("advance", 1))
    assert c.accepted == 1
    rig.assert_safe()


def test_other_message_types_on_command_channel_ignored(rig):
    _start(rig)
    for msg in (
        m.ClockTick(time=5.0),
        m.Heartbeat(sender="someone", time=1e9),
        m.Refusal(junction="A1"),
        m.ControllerState(junction="A1", phase=2),
        m.Fault(source="engine", kind="x"),
    ):
        rig.raw([m.encode(msg)])
    assert rig.ctrl.counters.accepted == 0 and rig.ctrl.counters.refused == 0
    assert rig.ctrl.last_contact == 2.0
    _still_phase0(rig, 10)


# -- property: whatever arrives, the heads stay safe -------------------------------------------------------------
INT64 = 2**63 - 1
weird_ints = st.one_of(
    st.integers(-INT64, INT64),
    st.sampled_from([INT64, -INT64, 10**9, -(10**9), 2**31, -(2**31), -1, 0]),
)
weird_times = st.one_of(
    st.tuples(st.just("rel"), st.floats(-10.0, 10.0)),
    st.tuples(st.just("abs"), st.floats(allow_nan=True, allow_infinity=True)),
    st.tuples(st.just("abs"), st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 0.0])),
)
good_time = st.tuples(st.just("rel"), st.floats(-1.5, 1.5))
times = st.one_of(good_time, good_time, good_time, weird_times)
seqs = st.one_of(st.just("next"), st.just("next"), st.just("next"), st.just("next"), weird_ints)
phases = st.one_of(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(-2, 5), weird_ints)
command_step = st.tuples(
    st.just("cmd"),
    st.sampled_from(["own"] * 6 + ["other"]),
    st.sampled_from(["hold", "advance", "advance", "advance"]),
    phases,
    seqs,
    times,
)
raw_step = st.tuples(st.just("raw"), st.lists(st.binary(max_size=40), min_size=1, max_size=3))
tick_step = st.tuples(st.just("tick"), st.integers(1, 12))
hb_step = st.tuples(st.just("hb"), times)
# a well-behaved engine for a while: each tick a valid advance (or hold) with the next seq
engine_step = st.tuples(st.just("engine"), st.integers(1, 30), st.one_of(st.none(), st.integers(0, 3)))
steps = st.lists(
    st.one_of(tick_step, tick_step, tick_step, command_step, command_step, raw_step, hb_step, engine_step),
    min_size=5,
    max_size=80,
)


def _time(rig: Rig, spec_t) -> float:
    kind, v = spec_t
    now = rig.t if rig.t is not None else 0.0
    return now + v if kind == "rel" else v


@pytest.fixture(params=["a1", "cologne1"])
def wire_spec(request):
    return request.getfixturevalue(request.param)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps, occupied=st.lists(st.booleans(), min_size=1, max_size=20))
def test_random_traffic_on_the_wire_never_unsafe(city, wire_spec, plan, occupied):
    spec = wire_spec
    answers = {"i": 0}

    def occ(_links):
        answers["i"] += 1
        return occupied[answers["i"] % len(occupied)]

    rig = Rig(city, spec, occupied=occ)
    try:
        t = 0
        n_cmd = 0
        seq = 0
        modes = ["engine"]
        for step in plan:
            kind = step[0]
            if kind == "tick":
                for _ in range(step[1]):
                    rig.tick(float(t))
                    modes.append(rig.ctrl.mode)
                    t += 1
            elif kind == "cmd":
                _, who, action, phase, s, at = step
                if s == "next":
                    seq += 1
                    s = seq
                msg = m.PhaseCommand(
                    junction=spec.id if who == "own" else "other",
                    action=action,
                    phase=phase,
                    seq=s,
                    issued_at=_time(rig, at),
                )
                rig.command(msg)
                n_cmd += 1
            elif kind == "engine":
                for _ in range(step[1]):
                    seq += 1
                    want = step[2]
                    action = "hold" if want is None else "advance"
                    msg = m.PhaseCommand(
                        junction=spec.id,
                        action=action,
                        phase=-1 if want is None else want % spec.n_phases,
                        seq=seq,
                        issued_at=float(t),
                    )
                    rig.command(msg)
                    n_cmd += 1
                    rig.tick(float(t))
                    modes.append(rig.ctrl.mode)
                    t += 1
            elif kind == "raw":
                rig.raw(step[1])
            else:
                rig.heartbeat(_time(rig, step[1]))
        for _ in range(20):  # let any transition under way finish
            rig.tick(float(t))
            t += 1
        c = rig.ctrl.counters
        assert c.accepted + c.refused == n_cmd
        assert sum(c.refusals.values()) == c.refused
        assert len(rig.shown) == t
        rig.assert_safe()
        for reason in c.refusals:
            event(f"refused: {reason}")
        event(f"modes seen: {'+'.join(sorted(set(modes)))}")
        event(f"commands accepted: {'0' if c.accepted == 0 else '1-3' if c.accepted < 4 else '4+'}")
        event(f"greens shown: {min(len({s for s in rig.shown if s in spec.green_states}), 3)}")
    finally:
        rig.close()


# -- words stamped in the far future must not disable the fallback ------------------------------------------------
def test_heartbeat_from_the_future_does_not_disable_fallback(rig):
    _start(rig)
    rig.heartbeat(1e300)
    local_at = None
    for t in range(3, 20):
        rig.tick(float(t))
        if local_at is None and rig.ctrl.mode == "local":
            local_at = t
    # counted as "now" at most (t=3 + max_command_age + tick = 6): local once silent for > 4 s after
    assert local_at == 11
    rig.assert_safe()


def test_command_before_first_tick_from_the_future_does_not_disable_fallback(rig):
    rig.command(rig.cmd("hold", -1, issued_at=1e300))  # no clock yet: cannot be judged, accepted
    assert rig.ctrl.counters.accepted == 1
    for t in range(20):
        rig.tick(float(t))
    assert rig.ctrl.mode == "local"
    rig.assert_safe()


# -- failsafe ---------------------------------------------------------------------------------------------------
def test_monitor_fault_goes_failsafe_all_red_and_stays(rig, monkeypatch):
    c = rig.ctrl
    fault_sub = bus.Subscriber(rig.city.ctx, rig.city.ep, [m.TOPIC_FAULT])
    try:

        def joined():
            c.pub.publish(m.TOPIC_FAULT, m.Fault(source="probe"))
            return any(msg.source == "probe" for _t, msg in fault_sub.drain())

        _until(joined, "the fault subscription")
        time.sleep(0.002)
        list(fault_sub.drain())
        _start(rig)
        real_tick = c.timer.tick
        conflict = "G" * rig.spec.n_links  # every link green: conflicts
        monkeypatch.setattr(c.timer, "tick", lambda dt: (real_tick(dt), conflict)[1])
        rig.heartbeat(3)
        assert rig.tick(3.0) == "r" * rig.spec.n_links
        monkeypatch.setattr(c.timer, "tick", real_tick)
        assert c.mode == "failsafe" and c.counters.faults == 1 and c.monitor.fault
        faults = _until(lambda: [msg for _t, msg in fault_sub.drain() if msg.source == rig.id], "a Fault")
        assert faults[0].kind == "conflict-monitor" and faults[0].time == 3.0
        for t in range(4, 30):  # whatever the engine says, the heads stay all red
            rig.heartbeat(t)
            rig.command(rig.cmd("advance", t % 3))
            assert rig.tick(float(t)) == "r" * rig.spec.n_links
        assert c.mode == "failsafe" and c.counters.faults == 1
        assert c.state(29.0).interval == "failsafe" and c.state(29.0).signal == "r" * rig.spec.n_links
        assert rig.shown[:3] == [rig.spec.green_states[0]] * 3
    finally:
        fault_sub.close()


def test_only_a_valid_reset_from_the_engine_clears_a_fault(rig, monkeypatch):
    c = rig.ctrl
    _start(rig)
    real_tick = c.timer.tick
    monkeypatch.setattr(c.timer, "tick", lambda dt: (real_tick(dt), "G" * rig.spec.n_links)[1])
    rig.heartbeat(3)
    rig.tick(3.0)
    monkeypatch.setattr(c.timer, "tick", real_tick)
    assert c.mode == "failsafe"

    def send_reset(junction, seq, issued_at):
        before = c.counters.refused
        rig._send_frames([m.encode(m.FaultReset(junction=junction, seq=seq, issued_at=issued_at, operator="op"))])
        rig._pump_until(lambda: c.counters.refused > before or c.monitor.fault is None, "the reset")

    # garbage, another junction, a replayed sequence number, a stale reset: the fault stays latched
    rig.raw([b"\x81\xa1t\xa5reset"])
    send_reset("elsewhere", rig.seq + 1, 3.0)
    send_reset(rig.id, -5, 3.0)
    send_reset(rig.id, rig.seq + 1, -100.0)
    assert c.monitor.fault is not None and c.mode == "failsafe"
    assert {"reset-wrong-junction", "reset-replayed-or-out-of-sequence", "reset-stale"} <= set(c.counters.refusals)
    for t in range(4, 8):
        assert rig.tick(float(t)) == "r" * rig.spec.n_links
    # a valid reset: the fault clears, the controller runs its local plan from a fresh green, safely
    send_reset(rig.id, rig.seq + 100, 7.0)
    assert c.monitor.fault is None and c.mode == "local"
    start = len(rig.shown)
    shown = [rig.tick(float(t)) for t in range(8, 60)]
    assert shown[0] in rig.spec.green_states
    # from the all-red of the fault on, everything shown is safe (the fault itself cut a green: that
    # is what the monitor latched on)
    rep = check_sequence(rig.spec, rig.shown[start - 1:])
    assert rep.total == 0, str(rep)
    assert c.monitor.fault is None and c.counters.faults == 1
