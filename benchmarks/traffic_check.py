"""``lintas bench traffic``: the transit API's traffic information and incident detection against SUMO's own record.

Each case runs ``lintas simulate`` on the demo city (one policy, seed 1, optionally with ``--incident``) with
``--bus-tap`` to a forwarder in this process, and with SUMO's edgeData output (every edge's mean travel time per
``PERIOD`` s); every detector batch and controller state the run publishes is kept and then fed, in order, through
:class:`transit_api.traffic.TrafficService` with an :class:`transit_api.detect.IncidentDetector`: what ``lintas api``
does live. Then, per case:

- travel times: per segment and period (the first period left out: the 180-s window is not full), the mean of the
  API's travel times whose window ends in the period against the sum of SUMO's edge travel times over the segment's
  edges (where SUMO sampled at least 30 vehicle-seconds on each); error, MAE, median relative error, correlation,
  and how often the level by delay (free / slow / congested at the HCM's 35 and 80 s) agrees;
- detection: for each injected vehicle (the run's ``incidents_injected``), when its lane's incident opened and
  closed against when the vehicle stopped and drove on; every other incident detected, listed (on a clean run
  each one is a false alarm).

The default cases are the held-out ones of docs/transit.md (the thresholds were chosen on adaptive runs): the
whole peak under adaptive control without an incident, and maxpressure with a vehicle stopped 10 minutes in
``A3_A4.L_0``. Writes ``benchmarks/results/traffic.json`` with the machine.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from benchmarks.api_load import lintas_command
from benchmarks.runs import machine

RESULTS = Path(__file__).resolve().parent / "results"
PERIOD = 300
CASES = (("adaptive", 3600.0, None), ("maxpressure", 1800.0, "A3_A4.L_0@600:600"))


def _record(tmp: Path, policy: str, end: float, incident: str | None) -> tuple[list, dict, Path]:
    """Run the case; the frames it published (topic, payload), its run record and SUMO's edgeData file."""
    import zmq

    from engine.protocol import bus
    from engine.protocol import messages as m
    from simulation.experiments.catalog import DEMO

    ep = bus.endpoints("tcp")
    fwd = bus.Forwarder(ep).start()
    ctx = zmq.Context()
    sub = bus.Subscriber(ctx, ep, [m.TOPIC_DETECTORS, m.TOPIC_STATE])
    frames: list = []
    done = threading.Event()

    def collect() -> None:
        while not done.is_set() or sub.sock.poll(200):
            if sub.sock.poll(100):
                frames.append(sub.sock.recv_multipart())

    edge_add, edge_out = tmp / "edgedata.add.xml", tmp / "edgedata.xml"
    edge_add.write_text(f'<additional>\n    <edgeData id="lintas_bench" file="{edge_out}" period="{PERIOD}" '
                        f'excludeEmpty="true"/>\n</additional>\n')
    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    time.sleep(0.5)  # the subscription reaches the forwarder before the run publishes
    cmd = [*lintas_command(), "simulate", str(DEMO), "-p", policy, "--end", repr(end), "--bus-tap", ep.bus_in,
           "--work-dir", str(tmp / "work"), "--json", str(tmp / "runs.json"), "-q",
           "--sumo-arg=-a", f"--sumo-arg={edge_add}"]
    if incident:
        cmd += ["--incident", incident]
    try:
        got = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        done.set()
        thread.join(30)
        sub.close()
        ctx.destroy(linger=0)
        fwd.stop()
    if got.returncode != 0:
        raise RuntimeError(f"lintas simulate ({policy}) failed with exit {got.returncode}: {got.stderr[-2000:]}")
    return frames, json.loads((tmp / "runs.json").read_text())["runs"][0], edge_out


