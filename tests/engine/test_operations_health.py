"""Health that never says ok when nothing arrives (issue 15, item 3).

A detector that never reported is ``no-data`` (unusable, exactly like a dead one), then ``dead``; an engine
whose feed is silent ages every detector's health on its own ticks and raises the feed alarm, on the bus
(``fault`` ``feed-lost``, then ``feed-restored``) and in its metrics. The end-to-end test runs ``lintas bus``
and ``lintas engine --clock wall`` as processes over real tcp sockets and scrapes the engine's metrics port.
"""

from __future__ import annotations

import dataclasses
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import zmq
from test_fusion import small_net, stream

from engine.fusion import DEAD, NO_DATA, OK, STALE, Fusion, FusionConfig
from engine.protocol import bus
from engine.protocol import messages as m
from simulation.experiments.catalog import DEMO, REPO

OUTPUTS = ("queue", "vehicles", "gap", "presence", "rate", "wait", "space", "profile", "known")


def _health(f: Fusion, det: str) -> int:
    return int(f.health[f.net.det_index[det]])


def _outputs(f: Fusion, t: float) -> dict[str, np.ndarray]:
    f.observations(t)
    return {k: getattr(f.out, k).copy() for k in OUTPUTS}


# -- the model: no-data is as unusable as dead, and labels change nothing ---------------------------------
def test_a_detector_that_never_reported_is_no_data_then_dead():
    cfg = dataclasses.replace(FusionConfig(), no_data_after=20.0)
    f = Fusion(small_net(), cfg)
    assert all(h == NO_DATA for h in f.health)  # before any input: not ok
    states = {}
    for t, batch, _ in stream(60, drop=lambda d, t: d == "lintas_cam_L0"):
        f.update(batch)
        states[int(t)] = _health(f, "lintas_cam_L0")
    assert states[0] == NO_DATA and states[20] == NO_DATA and states[21] == DEAD and states[59] == DEAD
    assert _health(f, "lintas_cam_L1") == OK
    s = f.health_summary()
    assert s["dead"] == 1 and s["no-data"] == 0 and s["area"]["dead"] == 1


def test_no_data_is_treated_exactly_like_dead():
    """Every output, every tick, equal to the run where the silent detectors are dead from the start
    (``no_data_after`` 0): the policies see no difference between the two states."""
    def silent(d, t):
        return d in ("lintas_cam_L0", "lintas_sl_L1")

    a = Fusion(small_net())  # no-data for 60 s
    b = Fusion(small_net(), dataclasses.replace(FusionConfig(), no_data_after=0.0))  # dead at once
    seen = set()
    for t, batch, _ in stream(120, drop=silent):
        a.update(batch)
        b.update(batch)
        seen.add((_health(a, "lintas_cam_L0"), _health(b, "lintas_cam_L0")))
        oa, ob = _outputs(a, t), _outputs(b, t)
        for k in OUTPUTS:
            assert np.array_equal(oa[k], ob[k]), (t, k)
    assert (NO_DATA, DEAD) in seen and (DEAD, DEAD) in seen  # both states were compared


def test_idle_ticks_age_the_labels_and_change_no_estimate():
    """``Fusion.idle`` between batches (an engine tick that brought none) changes the health labels only: the
    same stream with and without idle calls gives the same outputs every tick, and a long silence ages every
    detector to stale, then dead."""
    a, b = Fusion(small_net()), Fusion(small_net())
    for t, batch, _ in stream(200):
        a.update(batch)
        b.update(batch)
        b.idle(0.5)
        b.idle(5.0)  # labels at t + 5 s: stale
        assert all(h == STALE for h in b.health)
        oa, ob = _outputs(a, t), _outputs(b, t)
        for k in OUTPUTS:
            assert np.array_equal(oa[k], ob[k]), (t, k)
    assert all(h == OK for h in a.health)
    b.idle(40.0)
    assert all(h == DEAD for h in b.health) and b.health_summary()["lanes_without_data"] == 2
    c = Fusion(small_net(), dataclasses.replace(FusionConfig(), no_data_after=3.0))
    c.idle(1.0)  # no batch ever: no-data from the engine's start, then dead
    assert all(h == NO_DATA for h in c.health) and c.health_summary()["lanes_without_data"] == 2
    c.idle(4.0)
    assert all(h == DEAD for h in c.health)


def test_a_queue_wait_in_unix_time_starts_when_the_queue_forms():
    """The field's clock is Unix time, far beyond the old 'never' sentinel (1e6 s): a queue that formed a few
    seconds ago must not wait since 1970 (the starvation guard would fire on every junction)."""
    f = Fusion(small_net())
    t0 = 1.8e9
    for t, batch, _ in stream(200):
        f.update(m.DetectorBatch(source="test", time=t0 + t, readings=batch.readings))
        obs = f.observations(t0 + t)
        assert (obs.wait <= t + 1).all(), (t, obs.wait)


