"""The training zoo (``simulation/proofs/training.py``: ten families of small SUMO scenarios, each at a light,
a near-capacity and an oversaturated demand) run by the policy under test and by SUMO's actuated and
delay-based controllers, side by side, with the targets of issue 14:

(a) on every scenario, every level and every seed the policy's delay is at most that of ``sumo-actuated`` and
    of ``sumo-delay`` (no exception);
(b) 0 locks, 0 faults, 0 collisions;
(c) its mean delay over the zoo at least 20 % below that of the better of the two SUMO controllers.

    lintas bench zoo [--seeds 5] [--level light --level near ...] [--family grid2 ...] [--policy adaptive]
                     [--jobs 2] [--resume] [--end T] [--out benchmarks/results]

Seed s writes the zoo's demand and random nets with seed s (``OUT/work/zoo/seed<s>/scenarios/``) and is SUMO's
seed for every run on them. Every run goes through the runner of ``lintas simulate`` (one fresh process per
run); finished runs are kept in ``OUT/work/zoo-runs.json`` as they finish, and ``--resume`` reuses them.
Writes ``zoo.md`` and ``zoo.json`` under the output folder. A failed target is a result, not an error.

:func:`calibrate` is how each family's near-capacity rate was chosen (docs/adaptive.md, "The training zoo").
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from benchmarks.runs import RunCache, code_version, lock_episodes, lock_text, machine, mean_sd, slim, worst_seed
from simulation.experiments.batch import run_specs
from simulation.experiments.runner import RunSpec
from simulation.proofs.training import END_S, FAMILIES, LEVELS, block_rates, family, generate_training

RESULTS = Path(__file__).resolve().parent / "results"
BASELINES = ("sumo-actuated", "sumo-delay")
POLICIES = ("adaptive",)
TARGET_CHANGE = -0.20  # (c): the zoo mean at least 20 % below the better SUMO controller


def _key(fam: str, level: str, policy: str, seed: int, end: float | None) -> str:
    return f"{fam}|{level}|{policy}|{seed}" + ("" if end is None else f"|end={end:g}")


def _names(families: Iterable[str] | None, levels: Iterable[str] | None) -> tuple[list[str], list[str]]:
    fams = [f.name for f in FAMILIES] if not families else [family(f).name for f in families]
    lvls = list(LEVELS) if not levels else list(dict.fromkeys(levels))
    for lv in lvls:
        if lv not in LEVELS:
            raise ValueError(f"not a demand level: '{lv}' (choose from: {', '.join(LEVELS)})")
    return fams, lvls


def run(out: Path, *, seeds: int = 5, families: Iterable[str] | None = None, levels: Iterable[str] | None = None,
        policies: Sequence[str] = POLICIES, jobs: int = 2, resume: bool = False, end: float | None = None,
        quiet: bool = True, say: Callable[[str], None] | None = None, executor: str = "local",
        scheduler: str | None = None) -> dict:
    """Every family x level x seed (1..``seeds``) with ``policies`` and the two SUMO baselines. ``end`` stops
    every run at that simulation time (a quick look; the zoo's runs end at 1500 s). Returns the document
    :func:`write` writes (the runs per scenario, the runs that failed, the summary and the targets)."""
    t0 = time.perf_counter()
    say = say or (lambda _msg: None)
    fams, lvls = _names(families, levels)
    pols = list(dict.fromkeys([*policies, *BASELINES]))
    out = Path(out)
    work = (out / "work" / "zoo").resolve()
    cache = RunCache(out / "work" / "zoo-runs.json", resume=resume)
    failed: list[str] = []
    reused = sum(_key(f, lv, p, s, end) in cache
                 for f in fams for lv in lvls for p in pols for s in range(1, seeds + 1))
    for seed in range(1, seeds + 1):
        todo = [(f, lv, p) for f in fams for lv in lvls for p in pols if _key(f, lv, p, seed, end) not in cache]
        if not todo:
            continue
        need_f = list(dict.fromkeys(f for f, _, _ in todo))
        need_l = [lv for lv in lvls if any(t[1] == lv for t in todo)]
        say(f"seed {seed}: writing {len(need_f) * len(need_l)} scenarios, then {len(todo)} runs")
        written = {(sc.family, sc.level): sc for sc in generate_training(
            work / f"seed{seed}" / "scenarios", seed=seed, families=need_f, levels=need_l, jobs=jobs)}
        specs = [RunSpec(written[(f, lv)].path, p, seed, work / f"seed{seed}", end=end) for f, lv, p in todo]
        meta = {id(sp): t for sp, t in zip(specs, todo, strict=True)}

        def done(sp: RunSpec, rec: dict, seed=seed, meta=meta, written=written) -> None:
            f, lv, p = meta[id(sp)]
            cache.put(_key(f, lv, p, seed, end), {**rec, "family": f, "level": lv, "tls": written[(f, lv)].tls})

        def error(sp: RunSpec, msg: str, seed=seed, meta=meta) -> None:
            f, lv, _p = meta[id(sp)]
            failed.append(f"{f}-{lv} (seed {seed}): {msg}")

        _recs, interrupted = run_specs(specs, jobs=jobs, quiet=quiet, on_error=error, on_done=done, executor=executor,
                                       scheduler=scheduler,
                                       label=lambda sp: f"{sp.scenario.parent.name} {sp.policy}/seed{sp.seed}")
        if interrupted:
            raise KeyboardInterrupt
    doc: dict = {
        "benchmark": "zoo", "seeds": seeds, "families": fams, "levels": lvls, "policies": list(policies),
        "baselines": list(BASELINES), "end": end if end is not None else END_S,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), "code": code_version(),
        "rates_vph": {f: {lv: block_rates(family(f), lv) for lv in lvls} for f in fams},
        "scenarios": {}, "failed": failed, "runs_reused": reused,
    }
    for f in fams:
        for lv in lvls:
            runs = [cache.get(_key(f, lv, p, s, end)) for p in pols for s in range(1, seeds + 1)]
            doc["scenarios"][f"{f}-{lv}"] = {"family": f, "level": lv, "runs": [r for r in runs if r is not None]}
    doc["summary"] = {p: summarize(doc, p) for p in policies if p not in BASELINES}
    doc["wall_s"] = round(time.perf_counter() - t0, 1)
    return doc


# ------------------------------------------------------------------------------------------------
# the figures and the targets
def _by(runs: list[dict], policy: str) -> dict[int, dict]:
    return {int(r["seed"]): r for r in runs if r.get("policy") == policy and r.get("delay_s") is not None}


def _total(runs: Iterable[dict], key: str) -> int | None:
    """The sum of ``key`` over the runs; None when no run records it."""
    vals = [r[key] for r in runs if r.get(key) is not None]
    return int(sum(int(v) for v in vals)) if vals else None


def summarize(doc: dict, policy: str = "adaptive") -> dict:
    """Per scenario: ``policy``'s mean delay, the baselines', its change against the better of the two, its
    worst seed against sumo-actuated and its locks, faults, collisions and vehicles never inserted; then the
    three targets, each with ``passed`` and what failed it."""
    rows: dict[str, dict] = {}
    exceptions: list[dict] = []
    triples: list[tuple[float, float, float]] = []  # (policy, actuated, delay-based) on the same scenario and seed
    mine_all: list[dict] = []
    for name, sc in doc["scenarios"].items():
        runs = sc["runs"]
        mine, act, dly = _by(runs, policy), _by(runs, BASELINES[0]), _by(runs, BASELINES[1])
        mine_runs = [r for r in runs if r.get("policy") == policy]
        mine_all += mine_runs
        means = {p: mean_sd(r["delay_s"] for r in d.values())[0] for p, d in ((policy, mine), (BASELINES[0], act),
                                                                                (BASELINES[1], dly))}
        better = min((means[b] for b in BASELINES if means[b] == means[b]), default=float("nan"))
        change = (means[policy] - better) / better if better == better and better > 0 else float("nan")
        rows[name] = {
            "family": sc["family"], "level": sc["level"], "seeds": sorted(mine), "delay_s": means,
            "change_vs_better": change, "worst_seed_vs_actuated": worst_seed(runs, policy, BASELINES[0]),
            "locks": _total(mine_runs, "locks"), "faults": _total(mine_runs, "faults"),
            "collisions": _total(mine_runs, "collisions"),
            "locks_by_policy": {p: _total([r for r in runs if r.get("policy") == p], "locks")
                                for p in (policy, *BASELINES)},
            "never_inserted": {p: _total([r for r in runs if r.get("policy") == p], "never_inserted")
                               for p in (policy, *BASELINES)},
            "tls": sorted({r["tls"] for r in runs if r.get("tls") is not None}),
        }
        for seed in range(1, doc["seeds"] + 1):
            m, a, d = mine.get(seed), act.get(seed), dly.get(seed)
            if m is None or a is None or d is None:
                missing = [p for p, x in ((policy, m), (BASELINES[0], a), (BASELINES[1], d)) if x is None]
                exceptions.append({"scenario": name, "seed": seed, "why": f"no run of {', '.join(missing)}"})
                continue
            triples.append((m["delay_s"], a["delay_s"], d["delay_s"]))
            worse = [(b, x["delay_s"]) for b, x in ((BASELINES[0], a), (BASELINES[1], d))
                     if m["delay_s"] > x["delay_s"]]
            if worse:
                exceptions.append({"scenario": name, "seed": seed, "delay_s": m["delay_s"],
                                   "why": "; ".join(f"{policy} {m['delay_s']:.1f} > {b} {v:.1f} "
                                                    f"({(m['delay_s'] - v) / v * 100:+.0f}%)" for b, v in worse)})
    zoo = {p: (sum(t[i] for t in triples) / len(triples) if triples else float("nan"))
           for i, p in enumerate((policy, *BASELINES))}
    better_p = min(BASELINES, key=lambda p: zoo[p] if zoo[p] == zoo[p] else math.inf)
    zoo_change = (zoo[policy] - zoo[better_p]) / zoo[better_p] if triples and zoo[better_p] > 0 else float("nan")
    per_scenario = [r["change_vs_better"] for r in rows.values() if r["change_vs_better"] == r["change_vs_better"]]
    totals = {k: _total(mine_all, k) for k in ("locks", "faults", "collisions")}
    return {
        "policy": policy, "rows": rows,
        "zoo_mean_s": zoo, "zoo_runs": len(triples), "zoo_better": better_p, "zoo_change": zoo_change,
        "mean_change_per_scenario": (sum(per_scenario) / len(per_scenario)) if per_scenario else float("nan"),
        "locks": lock_episodes(mine_all, policy),
        "targets": {
            "a": {"what": f"{policy} <= {BASELINES[0]} and <= {BASELINES[1]} on every scenario, level and seed",
                  "passed": bool(triples) and not exceptions, "exceptions": exceptions},
            "b": {"what": "0 locks, 0 faults, 0 collisions", "totals": totals,
                  "passed": bool(mine_all) and not any(totals.values()),
                  "locks_recorded": totals["locks"] is not None},
            "c": {"what": f"mean over the zoo at least {-TARGET_CHANGE:.0%} below the better SUMO controller",
                  "change": zoo_change, "passed": zoo_change == zoo_change and zoo_change <= TARGET_CHANGE},
        },
    }


def _f(x: float | None, fmt: str = ".1f") -> str:
    return "–" if x is None or x != x else f"{x:{fmt}}"


def _n(x: int | None) -> str:
    return "–" if x is None else str(x)


def markdown(doc: dict) -> str:
    end = doc.get("end", END_S)
    n = doc["seeds"]
    seeds = "seed 1" if n == 1 else f"seeds 1-{n}"
    out = [f"# The training zoo (RESCO delay, s; mean over {'1 seed' if n == 1 else f'{n} seeds'}; SUMO 1.28)", "",
           f"Families: {', '.join(doc['families'])}. Levels: {', '.join(doc['levels'])}. {seeds.capitalize()} "
           f"(seed s writes the demand and the random nets and is SUMO's seed). Runs end at {end:g} s"
           + (" (the zoo's runs end at 1500 s: these are shortened)." if end != END_S else ".")
           + f" Machine: {doc['machine'].get('node')} ({doc['machine'].get('cpus')} CPUs), Python "
           f"{doc['machine'].get('python')}, code {doc.get('code') or 'unknown'}, {doc['time']}, "
           f"{doc.get('wall_s', 0):.0f} s"
           + (f" ({doc['runs_reused']} runs kept from an earlier invocation, --resume)." if doc.get("runs_reused")
              else "."), ""]
    for policy, s in doc["summary"].items():
        b0, b1 = BASELINES
        out += [f"| family | level | {policy} | {b0} | {b1} | change against the better | worst seed against {b0} "
                f"| locks ({policy} / {b0} / {b1}) | faults | collisions | never inserted ({policy} / {b0} / {b1}) |",
                "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
        for row in s["rows"].values():
            d = row["delay_s"]
            w = row["worst_seed_vs_actuated"]
            worst = "–" if w is None else f"seed {w['seed']}: {w['ratio']:.2f} ({w['delay']:.1f} / {w['against']:.1f})"
            ni, lk = row["never_inserted"], row["locks_by_policy"]
            out.append(f"| {row['family']} | {row['level']} | {_f(d[policy])} | {_f(d[b0])} | {_f(d[b1])} | "
                       f"{_f(row['change_vs_better'] * 100, '+.0f')}% | {worst} | {_n(lk[policy])} / {_n(lk[b0])} / "
                       f"{_n(lk[b1])} | {_n(row['faults'])} | {_n(row['collisions'])} | {_n(ni[policy])} / "
                       f"{_n(ni[b0])} / {_n(ni[b1])} |")
        z = s["zoo_mean_s"]
        runs = f"{s['zoo_runs']} run{'s' if s['zoo_runs'] != 1 else ''} each"
        out.append(f"| **zoo mean** ({runs}) | | {_f(z[policy])} | {_f(z[b0])} | {_f(z[b1])} | "
                   f"{_f(s['zoo_change'] * 100, '+.0f')}% | | | | | |")
        out += ["", "Change: against the better of the two SUMO controllers' means on that row. Worst seed: the "
                f"seed on which {policy}'s delay is highest relative to {b0}'s on the same seed (ratio, then "
                f"{policy} / {b0}). Locks (lanes standing still through green for 300 s; SUMO's controllers are "
                f"watched alike), faults, collisions (of {policy}), vehicles never inserted: summed over the seeds. "
                f"Mean of the rows' changes: {_f(s['mean_change_per_scenario'] * 100, '+.1f')}%.", "",
                f"## Targets ({policy})", ""]
        t = s["targets"]
        ex = t["a"]["exceptions"]
        k = s["zoo_runs"] + sum("no run" in e["why"] for e in ex)
        out.append(f"- (a) {t['a']['what']}: **{'PASS' if t['a']['passed'] else 'FAIL'}** "
                   f"({len(ex)} exception{'s' if len(ex) != 1 else ''} in {k} scenario-seed{'s' if k != 1 else ''})")
        out += [f"  - {e['scenario']} seed {e['seed']}: {e['why']}" for e in ex]
        tot = t["b"]["totals"]
        locks = "locks " + (_n(tot["locks"]) if t["b"]["locks_recorded"] else "not recorded by the runner")
        out.append(f"- (b) {t['b']['what']}: **{'PASS' if t['b']['passed'] else 'FAIL'}** ({locks}, faults "
                   f"{_n(tot['faults'])}, collisions {_n(tot['collisions'])})")
        out.append(f"- (c) {t['c']['what']}: **{'PASS' if t['c']['passed'] else 'FAIL'}** ({policy} "
                   f"{_f(s['zoo_mean_s'][policy])} s, {s['zoo_better']} {_f(s['zoo_mean_s'][s['zoo_better']])} s: "
                   f"{_f(s['zoo_change'] * 100, '+.1f')}%)")
        out += ["", f"Locks of {policy} (per run: how many lanes stood still through green for 300 s, and the "
                "first of them; zoo.json lists every one):", ""]
        out += [f"- {lk}" for lk in (_lock_lines(doc, policy) or ["none"])]
        out.append("")
    out += ["## Runs that failed", ""]
    out += [f"- {m}" for m in doc["failed"]] or ["none"]
    out += ["", "## Demand (vehicles per hour over the net, per 5-minute block of the 20-minute window)", "",
            "| family | " + " | ".join(doc["levels"]) + " |", "|---|" + "---|" * len(doc["levels"])]
    for f, by_level in doc["rates_vph"].items():
        out.append(f"| {f} | " + " | ".join(" ".join(f"{r:g}" for r in by_level[lv]) for lv in doc["levels"]) + " |")
    return "\n".join(out) + "\n"


def _lock_lines(doc: dict, policy: str, first: int = 3) -> list[str]:
    """One line per run that locked: the number of episodes and the ``first`` ones (junction, lane, time)."""
    lines = []
    for name, sc in doc["scenarios"].items():
        by_seed: dict[int, list[dict]] = {}
        for ev in lock_episodes(sc["runs"], policy):
            by_seed.setdefault(ev["seed"], []).append(ev)
        for seed, evs in sorted(by_seed.items()):
            shown = "; ".join(lock_text(ev, seed=False) for ev in evs[:first])
            more = f"; and {len(evs) - first} more" if len(evs) > first else ""
            lines.append(f"{name} seed {seed}: {len(evs)} lock{'s' if len(evs) != 1 else ''}: {shown}{more}")
    return lines


def write(doc: dict, out: Path) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "zoo.md", out / "zoo.json"
    md.write_text(markdown(doc))
    doc = json.loads(json.dumps(doc, default=str))
    for sc in doc["scenarios"].values():
        sc["runs"] = [slim(r) for r in sc["runs"]]
    js.write_text(json.dumps(doc, indent=2))
    return md, js


# ------------------------------------------------------------------------------------------------
# how the near-capacity rates were chosen
def calibrate(out: Path, rates: dict[str, Sequence[float]], *, seeds: int = 2, policy: str = "sumo-actuated",
              jobs: int = 2) -> dict[str, dict[float, dict]]:
    """Each family (by name) at each constant rate (vehicles per hour over the net, the whole 20-minute window)
    run by ``policy`` over ``seeds`` seeds: ``{family: {rate: {delay_s, never_inserted, vehicles}}}`` (delay:
    the mean over the seeds; never inserted and vehicles: summed). A family's near-capacity rate is the highest
    at which every vehicle was inserted and the delay had started to rise steeply."""
    out = Path(out).resolve()
    specs, meta = [], []
    for seed in range(1, seeds + 1):
        fams = [replace(family(name), name=f"{name}_{r:g}", near_vph=float(r)) for name, rs in rates.items()
                for r in rs]
        for sc in generate_training(out / f"seed{seed}" / "scenarios", seed=seed, families=fams, levels=["near"],
                                    jobs=jobs):
            specs.append(RunSpec(sc.path, policy, seed, out / f"seed{seed}"))
            meta.append(sc)
    recs, interrupted = run_specs(specs, jobs=jobs, quiet=True)
    if interrupted:
        raise KeyboardInterrupt
    res: dict[str, dict[float, dict]] = {}
    for name, rs in rates.items():
        for r in rs:
            got = [(rec, sc) for rec, sc in zip(recs, meta, strict=True) if sc.family == f"{name}_{r:g}"]
            ok = [(rec, sc) for rec, sc in got if rec is not None]
            res.setdefault(name, {})[float(r)] = {
                "delay_s": mean_sd(rec["delay_s"] for rec, _ in ok)[0],
                "never_inserted": sum(int(rec["never_inserted"]) for rec, _ in ok),
                "vehicles": sum(sc.vehicles for _, sc in ok), "failed": len(got) - len(ok)}
    return res


def calibration_table(res: dict[str, dict[float, dict]]) -> str:
    lines = ["| family | veh/h | delay s | never inserted | vehicles |", "|---|---:|---:|---:|---:|"]
    for name, by_rate in res.items():
        for r, d in sorted(by_rate.items()):
            lines.append(f"| {name} | {r:g} | {_f(d['delay_s'])} | {d['never_inserted']} | {d['vehicles']}"
                         + (f" ({d['failed']} failed)" if d["failed"] else "") + " |")
    return "\n".join(lines) + "\n"
