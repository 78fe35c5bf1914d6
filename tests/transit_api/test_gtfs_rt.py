"""The GTFS-Realtime feeds of a real `lintas api` (uvicorn on a free port) fed over a real ZeroMQ socket, parsed with
gtfs-realtime-bindings and checked against MobilityData's GTFS-Realtime best practices: the header (version 2.0,
FULL_DATASET, a timestamp that is recent and not in the future), trip and stop ids that exist in the static feed
(with the stop_sequence of that stop in the trip), stop_time_updates in stop_sequence order, no prediction in the
past, entity timestamps not after the header's, frequency-based trips with start_time and no delay; ?format=json;
alerts from the incident store; the predictions on /stops/{id}/arrivals; 404 and 422 with reasons."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zmq
from google.protobuf import json_format
from google.transit import gtfs_realtime_pb2 as rt

from engine.protocol import messages as m
from transit_api.gtfs import load_feed
from transit_api.incidents import Cause, Effect, IncidentStore, Severity, Source

REPO = Path(__file__).resolve().parents[2]
GTFS = REPO / "scenarios" / "bunda_kota" / "gtfs"
LINTAS = Path(sys.executable).with_name("lintas")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(base: str, path: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(base + path, timeout=5) as r:
            return r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("content-type", "")


def get_json(base: str, path: str) -> tuple[int, dict]:
    status, body, _ = fetch(base, path)
    return status, json.loads(body)


def batch(t: float, k: int) -> m.VehicleBatch:
    """Three buses in Unix time: K1's bus_K1E_03 moving towards K1E_3, K2's bus on the K2S line standing at its
    second stop (a headway trip), and one of an unknown line."""
    return m.VehicleBatch(source="avl", time=t, vehicles=[
        m.VehiclePosition(vehicle="bus_K1E_03", line="K1", trip="bus_K1E_03", start=t - 200, odometer=600 + k,
                          speed=9.0, next_stop="K1E_3", stop_dist=350.0 - k, next_tls="A2", tls_link=3,
                          tls_dist=150.0 - k),
        m.VehiclePosition(vehicle="kb-2217", line="K2", start=t - 120, odometer=280.0, speed=0.0,
                          next_stop="K2S_2", at_stop=True),
        m.VehiclePosition(vehicle="x-1", line="K9", next_stop="NOPE")])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rt")
    db = tmp / "incidents.sqlite"
    store = IncidentStore(db)
    now = datetime.now(UTC)
    store.create(source=Source.OPERATOR, reported_by="test", severity=Severity.SEVERE, effect=Effect.SIGNIFICANT_DELAYS,
                 cause=Cause.ACCIDENT, description="Tabrakan di Jl. Raya Bunda", stop_ids=["K1E_3"], edges=["A2_A3"],
                 start=now - timedelta(minutes=5))
    store.create(source=Source.OPERATOR, reported_by="test", severity=Severity.INFO, effect=Effect.OTHER_EFFECT,
                 lanes=["A1_A2_0"], start=now - timedelta(hours=2), end=now - timedelta(hours=1))  # over: not sent
    store.close()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    bus_port = pub.bind_to_random_port("tcp://127.0.0.1")
    port = _free_port()
    proc = subprocess.Popen([str(LINTAS), "api", "--gtfs", str(GTFS), "--db", str(db), "--port", str(port),
                             "--bus-out", f"tcp://127.0.0.1:{bus_port}", "--history", str(tmp / "eta.sqlite")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        k = 0
        while True:  # publish until the API has them (a SUB joins late)
            if proc.poll() is not None:
                pytest.fail(f"lintas api exited {proc.returncode}: {proc.stdout.read()}")
            pub.send_multipart([m.TOPIC_VEHICLES, b"\x93garbage"])  # dropped and counted, never stops it
            pub.send_multipart([m.TOPIC_VEHICLES, m.encode(batch(time.time(), k))])
            k += 1
            try:
                status, doc = get_json(base, "/vehicles")
                if status == 200 and doc["total"] == 3:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the API did not show the published vehicles in 40 s")
            time.sleep(0.2)
        pub.send_multipart([m.TOPIC_VEHICLES, m.encode(batch(time.time(), k))])
        time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        pub.close(0)
        ctx.term()


@pytest.fixture(scope="module")
def feed():
    return load_feed(GTFS)


def parse(base: str, path: str) -> rt.FeedMessage:
    status, body, ctype = fetch(base, path)
    assert status == 200 and ctype == "application/x-protobuf"
    msg = rt.FeedMessage()
    msg.ParseFromString(body)
    return msg


def check_header(msg: rt.FeedMessage) -> int:
    h = msg.header
    assert h.gtfs_realtime_version == "2.0"
    assert h.incrementality == rt.FeedHeader.FULL_DATASET
    assert h.HasField("timestamp")
    assert time.time() - 60 < h.timestamp <= time.time() + 1, "header timestamp not recent, or in the future"
    ids = [e.id for e in msg.entity]
    assert len(ids) == len(set(ids)), "entity ids repeat"
    return h.timestamp


def test_trip_updates_follow_the_best_practices(server, feed):
    msg = parse(server, "/gtfs-rt/trip-updates")
    now = check_header(msg)
    all_tus = [e.trip_update for e in msg.entity]
    tus = {tu.vehicle.id: tu for tu in all_tus if tu.HasField("vehicle")}
    assert set(tus) == {"bus_K1E_03", "kb-2217"}  # the unknown line's bus is not predicted
    # (the trips starting within 30 min are predicted too, without a vehicle: at 07:00-08:10 in Pontianak)
    for tu in all_tus:
        trip = tu.trip
        assert trip.trip_id in feed.trips and trip.route_id == feed.trips[trip.trip_id].route_id
        datetime.strptime(trip.start_date, "%Y%m%d")
        assert tu.timestamp <= now
        static = {st.stop_sequence: st.stop_id for st in feed.stop_times[trip.trip_id]}
        seqs = [u.stop_sequence for u in tu.stop_time_update]
        assert seqs == sorted(set(seqs)) and seqs, "stop_time_updates out of order"
        for u in tu.stop_time_update:
            assert u.stop_id in feed.stops and static[u.stop_sequence] == u.stop_id
            for ev in (u.arrival, u.departure):
                if ev.HasField("time"):
                    assert ev.time >= now, "a prediction in the past"
                    assert ev.uncertainty >= 0
            if u.HasField("arrival") and u.HasField("departure"):
                assert u.departure.time >= u.arrival.time
    k1 = tus["bus_K1E_03"]
    assert [u.stop_id for u in k1.stop_time_update] == ["K1E_3", "K1E_4", "K1E_5"]
    assert all(u.arrival.HasField("delay") for u in k1.stop_time_update)  # timetabled: delays against the schedule
    k2 = tus["kb-2217"]
    assert k2.trip.trip_id == "K2S" and k2.trip.start_time  # frequency-based: the instance's start
    assert not any(u.arrival.HasField("delay") for u in k2.stop_time_update)  # exact_times=0: no delay
    first = k2.stop_time_update[0]
    assert first.stop_id == "K2S_2" and not first.HasField("arrival") and first.departure.time >= now  # at the stop


def test_vehicle_positions_follow_the_best_practices(server, feed):
    msg = parse(server, "/gtfs-rt/vehicle-positions")
    now = check_header(msg)
    vps = {e.vehicle.vehicle.id: e.vehicle for e in msg.entity}
    assert set(vps) == {"bus_K1E_03", "kb-2217", "x-1"}
    lats = [s.lat for s in feed.stops.values()]
    lons = [s.lon for s in feed.stops.values()]
    for vid in ("bus_K1E_03", "kb-2217"):
        vp = vps[vid]
        assert vp.trip.trip_id in feed.trips and vp.stop_id in feed.stops and vp.timestamp <= now
        assert min(lats) - 0.01 < vp.position.latitude < max(lats) + 0.01
        assert min(lons) - 0.01 < vp.position.longitude < max(lons) + 0.01
    assert vps["kb-2217"].current_status == rt.VehiclePosition.STOPPED_AT
    assert vps["bus_K1E_03"].current_status == rt.VehiclePosition.IN_TRANSIT_TO
    assert vps["bus_K1E_03"].current_stop_sequence == 3
    assert not vps["x-1"].HasField("trip")  # not matched to the feed: no invented trip


def test_alerts_from_the_incident_store(server, feed):
    msg = parse(server, "/gtfs-rt/alerts")
    now = check_header(msg)
    assert len(msg.entity) == 1  # the finished incident is not sent
    al = msg.entity[0].alert
    assert [ie.stop_id for ie in al.informed_entity] == ["K1E_3"]
    assert al.cause == rt.Alert.ACCIDENT and al.effect == rt.Alert.SIGNIFICANT_DELAYS
    assert al.severity_level == rt.Alert.SEVERE
    assert al.active_period[0].start <= now and not al.active_period[0].HasField("end")
    assert "A2_A3" in al.description_text.translation[0].text


def test_json_is_the_same_message(server):
    for path in ("/gtfs-rt/trip-updates", "/gtfs-rt/vehicle-positions", "/gtfs-rt/alerts"):
        status, doc = get_json(server, path + "?format=json")
        assert status == 200
        msg = json_format.ParseDict(doc, rt.FeedMessage())
        assert msg.header.gtfs_realtime_version == "2.0" and len(msg.entity) >= 1


def test_arrivals_are_predictions_when_vehicles_are_known(server):
    status, doc = get_json(server, "/stops/K1E_3/arrivals?limit=3")
    assert status == 200
    first = doc["arrivals"][0]
    assert first["source"] == "prediction" and first["vehicle_id"] == "bus_K1E_03"
    assert first["uncertainty_s"] > 0 and first["trip_id"] == "bus_K1E_03"
    assert datetime.fromisoformat(first["predicted_arrival"]) >= datetime.fromisoformat(doc["at"])
    # later trips: no vehicle yet (the schedule, or a prediction from the history when one starts within 30 min)
    assert all(a["vehicle_id"] is None for a in doc["arrivals"][1:])
    _, vehicles = get_json(server, "/vehicles?route_id=K2")
    assert [v["vehicle_id"] for v in vehicles["items"]] == ["kb-2217"]
    assert vehicles["items"][0]["at_stop"] and vehicles["items"][0]["next_stop_id"] == "K2S_2"
    status, head = get_json(server, "/routes/K2/headways")
    assert status == 200 and head["directions"][0]["vehicles"] == ["kb-2217"]
    assert head["directions"][0]["scheduled_headway_s"] == 720


def test_bad_requests_are_named(server):
    status, doc = get_json(server, "/gtfs-rt/trip-updates?format=xml")
    assert status == 422 and doc["detail"][0]["loc"] == ["query", "format"]
    status, doc = get_json(server, "/routes/K9/headways")
    assert status == 404 and "K9" in doc["detail"]
    status, doc = get_json(server, "/vehicles?route_id=K9")
    assert status == 404 and "K9" in doc["detail"]


def test_metrics_count_the_vehicle_source(server):
    status, body, _ = fetch(server, "/metrics")
    text = body.decode()
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("lintas_api_realtime") or line.startswith("lintas_api_vehicles")}
    assert status == 200
    assert values['lintas_api_realtime_messages_total{result="dropped"}'] >= 1  # the garbage frames published
    assert values['lintas_api_realtime_messages_total{result="taken"}'] >= 2
    assert values['lintas_api_vehicles{matched="true"}'] == 2 and values['lintas_api_vehicles{matched="false"}'] == 1