# -- the engine as a process: sensors, the feed alarm on the bus and in the metrics -------------------------
def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(port: int) -> dict[str, float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        mt = re.fullmatch(r"(lintas_\S+) (\S+)", line)
        if mt:
            out[mt.group(1)] = float(mt.group(2))
    return out


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _stop(p: subprocess.Popen) -> str:
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
    try:
        _out, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        _out, err = p.communicate()
    return err


def _sensors(mx: dict[str, float]) -> dict[str, float]:
    return {k.split('"')[1]: v for k, v in mx.items() if k.startswith("lintas_engine_sensors{")}


@pytest.fixture(scope="module")
def network_json(tmp_path_factory):
    from simulation.sumo.netcompile import network_for_field

    net = network_for_field(DEMO)  # with the detectors the field reports (228 on the demo city)
    assert len(net.det_ids) > 100
    path = tmp_path_factory.mktemp("net") / "network.json"
    net.to_json(path)
    return path, net


@pytest.mark.timeout(120)
def test_engine_without_feed_says_no_data_raises_the_alarm_and_clears_it(network_json):
    path, net = network_json
    n_det = len(net.det_ids)
    ep = bus.endpoints("tcp")
    mport = _port()
    ctx = zmq.Context()
    procs = []
    try:
        procs.append(_start("bus", "--bus-in", ep.bus_in, "--bus-out", ep.bus_out))
        sub = bus.Subscriber(ctx, ep, [m.TOPIC_FAULT])
        pub = bus.Publisher(ctx, ep)
        procs.append(_start("engine", "--network", str(path), "--policy", "fixed", "--clock", "wall",
                            "--bus-in", ep.bus_in, "--bus-out", ep.bus_out, "--commands", ep.commands,
                            "--metrics-port", str(mport), "--feed-alarm-after", "2", "--no-data-after", "4"))
        faults: list[m.Fault] = []
        scrapes: list[dict[str, float]] = []

        def until(pred, timeout=30.0):
            t_end = time.monotonic() + timeout
            while time.monotonic() < t_end:
                faults.extend(msg for _t, msg in sub.drain() if isinstance(msg, m.Fault))
                mx = _metrics(mport)
                if mx:
                    scrapes.append(mx)
                    if pred(mx):
                        return mx
                assert all(p.poll() is None for p in procs), [_stop(p) for p in procs]
                time.sleep(0.2)
            raise AssertionError(f"timed out; last metrics: {scrapes[-1] if scrapes else None}")

        # 1. nothing arrives: no-data (never ok), the alarm after 2 s, dead after 4 s
        until(lambda mx: "lintas_engine_feed_alarm" in mx)
        first = _sensors(scrapes[0])
        assert first["no-data"] == n_det and first["ok"] == 0 and first["lanes_without_data"] == net.n_lanes
        mx = until(lambda mx: mx["lintas_engine_feed_alarm"] == 1)
        assert mx["lintas_engine_feed_age_seconds"] >= 2 and mx["lintas_engine_feed_alarms_total"] == 1
        mx = until(lambda mx: _sensors(mx)["dead"] == n_det)
        assert _sensors(mx)["ok"] == 0
        assert any(_sensors(s)["no-data"] == n_det and s["lintas_engine_feed_alarm"] == 1 for s in scrapes)
        until(lambda mx: any(f.kind == "feed-lost" for f in faults))
        lost = next(f for f in faults if f.kind == "feed-lost")
        assert lost.source == "engine" and "no detector reading" in lost.detail and "since the engine started" in \
            lost.detail

        # 2. readings of every detector: ok, the alarm cleared, on the bus too
        def feed():
            pub.publish(m.TOPIC_DETECTORS, m.DetectorBatch(source="test", time=time.time(), readings=[
                m.DetectorReading(d, 0, 0.0, 0) for d in net.det_ids]))
            return False

        mx = until(lambda mx: feed() or (mx["lintas_engine_feed_alarm"] == 0 and _sensors(mx)["ok"] == n_det))
        assert mx["lintas_engine_feed_age_seconds"] <= 1.0 and _sensors(mx)["lanes_without_data"] == 0
        until(lambda mx: feed() or any(f.kind == "feed-restored" for f in faults))

        # 3. the feed stops again: the detectors age on the engine's own ticks (stale, not ok), a second alarm
        mx = until(lambda mx: _sensors(mx)["stale"] == n_det and mx["lintas_engine_feed_alarm"] == 1)
        assert mx["lintas_engine_feed_alarms_total"] == 2
        until(lambda mx: [f.kind for f in faults].count("feed-lost") == 2)
        assert [f.kind for f in faults] == ["feed-lost", "feed-restored", "feed-lost"]
        sub.close()
        pub.close()
    finally:
        errs = [_stop(p) for p in reversed(procs)]
        ctx.destroy(linger=0)
    eng_err = errs[0]
    assert "Traceback" not in eng_err and "feed lost: no detector reading" in eng_err
    assert "feed restored: detector readings again" in eng_err
