"""The zoo check: every policy runs every scenario of the zoo (and SUMO's ``tools/game`` ones) safely to its end.

A check runs one policy on one scenario for a span: :func:`plan_runs` gives each (scenario, policy) a
:class:`ZooRun` (its folder, a ``SaveTLSStates`` additional file of its own, the ``lintas simulate``
arguments); the tests run those through the command line, :func:`run_zoo` / :func:`check_zoo` through the
library (a fresh process per run, as ``lintas simulate`` does). :func:`check_zoo_run` lists what went wrong,
from SUMO's own record: conflicting greens by SUMO's rules (``simulation.proofs.tlscheck``), yellows under
3 s of simulated time, malformed states, latched faults, collisions, a run that did not reach its end in
simulated seconds, a run that failed. :func:`check_fixed_vs_static` compares ``fixed`` with ``sumo-static``
where the programs SUMO runs are static and Lintas shows them unchanged (``zoo.static_reference``).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from simulation.experiments.policies import ALL_POLICIES, LINTAS_POLICIES, SUMO_POLICIES
from simulation.experiments.runner import TLS_STATES
from simulation.proofs.zoo import ZooScenario, programs_of, shortest_yellow, stage_game_scenarios, static_reference
from simulation.sumo.files import open_xml
from simulation.sumo.scenario import load_scenario

__all__ = [
    "SPAN",
    "ZooResult",
    "ZooRun",
    "check_fixed_vs_static",
    "check_zoo",
    "check_zoo_run",
    "compare_fixed",
    "error_summary",
    "plan_runs",
    "problem_table",
    "read_record",
    "run_zoo",
    "simulate_args",
]

#: simulated seconds each check run lasts from the scenario's begin (less where the scenario ends sooner)
SPAN = 300.0
#: fixed vs sumo-static: largest relative difference of the delay allowed
FIXED_TOLERANCE = 0.02
YELLOW_MIN = 3.0


@dataclass(frozen=True)
class ZooRun:
    """One policy on one scenario for a span. The runs of one scenario share its ``folder``: ``lintas simulate
    --save-tls-states`` writes each run's outputs and SUMO's record of the lights to
    ``folder/work/runs/<scenario>/<policy>-seed1/``, and all their figures to ``folder/runs.json``."""

    label: str  # group/name, unique in a zoo check
    scenario: Path  # the .sumocfg
    name: str  # the scenario's name (the cfg's stem)
    policy: str
    folder: Path  # everything of this scenario's runs
    begin: float
    end: float  # the simulated time the run must reach
    static_reference: bool  # fixed must match sumo-static here

    @property
    def work_dir(self) -> Path:
        return self.folder / "work"

    @property
    def json_file(self) -> Path:
        return self.folder / "runs.json"

    @property
    def run_dir(self) -> Path:
        return self.work_dir / "runs" / self.name / f"{self.policy}-seed1"

    @property
    def states_xml(self) -> Path:
        return self.run_dir / TLS_STATES

    @property
    def statistics_xml(self) -> Path:
        return self.run_dir / "statistics.xml"


def simulate_args(runs: Sequence[ZooRun], jobs: int = 2) -> list[str]:
    """The arguments of one ``lintas simulate`` for the runs of one scenario (seed 1, SUMO's record kept);
    its folder is emptied first."""
    first = runs[0]
    if first.folder.exists():
        shutil.rmtree(first.folder)
    first.folder.mkdir(parents=True)
    return ["simulate", str(first.scenario), *(a for r in runs for a in ("-p", r.policy)), "--jobs", str(jobs),
            "--end", f"{first.end:g}", "--work-dir", str(first.work_dir), "--json", str(first.json_file),
            "--save-tls-states", "-q"]


def plan_runs(scenarios: Iterable[tuple[str, Path]], policies: Sequence[str], out_dir: Path, *,
              span: float = SPAN) -> list[ZooRun]:
    """The runs of a zoo check: every policy on every (label, .sumocfg), for ``span`` simulated seconds from
    the scenario's begin (to its end where that comes sooner). Each scenario's folder is ``out_dir/<label>/``."""
    for p in policies:
        if p not in ALL_POLICIES:
            raise ValueError(f"unknown policy '{p}' (choose from: {', '.join(ALL_POLICIES)})")
    runs: list[ZooRun] = []
    for label, cfg in scenarios:
        scn = load_scenario(cfg, check=False)
        ref, _why = static_reference(scn)
        end = min(scn.end, scn.begin + span)
        for p in policies:
            runs.append(ZooRun(label, scn.sumocfg, scn.name, p, Path(out_dir) / label, scn.begin, end, ref))
    return runs


def read_record(json_file: Path, policy: str) -> dict[str, Any] | None:
    """The run of ``policy`` (seed 1) in a ``lintas simulate --json`` file, or None."""
    if not Path(json_file).is_file():
        return None
    doc = json.loads(Path(json_file).read_text())
    for r in doc.get("runs", []):
        if r.get("policy") == policy and r.get("seed", 1) == 1:
            return r
    return None


def _statistics_end(statistics_xml: Path) -> float | None:
    """The simulated time SUMO's run ended at (``<performance end=...>`` of its statistics output)."""
    try:
        with open_xml(statistics_xml) as fh:
            perf = ET.parse(fh).getroot().find("performance")
    except (OSError, ET.ParseError):
        return None
    if perf is None or perf.get("end") is None:
        return None
    return float(perf.get("end", "nan"))


def _step_of(states: dict[str, list[tuple[float, str]]]) -> float:
    ts = sorted({t for recs in states.values() for t, _s in recs})
    gaps = [b - a for a, b in pairwise(ts) if b - a > 1e-6]
    return round(min(gaps), 6) if gaps else 1.0


_EXC = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b")


def error_summary(stderr: str) -> str:
    """The lines that say why a ``lintas simulate`` run failed: its own ``lintas:`` lines, else the exception
    at the end of a traceback (with the lines it wraps onto)."""
    lines = [ln.strip(" |\u2502") .strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and not set(ln) <= set("\u2500\u256d\u256e\u256f\u2570 ")]
    mine = [ln for ln in lines if ln.startswith("lintas:") and "no run finished" not in ln
            and "keeping the finished runs" not in ln]
    if mine:
        return " / ".join(dict.fromkeys(mine))
    for i in range(len(lines) - 1, -1, -1):
        if _EXC.match(lines[i]):
            return " ".join(lines[i:])
    return lines[-1] if lines else ""


def _example(ex: dict[str, Any]) -> str:
    """The first example of a violation class, in one short clause."""
    if not ex:
        return ""
    where = ",".join(f"{a}-{b}" for a, b in ex["pairs"]) if "pairs" in ex else ",".join(map(str, ex.get("links", [])))
    run = f" after {','.join(f'{x:g}' for x in ex['run_s'])} s" if "run_s" in ex else ""
    why = f" {ex['why']}" if "why" in ex else ""
    return f" (first: t={ex['time']:g} {ex['tls']} links {where}{run}: {' -> '.join(ex['states'])}{why})"


def check_zoo_run(run: ZooRun, record: dict[str, Any] | None = None, *, error: str | None = None) -> list[str]:
    """What is wrong with one finished run (empty: nothing). ``record`` is the run's entry of ``lintas simulate
    --json`` (default: read from ``run.json_file``); ``error``: what the command said when the run failed.

    Judged from SUMO's own record: conflicting greens and green+yellow by SUMO's rules (the junction's foes
    that the program never shows green together, ``tlscheck``), yellows under 3 s of simulated time, malformed
    states, collisions (statistics), the simulated end reached (statistics and the states), and 0 latched
    faults and 0 locks under Lintas' policies (the record; a lock needs 300 s, so a shorter span never shows
    one). SUMO's own programs (``sumo-*``) are held to the yellow of the program SUMO runs where it is
    shorter than 3 s."""
    from simulation.proofs.tlscheck import TlsCheckError, check_tls_states, read_tls_states

    problems: list[str] = []
    if record is None:
        record = read_record(run.json_file, run.policy)
    if record is None:
        problems.append(f"run failed: {error_summary(error) if error else 'no record in ' + str(run.json_file)}")
    else:
        if run.policy in LINTAS_POLICIES and (record.get("faults") or 0) > 0:
            problems.append(f"{record['faults']} latched faults")
        if (record.get("collisions") or 0) > 0:
            problems.append(f"{record['collisions']} collisions")
        if run.policy in LINTAS_POLICIES and (record.get("locks") or 0) > 0:  # sumo/locks.py; needs > 300 s
            first = (record.get("lock_events") or [{}])[0]
            where = (f" (first: lane {first['lane']} of {first['junction']} standing from {first['since']:g} s)"
                     if "lane" in first else "")
            problems.append(f"{record['locks']} locks{where}")
    end = _statistics_end(run.statistics_xml) if run.statistics_xml.is_file() else None
    if not run.states_xml.is_file():
        problems.append(f"no SaveTLSStates output ({run.states_xml.name})")
        if record is not None and end is not None and end < run.end - 1e-6:
            problems.append(f"stopped at {end:g} s of simulated time, not {run.end:g}")
        return problems
    try:
        states = read_tls_states(run.states_xml)
    except TlsCheckError as exc:
        problems.append(f"states: {exc}")
        return problems
    step = _step_of(states)
    yellow_min = YELLOW_MIN
    if run.policy in SUMO_POLICIES:
        yellow_min = min(YELLOW_MIN, shortest_yellow(programs_of(run.scenario).values()))
    try:
        rep = check_tls_states(run.states_xml, run.scenario, yellow_min=yellow_min, step=step,
                               statistics_xml=run.statistics_xml if run.statistics_xml.is_file() else None)
    except TlsCheckError as exc:
        problems.append(f"check-tls: {exc}")
        return problems
    labels = {"conflict_green": "conflicting greens", "conflict_green_yellow": "conflicting green+yellow",
              "short_yellow": f"yellows under {yellow_min:g} s", "malformed": "malformed states"}
    for cls, label in labels.items():
        n = rep.counts[cls]
        if n:
            ex = rep.examples[cls][0] if rep.examples[cls] else {}
            problems.append(f"{n} {label}{_example(ex)}")
    if rep.tls_not_in_file:
        problems.append(f"lights without a record: {', '.join(rep.tls_not_in_file[:5])}")
    if record is not None and rep.collisions and not (record.get("collisions") or 0):
        problems.append(f"{rep.collisions} collisions (statistics)")
    reached = end if end is not None else rep.end
    if reached < run.end - 1e-6 or rep.end < run.end - 1e-6:
        problems.append(f"stopped at {min(reached, rep.end):g} s of simulated time, not {run.end:g} "
                        f"(states {rep.begin:g}-{rep.end:g} s at step {step:g})")
    if rep.begin > run.begin + step + 1e-6:
        problems.append(f"states begin at {rep.begin:g} s, not at the scenario's begin {run.begin:g}")
    return problems


def check_fixed_vs_static(fixed: dict[str, Any] | None, static: dict[str, Any] | None,
                          tolerance: float = FIXED_TOLERANCE) -> list[str]:
    """``fixed`` runs the net's program through Lintas: on a static program that needs no lengthening it must
    give ``sumo-static``'s delay within ``tolerance`` (relative)."""
    if fixed is None or static is None:
        return []  # a failed run is reported by check_zoo_run
    f, s = float(fixed["delay_s"]), float(static["delay_s"])
    if not (math.isfinite(f) and math.isfinite(s)):
        return [f"fixed vs sumo-static: delay {f:g} s vs {s:g} s"]
    if abs(f - s) > tolerance * abs(s) + 1e-9:
        return [f"fixed delay {f:.2f} s is {100 * (f - s) / s if s else math.inf:+.1f} % from sumo-static's "
                f"{s:.2f} s (allowed {100 * tolerance:g} %)"]
    return []


# ------------------------------------------------------------------------------------------------
# running a check in the library (the command's path; the tests go through the CLI)
@dataclass
class ZooResult:
    """One checked run: its record (None when it failed), the error it failed with, and its problems."""

    run: ZooRun
    record: dict[str, Any] | None
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.run.label} {self.run.policy}: {'; '.join(self.problems) or 'ok'}"


