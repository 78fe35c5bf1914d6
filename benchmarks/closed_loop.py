"""Closed-loop speed: simulated steps per second of Lintas driving SUMO (maxpressure, the whole product
path over ZeroMQ) against SUMO alone on the same scenario, measured side by side in one run.

Each variant runs in its own fresh process (libsumo keeps state between runs in one process), one
after the other, so they share the machine's conditions. Prints a table with ratios and writes
``benchmarks/results/closed_loop.json``.

    lintas bench loop [SCENARIO] [--end SECONDS] [--repeat N]
"""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _sumo_alone(cfg: str, end: float, q) -> None:
    from simulation.sumo.tools import sumo_binary

    binary = sumo_binary()  # imports sumo first: it sets SUMO_HOME
    import libsumo

    libsumo.start([binary, "-c", cfg, "--seed", "1", "--time-to-teleport", "-1",
                   "--no-step-log", "true", "--no-warnings", "true", "--end", f"{end:g}"])
    t0 = time.perf_counter()
    begin = libsumo.simulation.getTime()
    steps = 0
    while libsumo.simulation.getTime() < end:
        libsumo.simulationStep()
        steps += 1
    wall = time.perf_counter() - t0
    libsumo.close()
    q.put({"steps": steps, "wall_s": wall, "begin": begin})


def _lintas(scenario: str, policy: str, transport: str, end: float, out: str, q) -> None:
    from simulation.experiments.runner import RunSpec, run_one

    spec = RunSpec(Path(scenario), policy, 1, Path(out), transport=transport, end=end)
    t0 = time.perf_counter()
    rec = run_one(spec)
    q.put({"steps": None, "wall_s": rec["wall_s"], "total_s": time.perf_counter() - t0, "delay_s": rec["delay_s"]})


def _in_fresh_process(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    res = q.get(timeout=3600)
    p.join()
    return res


def run(scenario: Path, end: float | None = None, repeat: int = 1, transports=("inproc",)) -> dict:
    from simulation.sumo.scenario import load_scenario

    scn = load_scenario(scenario)
    end = float(end) if end is not None else scn.end
    steps = int(end - scn.begin)
    out = RESULTS / "work"
    variants: dict[str, list[float]] = {}

    def add(name: str, wall: float) -> None:
        variants.setdefault(name, []).append(steps / wall)

    # warm the numba cache and the compiled net once, outside the measurement
    _in_fresh_process(_lintas, str(scenario), "maxpressure", "inproc", scn.begin + 10, str(out))
    for _ in range(repeat):
        add("sumo alone", _in_fresh_process(_sumo_alone, str(scn.sumocfg), end)["wall_s"])
        add("sumo + lintas detectors",
            _in_fresh_process(_lintas, str(scenario), "sumo-static", "inproc", end, str(out))["wall_s"])
        for tr in transports:
            add(f"closed loop maxpressure ({tr})",
                _in_fresh_process(_lintas, str(scenario), "maxpressure", tr, end, str(out))["wall_s"])
    base = statistics.median(variants["sumo alone"])
    rows = []
    for name, sps in variants.items():
        med = statistics.median(sps)
        rows.append({"variant": name, "steps_per_s": round(med, 1), "runs": len(sps),
                     "ratio_to_sumo_alone": round(med / base, 3),
                     "ms_per_step": round(1000.0 / med, 3)})
    doc = {
        "benchmark": "closed_loop",
        "scenario": scn.name,
        "junctions": None,
        "simulated_seconds": steps,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "cores": mp.cpu_count(), "node": platform.node()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "rows": rows,
    }
    from simulation.sumo.netcompile import compile_network

    doc["junctions"] = compile_network(scn).n_junctions
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "closed_loop.json").write_text(json.dumps(doc, indent=2))
    return doc


def print_table(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"closed loop vs SUMO alone: {doc['scenario']} ({doc['junctions']} signals, "
                    f"{doc['simulated_seconds']} simulated s)")
    for c in ("variant", "steps/s", "ms/step", "x SUMO alone"):
        t.add_column(c, justify="right" if c != "variant" else "left")
    for r in doc["rows"]:
        t.add_row(r["variant"], f"{r['steps_per_s']:.0f}", f"{r['ms_per_step']:.2f}", f"{r['ratio_to_sumo_alone']:.3f}")
    Console(width=120).print(t)
