"""benchmarks/bus_bench.py and the quick gate (benchmarks/quick.py): the tiled city is the demo city's, copy by
copy; a small bus run over tcp with CURVE (the real forwarder, engine and controllers, separate processes) counts
every message and loses none; the gate fails on a ratio under its floor, a drop, or a bench that did not run.
Speed is never asserted here."""

from __future__ import annotations

import numpy as np
import pytest
from clirun import lintas

from benchmarks import bus_bench, quick
from engine.fusion import Fusion
from engine.policies import IntervalCode, get_policy, make_state, policy_net, seed_rng


@pytest.fixture(scope="module")
def demo_city():
    return bus_bench.city(12)


def test_the_tiled_city_is_the_demo_city_copy_by_copy(demo_city):
    base = demo_city
    net = bus_bench.tiled_network(base, 3)
    assert net.n_junctions == 36 and net.n_detectors == 3 * base.n_detectors
    assert len(set(net.det_ids)) == net.n_detectors and len({j.id for j in net.junctions}) == 36
    # the third copy: the same specs under new ids, every index pointing into its own copy
    j = 2 * base.n_junctions + 5
    assert net.junctions[j].id == f"d002_{base.junctions[5].id}"
    assert net.junctions[j].green_states == base.junctions[5].green_states
    p0, p1 = net.jn_phase_ptr[j], net.jn_phase_ptr[j + 1]
    assert p1 - p0 == base.jn_phase_ptr[6] - base.jn_phase_ptr[5]
    movs = net.phase_mov_idx[net.phase_mov_ptr[p0]:net.phase_mov_ptr[p1]]
    assert set(net.mov_junction[movs].tolist()) == {j}
    lanes = net.mov_in_lane[movs]
    assert set(net.lane_junction[lanes].tolist()) == {j}
    out = net.mov_out_lane[net.mov_out_lane >= 0]
    assert out.max() < net.n_lanes
    # the engine's arrays build, the kernel decides the same for each copy as for the base
    cut = bus_bench._first_junctions(net, 30)
    assert cut.n_junctions == 30 and cut.mov_out_lane.max() < cut.n_lanes
    Fusion(cut)
    pol = get_policy("maxpressure")
    local = []
    for n in (base, net):
        nj = n.n_junctions
        state = make_state(n.jn_phase_ptr[:-1], np.full(nj, IntervalCode.GREEN, np.int8), np.full(nj, 100.0),
                           np.ones(nj, bool))
        q = np.tile(np.arange(base.n_lanes, dtype=float), n.n_lanes // base.n_lanes)
        obs = Fusion(n).observations(0.0)._replace(queue=q)
        out = np.full(nj, -1, np.int32)
        pol.kernel(30.0, policy_net(n), state, obs, pol.default_params(), seed_rng(1, nj), out)
        local.append(np.where(out >= 0, out - n.jn_phase_ptr[:-1], -1))  # phase numbers within each junction
    assert (local[0] >= 0).any() and (local[1] == np.tile(local[0], 3)).all()


def test_a_small_bus_run_counts_every_message_and_loses_none():
    doc = bus_bench.run(12, 2, (bus_bench.Load("1x", 1.0, 2), bus_bench.Load("10x", 0.1, 10)), warmup=2)
    assert [r["load"] for r in doc["rows"]] == ["1x", "10x"]
    for r in doc["rows"]:
        assert r["dropped"] == 0, r["dropped_by_path"]
        assert r["words_not_sent"] == 0 and r["states_not_sent"] == 0
        assert r["latency_ms"]["samples"] == 12 * r["ticks"]
        assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
        assert r["messages_per_s"] > 0
    assert doc["curve"] and doc["controller_processes"] == 2 and doc["machine"]["cpus"]
    lines = "\n".join(bus_bench.table_lines(doc))
    assert "p99" in lines and "target no drops at 10x" in lines


def test_a_lost_word_or_state_is_a_dropped_message(demo_city):
    """The accounting: what a sender's socket took and its receiver never got is dropped, by path."""
    n, ticks = demo_city.n_junctions, 3
    words = np.full((n, ticks), 5.0)
    words[4, 1] = np.nan  # junction 4 never got the engine's word for the second tick
    results = {
        "engine": {"words": [n] * ticks, "batches": [1, 1, 0], "ticks": [1] * ticks, "states": [n, n - 2, n],
                   "step_ms": [1.0] * ticks, "fusion_ms": [1.0] * ticks},
        "controllers": [{"who": 0, "words": words.tolist(), "ticks": [n] * ticks, "states": [n] * ticks,
                         "refused": 0}],
    }
    pub = np.array([4.999, 4.998, 4.997])
    doc = bus_bench._document(demo_city, 1, "maxpressure", [("1x", 1.0)] * ticks, (bus_bench.Load("1x", 1.0, ticks),),
                              results, pub, pub + 0.001, 1.0)
    row = doc["rows"][0]
    assert row["dropped_by_path"] == {"batches": 1, "engine ticks": 0, "controller ticks": 0, "engine words": 1,
                                      "controller states": 2}
    assert row["dropped"] == 4 and row["latency_ms"]["samples"] == n * ticks - 1
    assert "dropped: batches 1, engine words 1, controller states 2" in "\n".join(bus_bench.table_lines(doc))


def test_the_gate_fails_on_a_low_ratio_a_drop_or_a_bench_that_did_not_run(monkeypatch):
    def good():
        return [{"bench": "a", "name": "kernel a", "ratio": 4.0, "floor": 2.0, "figures": "1 ms"},
                {"bench": "a", "name": "bus a", "dropped": 0, "floor": 0}]

    def slow():
        return [{"bench": "b", "name": "kernel b", "ratio": 1.1, "floor": 2.0}]

    def lossy():
        return [{"bench": "c", "name": "bus c", "dropped": 3, "floor": 0}]

    def broken():
        raise RuntimeError("the engine process failed")

    monkeypatch.setattr(quick, "QUICK", (("x", "somewhere:quick"),))
    for name, fn, ok in (("good", good, True), ("slow", slow, False), ("lossy", lossy, False),
                         ("broken", broken, False)):
        monkeypatch.setattr(quick, "_load", lambda _target, fn=fn: fn)
        said = []
        _rows, passed = quick.run(say=said.append)
        assert passed is ok, name
        assert said and all(line.startswith(("PASSED", "FAILED")) for line in said)
    assert "the engine process failed" in said[-1]
    # a bench whose module is not in the checkout is said, not failed
    monkeypatch.undo()
    monkeypatch.setattr(quick, "QUICK", (("gone", "benchmarks.no_such_bench:quick"),))
    said = []
    assert quick.run(say=said.append) == ([], True) and "not in this checkout" in said[0]


def test_the_engine_and_loop_ratios_get_their_floors():
    doc = {"ratios": {"adaptive kernel x reference @100": 230.0, "maxpressure kernel x reference @100": 4.0,
                      "closed loop adaptive (inproc) x SUMO alone @bunda_kota": 0.3, "something new @100": 0.01}}
    rows = {r["name"]: r for r in quick.ratio_rows("engine", doc)}
    assert [rows[n]["floor"] for n in doc["ratios"]] == [20.0, 5.0, 0.04, None]
    assert [quick._passed(rows[n]) for n in doc["ratios"]] == [True, False, True, True]
    assert "no floor: not gated" in quick.line({**rows["something new @100"], "passed": True})
    empty = quick.ratio_rows("loop", {"ratios": {}})
    assert len(empty) == 1 and not quick._passed(empty[0])  # a bench that measured nothing fails the gate


def test_bench_quick_names_an_unknown_bench():
    bad = lintas("bench", "--quick", "--only", "vision")
    assert bad.returncode == 2 and "--only: unknown quick bench 'vision' (choose from: engine, loop, bus)" in bad.stderr
