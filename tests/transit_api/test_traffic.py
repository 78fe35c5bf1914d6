"""Traffic information (issue 18, section 5): road segments named from the net, travel time and congestion level
per segment from the detectors (free, slow, congested, blocked; unknown before enough data), texts for
variable-message signs; then `lintas api` as a real uvicorn server hearing a real ZeroMQ bus: /traffic/segments
(paginated, filtered, 404 with a reason, 422 naming the parameter), /traffic/signs with an incident the detector
wrote to a real SQLite file and a jam, malformed frames dropped without harm, every response with an OpenAPI
example, bad options refused with exit 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import zmq

from engine.protocol import bus
from engine.protocol import messages as m
from scenarios.bunda_kota import gtfs as demo
from tests.transit_api.streams import DEMO_NET, FREE, Lane, demo_network, stream
from transit_api.traffic import NetError, RoadLayout, TrafficService, read_net_edges, signs

LINTAS = Path(sys.executable).with_name("lintas")
JAM = "N1_A1"  # Jalan Cempaka into A1 (one lane, 279 m)
BLOCK = "A2_A1.L_1"


@pytest.fixture(scope="module")
def layout() -> RoadLayout:
    return RoadLayout.from_files(demo_network(), DEMO_NET)


def jam_lane(t: int, lane: str) -> Lane:
    """N1_A1_0: 12 vehicles in its zone, one over the stop line every 8 s (96 s through the zone); A2_A1.L_1
    blocked (4 standing, nobody leaving); every other lane a vehicle a second, none standing."""
    if lane == f"{JAM}_0":
        return Lane(out=1 if t % 8 == 0 else 0, count=12, halting=10, occ=0.8)
    if lane == BLOCK:
        return Lane(out=0, count=4, halting=4, occ=0.4)
    return FREE


def always_green(t: int, lane: str) -> bool:
    return True


def test_segments_are_the_approaches_named_from_the_net(layout) -> None:
    seg = layout.segments[layout.segment_index["A2_A1.L"]]
    assert seg.edges == ("A2_A1", "A2_A1.L")  # the lane split's .p node is no junction of its own
    assert (seg.name, seg.cross, seg.junction) == ("Jalan Raya Bunda", "Jalan Cempaka", "A1")
    assert seg.label == "Jl. Raya Bunda (Jl. Cempaka)"
    assert [layout.lane_ids[i] for i in seg.lanes] == ["A2_A1.L_0", "A2_A1.L_1", "A2_A1.L_2"]
    assert seg.length_m == pytest.approx(315.6 + 58.8, abs=1.0)
    assert len(layout.segments) == 48 and int(layout.watched.sum()) == 76
    bare = RoadLayout(layout.net)  # no net file: edge ids
    assert bare.segments[bare.segment_index["A2_A1.L"]].label == "A2_A1.L"


def test_a_file_that_is_not_a_net_is_refused_naming_it(tmp_path) -> None:
    bad = tmp_path / "routes.xml"
    bad.write_text("<routes><vehicle id='a'/></routes>")
    with pytest.raises(NetError, match=r"routes.xml: not a SUMO net file \(root element <routes>"):
        read_net_edges(bad)
    with pytest.raises(NetError, match=r"missing\.net\.xml: cannot read"):
        read_net_edges(tmp_path / "missing.net.xml")


def test_levels_travel_times_and_signs(layout) -> None:
    from transit_api.detect import IncidentDetector

    det = IncidentDetector(layout, None)
    svc = TrafficService(layout, None, detector=det)
    for msg in stream(layout.net, range(0, 150), jam_lane, always_green):
        svc.take(msg)
    assert {s.level for s in svc.snapshot.states} == {"unknown"}  # under 180 s of data
    for msg in stream(layout.net, range(150, 400), jam_lane, always_green):
        svc.take(msg)
    by = {s.segment.id: s for s in svc.snapshot.states}
    jam = by[JAM]
    seg = jam.segment
    speed = seg.length_m / seg.free_time_s  # the net's speed limit
    # Little's law: 12 vehicles / (1/8 per s) = 96 s through the 100 m zone, + the rest at the speed limit
    assert jam.travel_time_s == pytest.approx(96 + (seg.length_m - 100) / speed, abs=3)  # 22 or 23 left in 180 s
    assert jam.delay_s == pytest.approx(jam.travel_time_s - seg.free_time_s, abs=0.2)
    assert jam.level == "congested" and jam.outflow_vph == pytest.approx(450, abs=25)
    split = by["A2_A1.L"]  # one lane of three blocked (the detector), the other two flowing
    assert split.lanes_blocked == (BLOCK,) and split.level == "free"
    assert by["A0_A1.L"].level == "free" and by["A0_A1.L"].delay_s == pytest.approx(0, abs=3)
    assert sum(s.level == "free" for s in svc.snapshot.states) == 47

    incidents = [type("I", (), {"id": 1, "edges": (), "lanes": (BLOCK,), "cause": "UNKNOWN_CAUSE",
                                "source": "detector"})(),
                 type("I", (), {"id": 2, "edges": ("S1_A1",), "lanes": (), "cause": "ACCIDENT",
                                "source": "operator"})(),
                 type("I", (), {"id": 3, "edges": ("nowhere",), "lanes": (), "cause": "ACCIDENT",
                                "source": "operator"})()]
    texts = [(s.kind, s.incident_id, s.text) for s in signs(svc.snapshot.states, incidents, layout.lane_index, layout)]
    assert texts == [("incident", 1, "Jl. Raya Bunda (Jl. Cempaka): 1 lajur tertutup"),
                     ("incident", 2, "Jl. Cempaka (Jl. Raya Bunda): kecelakaan"),
                     ("jam", None, f"Jl. Cempaka (Jl. Raya Bunda) macet, +{-(-jam.delay_s // 60):.0f} menit")]

    # every lane of a segment blocked: the segment is blocked
    def all_blocked(t: int, lane: str) -> Lane:
        return Lane(out=0, count=5, halting=5, occ=0.5) if lane.startswith("A2_A1.L_") else FREE

    for msg in stream(layout.net, range(400, 700), all_blocked, always_green):
        svc.take(msg)
    by = {s.segment.id: s for s in svc.snapshot.states}
    assert by["A2_A1.L"].level == "blocked" and set(by["A2_A1.L"].lanes_blocked) == {
        "A2_A1.L_0", "A2_A1.L_1", "A2_A1.L_2"}


# ---------------------------------------------------------------- lintas api, a real server on a real bus

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def served(tmp_path_factory, layout):
    """`lintas api` hearing a bus on which 400 ticks of the jam were published, with two malformed frames."""
    tmp = tmp_path_factory.mktemp("traffic")
    ep = bus.endpoints("tcp")
    fwd = bus.Forwarder(ep).start()
    port = _free_port()
    err = (tmp / "api.err").open("w")
    proc = subprocess.Popen([str(LINTAS), "api", "--gtfs", str(demo.GTFS_DIR), "--db", str(tmp / "inc.db"),
                             "--network", str(demo_network()), "--net", str(DEMO_NET), "--bus-out", ep.bus_out,
                             "--sim-zero", "2026-03-02T07:00:00", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    ctx = zmq.Context()
    pub = bus.Publisher(ctx, ep)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp / "api.err").read_text()
            try:
                call(base, "/health")
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        time.sleep(1.0)  # the API's subscription reaches the forwarder
        assert call(base, "/traffic/segments?limit=1")[1]["items"][0]["level"] == "unknown"  # no data yet
        for i, msg in enumerate(stream(layout.net, range(0, 400), jam_lane, always_green, columnar=True)):
            pub.publish(m.TOPIC_DETECTORS if isinstance(msg, m.DetectorBatch) else m.TOPIC_STATE, msg)
            if i == 500:
                pub.publish_raw([m.TOPIC_DETECTORS, b"\xc1 not msgpack"])
                pub.publish_raw([m.TOPIC_STATE, m.encode(m.Heartbeat(sender="x"))])  # a message of another type
                short = m.detector_batch("bad", 0.0, [1, 2], [0.1, 0.2], index=[0, 1], layout="x")
                pub.publish(m.TOPIC_DETECTORS, m.DetectorBatch(source="bad", time=1e9, count=short.count,
                                                               index=short.index[:4], occupancy=short.occupancy))
                pub.publish(m.TOPIC_DETECTORS, short)  # another network's detector table
            if i % 50 == 0:
                time.sleep(0.005)
        deadline = time.monotonic() + 30
        while True:  # every batch published has reached the API (400 and the two bad ones), not only most of them
            page = call(base, "/traffic/segments?limit=1")[1]
            if (page["detector_time_s"] or 0) >= 390 and page["feed"]["batches"] >= 402:
                break
            assert time.monotonic() < deadline, f"the API did not take the stream: {page['feed']}"
            assert proc.poll() is None, (tmp / "api.err").read_text()
            time.sleep(0.1)
        yield base, tmp
    finally:
        pub.close()
        ctx.destroy(linger=0)
        proc.terminate()
        proc.wait(10)
        err.close()
        fwd.stop()


def test_segments_paginate_filter_and_say_404_and_422(served) -> None:
    base, _tmp = served
    status, page = call(base, "/traffic/segments?limit=5&offset=10")
    assert status == 200 and page["total"] == 48 and len(page["items"]) == 5 and page["offset"] == 10
    # what was published: 400 batches, a frame that is not MessagePack, two batches dropped (lengths that disagree,
    # another network's detector table), none silently
    feed = page["feed"]
    assert feed["batches"] == 402 and feed["batches_dropped"] == 2 and "layout x is not this network's" in feed[
        "last_drop"]
    assert feed["frames_dropped"] == 1 and feed["error"] is None and feed["incident_writes_failed"] == 0
    assert page["updated"].startswith("2026-03-02T07:0") and page["updated"].endswith("+07:00")
    _, rest = call(base, "/traffic/segments?limit=1000&offset=45")
    assert len(rest["items"]) == 3
    _, jams = call(base, "/traffic/segments?level=congested")
    assert [s["segment_id"] for s in jams["items"]] == [JAM] and jams["total"] == 1
    status, one = call(base, f"/traffic/segments/{JAM}")
    assert status == 200 and one["level"] == "congested" and one["label"] == "Jl. Cempaka (Jl. Raya Bunda)"
    assert one["travel_time_s"] == pytest.approx(96 + (one["length_m"] - 100) / (one["length_m"] / one["free_flow_s"]),
                                                 abs=3)
    status, body = call(base, "/traffic/segments/X9_X8")
    assert status == 404 and "no road segment 'X9_X8'" in body["detail"]
    for bad, loc in (("limit=0", ["query", "limit"]), ("offset=-1", ["query", "offset"]),
                     ("level=jammed", ["query", "level"]), ("limit=abc", ["query", "limit"])):
        status, body = call(base, f"/traffic/segments?{bad}")
        assert status == 422 and body["detail"][0]["loc"] == loc, bad


def test_signs_carry_the_detected_incident_and_the_jam(served) -> None:
    base, _tmp = served
    _, incs = call(base, "/incidents?limit=100")
    detected = [i for i in incs["items"] if i["source"] == "detector"]
    assert [(i["lanes"], i["severity"], i["end"]) for i in detected] == [([BLOCK], "SEVERE", None)]
    status, page = call(base, "/traffic/signs")
    assert status == 200
    texts = [(s["kind"], s["segment_id"], s["text"]) for s in page["items"]]
    assert texts[0] == ("incident", "A2_A1.L", "Jl. Raya Bunda (Jl. Cempaka): 1 lajur tertutup")
    assert texts[1][:2] == ("jam", JAM) and texts[1][2].startswith("Jl. Cempaka (Jl. Raya Bunda) macet, +")
    assert page["items"][0]["incident_id"] == detected[0]["id"] and page["total"] == 2
    _, one = call(base, "/traffic/signs?limit=1&offset=1")
    assert [s["segment_id"] for s in one["items"]] == [JAM]


def test_every_traffic_response_has_an_openapi_example(served) -> None:
    base, _tmp = served
    _, doc = call(base, "/openapi.json")
    paths = {p: v for p, v in doc["paths"].items() if p.startswith("/traffic")}
    assert set(paths) == {"/traffic/segments", "/traffic/segments/{segment_id}", "/traffic/signs"}
    for path, ops in paths.items():
        for code, resp in ops["get"]["responses"].items():
            assert "example" in resp["content"]["application/json"], (path, code)


def test_without_traffic_options_the_routes_say_503(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from transit_api.app import create_app
    from transit_api.gtfs import load_feed

    client = TestClient(create_app(load_feed(demo.GTFS_DIR)))
    for path in ("/traffic/segments", "/traffic/signs", "/traffic/segments/N1_A1"):
        r = client.get(path)
        assert r.status_code == 503 and "--network" in r.json()["detail"], path


@pytest.mark.parametrize(("args", "message"), [
    (["--network", "{net}", "--incident", "A0_A1.L_0@60:10m"], "--incident injects into the demo's simulation"),
    (["--network", "{bad}", "--bus-out", "tcp://127.0.0.1:5556"], "--network {bad}: not JSON"),
])
def test_bad_traffic_options_exit_2_naming_the_option(tmp_path, args, message) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    fill = {"net": str(demo_network()), "bad": str(bad)}
    argv = [a.format(**fill) for a in args]
    got = subprocess.run([str(LINTAS), "api", "--gtfs", str(demo.GTFS_DIR), *argv], capture_output=True, text=True,
                         timeout=60)
    assert got.returncode == 2 and message.format(**fill) in got.stderr, got.stderr
