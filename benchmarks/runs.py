"""What the quality and zoo benchmarks share: the finished runs they keep (and resume from), the mean and
standard deviation over seeds, the machine they ran on, and the worst-case view of one policy's runs (its
worst seed against another policy, its lock episodes)."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable
from pathlib import Path

__all__ = ["RunCache", "code_version", "lock_episodes", "lock_text", "machine", "mean_sd", "slim", "worst_seed"]

#: per-run series the runner returns that the benchmarks neither keep nor write
BULKY = ("delay_by_arrival", "queue_by_junction")


def mean_sd(vals: Iterable[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation of the values that are not None (nan, nan when none; sd 0 for one)."""
    xs = [v for v in vals if v is not None]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def slim(rec: dict) -> dict:
    """The run record without its per-bin series (what is kept and written)."""
    return {k: v for k, v in rec.items() if k not in BULKY}


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The machine's description for every benchmark's JSON: timings depend on it and on its load (the 1-minute
    load average when the figures were written)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"python": platform.python_version(), "node": platform.node(), "cpu": cpu_name(), "cpus": os.cpu_count(),
            "cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}", "load_1min": load}


def code_version() -> str | None:
    """The commit the figures were measured on, ``+ uncommitted changes`` when tracked files differ from it
    (None outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


class RunCache:
    """Finished runs by key, kept in a JSON file after each change (``put``), so that an interrupted bench
    loses nothing; ``resume`` reads the file (the same code is assumed), otherwise the bench starts empty."""

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = Path(path)
        self.runs: dict[str, dict] = json.loads(self.path.read_text()) if resume and self.path.exists() else {}

    def __contains__(self, key: str) -> bool:
        return key in self.runs

    def get(self, key: str) -> dict | None:
        return self.runs.get(key)

    def put(self, key: str, rec: dict, *, save: bool = True) -> None:
        self.runs[key] = slim(rec)
        if save:
            self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.runs, default=str))
        tmp.replace(self.path)


def worst_seed(runs: Iterable[dict], policy: str, against: str) -> dict | None:
    """The seed on which ``policy``'s delay is highest relative to ``against``'s on the same seed: ``{seed,
    delay, against, ratio}`` (None when no seed has both)."""
    by: dict[str, dict[int, float]] = {policy: {}, against: {}}
    for r in runs:
        if r.get("policy") in by and r.get("delay_s") is not None:
            by[r["policy"]][int(r["seed"])] = float(r["delay_s"])
    worst = None
    for seed in sorted(set(by[policy]) & set(by[against])):
        a, b = by[policy][seed], by[against][seed]
        ratio = a / b if b > 0 else math.inf
        if worst is None or ratio > worst["ratio"]:
            worst = {"seed": seed, "delay": a, "against": b, "ratio": ratio}
    return worst


def lock_episodes(runs: Iterable[dict], policy: str | None = None) -> list[dict]:
    """Every lock episode of the runs (of ``policy`` only, when given), each with the run's policy and seed:
    ``{policy, seed, junction, lane, since, at, until}`` (the runner's ``lock_events``; a record written before
    the runner kept them has none)."""
    out = []
    for r in runs:
        if policy is not None and r.get("policy") != policy:
            continue
        for ev in r.get("lock_events") or ():
            out.append({"policy": r.get("policy"), "seed": r.get("seed"), "junction": ev.get("junction"),
                        "lane": ev.get("lane"), "since": ev.get("since"), "at": ev.get("at"),
                        "until": ev.get("until")})
    return out


def lock_text(ev: dict, *, seed: bool = True) -> str:
    """One lock episode in words: (its seed,) junction, lane and time."""

    def t(x) -> str:
        return "-" if x is None else f"{float(x):.0f}"

    until = "the end (still locked)" if ev.get("until") is None else f"{t(ev['until'])} s"
    text = (f"junction {ev.get('junction')}, lane {ev.get('lane')}, standing since {t(ev.get('since'))} s, "
            f"detected at {t(ev.get('at'))} s, until {until}")
    return f"seed {ev.get('seed')}: {text}" if seed else text
