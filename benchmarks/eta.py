"""ETA accuracy against SUMO's ground truth: Lintas' predictor against the schedule-deviation baseline.

``lintas bench eta``: the demo city (Bunda Kota) over its simulated morning peak (3600 s, policy adaptive),
with an incident: at 1200 s a vehicle stops in lane 0 of A2_A3 (line K1 eastbound, between the stops Masjid
Agung and Alun-Alun, before junction A3) for 600 s. Each seed runs in a fresh process (libsumo keeps state
between runs) that records, tick by tick, what the transit API would receive on the bus (the buses'
positions, the controllers' states, the engine's plans) and SUMO's own stop records (``--stop-output``: when
each bus really stopped at each stop, the ground truth). The predictors then replay those streams exactly as
the API consumes them (``transit_api.vehicles``, ``transit_api.eta``): every ``--every`` seconds each bus on a
trip predicts every stop ahead, with both predictors, and each prediction is compared with the truth.

Train/test: the predictor's parameters are chosen on the training seeds (a small grid, scored by the share
inside the Cal-ITP band on the last training seed after learning on the ones before), its history is learned
on them and kept in a SQLite file; the report is on the other seeds, each starting from that file (and
learning online, as the API does). Error = actual - predicted (negative: the bus came early).

- MBTA windows by horizon (minutes ahead): 0-3: 1 early to 1 late; 3-6: 1.5/2; 6-12: 2.5/3.5; 12-30: 4/6.
- Cal-ITP band: accurate when -60 ln(T+1.3) < error < 60 ln(T+1.5), T minutes ahead.
- MAE by horizon, Lintas against the baseline. Targets: >= 90 % MBTA, >= 80 % Cal-ITP, MAE >= 25 % lower.
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing as mp
import shutil
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import date, datetime
from pathlib import Path

from benchmarks.runs import machine

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SCENARIO = REPO / "scenarios" / "bunda_kota"
GTFS = SCENARIO / "gtfs"
SIM_ZERO_HOUR = 7  # simulation second 0 is 07:00 of the service day (scenarios/bunda_kota/gtfs.py)
SERVICE_DAY = date(2026, 3, 2)  # any day of the demo feed's calendar

INCIDENT = {"edge": "A2_A3", "lane": 0, "pos": 230.0, "at": 1200.0, "duration": 600.0}
MBTA = [(0, 3, 60, 60), (3, 6, 90, 120), (6, 12, 150, 210), (12, 30, 240, 360)]  # minutes, early s, late s
TRAIN_SEEDS = (1, 2)
TEST_SEEDS = (4, 5, 6)  # seed 3 was used while developing (diagnosing the signal correction)
GRID = {"q_segment": (4.0, 25.0, 100.0), "signal_weight": (0.0, 0.5, 1.0)}


# ---- one seed, in a fresh process
def _record(seed: int, end: float, incident: dict | None, work: str, q) -> None:
    try:
        q.put(("ok", record_run(seed, end, incident, Path(work))))
    except BaseException as exc:  # noqa: BLE001 - the parent reports it
        q.put(("error", f"{type(exc).__name__}: {exc}"))


def record_run(seed: int, end: float, incident: dict | None, work: Path) -> dict:
    from simulation.experiments.runner import RunSpec, run_one

    stream: list = []
    injected: dict = {}
    stops_file = work / f"stops-seed{seed}.xml"

    def tap(t, conn, vehicles, states, plans):
        if incident is not None and not injected and t >= incident["at"]:
            conn.route.add("lintas_incident_route", [incident["edge"]])
            conn.vehicle.add("lintas_incident", "lintas_incident_route", typeID="car", depart="now",
                             departLane=str(incident["lane"]), departPos=str(incident["pos"]), departSpeed="0")
            conn.vehicle.setStop("lintas_incident", incident["edge"], pos=incident["pos"] + 5.0,
                                 laneIndex=incident["lane"], duration=incident["duration"])
            injected["at"] = t
        stream.append((t, vehicles, list(states.values()), plans))

    spec = RunSpec(scenario=SCENARIO, policy="adaptive", seed=seed, out_dir=work, end=end, on_tick=tap,
                   sumo_args=["--stop-output", str(stops_file)])
    rec = run_one(spec)
    truth: dict[str, float] = {}
    for el in ET.parse(stops_file).getroot().iter("stopinfo"):
        stop = el.get("busStop")
        if stop:
            truth[f"{el.get('id')}|{stop}"] = float(el.get("started"))
    incident_seen = any(el.get("id") == "lintas_incident" for el in ET.parse(stops_file).getroot().iter("stopinfo"))
    return {"seed": seed, "stream": stream, "truth": truth, "delay_s": rec["delay_s"], "teleports": rec["teleports"],
            "collisions": rec["collisions"], "incident_at": injected.get("at"), "incident_stopped": incident_seen,
            "wall_s": rec["wall_s"]}


def _in_fresh_process(seed: int, end: float, incident: dict | None, work: Path) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_record, args=(seed, end, incident, str(work), q))
    p.start()
    status, payload = q.get()
    p.join()
    if status != "ok":
        raise RuntimeError(f"seed {seed}: the run failed: {payload}")
    return payload


# ---- replay
def _feed():
    from transit_api.gtfs import load_feed

    return load_feed(GTFS)


def replay(run: dict, feed, params, history: Path | None, every: float = 10.0, collect: bool = True) -> list[dict]:
    """Feed one recorded run to the API's live state (``transit_api.realtime.Realtime``: the tracker, the signal
    board and the predictor Lintas serves, learning as it goes) and, beside it, the baseline; returns the
    predictions made every ``every`` s, for the vehicles on their way and the trips starting within 30 min,
    with the truth. The predictor starts from ``history`` (SQLite) when given and writes what it learned back."""
    from transit_api.eta import ScheduleDeviation
    from transit_api.realtime import Realtime
    from transit_api.vehicles import Clock, run_key

    clock = Clock(datetime(SERVICE_DAY.year, SERVICE_DAY.month, SERVICE_DAY.day, SIM_ZERO_HOUR, tzinfo=feed.timezone))
    live = Realtime(feed, clock, history=history, params=params, simulated=True)
    base = ScheduleDeviation(live.eta.seg_len)
    made = []
    next_at = 0.0
    try:
        for t, batch, states, plans in run["stream"]:
            for st in states:
                live.on_message(st)
            for pl in plans:
                live.on_message(pl)
            live.on_message(batch)
            if not collect or t < next_at:
                continue
            next_at = t + every
            for key, preds in live.predictions.items():
                v = live.tracker.vehicles.get(key)
                if v is not None:
                    bl = {p.index: p for p in base.predict(v, t)}
                else:
                    bl = {p.index: p for p in base.predict_unstarted(preds[0].run, t)}
                for p in preds:
                    if p.index in bl:
                        made.append((t, key, v is None, p, bl[p.index]))
        vehicle_of = dict(live.tracker.run_vehicle)
    finally:
        live.close()
    truth = run["truth"]
    out = []
    for t, key, unstarted, p, b in made:
        vid = vehicle_of.get(run_key(p.run)) if unstarted else key
        actual = truth.get(f"{vid}|{p.stop_id}") if vid else None
        if actual is None or actual <= t:
            continue
        out.append({"t": t, "vehicle": vid, "stop": p.stop_id, "route": p.run.route_id, "started": not unstarted,
                    "actual": actual, "lintas": p.arrival, "baseline": b.arrival, "sd": p.uncertainty})
    return out


def mbta_ok(err: float, horizon_min: float) -> bool:
    for lo, hi, early, late in MBTA:
        if lo <= horizon_min < hi or (hi == 30 and horizon_min == 30):
            return -early <= err <= late
    return False


def calitp_ok(err: float, horizon_min: float) -> bool:
    return -60 * math.log(horizon_min + 1.3) < err < 60 * math.log(horizon_min + 1.5)


def score(preds: list[dict]) -> dict:
    """The figures of a set of predictions: overall and by MBTA horizon bucket, for both predictors."""
    def figures(rows: list[dict]) -> dict:
        res: dict = {"n": len(rows)}
        for who in ("lintas", "baseline"):
            if not rows:
                res[who] = None
                continue
            errs = [(r["actual"] - r[who], (r["actual"] - r["t"]) / 60.0) for r in rows]
            res[who] = {
                "mbta_pct": round(100 * sum(mbta_ok(e, h) for e, h in errs) / len(errs), 1),
                "calitp_pct": round(100 * sum(calitp_ok(e, h) for e, h in errs) / len(errs), 1),
                "mae_s": round(statistics.fmean(abs(e) for e, _h in errs), 1),
                "bias_s": round(statistics.fmean(e for e, _h in errs), 1),
            }
        if rows:
            res["mae_reduction_pct"] = round(100 * (1 - res["lintas"]["mae_s"] / res["baseline"]["mae_s"]), 1) \
                if res["baseline"]["mae_s"] > 0 else None
            inside = sum(abs(r["actual"] - r["lintas"]) <= r["sd"] for r in rows)
            res["within_1sd_pct"] = round(100 * inside / len(rows), 1)
        return res

    rows = [r for r in preds if (r["actual"] - r["t"]) <= 30 * 60]
    out = {"all": figures(rows), "by_horizon": {}}
    for lo, hi, _e, _l in MBTA:
        out["by_horizon"][f"{lo}-{hi} min"] = figures(
            [r for r in rows if lo * 60 <= r["actual"] - r["t"] < hi * 60
             or (hi == 30 and r["actual"] - r["t"] == 1800)])
    during = [r for r in rows if INCIDENT["at"] <= r["t"] < INCIDENT["at"] + INCIDENT["duration"]]
    out["during_incident"] = figures(during)
    out["vehicles_on_their_way"] = figures([r for r in rows if r["started"]])
    out["trips_not_started"] = figures([r for r in rows if not r["started"]])
    return out


def tune(train: list[dict], feed, say) -> tuple[object, list[dict]]:
    """The grid's best parameters: each setting learns on every training run but the last and is scored on the
    last (share inside the Cal-ITP band, then MAE)."""
    from transit_api.eta import Params

    results = []
    for values in itertools.product(*GRID.values()):
        params = Params(**dict(zip(GRID, values)))
        with tempfile.TemporaryDirectory() as d:
            hist = Path(d) / "history.sqlite"
            for run in train[:-1]:
                replay(run, feed, params, hist, collect=False)
            preds = replay(run=train[-1], feed=feed, params=params, history=hist)
        s = score(preds)["all"]
        mae = statistics.fmean(abs(r["actual"] - r["lintas"]) for r in preds)  # unrounded, to rank
        results.append({"params": dict(zip(GRID, values)), "calitp_pct": s["lintas"]["calitp_pct"],
                        "mbta_pct": s["lintas"]["mbta_pct"], "mae_s": round(mae, 3)})
        say(f"  tune {results[-1]['params']}: Cal-ITP {s['lintas']['calitp_pct']} %, MBTA {s['lintas']['mbta_pct']} "
            f"%, MAE {mae:.3f} s")
    best = max(results, key=lambda r: (r["calitp_pct"], -r["mae_s"]))  # ties: the first (signal_weight 0 first)
    return Params(**best["params"]), results


def run(train_seeds=TRAIN_SEEDS, test_seeds=TEST_SEEDS, end: float = 3600.0, every: float = 10.0,
        incident: bool = True, out: Path = RESULTS, say=print) -> dict:
    import dataclasses

    feed = _feed()
    work = Path(tempfile.mkdtemp(prefix="lintas-bench-eta-"))
    t0 = time.perf_counter()
    runs = {}
    try:
        for seed in (*train_seeds, *test_seeds):
            say(f"seed {seed}: simulating {end:g} s of the demo city (adaptive, incident "
                f"{'at {:g} s'.format(INCIDENT['at']) if incident else 'none'}) ...")
            runs[seed] = _in_fresh_process(seed, end, INCIDENT if incident else None, work)
            r = runs[seed]
            if incident and not r["incident_stopped"]:
                raise RuntimeError(f"seed {seed}: the incident vehicle never stopped (SUMO's stop output)")
        train = [runs[s] for s in train_seeds]
        params, grid = tune(train, feed, say) if len(train) >= 2 else (_default_params(), [])
        hist = work / "history.sqlite"
        for r in train:
            replay(r, feed, params, hist, collect=False)
        per_seed, preds = {}, []
        for s in test_seeds:
            copy = work / f"history-test-{s}.sqlite"
            shutil.copy(hist, copy)
            p = replay(runs[s], feed, params, copy, every=every)
            per_seed[s] = score(p)["all"]
            preds += p
        # the signal correction alone, on the held-out seeds: the next stop of a bus with a junction before it
        ablation = {}
        for w in sorted({0.0, 1.0, params.signal_weight}):
            rows = []
            for s in test_seeds:
                copy = work / f"history-ablation-{s}.sqlite"
                shutil.copy(hist, copy)
                rows += [r for r in replay(runs[s], feed, dataclasses.replace(params, signal_weight=w), copy,
                                           every=every) if r["started"] and r["actual"] - r["t"] < 120]
            ablation[f"signal_weight={w:g}"] = score(rows)["all"]
            say(f"  held-out, buses on their way, under 2 min ahead, signal_weight {w:g}: MAE "
                f"{ablation[f'signal_weight={w:g}']['lintas']['mae_s']} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = score(preds)
    all_ = result["all"]
    targets = {
        "mbta_pct >= 90": all_["lintas"]["mbta_pct"] >= 90,
        "calitp_pct >= 80": all_["lintas"]["calitp_pct"] >= 80,
        "mae >= 25 % below the baseline in every horizon with predictions": all(
            b["mae_reduction_pct"] is not None and b["mae_reduction_pct"] >= 25
            for b in result["by_horizon"].values() if b["n"]),
    }
    doc = {
        "benchmark": "eta",
        "scenario": "bunda_kota", "policy": "adaptive", "end_s": end, "predict_every_s": every,
        "incident": INCIDENT if incident else None,
        "train_seeds": list(train_seeds), "test_seeds": list(test_seeds),
        "params": dataclasses.asdict(params), "tuning": grid,
        "result": result, "per_test_seed": per_seed, "targets": targets, "signal_ablation_under_2_min": ablation,
        "runs": {s: {k: v for k, v in r.items() if k not in ("stream", "truth")} for s, r in runs.items()},
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": machine(),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "eta.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return doc


def _default_params():
    from transit_api.eta import Params

    return Params()


def print_table(doc: dict, echo=print) -> None:
    r = doc["result"]
    echo(f"ETA accuracy, test seeds {doc['test_seeds']} (tuned on {doc['train_seeds']}), incident "
         f"{'yes' if doc['incident'] else 'no'}; error = actual - predicted")
    echo(f"{'horizon':<11} {'n':>6} | {'MBTA % L':>8} {'B':>6} | {'Cal-ITP % L':>11} {'B':>6} | "
         f"{'MAE s L':>7} {'B':>6} {'lower':>7}")
    for name, b in [*r["by_horizon"].items(), ("all", r["all"]), ("incident", r["during_incident"]),
                    ("on the way", r["vehicles_on_their_way"]), ("not started", r["trips_not_started"])]:
        if not b["n"]:
            echo(f"{name:<11} {0:>6} | (no predictions)")
            continue
        L, B = b["lintas"], b["baseline"]
        echo(f"{name:<11} {b['n']:>6} | {L['mbta_pct']:>8} {B['mbta_pct']:>6} | {L['calitp_pct']:>11} "
             f"{B['calitp_pct']:>6} | {L['mae_s']:>7} {B['mae_s']:>6} {b['mae_reduction_pct']:>6}%")
    for k, ok in doc["targets"].items():
        echo(f"target {k}: {'PASS' if ok else 'FAIL'}")
