"""benchmarks/zoo.py and ``lintas bench zoo``: the table and the targets from kept runs (nothing simulated),
then one family at one level for one seed through the real command (real SUMO, shortened runs)."""

from __future__ import annotations

import json

from clirun import lintas

from benchmarks import zoo


def _rec(policy, seed, delay, **extra):
    return {"policy": policy, "seed": seed, "delay_s": delay, "collisions": 0, "never_inserted": 0, "tls": 4,
            **extra}


def _kept(tmp_path, runs: dict[tuple[str, str, str, int], dict]) -> None:
    cache = {zoo._key(f, lv, p, s, None): rec for (f, lv, p, s), rec in runs.items()}
    (tmp_path / "work").mkdir(parents=True, exist_ok=True)
    (tmp_path / "work" / "zoo-runs.json").write_text(json.dumps(cache))


def test_targets_from_kept_runs(tmp_path):
    runs = {}
    delays = {("near", 1): (20.0, 30.0, 32.0), ("near", 2): (22.0, 30.0, 28.0),
              ("over", 1): (60.0, 80.0, 90.0), ("over", 2): (85.0, 80.0, 90.0)}  # over seed 2: worse than actuated
    for (lv, s), (a, act, dly) in delays.items():
        runs[("grid2", lv, "adaptive", s)] = _rec("adaptive", s, a, faults=0, locks=0, lock_events=[])
        runs[("grid2", lv, "sumo-actuated", s)] = _rec("sumo-actuated", s, act, never_inserted=3 if lv == "over" else 0)
        runs[("grid2", lv, "sumo-delay", s)] = _rec("sumo-delay", s, dly)
    lock = {"junction": "B1", "lane": "A1B1_0", "since": 610.0, "at": 910.0, "until": None, "green_s": 120.0}
    runs[("grid2", "over", "adaptive", 2)].update(locks=1, lock_events=[lock])
    _kept(tmp_path, runs)

    doc = zoo.run(tmp_path, seeds=2, families=["grid2"], levels=["near", "over"], resume=True)
    s = doc["summary"]["adaptive"]
    near = s["rows"]["grid2-near"]
    assert near["delay_s"] == {"adaptive": 21.0, "sumo-actuated": 30.0, "sumo-delay": 30.0}
    assert abs(near["change_vs_better"] - (21 / 30 - 1)) < 1e-9
    assert near["worst_seed_vs_actuated"] == {"seed": 2, "delay": 22.0, "against": 30.0, "ratio": 22 / 30}
    over = s["rows"]["grid2-over"]
    assert over["worst_seed_vs_actuated"]["seed"] == 2 and over["locks"] == 1
    assert over["never_inserted"] == {"adaptive": 0, "sumo-actuated": 6, "sumo-delay": 0}
    t = s["targets"]
    assert not t["a"]["passed"] and [(e["scenario"], e["seed"]) for e in t["a"]["exceptions"]] == [("grid2-over", 2)]
    assert not t["b"]["passed"] and t["b"]["totals"] == {"locks": 1, "faults": 0, "collisions": 0}
    # zoo means over the 4 scenario-seeds: adaptive 46.75, actuated 55, delay-based 60 -> -15 %
    assert s["zoo_better"] == "sumo-actuated" and abs(s["zoo_change"] - (46.75 / 55 - 1)) < 1e-9
    assert not t["c"]["passed"]

    md_path, js_path = zoo.write(doc, tmp_path)
    md = md_path.read_text()
    assert ("| grid2 | near | 21.0 | 30.0 | 30.0 | -30% | seed 2: 0.73 (22.0 / 30.0) | 0 / – / – | 0 | 0 | 0 / 0 / 0 |"
            in md)
    assert ("| grid2 | over | 72.5 | 80.0 | 90.0 | -9% | seed 2: 1.06 (85.0 / 80.0) | 1 / – / – | 0 | 0 | 0 / 6 / 0 |"
            in md)
    assert "- (a) adaptive <= sumo-actuated and <= sumo-delay on every scenario, level and seed: **FAIL**" in md
    assert "  - grid2-over seed 2: adaptive 85.0 > sumo-actuated 80.0 (+6%)" in md
    assert "**FAIL** (locks 1, faults 0, collisions 0)" in md
    assert ("- grid2-over seed 2: 1 lock: junction B1, lane A1B1_0, standing since 610 s, detected at 910 s, until "
            "the end (still locked)") in md
    assert json.loads(js_path.read_text())["summary"]["adaptive"]["targets"]["c"]["passed"] is False


def test_bench_zoo_runs_through_the_command(tmp_path):
    out = tmp_path / "out"
    r = lintas("bench", "zoo", "--family", "grid2", "--level", "near", "--seeds", "1", "--end", "180",
               "--out", str(out), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((out / "zoo.json").read_text())
    assert {"benchmark", "seeds", "families", "levels", "policies", "baselines", "rates_vph", "scenarios", "failed",
            "summary", "machine", "time", "end"} <= set(doc)
    assert doc["failed"] == [] and doc["end"] == 180
    runs = doc["scenarios"]["grid2-near"]["runs"]
    assert sorted(r["policy"] for r in runs) == ["adaptive", "sumo-actuated", "sumo-delay"]
    assert all(r["seed"] == 1 and r["tls"] == 4 and r["delay_s"] > 0 for r in runs)
    assert set(doc["summary"]["adaptive"]["targets"]) == {"a", "b", "c"}
    assert "| grid2 | near |" in r.stdout and "## Targets (adaptive)" in r.stdout
    assert (out / "zoo.md").exists() and (out / "work" / "zoo-runs.json").exists()
    # a typo costs nothing: refused in one line before anything is written
    bad = lintas("bench", "zoo", "--family", "grid9", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "unknown family 'grid9'" in bad.stderr and not (tmp_path / "bad").exists()
