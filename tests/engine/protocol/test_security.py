"""CURVE + ZAP on real tcp://127.0.0.1 sockets: one zmq.Context per "process" (ZAP is per context)."""

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.security import Security, SecurityError, check_bind, create_keys, public_file, secret_file
from simulation.experiments.catalog import REPO

FAILED = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
NAMES = ["engine", "bus", "field", "J1", "J2"]


def _until(pred, timeout=20.0):  # generous: CI machines are small and shared
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        r = pred()
        if r:
            return r
        time.sleep(0.005)
    raise AssertionError("timed out")


def _keys(path: Path, name: str) -> tuple[str, str]:
    """(public, secret) z85 strings of a pair, read from its files."""
    pub, sec = zmq.auth.load_certificate(secret_file(path, name))
    return pub.decode(), sec.decode()


class Monitor:
    """Handshake events of one socket."""

    def __init__(self, sock: zmq.Socket) -> None:
        self.sock = sock
        self.mon = sock.get_monitor_socket()
        self.seen = 0

    def poll(self) -> int:
        while self.mon.poll(0):
            self.seen |= recv_monitor_message(self.mon)["event"]
        return self.seen

    def close(self) -> None:
        self.sock.disable_monitor()
        self.mon.close(0)


@pytest.fixture
def keydir(tmp_path):
    d = tmp_path / "keys"
    create_keys(d, NAMES)
    return d


@pytest.fixture
def rogue_dir(tmp_path, keydir):
    """A key pair that is not in the allow-list, plus the servers' public keys (which are public)."""
    d = tmp_path / "rogue"
    create_keys(d, ["rogue"])
    for n in ("bus", "engine"):
        shutil.copy(public_file(keydir, n), d)
    return d


class City:
    """One context (and one Security) per process role."""

    def __init__(self, keydir: Path) -> None:
        self.ep = bus.endpoints("tcp")
        self.ctxs: list[zmq.Context] = []
        self.secs: list[Security] = []
        self.closers: list = []
        bus_ctx, self.bus_sec = self.process(keydir, "bus")
        self.fwd = bus.Forwarder(self.ep, bus_ctx, security=self.bus_sec).start()

    def process(self, keydir: Path | None, me: str | None):
        ctx = zmq.Context()
        self.ctxs.append(ctx)
        sec = None
        if keydir is not None:
            sec = Security.load(keydir, me, ctx)
            self.secs.append(sec)
        return ctx, sec

    def own(self, *objs):
        self.closers.extend(objs)
        return objs[0] if len(objs) == 1 else objs

    def close(self) -> None:
        for o in reversed(self.closers):  # monitors before their sockets
            o.close()
        self.fwd.stop()
        for s in self.secs:
            s.close()
        for c in self.ctxs:
            c.destroy(linger=0)


@pytest.fixture
def city(keydir):
    c = City(keydir)
    yield c
    c.close()


# -- (a) the keyed system works ----------------------------------------------------------------------
def test_keyed_pubsub_and_commands(city, keydir):
    field_ctx, field_sec = city.process(keydir, "field")
    eng_ctx, eng_sec = city.process(keydir, "engine")
    j1_ctx, j1_sec = city.process(keydir, "J1")
    pub = city.own(bus.Publisher(field_ctx, city.ep, security=field_sec))
    sub = city.own(bus.Subscriber(eng_ctx, city.ep, [m.TOPIC_DETECTORS], security=eng_sec))
    server = city.own(bus.CommandServer(eng_ctx, city.ep, security=eng_sec))
    client = city.own(bus.CommandClient(j1_ctx, city.ep, "J1", security=j1_sec))

    def detectors():
        pub.publish(m.TOPIC_DETECTORS, m.DetectorBatch(source="field", time=1.0))
        return [msg for _t, msg in sub.drain()]

    assert _until(detectors)[0].source == "field"

    def state():
        client.send(m.ControllerState(junction="J1"))
        return list(server.drain())

    sender, msg = _until(state)[0]
    assert sender == "J1" and msg.junction == "J1"
    cmd = m.PhaseCommand(junction="J1", action="advance", phase=1, seq=1)
    assert server.send("J1", cmd)
    assert _until(lambda: list(client.drain()))[0] == cmd


