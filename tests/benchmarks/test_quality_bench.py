"""benchmarks/quality.py: the tables it writes, from runs kept by an earlier (interrupted) bench.
The runs here are written by the test, so nothing is simulated; the runner itself is tested in
test_closed_loop.py."""

from __future__ import annotations

import json

from benchmarks import quality
from simulation.experiments.catalog import DEMO


def _run(policy, seed, delay, **extra):
    return {"policy": policy, "seed": seed, "delay_s": delay, "waiting_s": delay / 2, "stops_per_veh": delay / 20,
            "throughput_veh": 100.0 + seed,
            "co2_kg": 10.0, "collisions": 0, **extra}


def test_resume_uses_kept_runs_and_writes_the_tables(tmp_path):
    cache = {}
    delays = {"sumo-static": 100.0, "sumo-actuated": 50.0, "adaptive": 40.0, "fixed": 100.0}
    for pol, d in delays.items():
        for s in (1, 2):
            cache[quality._cache_key("bunda_kota", "all", pol, s)] = _run(pol, s, d + s, teleports=0,
                                                                          never_inserted=s - 1, delay_max_s=200.0 + s)
    for label, d in zip(quality.FAILURES, (44.0, 60.0, 45.0)):
        cache[quality._cache_key("bunda_kota", label, "adaptive", 1)] = _run("adaptive", 1, d)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "runs.json").write_text(json.dumps(cache))

    doc = quality.run([DEMO], 2, tmp_path, policies=["sumo-static", "sumo-actuated", "fixed", "adaptive"],
                      other_seeds=2, failure_seeds=1, resume=True)
    md_path, js_path = quality.write(doc, tmp_path)
    md = md_path.read_text()
    # map x policy: mean ± sd over the seeds and the change against sumo-static
    assert "| bunda_kota | 101.5 ± 0.7 | 51.5 ± 0.7 (-49%) | 101.5 ± 0.7 (+0%) | 41.5 ± 0.7 (-59%) | – |" in md
    # failures against adaptive on the same seed (seed 1: 41.0)
    assert "| bunda_kota | 41.0 | 44.0 ± 0.0 (+7%) | 60.0 ± 0.0 (+46%) | 45.0 ± 0.0 (+10%) | 51.5 |" in md
    # adaptive's safety and service line: collisions, teleports, never inserted, worst single delay
    assert "| bunda_kota | 0 | 0 | 1 | 202 |" in md
    # waiting, stops, throughput, CO2 of adaptive against sumo-actuated
    assert "| bunda_kota | 20.8 / 25.8 (-19%) | 2.08 / 2.58 (-19%) | 101.5 / 101.5 (+0%) | 10.0 / 10.0 (+0%) |" in md
    assert json.loads(js_path.read_text())["maps"]["bunda_kota"]["runs"][0]["policy"] == "sumo-static"
    # the worst case: adaptive's worst seed against sumo-actuated (seed 2: 42 / 52 > 41 / 51), no lock recorded
    assert "| bunda_kota | 2 | 42.0 | 52.0 | 0.81 | not recorded |" in md


def test_worst_case_names_the_worst_seed_and_each_lock(tmp_path):
    lock = {"junction": "J7", "lane": "E3_1", "since": 1200.0, "at": 1500.0, "until": 1630.0, "green_s": 45.0}
    cache = {}
    for s, (a, act) in enumerate(((40.0, 50.0), (55.0, 50.0), (45.0, 60.0)), start=1):
        cache[quality._cache_key("bunda_kota", "all", "adaptive", s)] = _run(
            "adaptive", s, a, locks=int(s == 3), lock_events=[lock] if s == 3 else [])
        cache[quality._cache_key("bunda_kota", "all", "sumo-actuated", s)] = _run("sumo-actuated", s, act, locks=0,
                                                                                  lock_events=[])
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "runs.json").write_text(json.dumps(cache))
    doc = quality.run([DEMO], 3, tmp_path, policies=["sumo-actuated", "adaptive"], failures=False, resume=True)
    wc = doc["maps"]["bunda_kota"]["worst_case"]
    assert wc["worst_seed"] == {"seed": 2, "delay": 55.0, "against": 50.0, "ratio": 1.1}
    assert wc["locks"] == [{"policy": "adaptive", "seed": 3, "junction": "J7", "lane": "E3_1", "since": 1200.0,
                            "at": 1500.0, "until": 1630.0}]
    md_path, js_path = quality.write(doc, tmp_path)
    md = md_path.read_text()
    assert "| bunda_kota | 2 | 55.0 | 50.0 | 1.10 | 1 |" in md
    assert ("- bunda_kota, seed 3: junction J7, lane E3_1, standing since 1200 s, detected at 1500 s, until 1630 s"
            in md)
    assert json.loads(js_path.read_text())["maps"]["bunda_kota"]["worst_case"]["worst_seed"]["seed"] == 2
