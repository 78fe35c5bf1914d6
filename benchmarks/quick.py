"""``lintas bench --quick``: every quick bench, small sizes, seconds each, gated on ratios measured side by side
in the same run (never on absolute times: CI machines are shared and noisy) and on the bus dropping nothing:
``lintas bench engine --quick`` (each Numba kernel against its NumPy reference, fusion, the batch's columns),
``lintas bench loop --quick`` (the closed loop against SUMO alone replaying its signals) and a small
``lintas bench bus`` (100 controllers, 1x and 10x load).

A quick bench is a function returning rows ``{"bench", "name", "ratio" or "dropped", "floor", "figures"}``:
``ratio`` must be at least ``floor`` (e.g. a Numba kernel's speed over its NumPy reference's, measured one
after the other on the same inputs), ``dropped`` must be 0; ``figures`` are the absolute times, printed and
never gated. :data:`QUICK` lists them; one whose module is not there (a bench still on another branch) is
listed as absent, not failed.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable

#: (name, "module:function") of every quick bench
QUICK: tuple[tuple[str, str], ...] = (
    ("engine", "benchmarks.quick:engine"),
    ("loop", "benchmarks.quick:loop"),
    ("bus", "benchmarks.quick:bus"),
)

#: floors of the same-run ratios the engine and loop benches report (their ``ratios``), first match wins.
#: Measured on the shared 2-core VM (2026-12-08, under load): adaptive kernel ~230 x its reference at 100
#: junctions, maxpressure ~22 x, fixed ~9 x, actuated ~7 x, random ~3 x, fusion kernels ~3.4 x, columnar batches
#: ~4.9 x the per-reading form; SUMO replaying with Lintas' detectors 0.25 x. The closed loop (inproc) against SUMO
#: alone: 0.069 x in a fresh-clone CI run and 0.078-0.091 x on the idle VM (2026-12-08): the quick window is the
#: demo's first 300 s, where SUMO alone has few vehicles to move and Lintas' fixed cost per step dominates
#: (docs/performance.md has the full windows). Floors well below, so that a real regression (a kernel fallen back
#: to Python, a loop twice as slow) fails, not a noisy machine. A ratio no pattern names is printed and not gated.
FLOORS: tuple[tuple[str, float], ...] = (
    (r"^adaptive kernel x reference", 20.0),
    (r"^maxpressure kernel x reference", 5.0),
    (r"kernel x reference", 1.5),
    (r"^fusion kernels x fusion reference", 1.5),
    (r"^columnar batch x per-reading batch", 1.5),
    (r"^closed loop .* x SUMO alone", 0.04),
    (r"replaying x SUMO alone", 0.12),
)


def ratio_rows(bench: str, doc: dict, floors=FLOORS) -> list[dict]:
    """A bench document's same-run ``ratios`` as gate rows, each with the floor of the first pattern naming it."""
    import re

    rows = []
    for name, ratio in doc.get("ratios", {}).items():
        floor = next((f for pat, f in floors if re.search(pat, name)), None)
        rows.append({"bench": bench, "name": name, "ratio": ratio, "floor": floor})
    if not rows:
        rows.append({"bench": bench, "name": f"{bench}: no ratio measured", "error": "the bench returned no ratios"})
    return rows


def engine() -> list[dict]:
    """``lintas bench engine --quick``: each kernel against its reference, fusion, the batch's columns."""
    from benchmarks import engine_bench

    return ratio_rows("engine", engine_bench.run(quick=True, write=False))


def loop() -> list[dict]:
    """``lintas bench loop --quick``: the closed loop against SUMO alone replaying its signals, same run."""
    from benchmarks import closed_loop

    return ratio_rows("loop", closed_loop.run(quick=True, write=False))


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
    if r.get("floor") is None:  # printed, not gated
        return True
    return r.get("ratio") is not None and r["ratio"] >= r["floor"]


def line(r: dict) -> str:
    verdict = "PASSED" if r["passed"] else "FAILED"
    if "error" in r:
        return f"{verdict}  {r['name']}: {r['error']}"
    if "dropped" in r:
        gate = f"{r['dropped']} dropped (limit {r['floor']})"
    elif r.get("floor") is None:
        return f"{'-':<6}  {r['name']}: {r['ratio']:.3g} x (no floor: not gated)"
    else:
        gate = f"{r['ratio']:.3g} x (floor {r['floor']:g} x)"
    figures = f"; {r['figures']} [not gated]" if r.get("figures") else ""
    return f"{verdict}  {r['name']}: {gate}{figures}"


__all__ = ["FLOORS", "QUICK", "bus", "engine", "line", "loop", "ratio_rows", "run"]