# -- (b) publishers without keys or with a key not allowed are not heard ---------------------------
def test_unkeyed_and_unknown_publishers_are_not_heard(city, keydir, rogue_dir):
    field_ctx, field_sec = city.process(keydir, "field")
    eng_ctx, eng_sec = city.process(keydir, "engine")
    nokey_ctx, _ = city.process(None, None)
    rogue_ctx, rogue_sec = city.process(rogue_dir, "rogue")
    sub = city.own(bus.Subscriber(eng_ctx, city.ep, [m.TOPIC_DETECTORS], security=eng_sec))
    pubs = {
        "field": city.own(bus.Publisher(field_ctx, city.ep, security=field_sec)),
        "nokey": city.own(bus.Publisher(nokey_ctx, city.ep)),
        "rogue": city.own(bus.Publisher(rogue_ctx, city.ep, security=rogue_sec)),
    }
    mons = {n: city.own(Monitor(pubs[n].sock)) for n in ("nokey", "rogue")}
    heard: list[str] = []

    def round_():
        for name, p in pubs.items():
            p.publish(m.TOPIC_DETECTORS, m.DetectorBatch(source=name))
        heard.extend(msg.source for _t, msg in sub.drain())
        return "field" in heard and all(mon.poll() & FAILED for mon in mons.values())

    _until(round_)  # the allowed publisher is heard and both others failed their handshake
    assert mons["rogue"].seen & zmq.EVENT_HANDSHAKE_FAILED_AUTH  # ZAP said no
    n = heard.count("field")
    _until(lambda: round_() and heard.count("field") >= n + 20)  # the bus keeps working
    assert set(heard) == {"field"}


# -- (c) a rogue engine cannot command a controller -----------------------------------------------
@pytest.mark.parametrize("rogue_curve", [True, False], ids=["rogue-key", "no-key"])
def test_rogue_router_cannot_command_controller(city, keydir, rogue_dir, rogue_curve):
    j1_ctx, j1_sec = city.process(keydir, "J1")
    rogue_ctx, _ = city.process(None, None)
    rogue = rogue_ctx.socket(zmq.ROUTER)
    rogue.setsockopt(zmq.LINGER, 0)
    rogue.setsockopt(zmq.ROUTER_MANDATORY, 1)  # sending to a peer it has no connection to raises
    if rogue_curve:  # a CURVE server, but with its own key: it does not hold the engine's secret
        pub, sec = zmq.auth.load_certificate(secret_file(rogue_dir, "rogue"))
        rogue.curve_secretkey, rogue.curve_publickey, rogue.curve_server = sec, pub, True
    rogue.bind(city.ep.commands)
    city.own(rogue)
    mon = city.own(Monitor(rogue))
    client = city.own(bus.CommandClient(j1_ctx, city.ep, "J1", security=j1_sec))
    got: list = []

    def attempt():
        client.send(m.ControllerState(junction="J1"))
        try:
            rogue.send_multipart([b"J1", m.encode(m.PhaseCommand(junction="J1", action="advance", phase=1, seq=99))],
                                 zmq.NOBLOCK)
            got.append("sent")
        except zmq.ZMQError:
            pass  # unroutable: J1 never completed a handshake with it
        got.extend(client.drain())
        return mon.poll() & FAILED

    _until(attempt)
    for _ in range(20):
        attempt()
        time.sleep(0.005)
    assert got == []
    assert not rogue.poll(0)  # and it heard nothing from the controller


# -- (d) clients without an allowed key cannot talk to the engine ---------------------------------
def test_unkeyed_and_unknown_clients_cannot_reach_engine(city, keydir, rogue_dir):
    eng_ctx, eng_sec = city.process(keydir, "engine")
    j2_ctx, j2_sec = city.process(keydir, "J2")
    nokey_ctx, _ = city.process(None, None)
    rogue_ctx, rogue_sec = city.process(rogue_dir, "rogue")
    server = city.own(bus.CommandServer(eng_ctx, city.ep, security=eng_sec))
    mon = city.own(Monitor(server.sock))
    clients = {
        "J2": city.own(bus.CommandClient(j2_ctx, city.ep, "J2", security=j2_sec)),
        "J1": city.own(bus.CommandClient(nokey_ctx, city.ep, "J1")),  # claims to be J1, no keys
        "J3": city.own(bus.CommandClient(rogue_ctx, city.ep, "J3", security=rogue_sec)),  # key not allowed
    }
    senders: list[str] = []

    def round_():
        for jid, c in clients.items():
            c.send(m.ControllerState(junction=jid))
            c.send(m.Fault(source=jid, kind="forged"))
        senders.extend(s for s, _msg in server.drain())
        return "J2" in senders and mon.poll() & zmq.EVENT_HANDSHAKE_FAILED_AUTH and mon.seen & (
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)

    _until(round_)
    n = senders.count("J2")
    _until(lambda: round_() and senders.count("J2") >= n + 20)
    assert set(senders) == {"J2"}
    assert not server.send("J1", m.Heartbeat(sender="engine"))  # the unkeyed "J1" is not reachable
    assert not server.send("J3", m.Heartbeat(sender="engine"))
    assert server.send("J2", m.Heartbeat(sender="engine"))


