"""Controllers whose clocks disagree with the engine's (docs/protocol.md, 'Clocks and ticks'), and a controller that
reports `starting`: the engine estimates each controller's clock offset from its states, above the skew limit
raises `clock-skew`, takes its own receipt time for the controller's states and stamps its words in the
controller's clock, so a controller 6 s behind or 30 s ahead stays online and is commanded, safely.

The engine and a real controller (A1 of the demo city) run in one process over inproc sockets, each with a clock
of its own that the test sets: tick by tick, no waiting on the wall clock."""

from __future__ import annotations

import subprocess
import time

import msgspec
import pytest
import zmq

from controllers.controller import Controller
from engine.loop import Engine
from engine.protocol import bus
from engine.protocol import messages as m
from simulation.experiments.catalog import DEMO, REPO
from simulation.sumo.netcompile import compile_network
from simulation.sumo.scenario import load_scenario
from tests.clirun import lintas_argv

T0 = 1_765_000_000.0  # the engine's clock at the first tick (Unix time, as in the field)


@pytest.fixture(scope="module")
def net():
    return compile_network(load_scenario(DEMO))


class Field:
    """The engine (clock T) and junction A1's controller (clock T + skew), pumped tick by tick."""

    def __init__(self, net, skew: float, **engine_kw) -> None:
        self.ctx = zmq.Context()
        self.ep = bus.endpoints("inproc")
        self.fwd = bus.Forwarder(self.ep, self.ctx).start()
        self.t = T0
        engine_kw.setdefault("clock", lambda: self.t + 0.01)  # None: the engine's tick time + wall time since
        self.eng = Engine(net, "fixed", self.ep, ctx=self.ctx, lockstep=False, **engine_kw)
        self.j = net.junction_index["A1"]
        self.spec = net.junctions[self.j]
        self.ctrl = Controller(self.spec, self.ep, ctx=self.ctx, lockstep=False)
        self.skew = skew
        self.faults = bus.Subscriber(self.ctx, self.ep, [m.TOPIC_FAULT, m.TOPIC_REFUSAL])
        self.seen: list[m.Message] = []
        self.online_ticks = 0
        time.sleep(0.05)  # the subscription reaches the forwarder

    def _settle(self) -> None:
        for _ in range(3):
            time.sleep(0.002)
            self.eng.pump()
            self.ctrl.pump()
            self.seen.extend(msg for _topic, msg in self.faults.drain())

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.ctrl.do_tick(self.t + self.skew)  # the controller's state, stamped in its own clock
            self._settle()
            self.eng.step(self.t)  # the engine's words for this tick
            self._settle()
            self.online_ticks += bool(self.eng.online[self.j])
            self.t += 1.0

    def faults_of(self, kind: str) -> list[m.Fault]:
        return [f for f in self.seen if isinstance(f, m.Fault) and f.kind == kind]

    def refusals(self) -> list[m.Refusal]:
        return [r for r in self.seen if isinstance(r, m.Refusal)]

    def close(self) -> None:
        for s in (self.ctrl, self.eng, self.faults):
            s.close()
        self.fwd.stop()
        self.ctx.destroy(linger=0)