def run_zoo(runs: Sequence[ZooRun], *, jobs: int = 2, on_result: Callable[[ZooResult], None] | None = None
            ) -> list[ZooResult]:
    """Run and check every run: per scenario, its policies through the batch runner that ``lintas simulate``
    uses (a fresh process per run, ``jobs`` at a time, SUMO's record of the lights kept). ``fixed`` is compared
    with ``sumo-static`` of the same scenario where both ran and the programs are a static reference. Returns
    the results in the order of ``runs``."""
    from simulation.experiments.batch import simulate_runs

    groups: dict[str, list[ZooRun]] = {}
    for r in runs:
        groups.setdefault(r.label, []).append(r)
    results: list[ZooResult] = []
    for group in groups.values():
        first = group[0]
        if first.folder.exists():
            shutil.rmtree(first.folder)
        first.folder.mkdir(parents=True)
        messages: list[str] = []
        recs, _interrupted = simulate_runs(first.scenario, [r.policy for r in group], 1, out_dir=first.work_dir,
                                           end=first.end, jobs=jobs, quiet=True, save_tls_states=True,
                                           on_error=messages.append)
        errors = {m.group(1): f"lintas: {msg}" for msg in messages
                  if (m := re.match(r"run (\S+) seed \d+ failed: ", msg))}
        by_policy = {rec["policy"]: rec for rec in recs}
        for run in group:
            rec, err = by_policy.get(run.policy), errors.get(run.policy)
            res = ZooResult(run, rec, err, check_zoo_run(run, rec, error=err))
            results.append(res)
            if on_result is not None:
                on_result(res)
    order = {id(r): i for i, r in enumerate(runs)}
    results.sort(key=lambda res: order[id(res.run)])
    compare_fixed(results)
    return results


