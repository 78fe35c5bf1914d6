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
