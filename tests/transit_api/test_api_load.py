"""`lintas bench api` runs: it starts `lintas api`, drives it from a load generator in another process over
keep-alive connections, prints the figures and writes api_load.json with the machine. Speed is not asserted
(benchmarks/ measures it); only that the benchmark measures and every request was answered 200."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scenarios.bunda_kota import gtfs as demo
from transit_api.gtfs import load_feed

LINTAS = Path(sys.executable).with_name("lintas")


def test_the_load_benchmark_runs_and_writes_its_json(tmp_path) -> None:
    got = subprocess.run([str(LINTAS), "bench", "api", "--gtfs", str(demo.GTFS_DIR), "--rate", "100", "--duration",
                          "1", "--warmup", "0.2", "--connections", "4", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    assert "offered 100/s" in got.stdout and "p99" in got.stdout
    doc = json.loads((tmp_path / "api_load.json").read_text())
    (run,) = doc["runs"]
    assert run["mode"] == "open loop" and run["target_rate"] == 100 and run["errors"] == 0
    assert 80 <= run["requests"] <= 101 and run["rps"] > 0  # 100 a second were due over the measured second
    assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
    assert doc["machine"]["cores"] >= 1 and doc["endpoint"] == "GET /stops/{id}/arrivals"
    assert doc["stops"] == len(load_feed(demo.GTFS_DIR).stops)


def test_a_bad_rate_is_refused() -> None:
    got = subprocess.run([str(LINTAS), "bench", "api", "--rate", "-5"], capture_output=True, text=True, timeout=60)
    assert got.returncode == 2 and "--rate" in got.stderr


def test_the_arrivals_index_answers_as_a_scan_of_every_call() -> None:
    """Feed.arrivals answers from a per-stop index (for the load target); a scan of every call at the stop, service
    day by service day, is the reference, at random times around the calendar's edges and random limits."""
    import random
    from datetime import datetime, timedelta

    feed = load_feed(demo.GTFS_DIR)
    rng = random.Random(7)

    def scan(stop_id: str, at: datetime, limit: int) -> list[tuple]:
        found = []
        for k in range(-1, 2):
            day = at.astimezone(feed.timezone).date() + timedelta(days=k)
            zero = feed.service_day_start(day)
            for st in feed.calls.get(stop_id, ()):
                trip = feed.trips[st.trip_id]
                if feed.active(trip.service_id, day):
                    for arr, _dep, _h in feed._instances(st):
                        if zero + timedelta(seconds=arr) >= at:
                            found.append((zero + timedelta(seconds=arr), trip.trip_id, st.stop_sequence, day))
        return sorted(found)[:limit]

    stops = sorted(feed.stops)
    for _ in range(400):
        base = rng.choice([datetime(2026, 3, 2), datetime(2025, 12, 31, 12), datetime(2030, 12, 31, 12)])
        at = (base + timedelta(seconds=rng.uniform(-86400, 86400))).replace(tzinfo=feed.timezone)
        stop, limit = rng.choice(stops), rng.choice([1, 2, 10, 100])
        got = [(a.arrival, a.trip_id, a.stop_sequence, a.service_date) for a in feed.arrivals(stop, at, limit)]
        assert got == scan(stop, at, limit), (stop, at, limit)
