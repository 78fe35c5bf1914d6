"""Control quality: map x policy with mean and standard deviation over seeds, the change against
sumo-static, the sensor-failure table, and waiting time, throughput and CO2 of adaptive against
sumo-actuated. Every run goes through ``lintas simulate``'s runner (one fresh process per run).

    lintas bench quality [--seeds 5] [--map PATH ...] [--out benchmarks/results]

Writes ``quality.md`` and ``quality.json`` under the output folder.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RESCO = REPO.parent / "shared" / "scenarios" / "resco"
MAPS = ["cologne1", "cologne3", "ingolstadt1", "ingolstadt7", "grid4x4"]
POLICIES = ["sumo-static", "sumo-actuated", "sumo-delay", "fixed", "actuated", "maxpressure", "adaptive"]
FAILURES = {"30% detectors dead": {"fail_detectors": 0.3}, "every camera dead": {"dead": "cameras"},
            "every loop dead": {"dead": "loops"}}
BEST_PUBLISHED = {"cologne1": 26.1, "cologne3": 24.0, "ingolstadt1": 20.9, "ingolstadt7": 31.2, "grid4x4": 32.9}
EMISSIONS = ["--device.emissions.probability", "1"]


def default_maps() -> list[Path]:
    maps = [RESCO / m for m in MAPS if (RESCO / m).exists()]
    return maps + [REPO / "scenarios" / "bunda_kota"]


def _ms(vals: list[float]) -> tuple[float, float]:
    vals = [v for v in vals if v is not None]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def run(maps: list[Path], seeds: int, out: Path, *, policies=POLICIES, failures: bool = True, jobs: int = 2,
        flagship: str = "adaptive") -> dict:
    from simulation.cli import simulate_runs
    from simulation.scenario import load_scenario

    doc: dict = {"benchmark": "quality", "seeds": seeds, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 "machine": {"python": platform.python_version(), "node": platform.node()},
                 "maps": {}, "failures": {}, "extra": {}}
    for mp in maps:
        name = load_scenario(mp).name
        runs, _ = simulate_runs(mp, list(policies), seeds, out_dir=(out / "work" / name).resolve(), jobs=jobs,
                                sumo_args=EMISSIONS, quiet=True)
        doc["maps"][name] = {"runs": runs}
        if failures and flagship in policies:
            for label, kw in FAILURES.items():
                fr, _ = simulate_runs(mp, [flagship], seeds, out_dir=(out / "work" / f"{name}-{label[:8]}").resolve(),
                                      jobs=jobs, quiet=True, **kw)
                doc["failures"].setdefault(name, {})[label] = fr
    return doc


def _by_policy(runs: list[dict], key: str) -> dict[str, tuple[float, float]]:
    pols: dict[str, list] = {}
    for r in runs:
        pols.setdefault(r["policy"], []).append(r.get(key))
    return {p: _ms(v) for p, v in pols.items()}


def markdown(doc: dict, flagship: str = "adaptive") -> str:
    out = [f"# Control quality (RESCO delay, s; mean ± std over {doc['seeds']} seeds; SUMO 1.28)", ""]
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
    coll = {n: sum(int(r.get("collisions") or 0) for r in doc["maps"][n]["runs"] if r["policy"] == flagship)
            for n in names}
    out.append(f"Collisions in {flagship} runs: " + ", ".join(f"{n} {c}" for n, c in coll.items()))
    if doc["failures"]:
        out += ["", f"## Sensor failures ({flagship}, delay s, change against all sensors working)", "",
                "| map | all working | " + " | ".join(FAILURES) + " | sumo-actuated |", "|---|" + "---:|" * (len(FAILURES) + 2)]
        for n, fails in doc["failures"].items():
            d = _by_policy(doc["maps"][n]["runs"], "delay_s")
            base = d.get(flagship, (float("nan"), 0))[0]
            cells = [f"{base:.1f}"]
            for label in FAILURES:
                mu, sd = _ms([r["delay_s"] for r in fails.get(label, [])])
                cells.append(f"{mu:.1f} ± {sd:.1f} ({(mu - base) / base * 100:+.0f}%)")
            cells.append(f"{d.get('sumo-actuated', (float('nan'),))[0]:.1f}")
            out.append(f"| {n} | " + " | ".join(cells) + " |")
    out += ["", f"## {flagship} against sumo-actuated", "",
            "| map | waiting s (adaptive / actuated) | throughput veh | CO2 kg |", "|---|---:|---:|---:|"]
    for n in names:
        runs = doc["maps"][n]["runs"]
        row = []
        for key in ("waiting_s", "throughput_veh", "co2_kg"):
            d = _by_policy(runs, key)
            a, b = d.get(flagship, (float("nan"),))[0], d.get("sumo-actuated", (float("nan"),))[0]
            row.append(f"{a:.1f} / {b:.1f} ({(a - b) / b * 100:+.0f}%)" if b == b and b else f"{a:.1f} / {b:.1f}")
        out.append(f"| {n} | " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"


def write(doc: dict, out: Path, flagship: str = "adaptive") -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md = out / "quality.md"
    js = out / "quality.json"
    md.write_text(markdown(doc, flagship))
    slim = json.loads(json.dumps(doc, default=str))
    for n in slim["maps"]:
        for r in slim["maps"][n]["runs"]:
            r.pop("delay_by_arrival", None)
            r.pop("queue_by_junction", None)
    for n in slim["failures"]:
        for label in slim["failures"][n]:
            for r in slim["failures"][n][label]:
                r.pop("delay_by_arrival", None)
                r.pop("queue_by_junction", None)
    js.write_text(json.dumps(slim, indent=2))
    return md, js
