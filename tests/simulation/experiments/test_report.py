"""Tests of simulation.experiments.report: aggregation, Markdown numbers, files."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from simulation.experiments.report import (
    format_table,
    problems,
    resolve_baseline,
    summarize,
    table_markdown,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(policy: str, seed: int, delay: float, trip: float, wait: float, queue: float | None,
         thr: int, tele: int, coll: int, qj: dict[str, float] | None = None) -> dict:
    return {
        "policy": policy, "seed": seed, "delay_s": delay, "trip_duration_s": trip, "waiting_s": wait,
        "stops_per_veh": wait / 10, "queue_veh": queue, "throughput_veh": thr, "teleports": tele, "collisions": coll,
        "vehicles": 2015,
        "delay_by_arrival": [[25200.0, delay - 5], [25500.0, delay], [25800.0, delay + 5]],
        "queue_by_junction": qj if qj is not None else {"J1": queue, "J2": (queue or 0) * 2},
    }


@pytest.fixture()
def runs() -> list[dict]:
    return [
        _run("sumo-static", 1, 40.0, 60.0, 25.0, 4.0, 2000, 0, 0),
        _run("sumo-static", 2, 44.0, 64.0, 27.0, 6.0, 1996, 0, 0),
        _run("maxpressure", 1, 30.0, 50.0, 15.0, 2.0, 2001, 1, 0),
        _run("maxpressure", 2, 33.0, 52.0, 16.0, 3.0, 1999, 0, 2),
    ]


def _rows(md: str) -> dict[str, list[str]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    out = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        out[cells[0]] = cells
    return out


def test_summarize_means_std_and_change(runs: list[dict]) -> None:
    s = summarize(runs)
    assert s.baseline == "sumo-static"
    by = s.by_policy()
    assert [p.policy for p in s.policies] == ["sumo-static", "maxpressure"]
    assert by["sumo-static"].mean["delay_s"] == pytest.approx(42.0)
    assert by["sumo-static"].std["delay_s"] == pytest.approx(statistics.stdev([40.0, 44.0]))  # sample std
    assert by["maxpressure"].mean["delay_s"] == pytest.approx(31.5)
    assert by["maxpressure"].delay_change_pct == pytest.approx((31.5 - 42.0) / 42.0 * 100)  # -25 %
    assert by["sumo-static"].delay_change_pct == pytest.approx(0.0)


def test_table_markdown_numbers(runs: list[dict]) -> None:
    md = table_markdown(runs)
    header = [c.strip() for c in md.splitlines()[0].strip("|").split("|")]
    assert header == ["Policy", "Seeds", "Delay (s)", "Trip duration (s)", "Waiting (s)", "Stops (per veh)",
                      "Queue (veh)", "Throughput (veh)", "Teleports", "Collisions", "Never inserted", "Faults",
                      "Locks", "Delay vs sumo-static"]
    rows = _rows(md)
    static, mp = rows["sumo-static"], rows["maxpressure"]
    assert static[1] == "2"
    assert static[2] == "42.0 ± 2.8"  # stdev(40, 44) = 2.83
    assert static[3] == "62.0 ± 2.8"
    assert static[4] == "26.0 ± 1.4"
    assert static[5] == "2.60 ± 0.14"  # stops: 2.5, 2.7
    assert static[6] == "5.00 ± 1.41"
    assert static[7] == "1998.0 ± 2.8"
    assert static[8] == "0.0 ± 0.0"
    assert static[13] == "baseline"
    assert mp[2] == "31.5 ± 2.1"
    assert mp[5] == "1.55 ± 0.07"
    assert mp[6] == "2.50 ± 0.71"
    assert mp[8] == "0.5 ± 0.7"
    assert mp[9] == "1.0 ± 1.4"
    assert mp[13] == "-25.0%"


def test_baseline_fallbacks(runs: list[dict]) -> None:
    assert resolve_baseline(["fixed", "maxpressure"]) == "fixed"
    assert resolve_baseline(["sumo-static", "fixed"]) == "sumo-static"
    assert resolve_baseline(["maxpressure"]) is None
    assert resolve_baseline(["maxpressure", "sumo-static"], "maxpressure") == "maxpressure"
    # explicit baseline
    rows = _rows(table_markdown(runs, baseline_policy="maxpressure"))
    assert rows["maxpressure"][13] == "baseline"
    assert rows["sumo-static"][13] == f"{(42.0 - 31.5) / 31.5 * 100:+.1f}%"
    # "fixed" is the net's program when sumo-static is absent; no baseline at all gives a dash
    fixed = [dict(r, policy="fixed") if r["policy"] == "sumo-static" else r for r in runs]
    assert "Delay vs fixed" in table_markdown(fixed)
    only = [r for r in runs if r["policy"] == "maxpressure"]
    assert _rows(table_markdown(only))["maxpressure"][13] == "–"


def test_missing_queue_and_single_seed() -> None:
    r = [_run("fixed", 1, 50.0, 70.0, 30.0, None, 1900, 0, 0, qj={}),
         _run("x", 1, 40.0, 60.0, 20.0, float("nan"), 1950, 0, 0, qj={})]
    rows = _rows(table_markdown(r))
    assert rows["fixed"][2] == "50.0"  # one seed: no std
    assert rows["fixed"][6] == "–"  # no queue samples
    assert rows["x"][13] == "-20.0%"


def test_format_table_matches_markdown(runs: list[dict]) -> None:
    from rich.console import Console

    table = format_table(runs)
    assert table.row_count == 2
    console = Console(width=250, record=True)
    console.print(table)
    text = console.export_text()
    assert "42.0 ± 2.8" in text and "-25.0%" in text and "baseline" in text


def test_write_report_files(runs: list[dict], tmp_path: Path) -> None:
    out = tmp_path / "rep"
    paths = write_report("cologne1", runs, out, extra={"sumo": "1.28.0", "seeds": [1, 2]})
    for key in ("markdown", "html", "delay_over_time", "queue_per_junction"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    assert paths["delay_over_time"] == out / "delay_over_time.png"
    assert paths["queue_per_junction"] == out / "queue_per_junction.png"
    for key in ("delay_over_time", "queue_per_junction"):
        data = paths[key].read_bytes()
        assert data[:8] == PNG_MAGIC and b"IEND" in data[-16:]
    md = paths["markdown"].read_text()
    assert md.startswith("# cologne1")
    assert table_markdown(runs) in md
    assert "](delay_over_time.png)" in md and "](queue_per_junction.png)" in md
    html = paths["html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert '<img src="delay_over_time.png"' in html and '<img src="queue_per_junction.png"' in html
    assert "42.0 ± 2.8" in html and "-25.0%" in html and "1.28.0" in html


def test_write_report_without_series(tmp_path: Path) -> None:
    r = [{"policy": "sumo-static", "seed": 1, "delay_s": 42.0, "trip_duration_s": 60.0, "waiting_s": 20.0,
          "queue_veh": math.nan, "throughput_veh": 2000, "teleports": 0, "collisions": 0, "vehicles": 2015}]
    paths = write_report("tiny", r, tmp_path)
    assert paths["delay_over_time"].read_bytes()[:8] == PNG_MAGIC
    assert paths["queue_per_junction"].read_bytes()[:8] == PNG_MAGIC


def test_each_lock_is_a_problem_line_and_a_red_cell(runs: list[dict], tmp_path: Path) -> None:
    ev = [{"junction": "J1", "lane": "a_0", "since": 120.0, "at": 420.0, "until": None, "green_s": 84.0},
          {"junction": "J2", "lane": "b_1", "since": 30.5, "at": 600.0, "until": 655.0, "green_s": 30.0}]
    locked = [*runs, dict(runs[0], policy="adaptive", seed=3, locks=2, lock_events=ev)]
    assert problems(locked)[-2:] == [
        "adaptive seed 3: lane a_0 of junction J1 locked from 120 s (no vehicle left for 300 s with 84 s of green)",
        "adaptive seed 3: lane b_1 of junction J2 locked from 30.5 s (no vehicle left for 300 s with 30 s of green);"
        " a vehicle left again at 655 s",
    ]
    assert not any("locked" in p for p in problems(runs))
    rows = _rows(table_markdown(locked))
    assert rows["adaptive"][12] == "2.0" and rows["sumo-static"][12] == "–"  # runs without the key: no figure
    html = write_report("x", locked, tmp_path)["html"].read_text()
    assert 'class="num bad">2.0</td>' in html and "lane a_0 of junction J1 locked from 120 s" in html
