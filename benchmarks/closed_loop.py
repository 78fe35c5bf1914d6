"""Closed-loop speed: simulated seconds per wall second of Lintas driving SUMO (the whole product path over
ZeroMQ: field -> bus -> engine -> command channel -> controllers -> heads) against SUMO alone showing the
very same signal states, measured one after the other in one run.

The like-for-like baseline: the closed-loop run records what every light showed (SUMO's SaveTLSStates),
and "SUMO alone" replays those states (``setRedYellowGreenState`` when one changes) on the same scenario
and seed: the same traffic, the same congestion, no Lintas. Between the two, "SUMO + detectors" replays
the same states with Lintas' detectors in the net, read into a batch every tick: the physical floor of
any closed loop (SUMO's step, the detectors, reading them). Start-up (SUMO loading the net, the city's
sockets and controllers, Numba's cache) is excluded from the rates: each run is timed from its first
minute of simulated time to its end (the runner's progress callback); the wall time from the start of the
run to its first simulated minute (start-up plus that minute) is shown apart.

Variants, each in its own fresh process (libsumo keeps state between runs in one process): at 1-s steps,
SUMO alone, SUMO + detectors, the closed loop inproc and tcp; at 0.2-s steps with control every 1 s, SUMO
alone and the closed loop inproc. Scenarios: the demo city, ingolstadt7 (../shared; skipped, with the
reason, when absent) and a generated 100-junction grid (``benchmarks/cities.py``).

    lintas bench loop [SCENARIO ...] [--end SECONDS] [--repeat N] [--quick]

Writes ``benchmarks/results/closed_loop.json``. ``run(quick=True)`` (the demo city, 300 simulated s, 1-s
steps, inproc) returns its same-run ratios under ``ratios`` in seconds.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import statistics
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
INGOLSTADT7 = REPO.parent / "shared" / "scenarios" / "resco" / "ingolstadt7"
MEASURE_FROM = 60.0  # s of simulated time: the rate is measured from here to the end
TARGETS = {"inproc": 0.5, "tcp": 0.4, "substeps": 0.8}  # x SUMO alone, reported (issue 19), never asserted


class _Clock:
    """The runner's progress callback: wall time at the first minute and at the end (simulated seconds done)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None

    def __call__(self, done: float, _total: float) -> None:
        now = time.perf_counter()
        if self.first is None and done >= MEASURE_FROM - 1e-6:
            self.first = (done, now)
        self.last = (done, now)

    def result(self) -> dict:
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            raise RuntimeError("the run was too short to time (give --end at least 120 s after the begin)")
        rate = (self.last[0] - self.first[0]) / (self.last[1] - self.first[1])
        return {"sim_s": self.last[0] - self.first[0], "wall_s": self.last[1] - self.first[1],
                "rate": rate, "to_first_minute_s": self.first[1] - self.t0}


def _lintas(scenario: str, policy: str, transport: str, end: float, step: float, out: str, q) -> None:
    from simulation.experiments.runner import TLS_STATES, RunSpec, run_one

    clock = _Clock()
    spec = RunSpec(Path(scenario), policy, 1, Path(out), transport=transport, end=end, save_tls_states=True,
                   sumo_args=["--step-length", f"{step:g}"] if step != 1.0 else [])
    rec = run_one(spec, progress=clock)
    res = clock.result()
    tag = "".join(f"-{k}={v:g}" for k, v in sorted(spec.params.items()))
    from simulation.sumo.scenario import load_scenario

    states = Path(out) / "runs" / load_scenario(Path(scenario)).name / f"{policy}{tag}-seed1" / TLS_STATES
    keep = Path(out) / f"tls-{transport}-{step:g}.xml"
    states.replace(keep)
    q.put({**res, "delay_s": rec["delay_s"], "states": str(keep)})


def _replay_states(path: Path) -> dict[float, list[tuple[str, str]]]:
    """SaveTLSStates' record -> the changes of each light, by time."""
    last: dict[str, str] = {}
    out: dict[float, list[tuple[str, str]]] = {}
    for _ev, el in ET.iterparse(path):
        if el.tag == "tlsState":
            tls, state = el.get("id", ""), el.get("state", "")
            if last.get(tls) != state:
                last[tls] = state
                out.setdefault(round(float(el.get("time", "0")), 3), []).append((tls, state))
        el.clear()
    return out


