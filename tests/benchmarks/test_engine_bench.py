"""benchmarks/engine_bench.py and benchmarks/cities.py: the tiled city is the generated grid repeated (fusion
gives every copy what it gives the original), and a short run of the bench measures every part it reports,
with kernels and references agreeing (speed is never asserted: docs/performance.md)."""

from __future__ import annotations

import numpy as np

from benchmarks import cities, engine_bench
from engine.fusion import Fusion
from engine.protocol import messages as m


def test_a_tiled_city_behaves_as_its_copies():
    base = cities.compiled(cities.grid_city(engine_bench.BASE_GRID))
    big = cities.tile(base, 3)
    assert (big.n_junctions, big.n_lanes, big.n_detectors) == (3 * base.n_junctions, 3 * base.n_lanes,
                                                               3 * base.n_detectors)
    assert len(set(big.det_ids)) == big.n_detectors and len(big.junction_index) == big.n_junctions
    fb, fs = Fusion(base), Fusion(big)
    rng = np.random.default_rng(2)
    n = base.n_detectors
    for t in range(20):
        cnt, occ = rng.poisson(3.0, n), rng.uniform(0, 1, n)
        halt = rng.binomial(cnt, 0.6)
        fb.update(m.detector_batch("t", t, cnt, occ, halt, index=np.arange(n), layout=fb.layout_digest))
        fs.update(m.detector_batch("t", t, np.tile(cnt, 3), np.tile(occ, 3), np.tile(halt, 3),
                                   index=np.arange(3 * n), layout=fs.layout_digest))
    ob, os_ = fb.observations(20.0), fs.observations(20.0)
    assert ob.queue.sum() > 0
    for a, b in zip(ob, os_):
        if a.ndim and a.shape[0] == base.n_lanes:
            assert np.array_equal(np.concatenate([a] * 3), b)


def test_a_short_engine_bench_measures_every_part_and_kernels_agree_with_references():
    doc = engine_bench.run(sizes=(100,), ticks=5, policies=("fixed", "adaptive"), write=False)
    (row,) = doc["rows"]
    assert row["junctions"] == 100 and row["detectors"] == 2400 and row["ticks"] == 2
    assert row["fusion_same_as_reference"] and all(p["same_targets"] for p in row["policies"].values())
    for key in ("decode_ms", "fusion_ms", "fusion_reference_ms", "columns_decode_take_ms",
                "readings_form_decode_take_ms"):
        assert row[key] > 0, key
    assert set(doc["ratios"]) >= {"fixed kernel x reference @100", "adaptive kernel x reference @100",
                                  "fusion kernels x fusion reference @100"}
    assert doc["machine"]["cores"] and row["bytes_per_junction"]["fusion"] > 0
