"""Real ZeroMQ sockets on inproc://, ipc:// and tcp://: the same code path for all three."""

import time

import pytest
import zmq

from engine.protocol import bus
from engine.protocol import messages as m


def _until(pred, timeout=5.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        r = pred()
        if r:
            return r
        time.sleep(0.002)
    raise AssertionError("timed out")


@pytest.fixture(params=bus.TRANSPORTS)
def city(request):
    ctx = zmq.Context()
    ep = bus.endpoints(request.param)
    fwd = bus.Forwarder(ep, ctx).start()
    yield ctx, ep
    fwd.stop()
    bus.ipc_cleanup(ep)
    ctx.destroy(linger=0)


def test_pubsub_through_forwarder_and_malformed_frames_dropped(city):
    ctx, ep = city
    pub = bus.Publisher(ctx, ep)
    sub = bus.Subscriber(ctx, ep, [m.TOPIC_DETECTORS])
    got = []

    def ready():
        pub.publish(m.TOPIC_DETECTORS, m.DetectorBatch(source="probe"))
        got.extend(sub.drain())
        return got

    _until(ready)
    got.clear()
    batch = m.DetectorBatch(source="x", time=3.0, readings=[m.DetectorReading("d1", 2, 0.5)])
    pub.publish_raw([m.TOPIC_DETECTORS, b"\xff\x00garbage"])  # not MessagePack
    pub.publish_raw([m.TOPIC_DETECTORS, m.encode(m.Heartbeat())[:-3]])  # truncated
    pub.publish_raw([m.TOPIC_DETECTORS, b"\x81\xa1t\xa5bogus"])  # unknown type
    pub.publish_raw([m.TOPIC_DETECTORS])  # wrong frame count
    pub.publish(m.TOPIC_STATE, m.ControllerState(junction="J"))  # not subscribed
    pub.publish(m.TOPIC_DETECTORS, batch)
    msgs = _until(lambda: [x for x in sub.drain() if x[1].source == "x"] or None)
    topic, msg = msgs[0]
    assert topic == m.TOPIC_DETECTORS and msg == batch
    assert sub.stats.dropped >= 3
    assert set(sub.stats.drop_reasons) & {"DecodeError", "ValidationError"}
    pub.close()
    sub.close()


def test_commands_addressed_by_junction(city):
    ctx, ep = city
    server = bus.CommandServer(ctx, ep)
    a = bus.CommandClient(ctx, ep, "J1")
    b = bus.CommandClient(ctx, ep, "J2")
    seen = {}

    def both():  # a DEALER drops what it sends before its connection is up (IMMEDIATE): resend
        a.send(m.ControllerState(junction="J1"))
        b.send(m.ControllerState(junction="J2"))
        for sender, msg in server.drain():
            seen[sender] = msg
        return len(seen) == 2

    _until(both)
    assert seen["J1"].junction == "J1"
    assert server.send("J2", m.PhaseCommand(junction="J2", action="advance", phase=1, seq=1))
    assert not server.send("nobody", m.Heartbeat())  # unroutable: counted, no exception
    assert server.stats.drop_reasons["unroutable"] == 1
    got = _until(lambda: list(b.drain()))
    assert got[0].phase == 1
    assert list(a.drain()) == []
    # malformed on the command channel: dropped and counted
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.ROUTING_ID, b"J1x")
    raw.connect(ep.commands)
    _until(lambda: (raw.send(b"not msgpack at all \xc1"), list(server.drain()), server.stats.dropped)[2] >= 2)
    for s in (server, a, b):
        s.close()
    raw.close(0)


def test_unknown_transport():
    with pytest.raises(bus.TransportError, match="unknown transport 'udp'"):
        bus.endpoints("udp")


def test_roundtrip_every_message():
    for cls in m.MESSAGE_TYPES:
        msg = cls()
        assert m.decode(m.encode(msg)) == msg
