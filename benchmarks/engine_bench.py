"""The engine's tick at city scale: decoding the detector batch, fusion, and every policy's kernel, on
synthetic cities of 100, 1,000 and 10,000 junctions, one core; each policy's Numba kernel against its
NumPy/Python reference in the same run; memory per junction.

The cities: a generated 10 x 10 grid (``benchmarks/cities.py``: netgenerate, 2 lanes per approach, Lintas'
detectors: 24 per junction, 2 green phases, 16 movements), repeated side by side (``cities.tile``) to 1,000
and 10,000 junctions (240,000 detectors). Every tick one batch of every detector (seeded random readings:
Poisson counts, occupancies, halting vehicles) is encoded as the SUMO field sends it (``index`` columns),
then decoded, fused and given to each policy. Timings are medians over the ticks; the first ticks (Numba's
compilation, first touches) are left out.

    lintas bench engine [--size 100 --size 1000 --size 10000] [--ticks 30] [--quick]

Writes ``benchmarks/results/engine.json``. ``run(quick=True)`` (100 junctions, a few ticks) returns the same
document in seconds, with its same-run ratios under ``ratios`` (what ``lintas bench --quick`` gates).
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.runs import machine

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SIZES = (100, 1000, 10000)
BASE_GRID = 10  # the 10 x 10 grid every size repeats


def _batches(net, n_ticks: int, seed: int = 1) -> list[bytes]:
    """``n_ticks`` encoded batches of every detector, as the SUMO field sends them."""
    from engine.network import DET_AREA
    from engine.protocol import messages as m

    rng = np.random.default_rng(seed)
    n = net.n_detectors
    area = np.asarray(net.det_kind) == DET_AREA
    layout = m.detector_layout(net.det_ids)
    index = np.arange(n, dtype=np.int32)
    out = []
    for k in range(n_ticks):
        count = rng.poisson(np.where(area, 4.0, 0.4))
        occ = np.where(area, rng.uniform(0, 0.6, n), np.minimum(count * rng.uniform(0.1, 0.5, n), 1.0))
        halt = np.where(area, rng.binomial(count, 0.5), 0)
        out.append(m.encode(m.detector_batch("bench", float(k + 1), count, occ, halt, index=index, layout=layout)))
    return out


def _readings_batches(net, frames: list[bytes]) -> list[bytes]:
    """The same batches in the older form, one map per reading (for the side-by-side row)."""
    from engine.protocol import messages as m

    out = []
    for f in frames:
        b = m.decode(f)
        out.append(m.encode(m.DetectorBatch(source="bench", time=b.time, readings=m.batch_readings(b, net.det_ids))))
    return out


def _state(net, rng: np.random.Generator):
    from engine.policies import IntervalCode, JunctionState

    n_j = net.n_junctions
    cur = net.jn_phase_ptr[:-1].astype(np.int32) + rng.integers(0, 2, n_j).astype(np.int32)
    cur = np.minimum(cur, net.jn_phase_ptr[1:].astype(np.int32) - 1)
    return JunctionState(cur, np.full(n_j, IntervalCode.GREEN, dtype=np.int8), rng.uniform(0, 60, n_j),
                         np.ones(n_j, dtype=np.bool_))


def _nbytes(*objs) -> int:
    total = 0
    for o in objs:
        for v in (vars(o).values() if hasattr(o, "__dict__") else o):
            if isinstance(v, np.ndarray):
                total += v.nbytes
            elif isinstance(v, tuple):
                total += sum(a.nbytes for a in v if isinstance(a, np.ndarray))
    return total


def _median_ms(xs: list[float]) -> float:
    return round(1000.0 * statistics.median(xs), 4)


def bench_size(base, n_junctions: int, ticks: int, policies: tuple[str, ...], ref_ticks: int,
               old_form: bool) -> dict:
    """One city size: per-tick medians of decode, fusion and each policy's kernel and reference."""
    from dataclasses import fields

    from benchmarks.cities import tile
    from engine.fusion import Fusion
    from engine.policies import get_policy, new_target, policy_net, seed_rng
    from engine.protocol import messages as m

    net = tile(base, max(1, n_junctions // base.n_junctions))
    frames = _batches(net, ticks)
    fusion = Fusion(net)
    fusion_ref = Fusion(net, reference=True)  # the same batches through fusion's NumPy reference
    fuse_ref: list[float] = []
    fusion_same = True
    pnet = policy_net(net)
    rng = np.random.default_rng(7)
    decode, fuse = [], []
    kern: dict[str, list[float]] = {p: [] for p in policies}
    ref: dict[str, list[float]] = {p: [] for p in policies}
    agree: dict[str, bool] = dict.fromkeys(policies, True)
    skip = min(3, ticks - 1)
    gc.disable()
    try:
        for k, frame in enumerate(frames):
            t0 = time.perf_counter()
            batch = m.decode(frame)
            cols = m.batch_columns(batch)
            t1 = time.perf_counter()
            fusion.take(cols.index, cols.count, cols.occupancy, cols.halting, layout=cols.layout)
            fusion.integrate(batch.time, batch.interval)
            obs = fusion.observations(batch.time)
            t2 = time.perf_counter()
            if k >= skip:
                decode.append(t1 - t0)
                fuse.append(t2 - t1)
            if len(fuse_ref) < ref_ticks:
                for name in ("plan_rem", "plan_next", "mov_flow", "plan_time"):  # what the policies wrote last tick
                    getattr(fusion_ref.out, name)[:] = getattr(fusion.out, name)
                t3 = time.perf_counter()
                fusion_ref.take(cols.index, cols.count, cols.occupancy, cols.halting, layout=cols.layout)
                fusion_ref.integrate(batch.time, batch.interval)
                fusion_ref.observations(batch.time)
                t4 = time.perf_counter()
                if k >= skip:
                    fuse_ref.append(t4 - t3)
                fusion_same &= all(np.array_equal(a, b, equal_nan=True)
                                   for a, b in zip(fusion.out.observations(), fusion_ref.out.observations()))
            state = _state(net, rng)
            for name in policies:
                pol = get_policy(name)
                params = pol.default_params()
                out_k, out_r = new_target(net.n_junctions), new_target(net.n_junctions)
                r1, r2 = seed_rng(k, net.n_junctions), seed_rng(k, net.n_junctions)
                ta = time.perf_counter()
                pol.kernel(float(batch.time), pnet, state, obs, params, r1, out_k)
                tb = time.perf_counter()
                if k >= skip:
                    kern[name].append(tb - ta)
                if k >= skip and len(ref[name]) < ref_ticks:
                    # the adaptive kernel writes the plan arrays it reads back: the reference gets the same
                    saved = [a.copy() for a in (fusion.out.plan_rem, fusion.out.plan_next, fusion.out.mov_flow)]
                    tc = time.perf_counter()
                    pol.reference(float(batch.time), pnet, state, obs, params, r2, out_r)
                    td = time.perf_counter()
                    ref[name].append(td - tc)
                    agree[name] &= bool(np.array_equal(out_k, out_r))
                    del saved
    finally:
        gc.enable()
    row = {
        "junctions": net.n_junctions, "lanes": net.n_lanes, "movements": net.n_movements, "phases": net.n_phases,
        "detectors": net.n_detectors, "ticks": len(decode),
        "decode_ms": _median_ms(decode), "fusion_ms": _median_ms(fuse), "fusion_reference_ms": _median_ms(fuse_ref),
        "fusion_x_reference": round(statistics.median(fuse_ref) / statistics.median(fuse), 1),
        "fusion_same_as_reference": fusion_same, "policies": {},
    }
    for name in policies:
        kk, rr = statistics.median(kern[name]), statistics.median(ref[name])
        row["policies"][name] = {"kernel_ms": _median_ms(kern[name]), "reference_ms": _median_ms(ref[name]),
                                 "reference_ticks": len(ref[name]), "x_reference": round(rr / kk, 1),
                                 "same_targets": agree[name],
                                 "tick_ms": round(row["decode_ms"] + row["fusion_ms"] + 1000.0 * kk, 4)}
    if old_form:  # the older per-reading form: decode and write into the fusion's arrays (no model step)
        olds = _readings_batches(net, frames)
        f2 = Fusion(net)
        take_cols, take_old = [], []
        for k, (frame, old) in enumerate(zip(frames, olds)):
            for src, acc in ((frame, take_cols), (old, take_old)):
                t0 = time.perf_counter()
                b = m.decode(src)
                c = m.batch_columns(b)
                f2.take(c.index if c.index is not None else f2._indices(b.source, c.detectors), c.count, c.occupancy,
                        c.halting, layout=c.layout if c.index is not None else None)
                t1 = time.perf_counter()
                if k >= skip:
                    acc.append(t1 - t0)
        row["columns_decode_take_ms"] = _median_ms(take_cols)
        row["readings_form_decode_take_ms"] = _median_ms(take_old)
        row["columns_x_readings_form"] = round(statistics.median(take_old) / statistics.median(take_cols), 1)
    lay = fusion.layout
    fusion_bytes = _nbytes(fusion.sensors, fusion.lanes, fusion.out) + sum(
        getattr(lay, f.name).nbytes for f in fields(lay) if isinstance(getattr(lay, f.name), np.ndarray))
    policy_bytes = sum(a.nbytes for a in pnet if isinstance(a, np.ndarray))
    row["bytes_per_junction"] = {"fusion": round(fusion_bytes / net.n_junctions),
                                 "policy_net": round(policy_bytes / net.n_junctions),
                                 "batch_frame": round(len(frames[0]) / net.n_junctions)}
    return row


def run(sizes=SIZES, ticks: int = 30, policies: tuple[str, ...] | None = None, quick: bool = False,
        write: bool = True) -> dict:
    """Every size, every policy; ``quick``: 100 junctions, 8 ticks (seconds). Returns the document."""
    from benchmarks import cities
    from engine.policies import POLICIES, warmup

    pols = tuple(policies or POLICIES)
    if quick:
        sizes, ticks = (100,), 8
    warmup(pols)
    base = cities.compiled(cities.grid_city(BASE_GRID))
    rows = []
    for n in sizes:
        ref_ticks = ticks if n <= 1000 else max(3, ticks // 5)
        rows.append(bench_size(base, n, ticks, pols, ref_ticks, old_form=n <= 1000))
    ratios = {}
    for r in rows:
        for name, p in r["policies"].items():
            ratios[f"{name} kernel x reference @{r['junctions']}"] = p["x_reference"]
        ratios[f"fusion kernels x fusion reference @{r['junctions']}"] = r["fusion_x_reference"]
        if "columns_x_readings_form" in r:
            ratios[f"columnar batch x per-reading batch @{r['junctions']}"] = r["columns_x_readings_form"]
    doc = {"benchmark": "engine", "machine": machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "quick": quick, "ticks": ticks, "rows": rows, "ratios": ratios,
           "targets": {"policy_ms_at_10000": 1.0, "policy_x_reference_at_10000": 20.0,
                       "decode_fusion_policy_ms_at_10000": 5.0}}
    if write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / ("engine-quick.json" if quick else "engine.json")).write_text(json.dumps(doc, indent=2))
    return doc


def print_table(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=140)
    t = Table(title="engine tick, ms (median over ticks; one core; shared machine: noisy)")
    for c in ("junctions", "detectors", "decode", "fusion", "fusion ref", "policy", "kernel", "reference", "x ref",
              "same", "decode+fusion+policy", "decode: per-reading vs columns"):
        t.add_column(c, justify="right")
    for r in doc["rows"]:
        first = True
        for name, p in r["policies"].items():
            t.add_row(str(r["junctions"]) if first else "", str(r["detectors"]) if first else "",
                      f"{r['decode_ms']:.3f}" if first else "", f"{r['fusion_ms']:.3f}" if first else "",
                      (f"{r['fusion_reference_ms']:.3f}" + ("" if r["fusion_same_as_reference"] else " DIFFERS"))
                      if first else "", name,
                      f"{p['kernel_ms']:.3f}", f"{p['reference_ms']:.3f}", f"{p['x_reference']:.1f}",
                      "yes" if p["same_targets"] else "NO", f"{p['tick_ms']:.3f}",
                      f"{r['readings_form_decode_take_ms']:.2f} vs {r['columns_decode_take_ms']:.2f}"
                      if first and "readings_form_decode_take_ms" in r else "")
            first = False
    con.print(t)
    m = Table(title="memory per junction, bytes")
    for c in ("junctions", "fusion state + layout", "policy arrays", "batch frame"):
        m.add_column(c, justify="right")
    for r in doc["rows"]:
        b = r["bytes_per_junction"]
        m.add_row(str(r["junctions"]), str(b["fusion"]), str(b["policy_net"]), str(b["batch_frame"]))
    con.print(m)
