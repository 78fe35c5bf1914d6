"""The operator endpoint (engine/operator.py): fault resets asked for by a person, over real ZeroMQ
sockets with CURVE keys. Engine, forwarder, controller and operator each have their own context, as
they would in their own processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from controllers.controller import Controller
from engine.loop import Engine
from engine.operator import OperatorError, OperatorServer, request_reset
from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.security import OPERATOR_DOMAIN, Security, SecurityError, create_keys
from simulation.experiments.catalog import DEMO, REPO
from simulation.sumo.netcompile import compile_network
from simulation.sumo.scenario import load_scenario

TIMEOUT = 20.0  # generous: CI machines are small and shared


@pytest.fixture(scope="module")
def net():
    return compile_network(load_scenario(DEMO))


@pytest.fixture
def keydir(tmp_path):
    d = tmp_path / "keys"
    create_keys(d, ["engine", "bus", "field", "A1", "operator"], operators=["budi"])
    create_keys(tmp_path / "rogue", ["rogue"])  # a pair nobody lists
    for n in ("engine", "bus"):
        (tmp_path / "rogue" / f"{n}.key").write_bytes((d / f"{n}.key").read_bytes())
    return d


class Centre:
    """Forwarder + engine (one process) and the A1 controller (another), keyed, over tcp."""

    def __init__(self, net, keydir: Path) -> None:
        self.ctxs = [zmq.Context(), zmq.Context()]
        self.secs: list[Security] = []
        self.ep = bus.endpoints("tcp")
        self.op_ep = bus.endpoints("tcp").commands
        sec_e = self._sec(keydir, "engine", self.ctxs[0])
        self.fwd = bus.Forwarder(self.ep, self.ctxs[0], security=sec_e).start()
        self.eng = Engine(net, "fixed", self.ep, ctx=self.ctxs[0], lockstep=False, security=sec_e,
                          operator=self.op_ep, reset_timeout=3.0)
        sec_c = self._sec(keydir, "A1", self.ctxs[1])
        self.spec = net.junctions[net.junction_index["A1"]]
        self.ctrl = Controller(self.spec, self.ep, ctx=self.ctxs[1], lockstep=False, security=sec_c)
        self.t = 0.0
        self.j = net.junction_index["A1"]
        self._until(lambda: self.eng.online[self.j], "A1 online at the engine")

    def _sec(self, keydir, me, ctx) -> Security:
        s = Security.load(keydir, me, ctx)
        self.secs.append(s)
        return s

    def cycle(self) -> None:
        """One control tick of everything (wall-paced lightly, so sockets deliver)."""
        self.eng.pump()
        self.ctrl.pump()
        self.eng.step(self.t)
        self.ctrl.pump()
        self.ctrl.do_tick(self.t)
        self.eng.pump()
        self.t += 1.0
        time.sleep(0.005)

    def _until(self, pred, what: str):
        t0 = time.monotonic()
        while not pred():
            if time.monotonic() - t0 > TIMEOUT:
                raise AssertionError(f"timed out waiting for {what}")
            self.cycle()

    def fault(self, monkeypatch) -> None:
        """Latch a real monitor fault: the timer shows every link green for one tick."""
        c = self.ctrl
        real = c.timer.tick
        monkeypatch.setattr(c.timer, "tick", lambda dt: (real(dt), "G" * self.spec.n_links)[1])
        self.cycle()
        monkeypatch.setattr(c.timer, "tick", real)
        assert c.mode == "failsafe" and c.monitor.fault is not None
        self._until(lambda: self.eng.mode[self.j] == "failsafe", "the engine to see the fault")

    def ask(self, fn):
        """Run ``fn`` (a blocking operator call) in a thread while the city keeps ticking."""
        out: dict = {}

        def run():
            try:
                out["reply"] = fn()
            except Exception as exc:  # noqa: BLE001 - handed to the test
                out["error"] = exc

        th = threading.Thread(target=run)
        th.start()
        self._until(lambda: not th.is_alive(), "the operator's call")
        th.join()
        return out

    def close(self) -> None:
        self.ctrl.close()
        self.eng.close()
        self.fwd.stop()
        for s in self.secs:
            s.close()
        for c in self.ctxs:
            c.destroy(linger=0)


@pytest.fixture
def centre(net, keydir):
    c = Centre(net, keydir)
    yield c
    c.close()


def _operator(keydir: Path, me: str):
    ctx = zmq.Context()
    return ctx, Security.load(keydir, me, ctx)


def test_operator_key_resets_a_latched_fault(centre, keydir, monkeypatch):
    centre.fault(monkeypatch)
    ctx, sec = _operator(keydir, "operator")
    try:
        out = centre.ask(lambda: request_reset(centre.op_ep, "A1", "budi", security=sec, ctx=ctx, timeout=TIMEOUT))
    finally:
        sec.close()
        ctx.destroy(linger=0)
    assert "error" not in out, out
    rep = out["reply"]
    assert (rep.junction, rep.result) == ("A1", "ok"), rep
    assert centre.ctrl.monitor.fault is None and centre.ctrl.mode in ("local", "engine")
    assert centre.eng.resets["ok"] == 1
    for _ in range(10):  # and it keeps running safely, out of failsafe
        centre.cycle()
    assert centre.ctrl.mode != "failsafe" and centre.ctrl.counters.faults == 1


@pytest.mark.parametrize("who", ["field", "A1", "rogue"])
def test_keys_not_on_the_operator_list_get_nothing_done(centre, keydir, who, monkeypatch):
    """field and A1 are allow-listed for the bus and the command channel, not as operators; rogue
    is on no list. None of them reaches the engine: no reply, no reset, the fault stays latched."""
    centre.fault(monkeypatch)
    d = keydir.parent / "rogue" if who == "rogue" else keydir
    ctx, sec = _operator(d, who)
    seq_before = int(centre.eng.seq[centre.j])
    try:
        out = centre.ask(lambda: request_reset(centre.op_ep, "A1", who, security=sec, ctx=ctx, timeout=1.5))
    finally:
        sec.close()
        ctx.destroy(linger=0)
    assert isinstance(out.get("error"), OperatorError), out
    for _ in range(5):
        centre.cycle()
    assert centre.ctrl.monitor.fault is not None and centre.ctrl.mode == "failsafe"
    assert int(centre.eng.seq[centre.j]) == seq_before  # the engine sent no reset
    assert sum(centre.eng.resets.values()) == 0 and centre.eng.operator_server.stats.received == 0


def test_unknown_junction_offline_and_not_faulted_get_clear_replies(centre, keydir):
    ctx, sec = _operator(keydir, "budi")
    try:
        def ask(junction):
            out = centre.ask(lambda: request_reset(centre.op_ep, junction, "budi", security=sec, ctx=ctx,
                                                   timeout=TIMEOUT))
            assert "error" not in out, out
            return out["reply"]

        rep = ask("Z9")
        assert rep.result == "unknown-junction" and "'Z9'" in rep.detail and "A1" in rep.detail
        rep = ask("A2")  # in the network, but no controller reports
        assert rep.result == "offline" and "A2" in rep.detail
        rep = ask("A1")  # online, no fault
        assert rep.result == "not-faulted" and "no latched fault" in rep.detail
    finally:
        sec.close()
        ctx.destroy(linger=0)
    assert centre.ctrl.counters.refused == 0 and centre.ctrl.monitor.fault is None
    assert dict(centre.eng.resets) == {"unknown-junction": 1, "offline": 1, "not-faulted": 1}


def test_garbage_on_the_operator_socket_is_counted_and_the_engine_runs_on(centre, keydir):
    ctx, sec = _operator(keydir, "operator")
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    sec.client(dealer, server="engine")
    dealer.connect(centre.op_ep)
    server = centre.eng.operator_server
    try:
        dealer.send(b"\xff\x00 not msgpack")  # does not decode: counted, answered bad-request
        centre._until(lambda: dealer.poll(0), "the bad-request reply")
        rep = m.decode(dealer.recv_multipart()[-1])
        assert isinstance(rep, m.ResetReply) and rep.result == "bad-request" and "malformed" in rep.detail
        before = server.stats.dropped
        dealer.send_multipart([b"a", b"b", b"c"])  # wrong envelope: dropped and counted, no reply
        dealer.send(m.encode(m.Heartbeat(sender="operator")))  # a known message of the wrong kind
        dealer.send(m.encode(m.ResetRequest(junction="A1", operator="")))  # nobody named
        centre._until(lambda: server.stats.dropped >= before + 2, "the drops")
        kinds: list[str] = []

        def two_replies():
            while dealer.poll(0):
                kinds.append(m.decode(dealer.recv_multipart()[-1]).result)
            return len(kinds) >= 2

        centre._until(two_replies, "two replies")
        assert kinds == ["bad-request", "bad-request"]
        assert server.stats.drop_reasons.get("frames", 0) >= 1 and server.stats.drop_reasons.get("unexpected-type") == 1
        # the engine still serves: a proper request is answered, the controller still commanded
        dealer.send(m.encode(m.ResetRequest(junction="A1", operator="budi")))
        centre._until(lambda: dealer.poll(0), "the reply")
        assert m.decode(dealer.recv_multipart()[-1]).result == "not-faulted"
        ticks = centre.eng.ticks_done
        for _ in range(3):
            centre.cycle()
        assert centre.eng.ticks_done == ticks + 3 and centre.eng.online[centre.j]
    finally:
        dealer.close(0)
        sec.close()
        ctx.destroy(linger=0)


def test_operator_endpoint_without_keys_only_local(tmp_path):
    ctx = zmq.Context()
    try:
        with pytest.raises(SecurityError, match=r"refusing to serve operator resets on tcp://127.0.0.1"):
            OperatorServer(ctx, "tcp://127.0.0.1:5999")
        srv = OperatorServer(ctx, f"ipc://{tmp_path}/op")
        srv.close()
    finally:
        ctx.destroy(linger=0)


def test_operator_domain_has_its_own_allow_list(keydir):
    """Only operator keys are in operators/; every key is in allowed/ (the bus accepts operators)."""
    assert sorted(p.name for p in (keydir / "operators").glob("*.key")) == ["budi.key", "operator.key"]
    assert {"budi.key", "operator.key", "field.key", "A1.key"} <= {p.name for p in (keydir / "allowed").glob("*.key")}
    assert OPERATOR_DOMAIN != "lintas"


def test_lintas_reset_command(centre, keydir):
    """The command line: an unknown junction prints the engine's answer and exits 1; no keys on tcp: 2."""
    cmd = [sys.executable, "-m", "cli", "reset", "Z9", "--operator", "budi", "--keys", str(keydir),
           "--endpoint", centre.op_ep, "--timeout", str(TIMEOUT)]
    out = centre.ask(lambda: subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=60))
    r = out["reply"]
    assert r.returncode == 1, r.stderr
    assert r.stdout.startswith("Z9: unknown-junction: no junction 'Z9'")
    r = subprocess.run([*cmd[:7], "--endpoint", centre.op_ep], check=False, cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "--keys DIR is required" in r.stderr


def test_lintas_keys_operator_option(tmp_path):
    d = tmp_path / "k"

    def lintas(*args):
        return subprocess.run([sys.executable, "-m", "cli", "keys", str(d), *args], check=False, cwd=REPO,
                              capture_output=True, text=True, timeout=60)

    r = lintas()  # the default names: 'operator' is an operator
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (d / "operators").glob("*.key")) == ["operator.key"]
    r = lintas("--operator", "budi")  # only budi's pair is made, listed in both allow-lists
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"created {d / 'budi.key'}"
    assert (d / "operators" / "budi.key").read_bytes() == (d / "budi.key").read_bytes()
    assert (d / "allowed" / "budi.key").is_file()
    r = lintas("--operator", "field")  # an existing pair made an operator explicitly
    assert r.returncode == 0 and f"kept {d / 'field.key'}" in r.stdout
    assert sorted(p.name for p in (d / "operators").glob("*.key")) == ["budi.key", "field.key", "operator.key"]
