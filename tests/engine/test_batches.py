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


def test_every_source_of_a_tick_is_integrated_once_and_a_source_ahead_of_the_tick_is_not_overwritten():
    """A camera worker publishes its zones apart from the loop cabinets (as `lintas camera` does in the field): fusion
    runs its model once per tick over both sources' readings, not once per batch (which would integrate the interval
    twice). A source whose next batch arrives before the tick has its previous interval integrated first."""
    net = _fed_net()
    ctx = zmq.Context()
    ep = bus.endpoints("inproc")
    fwd = bus.Forwarder(ep, ctx).start()
    eng = Engine(net, "fixed", ep, ctx=ctx, lockstep=False)
    pub = bus.Publisher(ctx, ep)

    def tick_until_done(t: float, want: int) -> None:
        deadline = time.monotonic() + 20
        while eng.ticks_done < want:
            assert time.monotonic() < deadline, f"the engine never stepped tick {t}"
            pub.publish(m.TOPIC_TICK, m.ClockTick(time=t, step=int(t)))
            time.sleep(0.02)
            eng.pump()

    try:
        n = net.n_detectors
        half = n // 2
        layout = m.detector_layout(net.det_ids)
        tick_until_done(0.0, 1)  # the subscription is live
        base = eng.fusion.sensors.batches
        field = m.detector_batch("field", 1.0, np.ones(half), np.full(half, 0.1), index=np.arange(half),
                                 layout=layout)
        cam = m.detector_batch("cam1", 1.0, np.ones(n - half), np.full(n - half, 0.1),
                               detectors=list(net.det_ids[half:]))
        pub.publish(m.TOPIC_DETECTORS, field)
        pub.publish(m.TOPIC_DETECTORS, cam)
        tick_until_done(1.0, 2)
        assert eng.fusion.readings == n and eng.fusion.unknown == 0
        assert eng.fusion.sensors.batches == base + 1  # two sources, one integration
        for t in (2.0, 3.0):  # the field twice before the tick: two intervals, each integrated
            pub.publish(m.TOPIC_DETECTORS, m.detector_batch("field", t, np.full(half, int(t)), np.full(half, 0.1),
                                                            index=np.arange(half), layout=layout))
        tick_until_done(3.0, 3)
        assert eng.fusion.sensors.batches == base + 3
        assert list(eng.fusion.sensors.count[:half]) == [3] * half
    finally:
        pub.close()
        eng.close()
        fwd.stop()
        ctx.destroy(linger=0)
