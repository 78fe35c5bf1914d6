"""Vehicle positions: from the bus (a real ZeroMQ socket; malformed frames dropped and counted), from a
GTFS-Realtime VehiclePositions file, and end to end from the simulated demo city: `lintas api --demo` (real SUMO
in a subprocess publishing its buses, a real uvicorn) shows buses moving and predicts their arrivals."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import zmq
from google.transit import gtfs_realtime_pb2 as rt

from engine.protocol import messages as m
from transit_api.gtfs import load_feed
from transit_api.realtime import Realtime
from transit_api.vehicles import Clock, Shape, batch_from_gtfs_rt

REPO = Path(__file__).resolve().parents[2]
GTFS = REPO / "scenarios" / "bunda_kota" / "gtfs"
LINTAS = Path(sys.executable).with_name("lintas")


@pytest.fixture(scope="module")
def feed():
    return load_feed(GTFS)


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} not met in {timeout} s")


def test_bus_subscription_drops_and_counts_malformed_frames(feed):
    live = Realtime(feed, Clock.unix())
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    live.subscribe(f"tcp://127.0.0.1:{port}")
    try:
        good = m.VehicleBatch(source="avl", time=time.time(), vehicles=[
            m.VehiclePosition(vehicle="bus_K1E_02", line="K1", trip="bus_K1E_02", next_stop="K1E_2",
                              stop_dist=120.0, odometer=300.0)])

        def send_all():
            pub.send_multipart([m.TOPIC_VEHICLES, b"\xc1 not msgpack"])
            pub.send_multipart([m.TOPIC_VEHICLES, m.encode(m.VehicleBatch(v=99, time=1.0))])  # a newer version
            pub.send_multipart([m.TOPIC_VEHICLES])  # one frame only
            pub.send_multipart([m.TOPIC_VEHICLES, m.encode(good)])
            return "bus_K1E_02" in live.tracker.vehicles

        wait_for(send_all, what="the vehicle through the bus")
        assert live.dropped >= 3
        v = live.tracker.vehicles["bus_K1E_02"]
        assert v.run.trip_id == "bus_K1E_02" and v.lat is not None  # placed on the K1E shape by its odometer
        assert [p.stop_id for p in live.predictions["bus_K1E_02"]] == ["K1E_2", "K1E_3", "K1E_4", "K1E_5"]
    finally:
        live.close()
        pub.close(0)
        ctx.term()


def vp_feed(now: int, stopped: bool) -> bytes:
    msg = rt.FeedMessage()
    msg.header.gtfs_realtime_version = "2.0"
    msg.header.timestamp = now
    ent = msg.entity.add()
    ent.id = "1"
    vp = ent.vehicle
    vp.trip.trip_id = "bus_K1W_02"
    vp.trip.route_id = "K1"
    vp.vehicle.id = "KB 1234 XY"
    vp.position.latitude, vp.position.longitude = -0.029928, 109.3370  # between Alun-Alun and Masjid Agung
    vp.current_stop_sequence = 3
    vp.current_status = rt.VehiclePosition.STOPPED_AT if stopped else rt.VehiclePosition.IN_TRANSIT_TO
    vp.timestamp = now
    return msg.SerializeToString()


def test_gtfs_rt_vehicle_positions_from_a_file(feed, tmp_path):
    now = int(time.time())
    b = batch_from_gtfs_rt(vp_feed(now, False), feed)
    p = b.vehicles[0]
    assert b.time == now and p.vehicle == "KB 1234 XY" and p.next_stop == "K1W_3" and not p.at_stop
    shape = Shape(feed.shapes["K1W"])
    stop = feed.stops["K1W_3"]
    assert p.stop_dist == pytest.approx(shape.project(stop.lat, stop.lon) - p.odometer, abs=1.0)
    assert 100 < p.stop_dist < 400
    with pytest.raises(ValueError, match="not a GTFS-Realtime FeedMessage"):
        batch_from_gtfs_rt(b"\x08\x96\x01garbage\xff", feed)

    path = tmp_path / "vp.pb"
    path.write_bytes(vp_feed(now, False))
    live = Realtime(feed, Clock.unix())
    live.poll_gtfs_rt(str(path), every=0.1)
    try:
        wait_for(lambda: "KB 1234 XY" in live.tracker.vehicles, what="the file's vehicle")
        assert live.tracker.vehicles["KB 1234 XY"].run.trip_id == "bus_K1W_02"
        path.write_bytes(b"broken")  # a bad read is counted, the last state kept
        wait_for(lambda: live.dropped >= 1, what="the broken file counted")
        path.write_bytes(vp_feed(now + 5, True))
        wait_for(lambda: live.tracker.vehicles["KB 1234 XY"].pos.at_stop, what="the vehicle at its stop")
        assert live.tracker.vehicles["KB 1234 XY"].arrivals  # an arrival event at K1W_3
    finally:
        live.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=5) as r:
        return json.loads(r.read())


def test_demo_shows_buses_moving_and_predicts(tmp_path):
    """`lintas api --demo --speed 30`: the first K1 bus (departs at 60 s, at K1E_1 from 80 s) appears on /vehicles,
    moves along its shape, and K1E_2's next arrival is its prediction."""
    port = _free_port()
    proc = subprocess.Popen([str(LINTAS), "api", "--demo", "--speed", "30", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    sim_pid = None
    try:
        seen: list[dict] = []

        def bus_on_the_road():
            if proc.poll() is not None:
                pytest.fail(f"lintas api --demo exited {proc.returncode}: {proc.stdout.read()}")
            try:
                doc = get(base, "/vehicles?route_id=K1")
            except OSError:
                return False
            items = [v for v in doc["items"] if v["vehicle_id"] == "bus_K1E_01"]
            if items and not items[0]["at_stop"] and items[0]["next_stop_id"] == "K1E_2":
                seen.append(items[0])
                arr = get(base, "/stops/K1E_2/arrivals?limit=2")
                seen.append(arr)
                return True
            return False

        wait_for(bus_on_the_road, timeout=60, what="bus_K1E_01 driving to K1E_2 in the demo")
        bus, arrivals = seen
        assert bus["trip_id"] == "bus_K1E_01" and bus["source"] == "sumo"
        assert -0.031 < bus["lat"] < -0.029 and 109.327 < bus["lon"] < 109.333  # on Jl. Raya Bunda, near K1E_1/2
        first = arrivals["arrivals"][0]
        assert first["source"] == "prediction" and first["vehicle_id"] == "bus_K1E_01"
        assert datetime.fromisoformat(first["predicted_arrival"]) > datetime.fromisoformat(arrivals["at"])
        time.sleep(0.5)  # 15 simulated seconds later it has moved on
        later = next((v for v in get(base, "/vehicles")["items"] if v["vehicle_id"] == "bus_K1E_01"), None)
        assert later is not None and later["odometer"] > bus["odometer"]
        assert datetime.fromisoformat(later["timestamp"]) > datetime.fromisoformat(bus["timestamp"])
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        found = re.search(r"\(pid (\d+),", out or "")
        sim_pid = int(found.group(1)) if found else None
    assert sim_pid is not None, out
    # the simulation ends with the API (a parent-death signal)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(sim_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(sim_pid, 9)
        pytest.fail("the demo's simulation outlived the API")