def _sumo_alone(scenario: str, states: str, end: float, step: float, detectors: bool, out: str, q) -> None:
    """SUMO replaying the loop's signal states (with Lintas' detectors read every tick, if ``detectors``)."""
    from simulation.sumo.field import SumoField
    from simulation.sumo.netcompile import compile_for_run
    from simulation.sumo.options import merge_additional
    from simulation.sumo.scenario import config_for_sumo, load_scenario

    t0 = time.perf_counter()
    scn = load_scenario(Path(scenario))
    net, det_file = compile_for_run(scn, Path(out) / "compiled")
    replay = _replay_states(Path(states))
    args = ["-c", str(config_for_sumo(scn, Path(out) / "cfg")), "--seed", "1", "--time-to-teleport", "-1",
            "--no-step-log", "true", "--no-warnings", "true", "--duration-log.disable", "true",
            "--end", repr(float(end)), "--step-length", f"{step:g}"]
    field = SumoField(net)
    field.start(merge_additional(args, [*scn.additional_files, *([det_file] if detectors else [])]))
    conn = field.conn
    sim, tl = conn.simulation, conn.trafficlight
    clock = _Clock()
    begin = t = field.time()
    clock.t0 = t0
    while t < end:
        for tls, state in replay.get(round(t, 3), ()):
            tl.setRedYellowGreenState(tls, state)
        if detectors:
            field.read(t)
            t = field.advance(t + 1.0)
        else:
            until = t + 1.0 - 1e-6
            while sim.getTime() < until:
                conn.simulationStep()
            t = sim.getTime()
        if round(t - begin) % 60 == 0:
            clock(t - begin, end - begin)
    field.close()
    q.put(clock.result())


