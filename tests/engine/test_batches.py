"""Detector batches reaching a real engine over real ZeroMQ sockets: columns by index (what the SUMO field
sends) are taken; a malformed batch is dropped and counted and the engine goes on (docs/protocol.md)."""

from __future__ import annotations

import time

import msgspec
import numpy as np
import zmq

from engine.loop import Engine
from engine.protocol import bus
from engine.protocol import messages as m
from tests.engine.test_fusion import _fed_net


def test_a_malformed_batch_is_dropped_and_counted_and_the_next_one_is_taken():
    net = _fed_net()
    ctx = zmq.Context()
    ep = bus.endpoints("inproc")
    fwd = bus.Forwarder(ep, ctx).start()
    eng = Engine(net, "fixed", ep, ctx=ctx, lockstep=False)
    pub = bus.Publisher(ctx, ep)
    try:
        n = net.n_detectors
        good = m.detector_batch("field", 1.0, np.arange(n), np.full(n, 0.25), index=np.arange(n),
                                layout=m.detector_layout(net.det_ids))
        bad = msgspec.structs.replace(good, occupancy=good.occupancy[:-8])  # one value short
        deadline = time.monotonic() + 20
        while eng.fusion.readings == 0:
            assert time.monotonic() < deadline, "the engine never took the good batch"
            pub.publish(m.TOPIC_DETECTORS, bad)
            pub.publish(m.TOPIC_DETECTORS, good)
            time.sleep(0.05)
            eng.pump()
        assert eng.sub.stats.drop_reasons.get("malformed-batch", 0) >= 1
        assert eng.fusion.unknown == 0 and eng.fusion.readings % n == 0
        assert list(eng.fusion.sensors.count) == list(range(n))
    finally:
        pub.close()
        eng.close()
        fwd.stop()
        ctx.destroy(linger=0)