@pytest.fixture
def field(net, request):
    made: list[Field] = []

    def make(skew: float, **kw) -> Field:
        f = Field(net, skew, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


@pytest.mark.parametrize("skew,side,clock", [(-6.0, "behind", "set"), (30.0, "ahead", "set"),
                                             (-6.0, "behind", "ticks")])
def test_a_skewed_controller_stays_online_and_is_commanded(field, skew, side, clock):
    """``clock`` set: the engine's clock is given; ticks: the engine's own (tick time + wall time since the tick)."""
    f = field(skew, **({} if clock == "set" else {"clock": None}))
    f.run(90)  # A1's first green is 34 s: the fixed plan changes phase at least twice
    c = f.ctrl
    assert f.online_ticks == 90 and not f.faults_of("junction-offline")
    skews = f.faults_of("clock-skew")
    # with its own clock the engine times a state by its latest tick plus the wall time since; this test does not
    # wait between ticks, so a state taken before the engine's tick looks up to a tick older than it is
    tol = 0.05 if clock == "set" else 1.05
    assert len(skews) == 1 and skews[0].detail.startswith("A1: clock ") and skews[0].detail.endswith(side), skews
    assert float(skews[0].detail.split()[2]) == pytest.approx(abs(skew), abs=tol)
    assert f.eng.skewed[f.j] and f.eng.offset[f.j] == pytest.approx(-skew, abs=tol)
    # commanded like any other: every command accepted, none refused, never fell back to local
    assert c.counters.accepted >= 2 and c.counters.refused == 0 and not f.refusals(), c.counters
    assert c.counters.fallbacks == 0 and c.mode == m.Mode.ENGINE
    assert c.monitor.fault is None
    # the engine's view of the junction is in its own clock: the state counts as received now
    assert f.eng.state_time[f.j] == pytest.approx(f.t - 1.0, abs=tol)
    assert f.eng.ctrl_time[f.j] == pytest.approx(f.t - 1.0 + skew)
    # and the operator sees it in the metrics, junction by junction
    from engine.metrics import EngineCollector

    fam = {x.name: {s.labels.get("junction"): s.value for s in x.samples} for x in EngineCollector(f.eng).collect()}
    assert fam["lintas_engine_clock_skew"]["A1"] == 1.0 and fam["lintas_engine_clock_skew"]["A2"] == 0.0
    assert fam["lintas_engine_clock_offset_seconds"]["A1"] == pytest.approx(-skew, abs=tol)


def test_without_the_correction_a_controller_6_s_behind_is_lost(field):
    """What issue 16 found: with the engine taking the controller's times as they are (no skew limit), the junction
    flaps online and offline every tick and is never commanded."""
    f = field(-6.0, skew_limit=float("inf"))
    f.run(60)
    assert len(f.faults_of("junction-offline")) >= 10
    assert f.ctrl.counters.accepted == 0
    assert not f.faults_of("clock-skew")


def test_a_small_offset_is_taken_as_it_is(field):
    f = field(-0.5)
    f.run(40)
    assert not f.faults_of("clock-skew") and not f.eng.skewed[f.j] and f.eng.offset[f.j] == 0.0
    assert f.online_ticks == 40 and f.ctrl.counters.refused == 0


def test_a_clock_that_is_set_right_clears_the_correction(field):
    f = field(30.0)
    f.run(10)
    assert f.eng.skewed[f.j]
    f.skew = 0.0  # NTP steps the controller's clock back 30 s: its states are older than the last one
    f.run(12)
    assert not f.eng.skewed[f.j] and f.eng.offset[f.j] == 0.0
    assert f.online_ticks == 22 and not f.faults_of("junction-offline")
    assert f.eng.ctrl_time[f.j] == pytest.approx(f.t - 1.0)


def test_a_clock_stepped_back_30_s_mid_run_stays_online_and_commanded(field):
    """An NTP step: the controller's clock, right until now, goes back 30 s. The engine takes a state more than the
    skew limit older than the last one as a clock step (its offset estimated afresh), not as a stale state to
    ignore: the junction stays online, the clock-skew alarm is raised, and the controller is commanded in its new
    clock. Sequence numbers still rule: the engine's seq never goes back."""
    f = field(0.0)
    f.run(40)
    c = f.ctrl
    assert not f.eng.skewed[f.j] and not f.faults_of("clock-skew")
    accepted, seq = c.counters.accepted, int(f.eng.seq[f.j])
    f.skew = -30.0
    f.run(80)  # A1's greens are 34 s and shorter: the fixed plan changes phase at least twice after the step
    assert f.online_ticks == 120 and not f.faults_of("junction-offline")
    skews = f.faults_of("clock-skew")
    assert len(skews) == 1 and skews[0].detail == "A1: clock 30.0 s behind", skews
    assert f.eng.skewed[f.j] and f.eng.offset[f.j] == pytest.approx(30.0, abs=0.05)
    assert f.eng.ctrl_time[f.j] == pytest.approx(f.t - 1.0 - 30.0)
    # commanded after the step; at most the words of the tick before the engine saw the step are refused (they
    # were stamped in the old clock: from the future by the new one), and the controller never fell back
    assert c.counters.accepted >= accepted + 2, c.counters
    assert {r.reason for r in f.refusals()} <= {"from-the-future"} and len(f.refusals()) <= 1, f.refusals()
    assert c.counters.fallbacks == 0 and c.mode == m.Mode.ENGINE and c.monitor.fault is None
    assert int(f.eng.seq[f.j]) > seq and c.last_seq == int(f.eng.seq[f.j])


def test_a_controller_reporting_starting_is_commanded(field):
    """`starting` (docs/protocol.md, 'Modes'): the engine commands it as it commands `engine`."""
    f = field(0.0)
    f.ctrl.mode = m.Mode.STARTING  # Lintas' controller reports engine from the start; this one stays starting
    f.run(60)
    assert f.ctrl.mode == m.Mode.STARTING
    assert f.ctrl.counters.accepted >= 1 and f.ctrl.counters.refused == 0  # commanded (A1's first green is 34 s)


def test_lintas_controller_clock_offset_option(tmp_path, net):
    """``lintas controller --clock wall --clock-offset S``: its states are stamped S seconds off the wall clock."""
    spec_file = tmp_path / "A1.json"
    spec_file.write_bytes(msgspec.json.encode(net.junctions[net.junction_index["A1"]]))
    ctx = zmq.Context()
    ep = bus.endpoints("ipc")
    fwd = bus.Forwarder(ep, ctx).start()
    server = bus.CommandServer(ctx, ep)
    proc = subprocess.Popen(lintas_argv("controller", str(spec_file), "--clock", "wall", "--clock-offset", "-6",
                                        "--bus-in", ep.bus_in, "--bus-out", ep.bus_out, "--commands", ep.commands),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    offsets: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while len(offsets) < 2 and time.monotonic() < deadline and proc.poll() is None:
            for _sender, msg in server.drain():
                if isinstance(msg, m.ControllerState):
                    offsets.append(time.time() - msg.time)
            time.sleep(0.05)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        server.close()
        fwd.stop()
        ctx.destroy(linger=0)
        bus.ipc_cleanup(ep)
    assert len(offsets) >= 2, err[-2000:]
    assert all(6.0 <= o < 7.5 for o in offsets), offsets
