"""``lintas bench --quick``: every quick bench, small sizes, seconds each, gated on ratios measured side by side
in the same run (never on absolute times: CI machines are shared and noisy) and on the bus dropping nothing.

A quick bench is a function returning rows ``{"bench", "name", "ratio" or "dropped", "floor", "figures"}``:
``ratio`` must be at least ``floor`` (e.g. a Numba kernel's speed over its NumPy reference's, measured one
after the other on the same inputs), ``dropped`` must be 0; ``figures`` are the absolute times, printed and
never gated. :data:`QUICK` lists them; one whose module is not there (a bench still on another branch) is
listed as absent, not failed.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable

import numpy as np

#: (name, "module:function") of every quick bench; kernels and bus live here, engine and loop in their benches
QUICK: tuple[tuple[str, str], ...] = (
    ("kernels", "benchmarks.quick:kernels"),
    ("bus", "benchmarks.quick:bus"),
    ("engine", "benchmarks.engine_bench:quick"),
    ("loop", "benchmarks.closed_loop:quick"),
)

#: a Numba kernel over its NumPy reference on 240 junctions; measured on the shared 2-core VM (2026-12-08):
#: adaptive ~470 x, maxpressure ~80 x, actuated ~12 x, fixed ~4 x. Floors well below, so that a real regression
#: (a kernel fallen back to Python, or one that lost its compiled loop) fails, not a noisy machine
KERNEL_FLOORS = {"adaptive": 10.0, "maxpressure": 5.0, "actuated": 3.0, "fixed": 1.5}


def _timed(fn: Callable[[], object], repeat: int) -> float:
    """The median wall time of ``fn()`` over ``repeat`` calls (s)."""
    out = []
    for _ in range(repeat):
        a = time.perf_counter()
        fn()
        out.append(time.perf_counter() - a)
    return statistics.median(out)


def kernels(junctions: int = 240, repeat: int = 15) -> list[dict]:
    """Each policy's Numba kernel against its NumPy reference on the same inputs (a tiled demo city, fused
    observations from random detector readings), interleaved: kernel, reference, kernel, ..."""
    from benchmarks.bus_bench import city
    from engine.fusion import Fusion
    from engine.policies import POLICIES, IntervalCode, get_policy, make_state, policy_net, seed_rng, warmup
    from engine.protocol import messages as m

    net = city(junctions)
    rng = np.random.default_rng(7)
    fusion = Fusion(net)
    for t in range(1, 31):
        fusion.update(m.DetectorBatch(source="quick", time=float(t), readings=[
            m.DetectorReading(detector=d, count=int(c), occupancy=float(o), halting=int(h))
            for d, c, o, h in zip(net.det_ids, rng.poisson(0.5, net.n_detectors).tolist(),
                                  (rng.random(net.n_detectors) * 0.4).tolist(),
                                  rng.poisson(1.0, net.n_detectors).tolist(), strict=True)]))
    obs = fusion.observations(30.0)
    n_j = net.n_junctions
    cur = net.jn_phase_ptr[:-1].astype(np.int32) + (np.arange(n_j) % np.diff(net.jn_phase_ptr)).astype(np.int32)
    state = make_state(cur, np.full(n_j, IntervalCode.GREEN, np.int8), rng.uniform(0, 60, n_j), np.ones(n_j, bool))
    pnet = policy_net(net)
    rows = []
    for name in KERNEL_FLOORS:
        if name not in POLICIES:
            continue
        pol = get_policy(name)
        warmup([name])
        params = pol.default_params()
        target = np.full(n_j, -1, np.int32)

        def call(fn, pol=pol, params=params, target=target):
            fn(30.0, pnet, state, obs, params, seed_rng(1, n_j), target)

        call(pol.kernel)
        call(pol.reference)
        k_s, r_s = [], []
        for _ in range(3):  # three interleaved rounds: a noisy moment hits both
            k_s.append(_timed(lambda pol=pol, call=call: call(pol.kernel), repeat))
            r_s.append(_timed(lambda pol=pol, call=call: call(pol.reference), max(3, repeat // 3)))
        k, r = statistics.median(k_s), statistics.median(r_s)
        rows.append({"bench": "kernels", "name": f"{name} kernel vs NumPy reference ({n_j} junctions)",
                     "ratio": r / k, "floor": KERNEL_FLOORS[name],
                     "figures": f"kernel {k * 1e3:.3f} ms, reference {r * 1e3:.3f} ms"})
    return rows


def bus(junctions: int = 100, procs: int = 2) -> list[dict]:
    """The bus bench at a small size: a few ticks at 1x and at 10x; every message must arrive."""
    from benchmarks import bus_bench

    doc = bus_bench.run(junctions, procs, (bus_bench.Load("1x", 1.0, 4), bus_bench.Load("10x", 0.1, 40)), warmup=2)
    rows = []
    for r in doc["rows"]:
        lat = r["latency_ms"]
        rows.append({"bench": "bus", "name": f"bus {r['load']}: messages dropped ({junctions} controllers, "
                                             f"{procs} processes, CURVE)",
                     "dropped": r["dropped"], "floor": 0,
                     "figures": f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms, "
                                f"{r['messages_per_s']:.0f} msg/s"})
    return rows


def _load(target: str) -> Callable[[], list[dict]] | None:
    mod, _, fn = target.partition(":")
    try:
        module = importlib.import_module(mod)
    except ModuleNotFoundError as exc:
        if exc.name == mod:
            return None
        raise
    return getattr(module, fn, None)


def run(only: list[str] | None = None, say=print) -> tuple[list[dict], bool]:
    """Run every quick bench (or those in ``only``); returns (rows, passed). A bench that raises is a failed
    row, never a skipped one."""
    rows: list[dict] = []
    for name, target in QUICK:
        if only and name not in only:
            continue
        fn = _load(target)
        if fn is None:
            say(f"{name}: not in this checkout ({target}); nothing to gate")
            continue
        a = time.perf_counter()
        try:
            got = fn()
        except Exception as exc:  # noqa: BLE001 - a bench that cannot run fails the gate, with its reason
            got = [{"bench": name, "name": f"{name}: did not run", "error": f"{type(exc).__name__}: {exc}"}]
        for r in got:
            r["passed"] = _passed(r)
            r["bench_s"] = round(time.perf_counter() - a, 1)
            say(line(r))
        rows += got
    return rows, all(r["passed"] for r in rows)


def _passed(r: dict) -> bool:
    if "error" in r:
        return False
    if "dropped" in r:
        return r["dropped"] <= r.get("floor", 0)
    return r.get("ratio") is not None and r["ratio"] >= r["floor"]


def line(r: dict) -> str:
    verdict = "PASSED" if r["passed"] else "FAILED"
    if "error" in r:
        return f"{verdict}  {r['name']}: {r['error']}"
    if "dropped" in r:
        gate = f"{r['dropped']} dropped (limit {r['floor']})"
    else:
        gate = f"{r['ratio']:.2f} x (floor {r['floor']:g} x)"
    return f"{verdict}  {r['name']}: {gate}; {r.get('figures', '')} [not gated]"


__all__ = ["QUICK", "bus", "kernels", "line", "run"]