def check_zoo(scenarios: Sequence[ZooScenario], out_dir: Path, *, policies: Sequence[str] = ALL_POLICIES,
              span: float = SPAN, jobs: int = 2, game: bool = True,
              on_result: Callable[[ZooResult], None] | None = None) -> list[ZooResult]:
    """Every policy on every zoo scenario (and, with ``game``, on a copy of SUMO's ``tools/game`` scenarios in
    ``out_dir/game``) for ``span`` simulated seconds, each run in ``out_dir/<zoo|game>/<name>/<policy>/``,
    checked (:func:`check_zoo_run`, :func:`check_fixed_vs_static`)."""
    items = [(f"zoo/{z.name}", z.path) for z in scenarios if z.path is not None]
    if game:
        items += [(f"game/{p.stem}", p) for p in stage_game_scenarios(Path(out_dir) / "game-scenarios")]
    return run_zoo(plan_runs(items, policies, Path(out_dir), span=span), jobs=jobs, on_result=on_result)


def compare_fixed(results: Sequence[ZooResult]) -> None:
    """Add the fixed-vs-sumo-static problem to each ``fixed`` result whose scenario is a static reference."""
    static = {r.run.label: r.record for r in results if r.run.policy == "sumo-static"}
    for r in results:
        if r.run.policy == "fixed" and r.run.static_reference and r.run.label in static:
            r.problems += check_fixed_vs_static(r.record, static[r.run.label])


def problem_table(results: Sequence[ZooResult]) -> list[str]:
    """One line per run with a problem (``label policy: problem; problem``) and a last summary line."""
    lines = [r.line() for r in results if r.problems]
    bad = sum(1 for r in results if r.problems)
    scen = len({r.run.label for r in results})
    lines.append(f"{len(results)} runs on {scen} scenarios: {bad} with problems")
    return lines