# -- (e) no open network binds without keys -------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://10.1.2.3:5555",
                                      "tcp://eth0:5555", "tcp://[::]:5555", "tcp://192.168.1.5:*"])
def test_check_bind_refuses_network_without_keys(endpoint):
    with pytest.raises(SecurityError, match=r"refusing to bind .* without keys: pass --keys DIR"):
        check_bind(endpoint, None)
    check_bind(endpoint, object())  # with security: fine


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5555", "tcp://127.3.2.1:5555", "tcp://localhost:5555",
                                      "tcp://[::1]:5555", "inproc://lintas-x", "ipc:///tmp/lintas/x", ""])
def test_check_bind_allows_local(endpoint):
    check_bind(endpoint, None)


def test_forwarder_and_command_server_refuse_open_binds():
    ctx = zmq.Context()
    try:
        ep = bus.Endpoints("tcp://0.0.0.0:5555", "tcp://127.0.0.1:5556", "tcp://*:5557")
        with pytest.raises(SecurityError, match=r"tcp://0\.0\.0\.0:5555"):
            bus.Forwarder(ep, ctx)
        with pytest.raises(SecurityError, match=r"tcp://\*:5557"):
            bus.CommandServer(ctx, ep)
    finally:
        ctx.destroy(linger=0)


# -- key files -------------------------------------------------------------------------------------
def test_load_errors_name_the_file_and_never_a_key(tmp_path, keydir):
    ctx = zmq.Context()
    try:
        with pytest.raises(SecurityError, match=r"nobody.key_secret is missing"):
            Security.load(keydir, "nobody", ctx)
        with pytest.raises(SecurityError, match=r"does not exist"):
            Security.load(tmp_path / "absent", "engine", ctx)
        sec_file = secret_file(keydir, "J1")
        os.chmod(sec_file, 0o644)
        with pytest.raises(SecurityError, match=r"readable by others") as exc:
            Security.load(keydir, "J1", ctx)
        assert _keys(keydir, "J1")[1] not in str(exc.value)
        os.chmod(sec_file, 0o600)
        broken = keydir / "broken.key_secret"
        broken.write_text("garbage\n")
        os.chmod(broken, 0o600)
        with pytest.raises(SecurityError, match=r"broken.key_secret"):
            Security.load(keydir, "broken", ctx)
        with Security.load(keydir, "J1", ctx) as sec:
            pub, secret = _keys(keydir, "J1")
            assert pub not in repr(sec) and secret not in repr(sec) and "J1" in repr(sec)
            s = ctx.socket(zmq.DEALER)
            with pytest.raises(SecurityError, match=r"nobody.key is missing"):
                sec.client(s, server="nobody")
            s.close(0)
        # a context without an allow-list cannot serve: it would accept any key
        lone = tmp_path / "lone"
        create_keys(lone, ["engine"])
        shutil.rmtree(lone / "allowed")
        other = zmq.Context()
        try:
            with Security.load(lone, "engine", other) as sec:
                s = other.socket(zmq.ROUTER)
                with pytest.raises(SecurityError, match=r"allow-list"):
                    sec.server(s, role="engine")
                s.close(0)
        finally:
            other.destroy(linger=0)
    finally:
        ctx.destroy(linger=0)


def test_create_keys_modes_idempotent_and_sanitised(tmp_path):
    d = tmp_path / "k"
    paths = create_keys(d, ["engine", "bad/../name", "engine"])
    assert paths == [d / "engine.key", d / "bad_.._name.key"]
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    before = secret_file(d, "engine").read_bytes()
    assert create_keys(d, ["engine"]) == [d / "engine.key"]
    assert secret_file(d, "engine").read_bytes() == before
    create_keys(d, ["engine"], force=True)
    assert secret_file(d, "engine").read_bytes() != before
    public_file(d, "engine").unlink()
    with pytest.raises(SecurityError, match=r"incomplete key pair"):
        create_keys(d, ["engine"])