def _replay(frames: list, layout) -> tuple[dict, list, object]:
    from engine.protocol.bus import Stats, safe_decode
    from transit_api.detect import IncidentDetector
    from transit_api.traffic import TrafficService

    det = IncidentDetector(layout, None)
    svc = TrafficService(layout, None, detector=det)
    stats = Stats()
    travel: dict[tuple[str, int], list[float]] = {}
    for _topic, payload in frames:
        msg = safe_decode(payload, stats)
        if msg is None:
            continue
        before = svc.snapshot.time
        svc.take(msg)
        snap = svc.snapshot
        if snap.time is not None and snap.time != before:
            k = int((snap.time - 1) // PERIOD)
            for s in snap.states:
                if s.travel_time_s is not None:
                    travel.setdefault((s.segment.id, k), []).append(s.travel_time_s)
    return travel, det.events, svc


def _travel_figures(layout, travel: dict, edge_file: Path, end: float) -> dict:
    truth = {}
    for iv in ET.parse(edge_file).getroot().iter("interval"):
        k = int(float(iv.get("begin")) // PERIOD)
        for e in iv.iter("edge"):
            truth[(e.get("id"), k)] = e.attrib
    rows = []
    for seg in layout.segments:
        for k in range(1, int(end // PERIOD)):
            ours = travel.get((seg.id, k))
            edges = [truth.get((e, k)) for e in seg.edges]
            if not ours or any(t is None or "traveltime" not in t or float(t.get("sampledSeconds", 0)) < 30
                               for t in edges):
                continue
            rows.append((float(np.mean(ours)), sum(float(t["traveltime"]) for t in edges), seg.free_time_s))
    if not rows:
        return {"segment_periods": 0}
    a = np.array(rows)
    err = a[:, 0] - a[:, 1]

    def level(delay):
        return np.where(delay > 80, 2, np.where(delay > 35, 1, 0))

    return {"segment_periods": len(rows), "sumo_median_s": round(float(np.median(a[:, 1])), 1),
            "ours_median_s": round(float(np.median(a[:, 0])), 1), "bias_s": round(float(err.mean()), 2),
            "mae_s": round(float(np.abs(err).mean()), 2),
            "median_relative_error": round(float(np.median(np.abs(err) / a[:, 1])), 3),
            "correlation": round(float(np.corrcoef(a[:, 0], a[:, 1])[0, 1]), 3),
            "level_agreement": round(float((level(a[:, 0] - a[:, 2]) == level(a[:, 1] - a[:, 2])).mean()), 3)}


def _detection(record: dict, events: list) -> dict:
    injected = []
    lanes = set()
    for inj in record.get("incidents_injected") or []:
        lane = inj["lane"]
        lanes.add(lane)
        opened = [t for ev, _k, ln, t in events if ev == "opened" and ln == lane and t >= (inj["stopped_at"] or 0)]
        closed = [t for ev, _k, ln, t in events if ev == "closed" and ln == lane and opened and t >= opened[0]]
        injected.append({**inj, "detected_after_s": opened[0] - inj["stopped_at"] if opened else None,
                         "cleared_after_release_s": closed[0] - inj["released_at"]
                         if closed and inj["released_at"] is not None else None})
    others = [{"event": ev, "kind": k, "lane": ln, "time": t} for ev, k, ln, t in events if ln not in lanes]
    return {"injected": injected, "other_events": others}


def run(cases=CASES, out: Path | None = RESULTS, say=print) -> dict:
    from simulation.experiments.catalog import DEMO
    from simulation.sumo.netcompile import compile_for_run
    from transit_api.traffic import RoadLayout, read_net_edges

    results = []
    with tempfile.TemporaryDirectory(prefix="lintas-bench-traffic-") as tmpdir:
        tmp = Path(tmpdir)
        net, _det = compile_for_run(DEMO, tmp / "compiled")
        layout = RoadLayout(net, *read_net_edges(DEMO / "bunda_kota.net.xml"))
        for i, (policy, end, incident) in enumerate(cases):
            case_dir = tmp / f"case{i}"
            case_dir.mkdir()
            say(f"{policy}, {end:g} s{', incident ' + incident if incident else ''}: simulating ...")
            t0 = time.perf_counter()
            frames, record, edge_file = _record(case_dir, policy, end, incident)
            travel, events, svc = _replay(frames, layout)
            res = {"policy": policy, "seed": record["seed"], "end_s": end, "incident": incident,
                   "frames": len(frames), "batches_taken": svc.feed.batches,
                   "batches_dropped": svc.feed.dropped_batches,
                   "travel_time": _travel_figures(layout, travel, edge_file, end),
                   "detection": _detection(record, events), "wall_s": round(time.perf_counter() - t0, 1)}
            results.append(res)
            say(line(res))
    doc = {"benchmark": "traffic", "scenario": "bunda_kota", "period_s": PERIOD, "machine": machine(),
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cases": results}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "traffic.json").write_text(json.dumps(doc, indent=2))
    return doc


def line(res: dict) -> str:
    tt = res["travel_time"]
    parts = [f"{res['policy']}{' + ' + res['incident'] if res['incident'] else ''}:"]
    if tt.get("segment_periods"):
        parts.append(f"travel time vs SUMO over {tt['segment_periods']} segment-periods: MAE {tt['mae_s']} s, "
                     f"median error {tt['median_relative_error'] * 100:.0f} %, bias {tt['bias_s']:+} s, "
                     f"r {tt['correlation']}, level agrees {tt['level_agreement'] * 100:.0f} %;")
    for inj in res["detection"]["injected"]:
        parts.append(f"{inj['lane']} stopped at {inj['stopped_at']:g} s: detected after {inj['detected_after_s']} s, "
                     f"cleared {inj['cleared_after_release_s']} s after it drove on;")
    others = res["detection"]["other_events"]
    parts.append(f"{sum(e['event'] == 'opened' for e in others)} other incident(s) "
                 f"({', '.join(sorted({e['lane'] + ' ' + e['kind'] for e in others})) or 'none'})")
    return " ".join(parts)
