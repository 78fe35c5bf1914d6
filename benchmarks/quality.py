"""Control quality: map x policy with mean and standard deviation over seeds, the change against
sumo-static, the sensor-failure table, waiting time, throughput and CO2 of adaptive against sumo-actuated,
and the worst case (per map, adaptive's worst seed against sumo-actuated and every lock of its runs, with
junction, lane and time). Every run goes through ``lintas simulate``'s runner (one fresh process per run).

    lintas bench quality [--seeds 5] [--other-seeds N] [--failure-seeds N] [--resume] [--map PATH ...]
                         [--out benchmarks/results]

Writes ``quality.md`` and ``quality.json`` under the output folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.runs import RunCache, lock_episodes, lock_text, machine, mean_sd, slim, worst_seed
from simulation.experiments.batch import simulate_runs
from simulation.experiments.catalog import DEMO, resco_maps
from simulation.experiments.policies import COMPARISON
from simulation.sumo.scenario import load_scenario

RESULTS = Path(__file__).resolve().parent / "results"
POLICIES = list(COMPARISON)
FAILURES = {"30% detectors dead": {"fail_detectors": 0.3}, "every camera dead": {"dead": "cameras"},
            "every loop dead": {"dead": "loops"}}
BEST_PUBLISHED = {"cologne1": 26.1, "cologne3": 24.0, "ingolstadt1": 20.9, "ingolstadt7": 31.2, "grid4x4": 32.9}
EMISSIONS = ["--device.emissions.probability", "1"]


def default_maps() -> list[Path]:
    """The RESCO maps present on this machine, then the demo city."""
    return [*resco_maps(), DEMO]


def _cache_key(name: str, label: str, policy: str, seed: int) -> str:
    return f"{name}|{label}|{policy}|{seed}"


def run(maps: list[Path], seeds: int, out: Path, *, policies=POLICIES, failures: bool = True, jobs: int = 2,
        flagship: str = "adaptive", other_seeds: int | None = None, failure_seeds: int | None = None,
        resume: bool = False, executor: str = "local", scheduler: str | None = None) -> dict:
    """Every map x policy over ``seeds`` seeds (``other_seeds`` for Lintas' simple policies fixed, actuated
    and maxpressure), the flagship under each sensor failure over ``failure_seeds``. Finished runs are
    kept in ``out/work/runs.json`` after each group; ``resume`` reuses them (same code assumed). ``executor``
    ``"dask"`` runs them on the Dask cluster at ``scheduler``. A run that failed is listed in ``doc["failed"]``."""
    other_seeds = seeds if other_seeds is None else other_seeds
    failure_seeds = seeds if failure_seeds is None else failure_seeds
    cache = RunCache(out / "work" / "runs.json", resume=resume)

    def runs_for(mp: Path, name: str, label: str, policy: str, n: int, **kw) -> list[dict]:
        keys = [_cache_key(name, label, policy, s) for s in range(1, n + 1)]
        if not all(k in cache for k in keys):
            work = (out / "work" / (name if label == "all" else f"{name}-{label[:8]}")).resolve()
            got, interrupted = simulate_runs(mp, [policy], n, out_dir=work, jobs=jobs, quiet=True,
                                             executor=executor, scheduler=scheduler,
                                             on_error=lambda msg: doc["failed"].append(f"{name} ({label}): {msg}"),
                                             **kw)
            if interrupted:
                raise KeyboardInterrupt
            for r in got:
                cache.put(_cache_key(name, label, policy, r["seed"]), r, save=False)
            cache.save()
        return [cache.runs[k] for k in keys if k in cache]

    doc: dict = {"benchmark": "quality", "seeds": seeds, "other_seeds": other_seeds, "failure_seeds": failure_seeds,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 "machine": machine(), "maps": {}, "failures": {}, "extra": {}, "failed": []}
    simple = {"fixed", "actuated", "maxpressure"}
    for mp in maps:
        name = load_scenario(mp).name
        runs: list[dict] = []
        for policy in policies:
            n = other_seeds if policy in simple else seeds
            runs += runs_for(mp, name, "all", policy, n, sumo_args=EMISSIONS)
        doc["maps"][name] = {"runs": runs, "worst_case": worst_case(runs, flagship)}
        if failures and flagship in policies and failure_seeds > 0:
            for label, kw in FAILURES.items():
                doc["failures"].setdefault(name, {})[label] = runs_for(mp, name, label, flagship, failure_seeds, **kw)
    return doc


def _by_policy(runs: list[dict], key: str) -> dict[str, tuple[float, float]]:
    pols: dict[str, list] = {}
    for r in runs:
        pols.setdefault(r["policy"], []).append(r.get(key))
    return {p: mean_sd(v) for p, v in pols.items()}


def worst_case(runs: list[dict], flagship: str = "adaptive", against: str = "sumo-actuated") -> dict:
    """The worst case of ``flagship`` on one map: its worst seed against ``against`` (same seed; ``{seed, delay,
    against, ratio}`` or None) and every lock episode of its runs (junction, lane, times)."""
    return {"against": against, "worst_seed": worst_seed(runs, flagship, against),
            "locks": lock_episodes(runs, flagship)}


def _worst_case_lines(doc: dict, flagship: str) -> list[str]:
    out = ["", f"## Worst case ({flagship})", "",
           "Per map, the seed on which " + flagship + " did worst against sumo-actuated (delay on the same seed), "
           "and every lock of its runs (a lane standing still through green for 300 s: junction, lane, time).", "",
           f"| map | worst seed | {flagship} s | sumo-actuated s | ratio | locks |", "|---|---:|---:|---:|---:|---|"]
    locks: list[str] = []
    for n, m in doc["maps"].items():
        wc = m.get("worst_case") or worst_case(m["runs"], flagship)
        w = wc.get("worst_seed")
        n_locks = len(wc.get("locks") or ())
        recorded = any("locks" in r for r in m["runs"] if r.get("policy") == flagship)
        lock_cell = str(n_locks) if recorded else "not recorded"
        if w is None:
            out.append(f"| {n} | – | – | – | – | {lock_cell} |")
        else:
            out.append(f"| {n} | {w['seed']} | {w['delay']:.1f} | {w['against']:.1f} | {w['ratio']:.2f} "
                       f"| {lock_cell} |")
        locks += [f"- {n}, {lock_text(ev)}" for ev in wc.get("locks") or ()]
    out += ["", *(locks or [f"No lock in any {flagship} run."])]
    return out


def markdown(doc: dict, flagship: str = "adaptive") -> str:
    out = [f"# Control quality (RESCO delay, s; mean ± std over {doc['seeds']} seeds; SUMO 1.28)", "",
           f"Seeds: {doc['seeds']} for {flagship} and the SUMO baselines, {doc.get('other_seeds', doc['seeds'])} for "
           f"fixed, actuated and maxpressure, {doc.get('failure_seeds', doc['seeds'])} per sensor failure. "
           f"Machine: {doc['machine'].get('node')} ({doc['machine'].get('cpus')} CPUs), "
           f"Python {doc['machine'].get('python')}, {doc['time']}.", ""]
    names = list(doc["maps"])
    pols = list(dict.fromkeys(r["policy"] for n in names for r in doc["maps"][n]["runs"]))
    out.append("| map | " + " | ".join(pols) + " | best published |")
    out.append("|---|" + "---:|" * (len(pols) + 1))
    for n in names:
        d = _by_policy(doc["maps"][n]["runs"], "delay_s")
        static = d.get("sumo-static", (float("nan"),))[0]
        cells = []
        for p in pols:
            mu, sd = d.get(p, (float("nan"), float("nan")))
            ch = f" ({(mu - static) / static * 100:+.0f}%)" if p != "sumo-static" and static == static else ""
            cells.append(f"{mu:.1f} ± {sd:.1f}{ch}")
        out.append(f"| {n} | " + " | ".join(cells) + f" | {BEST_PUBLISHED.get(n, '–')} |")
    out += ["", "Percentages: change against sumo-static (the net's program run by SUMO).", ""]
    out += [f"Every {flagship} run, summed over seeds (gridlock or a vehicle left waiting to enter would show here):",
            "", "| map | collisions | teleports | vehicles never inserted | worst delay of one vehicle, s |",
            "|---|---:|---:|---:|---:|"]
    for n in names:
        fl = [r for r in doc["maps"][n]["runs"] if r["policy"] == flagship]
        worst = max((float(r.get("delay_max_s") or 0.0) for r in fl), default=float("nan"))
        total = {k: sum(int(r.get(k) or 0) for r in fl) for k in ("collisions", "teleports", "never_inserted")}
        out.append(f"| {n} | {total['collisions']} | {total['teleports']} | {total['never_inserted']} | {worst:.0f} |")
    if doc["failures"]:
        out += ["", f"## Sensor failures ({flagship}, delay s, change against all sensors working)", "",
                "| map | all working (same seeds) | " + " | ".join(FAILURES) + " | sumo-actuated |",
                "|---|" + "---:|" * (len(FAILURES) + 2)]
        for n, fails in doc["failures"].items():
            d = _by_policy(doc["maps"][n]["runs"], "delay_s")
            seeds = {r["seed"] for label in fails for r in fails[label]}
            base = mean_sd([r["delay_s"] for r in doc["maps"][n]["runs"]
                        if r["policy"] == flagship and r["seed"] in seeds])[0]
            cells = [f"{base:.1f}"]
            for label in FAILURES:
                mu, sd = mean_sd([r["delay_s"] for r in fails.get(label, [])])
                cells.append(f"{mu:.1f} ± {sd:.1f} ({(mu - base) / base * 100:+.0f}%)")
            cells.append(f"{d.get('sumo-actuated', (float('nan'),))[0]:.1f}")
            out.append(f"| {n} | " + " | ".join(cells) + " |")
    out += ["", f"## {flagship} against sumo-actuated", "",
            "| map | waiting s (adaptive / actuated) | stops per vehicle | throughput veh | CO2 kg |",
            "|---|---:|---:|---:|---:|"]
    for n in names:
        runs = doc["maps"][n]["runs"]
        row = []
        for key, fmt in (("waiting_s", ".1f"), ("stops_per_veh", ".2f"), ("throughput_veh", ".1f"), ("co2_kg", ".1f")):
            d = _by_policy(runs, key)
            a, b = d.get(flagship, (float("nan"),))[0], d.get("sumo-actuated", (float("nan"),))[0]
            change = f" ({(a - b) / b * 100:+.0f}%)" if b == b and b else ""
            row.append(f"{a:{fmt}} / {b:{fmt}}{change}")
        out.append(f"| {n} | " + " | ".join(row) + " |")
    out += _worst_case_lines(doc, flagship)
    return "\n".join(out) + "\n"


def write(doc: dict, out: Path, flagship: str = "adaptive") -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md = out / "quality.md"
    js = out / "quality.json"
    md.write_text(markdown(doc, flagship))
    doc = json.loads(json.dumps(doc, default=str))
    for n in doc["maps"]:
        doc["maps"][n]["runs"] = [slim(r) for r in doc["maps"][n]["runs"]]
    for n in doc["failures"]:
        for label in doc["failures"][n]:
            doc["failures"][n][label] = [slim(r) for r in doc["failures"][n][label]]
    js.write_text(json.dumps(doc, indent=2))
    return md, js