# -- (f) lintas keys ---------------------------------------------------------------------------------
def _lintas(*args):
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=60)


def test_lintas_keys_command(tmp_path):
    d = tmp_path / "keys"
    r = _lintas("keys", str(d), "--name", "engine", "--name", "bus", "--name", "J1")
    assert r.returncode == 0, r.stderr
    names = ["engine", "bus", "J1"]
    secrets = [_keys(d, n)[1] for n in names]
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for n in names:
        assert stat.S_IMODE(secret_file(d, n).stat().st_mode) == 0o600
        assert stat.S_IMODE(public_file(d, n).stat().st_mode) == 0o644
        assert (d / "allowed" / f"{n}.key").read_bytes() == public_file(d, n).read_bytes()
        assert f"created {public_file(d, n)}" in r.stdout
    assert not list(d.glob(".lintas-keys-*"))
    assert "key_secret" not in r.stdout
    again = _lintas("keys", str(d))  # the default names: engine and bus kept, field and operator created
    assert again.returncode == 0, again.stderr
    assert [_keys(d, n)[1] for n in names] == secrets  # kept, not overwritten
    assert f"kept {public_file(d, 'engine')}" in again.stdout and f"created {public_file(d, 'field')}" in again.stdout
    assert {p.name for p in d.glob("*.key")} == {"engine.key", "bus.key", "J1.key", "field.key", "operator.key"}
    assert stat.S_IMODE(secret_file(d, "operator").stat().st_mode) == 0o600
    secrets += [_keys(d, n)[1] for n in ("field", "operator")]
    public_file(d, "bus").unlink()
    bad = _lintas("keys", str(d), "--name", "bus")
    assert bad.returncode == 2
    assert bad.stderr.startswith("lintas: error:") and len(bad.stderr.strip().splitlines()) == 1
    assert "bus.key" in bad.stderr
    for out in (r, again, bad):
        for s in secrets:
            assert s not in out.stdout and s not in out.stderr