def _in_fresh_process(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    try:
        res = q.get(timeout=3600)
    except Exception:  # noqa: BLE001 - the child died before answering: say so, with its exit code
        p.join(5)
        raise RuntimeError(f"{target.__name__}{args[:4]}: the benchmark process ended without a result "
                           f"(exit {p.exitcode})") from None
    p.join()
    return res


def scenarios_default() -> list[tuple[str, Path | None, str]]:
    """(name, path or None, why skipped): the demo city, ingolstadt7, the generated 100-junction grid."""
    from benchmarks import cities
    from simulation.experiments.catalog import DEMO

    out: list[tuple[str, Path | None, str]] = [("demo", DEMO, "")]
    if (INGOLSTADT7 / "ingolstadt7.sumocfg").exists() or INGOLSTADT7.is_dir():
        out.append(("ingolstadt7", INGOLSTADT7, ""))
    else:
        out.append(("ingolstadt7", None, f"skipped: {INGOLSTADT7} is absent (the shared RESCO scenarios)"))
    out.append(("grid100", cities.grid_city(10), ""))
    return out


def bench_scenario(scenario: Path, end_after: float, repeat: int, transports: tuple[str, ...], substeps: bool,
                   policy: str, out: Path) -> dict:
    """Every variant on one scenario; medians over ``repeat`` rounds."""
    from simulation.sumo.scenario import load_scenario

    scn = load_scenario(scenario)
    end = min(scn.begin + end_after, scn.end) if end_after else scn.end
    rates: dict[str, list[dict]] = {}
    delays: dict[str, float] = {}
    steps = [1.0, 0.2] if substeps else [1.0]
    # warm Numba's cache and the compiled net once, outside the measurement
    _in_fresh_process(_lintas, str(scenario), policy, "inproc", scn.begin + 2 * MEASURE_FROM, 1.0, str(out))
    for _ in range(repeat):
        for step in steps:
            sfx = "" if step == 1.0 else f", {step:g}-s steps"
            trs = transports if step == 1.0 else ("inproc",)
            for tr in trs:
                r = _in_fresh_process(_lintas, str(scenario), policy, tr, end, step, str(out))
                rates.setdefault(f"closed loop {policy} ({tr}{sfx})", []).append(r)
                delays[f"closed loop {policy} ({tr}{sfx})"] = r["delay_s"]
                states = r["states"]
            rates.setdefault(f"SUMO alone, replaying the loop's states{sfx}", []).append(
                _in_fresh_process(_sumo_alone, str(scenario), states, end, step, False, str(out)))
            if step == 1.0:
                rates.setdefault("SUMO + Lintas' detectors read every tick, replaying", []).append(
                    _in_fresh_process(_sumo_alone, str(scenario), states, end, step, True, str(out)))
    rows = []
    for name, rs in rates.items():
        sfx = ", 0.2-s steps" if "0.2-s" in name else ""
        base = statistics.median(x["rate"] for x in rates[f"SUMO alone, replaying the loop's states{sfx}"])
        rate = statistics.median(x["rate"] for x in rs)
        rows.append({"variant": name, "sim_s_per_s": round(rate, 1), "ms_per_sim_s": round(1000.0 / rate, 3),
                     "x_sumo_alone": round(rate / base, 3), "runs": len(rs),
                     "to_first_minute_s": round(statistics.median(x["to_first_minute_s"] for x in rs), 2),
                     "delay_s": delays.get(name)})
    return {"scenario": scn.name, "path": str(scenario), "simulated_s": end - scn.begin - MEASURE_FROM,
            "rows": rows}


def run(scenarios: list[tuple[str, Path | None, str]] | None = None, end: float | None = 900.0, repeat: int = 1,
        transports: tuple[str, ...] = ("inproc", "tcp"), substeps: bool = True, policy: str = "adaptive",
        quick: bool = False, write: bool = True) -> dict:
    """Every scenario (``None``: the defaults); ``quick``: the demo city, 300 s, 1-s steps, inproc."""
    from benchmarks.runs import machine
    from simulation.experiments.catalog import DEMO

    if quick:
        scenarios, end, repeat, transports, substeps = [("demo", DEMO, "")], 300.0, 1, ("inproc",), False
    scenarios = scenarios if scenarios is not None else scenarios_default()
    out = RESULTS / "work" / "loop"
    docs, skipped = [], {}
    for name, path, why in scenarios:
        if path is None:
            skipped[name] = why
            continue
        docs.append(bench_scenario(path, end or 0.0, repeat, transports, substeps, policy, out))
    ratios = {}
    for d in docs:
        for r in d["rows"]:
            if r["variant"].startswith("closed loop") or r["variant"].startswith("SUMO +"):
                ratios[f"{r['variant']} x SUMO alone @{d['scenario']}"] = r["x_sumo_alone"]
    doc = {"benchmark": "closed_loop", "machine": machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "quick": quick, "policy": policy, "measured_from_s": MEASURE_FROM, "scenarios": docs, "skipped": skipped,
           "ratios": ratios, "targets_x_sumo_alone": TARGETS}
    if write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / ("closed_loop-quick.json" if quick else "closed_loop.json")).write_text(json.dumps(doc, indent=2))
    return doc


def print_table(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=130)
    for d in doc["scenarios"]:
        t = Table(title=f"closed loop vs SUMO alone replaying the same signal states: {d['scenario']} "
                        f"({d['simulated_s']:.0f} simulated s timed, start-up apart)")
        for c in ("variant", "sim s / s", "ms / sim s", "x SUMO alone", "start-up + 1st min, s", "delay s"):
            t.add_column(c, justify="right" if c != "variant" else "left")
        for r in d["rows"]:
            t.add_row(r["variant"], f"{r['sim_s_per_s']:.0f}", f"{r['ms_per_sim_s']:.2f}", f"{r['x_sumo_alone']:.3f}",
                      f"{r['to_first_minute_s']:.1f}", f"{r['delay_s']:.2f}" if r["delay_s"] is not None else "")
        con.print(t)
    for name, why in doc["skipped"].items():
        con.print(f"{name}: {why}")
    con.print(f"targets (reported, not asserted): x SUMO alone >= {doc['targets_x_sumo_alone']}")
