"""Calibration check for the Bunda Kota scenario.

Runs SUMO twice (the net's static fixed-time programs, then SUMO's actuated
control loaded from ``bunda_kota.actuated.add.xml``) with::

    --seed 1 --time-to-teleport -1 --tripinfo-output X --tripinfo-output.write-unfinished

and reports, per run: vehicles scheduled, mean delay per vehicle (timeLoss +
departDelay; vehicles never inserted are charged end - scheduled depart),
vehicles unfinished at the end, teleports and wall-clock time.

    python -m scenarios.bunda_kota.check [--end 3600] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from simulation.sumo.outputs import read_statistics
from simulation.sumo.scenario import load_scenario
from simulation.sumo.tools import sumo_binary

HERE = Path(__file__).resolve().parent
DEFAULT_CFG = HERE / "bunda_kota.sumocfg"
ACTUATED_ADD = HERE / "bunda_kota.actuated.add.xml"
STOPS_ADD = HERE / "bunda_kota.stops.add.xml"


def scheduled_departures(route_file: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for _ev, el in ET.iterparse(route_file):
        if el.tag in ("vehicle", "trip"):
            out[el.get("id")] = float(el.get("depart"))
            el.clear()
    return out


def summarise(tripinfo: Path, route_file: Path, end: float) -> dict:
    sched = scheduled_departures(route_file)
    seen: set[str] = set()
    total_delay = 0.0
    unfinished = 0
    finished = 0
    bus_delay = []
    for _ev, el in ET.iterparse(tripinfo):
        if el.tag != "tripinfo":
            continue
        vid = el.get("id")
        seen.add(vid)
        d = float(el.get("timeLoss")) + float(el.get("departDelay"))
        total_delay += d
        if float(el.get("arrival")) < 0:
            unfinished += 1
        else:
            finished += 1
        if vid.startswith("bus_"):
            bus_delay.append(d)
        el.clear()
    never_inserted = [v for v in sched if v not in seen and sched[v] < end]
    for v in never_inserted:
        total_delay += end - sched[v]
    n = len([v for v in sched if sched[v] < end])
    return {
        "vehicles": n,
        "finished": finished,
        "unfinished": unfinished + len(never_inserted),
        "never_inserted": len(never_inserted),
        "mean_delay_s": round(total_delay / max(n, 1), 1),
        "bus_mean_delay_s": round(sum(bus_delay) / max(len(bus_delay), 1), 1),
    }


def run(cfg: Path, program: str, end: float | None = None, workdir: Path | None = None) -> dict:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bk_check_"))
    tripinfo = workdir / f"tripinfo_{program}.xml"
    cmd = [
        sumo_binary(),
        "-c",
        str(cfg),
        "--seed",
        "1",
        "--time-to-teleport",
        "-1",
        "--tripinfo-output",
        str(tripinfo),
        "--tripinfo-output.write-unfinished",
        "--no-step-log",
        "--duration-log.disable",
        "--no-warnings",
        "--statistic-output",
        str(workdir / f"stats_{program}.xml"),
    ]
    if program == "actuated":
        cmd += ["--additional-files", f"{STOPS_ADD},{ACTUATED_ADD}"]
    if end is not None:
        cmd += ["--end", str(end)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"sumo failed ({program}):\n{res.stdout}\n{res.stderr}")
    scn = load_scenario(cfg, check=False)
    summary = summarise(tripinfo, scn.route_files[0], end if end is not None else scn.end)
    summary["teleports"] = int(read_statistics(workdir / f"stats_{program}.xml")["teleports"])
    summary["wall_s"] = round(wall, 2)
    summary["program"] = program
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Bunda Kota calibration check")
    ap.add_argument("--config", type=Path, default=DEFAULT_CFG)
    ap.add_argument("--end", type=float, default=None, help="override simulation end (s)")
    ap.add_argument("--jobs", type=int, default=2, help="SUMO runs in parallel (1 = sequential)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bk_check_") as tmp,
        ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex,
    ):
        futs = [ex.submit(run, args.config, p, args.end, Path(tmp)) for p in ("static", "actuated")]
        results = [f.result() for f in futs]
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(
            f"{'program':10s} {'vehicles':>8s} {'delay[s]':>9s} {'bus[s]':>7s} {'unfinished':>10s} "
            f"{'not_ins':>8s} {'teleports':>9s} {'wall[s]':>7s}"
        )
        for r in results:
            print(
                f"{r['program']:10s} {r['vehicles']:8d} {r['mean_delay_s']:9.1f} {r['bus_mean_delay_s']:7.1f} "
                f"{r['unfinished']:10d} {r['never_inserted']:8d} {r['teleports']:9d} {r['wall_s']:7.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