def test_lintas_bus_and_controller_keys_errors(tmp_path):
    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["bus", "--bus-in", "tcp://0.0.0.0:5555"])
    assert r.exit_code == 2
    assert "refusing to bind tcp://0.0.0.0:5555 without keys: pass --keys DIR" in r.output
    r = runner.invoke(app, ["bus", "--keys", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "nowhere" in r.output and "does not exist" in r.output
    d = tmp_path / "keys"
    create_keys(d, ["engine"])
    r = runner.invoke(app, ["bus", "--keys", str(d)])
    assert r.exit_code == 2 and "bus.key_secret is missing" in r.output
    spec = tmp_path / "J1.json"
    spec.write_text(json.dumps(SPEC))
    r = runner.invoke(app, ["controller", str(spec), "--keys", str(d)])  # neither J1 nor controller pair
    assert r.exit_code == 2 and "controller.key_secret is missing" in r.output
    assert len(r.output.strip().splitlines()) == 1


# -- (g) no key in the logs ----------------------------------------------------------------------------
def test_no_key_in_logs(city, keydir, rogue_dir, caplog):
    caplog.set_level(logging.DEBUG)
    eng_ctx, eng_sec = city.process(keydir, "engine")
    j1_ctx, j1_sec = city.process(keydir, "J1")
    rogue_ctx, rogue_sec = city.process(rogue_dir, "rogue")
    server = city.own(bus.CommandServer(eng_ctx, city.ep, security=eng_sec))
    client = city.own(bus.CommandClient(j1_ctx, city.ep, "J1", security=j1_sec))
    rogue = city.own(bus.CommandClient(rogue_ctx, city.ep, "J9", security=rogue_sec))
    mon = city.own(Monitor(rogue.sock))
    pub = city.own(bus.Publisher(j1_ctx, city.ep, security=j1_sec))
    sub = city.own(bus.Subscriber(eng_ctx, city.ep, [m.TOPIC_STATE], security=eng_sec))

    def round_():
        client.send(m.ControllerState(junction="J1"))
        rogue.send(m.ControllerState(junction="J9"))
        pub.publish(m.TOPIC_STATE, m.ControllerState(junction="J1"))
        return list(server.drain()) and list(sub.drain()) and mon.poll() & FAILED

    _until(round_)
    text = caplog.text + "\n".join(repr(r.args) + str(r.msg) for r in caplog.records)
    assert "ALLOWED" in text and "DENIED" in text  # the ZAP handler did log, at DEBUG
    keys = [k for n in NAMES for k in _keys(keydir, n)] + list(_keys(rogue_dir, "rogue"))
    for k in keys:
        assert k not in text
        assert repr(zmq.utils.z85.decode(k.encode())) not in text


# -- the CLI end to end: lintas bus and lintas controller with --keys over tcp -----------------------
SPEC = {
    "id": "J1", "n_links": 4, "green_states": ["Ggrr", "rGrr", "rrGg"], "net_next": [1, 2, 0],
    "fixed_green": [10.0, 6.0, 12.0], "min_green": [5.0, 5.0, 5.0], "max_green": [20.0, 10.0, 30.0],
    "yellow": [3.0, 4.0, 3.0], "allred": [1.0, 2.0, 0.0],
    "net_transitions": [[["ygrr", 2.0], ["rgrr", 1.0]], [["ryrr", 4.0], ["rrrr", 2.0]], [["rryy", 3.0]]],
    "conflicts": ["0011", "0011", "1100", "1100"], "link_in_lane": ["n_0", "n_1", "e_0", "e_1"],
    "link_out_lane": ["s_0", "w_0", "w_0", "s_0"], "link_via": [":J_0_0", ":J_1_0", ":J_2_0", ":J_3_0"],
}


@pytest.mark.timeout(60)
def test_cli_bus_and_controller_with_keys(tmp_path, keydir):
    spec = tmp_path / "J1.json"
    spec.write_text(json.dumps(SPEC))
    ep = bus.endpoints("tcp")
    ctx = zmq.Context()
    procs = []
    sec = None
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "cli", "bus", "--bus-in", ep.bus_in,
                                       "--bus-out", ep.bus_out, "--keys", str(keydir)], cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        procs.append(subprocess.Popen([sys.executable, "-m", "cli", "controller", str(spec),
                                       "--bus-in", ep.bus_in, "--bus-out", ep.bus_out, "--commands", ep.commands,
                                       "--keys", str(keydir)], cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        sec = Security.load(keydir, "engine", ctx)
        server = bus.CommandServer(ctx, ep, security=sec)
        pub = bus.Publisher(ctx, ep, security=sec)

        def synced():  # the controller answers a sync tick with its state on the command channel
            pub.publish(m.TOPIC_TICK, m.ClockTick(time=0.0, step=-1, phase="sync"))
            time.sleep(0.02)
            return [x for x in server.drain() if isinstance(x[1], m.ControllerState)]

        sender, st = _until(synced, timeout=30)[0]
        assert sender == "J1" and st.junction == "J1"
        pub.publish(m.TOPIC_TICK, m.ClockTick(time=1.0, phase="stop"))
        assert procs[1].wait(15) == 0
        server.close()
        pub.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
            out, err = p.communicate(timeout=10)
            for n in NAMES:
                assert _keys(keydir, n)[1] not in out + err
        if sec is not None:
            sec.close()
        ctx.destroy(linger=0)


def test_one_context_serving_bus_and_engine(keydir):
    """The forwarder and the engine in one process: one ZAP handler, each socket with its role's pair."""
    ep = bus.endpoints("tcp")
    centre, field = zmq.Context(), zmq.Context()
    sec = Security.load(keydir, "engine", centre)
    both = Security.load(keydir, "bus", centre)  # a second Security on the context shares its ZAP handler
    j1 = Security.load(keydir, "J1", field)
    fwd = bus.Forwarder(ep, centre, security=sec).start()  # serves as "bus", read from the directory
    objs = []
    try:
        server = bus.CommandServer(centre, ep, security=sec)
        sub = bus.Subscriber(centre, ep, [m.TOPIC_STATE], security=sec)
        client = bus.CommandClient(field, ep, "J1", security=j1)
        pub = bus.Publisher(field, ep, security=j1)
        objs = [server, sub, client, pub]

        def both_channels():
            client.send(m.ControllerState(junction="J1"))
            pub.publish(m.TOPIC_STATE, m.ControllerState(junction="J1"))
            return list(server.drain()) and list(sub.drain())

        _until(both_channels)
    finally:
        for o in objs:
            o.close()
        fwd.stop()
        both.close()
        sec.close()
        j1.close()
        centre.destroy(linger=0)
        field.destroy(linger=0)
