"""`lintas api` as a real uvicorn server on a free port, over the demo city's feed: /health, /stops (pages),
/stops/{id}, /stops/{id}/arrivals (scheduled, labelled so), /routes, /routes/{id}; 404 with a reason, 422 on bad
parameters; a broken feed refused at start with a named error."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from scenarios.bunda_kota import gtfs as demo

LINTAS = Path(sys.executable).with_name("lintas")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(base: str, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(base + path, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def base():
    port = _free_port()
    proc = subprocess.Popen([str(LINTAS), "api", "--gtfs", str(demo.GTFS_DIR), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"lintas api exited {proc.returncode}: {proc.stdout.read()}")
            try:
                if get(url, "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("lintas api did not answer /health in 30 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_health(base: str) -> None:
    assert get(base, "/health") == (200, {"status": "ok", "timezone": "Asia/Pontianak", "stops": 18, "routes": 2,
                                          "trips": 17})


def test_stops_paginate(base: str) -> None:
    status, first = get(base, "/stops?limit=5")
    assert status == 200 and (first["total"], first["limit"], first["offset"]) == (18, 5, 0)
    assert [s["stop_id"] for s in first["items"]] == ["K1E_1", "K1E_2", "K1E_3", "K1E_4", "K1E_5"]
    _, last = get(base, "/stops?limit=5&offset=15")
    assert [s["stop_id"] for s in last["items"]] == ["K2S_2", "K2S_3", "K2S_4"]
    _, whole = get(base, "/stops")
    assert len(whole["items"]) == 18
    assert get(base, "/stops?offset=100")[1]["items"] == []


def test_one_stop(base: str) -> None:
    status, stop = get(base, "/stops/K1E_2")
    assert status == 200
    assert (stop["name"], stop["routes"], stop["lat"], stop["lon"]) == ("Pasar Lama", ["K1"], -0.030072, 109.331354)


def test_arrivals_are_the_schedule_and_say_so(base: str) -> None:
    status, body = get(base, "/stops/K1E_2/arrivals?at=2026-03-02T07:20:00&limit=3")
    assert status == 200
    assert (body["stop_id"], body["timezone"], body["at"]) == ("K1E_2", "Asia/Pontianak", "2026-03-02T07:20:00+07:00")
    timetable = json.loads(demo.TIMETABLE_FILE.read_text())
    expected = sorted((demo.SIM_ZERO + c["arrival"], t["vehicle"]) for line in timetable["lines"]
                      for d in line["directions"] for t in d["trips"] for c in t["stops"]
                      if c["stop"] == "K1E_2" and demo.SIM_ZERO + c["arrival"] >= 7 * 3600 + 20 * 60)[:3]
    got = body["arrivals"]
    assert [a["trip_id"] for a in got] == [v for _t, v in expected]
    for a, (t, _v) in zip(got, expected, strict=True):
        assert a["scheduled_arrival"] == f"2026-03-02T{t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}+07:00"
        assert a["predicted_arrival"] == a["scheduled_arrival"]
        assert (a["delay_s"], a["uncertainty_s"], a["source"], a["headway_s"]) == (0, None, "schedule", None)
        assert (a["route_id"], a["route_short_name"], a["headsign"]) == ("K1", "K1", "Balai Kota")


def test_arrivals_on_headways_and_with_an_offset(base: str) -> None:
    # 08:20 in Jakarta/Pontianak is 01:20 UTC: the same instant asked in UTC
    _, local = get(base, "/stops/K2S_2/arrivals?at=2026-03-02T07:20:00&limit=2")
    _, utc = get(base, "/stops/K2S_2/arrivals?at=2026-03-02T00:20:00Z&limit=2")
    assert local["arrivals"] == utc["arrivals"]
    assert [(a["trip_id"], a["scheduled_arrival"], a["headway_s"]) for a in local["arrivals"]] == [
        ("K2S", "2026-03-02T07:28:20+07:00", 720), ("K2S", "2026-03-02T07:40:20+07:00", 720)]


def test_arrivals_default_to_now(base: str) -> None:
    status, body = get(base, "/stops/K1W_1/arrivals?limit=1")
    assert status == 200 and len(body["arrivals"]) == 1  # the service runs every day: there is always a next bus
    assert body["arrivals"][0]["scheduled_arrival"] >= body["at"][:19]


def test_routes(base: str) -> None:
    status, page = get(base, "/routes")
    assert status == 200 and [r["route_id"] for r in page["items"]] == ["K1", "K2"]
    _, k1 = get(base, "/routes/K1")
    assert [(d["direction_id"], d["headsign"], d["trips"], d["frequencies"]) for d in k1["directions"]] == [
        (0, "Balai Kota", 8, []), (1, "Terminal Barat", 7, [])]
    assert k1["directions"][0]["stops"] == ["K1E_1", "K1E_2", "K1E_3", "K1E_4", "K1E_5"]
    _, k2 = get(base, "/routes/K2")
    south = k2["directions"][0]
    assert south["frequencies"] == [{"trip_id": "K2S", "start_time": "07:03:40", "end_time": "08:03:40",
                                     "headway_s": 720, "exact_times": False}]


@pytest.mark.parametrize(("path", "reason"), [
    ("/stops/NOPE", "no stop with stop_id 'NOPE' in the feed"),
    ("/stops/NOPE/arrivals", "no stop with stop_id 'NOPE' in the feed"),
    ("/routes/K9", "no route with route_id 'K9' in the feed"),
])
def test_unknown_ids_are_404_with_a_reason(base: str, path: str, reason: str) -> None:
    assert get(base, path) == (404, {"detail": reason})


@pytest.mark.parametrize(("path", "param"), [
    ("/stops?limit=0", "limit"),
    ("/stops?limit=abc", "limit"),
    ("/stops?limit=5000", "limit"),
    ("/stops?offset=-1", "offset"),
    ("/routes?limit=0", "limit"),
    ("/stops/K1E_2/arrivals?at=yesterday", "at"),
    ("/stops/K1E_2/arrivals?at=2026-03-02T25:61:00", "at"),
    ("/stops/K1E_2/arrivals?limit=101", "limit"),
])
def test_bad_parameters_are_422_naming_the_parameter(base: str, path: str, param: str) -> None:
    status, body = get(base, path)
    assert status == 422
    assert [e["loc"] for e in body["detail"]] == [["query", param]]


def test_a_broken_feed_is_refused_at_start(tmp_path: Path) -> None:
    broken = tmp_path / "gtfs"
    shutil.copytree(demo.GTFS_DIR, broken)
    st = broken / "stop_times.txt"
    st.write_text(st.read_text().replace("07:02:10", "25:61:00", 1))
    res = subprocess.run([str(LINTAS), "api", "--gtfs", str(broken), "--port", str(_free_port())],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.startswith(f"lintas: error: --gtfs GTFS feed {broken}: 1 problem(s)")
    assert "stop_times.txt line 3, field arrival_time: bad time '25:61:00'" in res.stderr


def test_without_db_and_config_there_are_no_incidents_and_no_writes(base: str) -> None:
    assert get(base, "/incidents") == (503, {"detail": "this server keeps no incidents: start it with --db FILE"})
    req = urllib.request.Request(base + "/incidents", data=b"{}", method="POST",
                                 headers={"Authorization": "Bearer any-token-at-all-0123456789",
                                          "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 401
    assert json.loads(err.value.read())["detail"].startswith("this server takes no writes: it was started without "
                                                             "tokens")
