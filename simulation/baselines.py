"""SUMO's own signal programs as baselines: the net's static program, actuated, delay_based.

``write_sumo_program`` re-declares every ``tlLogic`` of a net in an additional file with the same
phases, ``type="actuated"`` or ``type="delay_based"`` and the programID ``lintas_<kind>``; SUMO
activates the program loaded last, so loading that file switches every signal to it (checked with
libsumo ``trafficlight.getProgram``).  Green phases keep the net's ``minDur``/``maxDur`` or get
5 s / 50 s; yellow, red-yellow and all-red phases are copied unchanged (fixed duration).  SUMO
places its own detectors for both types.

``run_baseline`` runs one (scenario, baseline, seed) with the options used for the reference
figures in shared/notes/control.md: ``--seed N --time-to-teleport -1`` and the outputs of
:func:`simulation.metrics.sumo_output_args`; it returns :class:`simulation.metrics.RunMetrics`.
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from simulation.metrics import (
    OUTPUT_STATISTICS,
    OUTPUT_TRIPINFO,
    RunMetrics,
    compute_metrics,
    read_sumocfg,
    scheduled_departures,
    sumo_output_args,
)

__all__ = [
    "BASELINES",
    "DEFAULT_MAX_DUR",
    "DEFAULT_MIN_DUR",
    "KIND_PARAMS",
    "approach_lanes",
    "program_id",
    "run_baseline",
    "sumo_binary",
    "write_sumo_program",
]

#: policy name -> tlLogic type written by :func:`write_sumo_program` (``None``: the net's program).
BASELINES: dict[str, str | None] = {
    "sumo-static": None,
    "sumo-actuated": "actuated",
    "sumo-delay": "delay_based",
}

DEFAULT_MIN_DUR = 5.0
DEFAULT_MAX_DUR = 50.0

#: Parameters written into each program, per kind.  They are SUMO 1.28's defaults, spelled out so
#: the files say what ran: actuated gap control (max-gap 3 s, detectors 2 s of travel upstream of
#: the stop line, passing time 1.9 s); delay_based lane-area detectors over 100 m, 1 s time loss.
KIND_PARAMS: dict[str, dict[str, str]] = {
    "actuated": {"max-gap": "3.0", "detector-gap": "2.0", "passing-time": "1.9"},
    "delay_based": {"detectorRange": "100", "minTimeloss": "1.0"},
}

_TRANSITION_CHARS = set("yYu")
_GREEN_CHARS = set("Gg")


def program_id(kind: str) -> str:
    """The programID :func:`write_sumo_program` gives programs of ``kind``."""
    return f"lintas_{kind}"


def _fmt(x: float) -> str:
    return f"{x:g}"


def _is_green(state: str) -> bool:
    chars = set(state)
    return bool(chars & _GREEN_CHARS) and not (chars & _TRANSITION_CHARS)


def write_sumo_program(
    net_path: str | os.PathLike[str],
    kind: str,
    out_path: str | os.PathLike[str],
    *,
    min_dur: float = DEFAULT_MIN_DUR,
    max_dur: float = DEFAULT_MAX_DUR,
    params: Mapping[str, str] | None = None,
) -> Path:
    """Write an additional file re-declaring every tlLogic of ``net_path`` as a ``kind`` program.

    kind: ``"actuated"`` or ``"delay_based"``.  Each program keeps the net's id, offset and phases
    (state, duration, name, next, ...), gets ``type=kind`` and ``programID="lintas_<kind>"``.  Green
    phases (some ``G``/``g`` and no ``y``/``u``) keep the net's ``minDur``/``maxDur``, or get
    ``min_dur``/``max_dur``; their initial ``duration`` is clamped into that range.  Other phases
    are copied unchanged.  The net's ``<param>`` entries are kept, then :data:`KIND_PARAMS` and
    ``params`` are applied on top.  Returns ``out_path``.
    """
    if kind not in ("actuated", "delay_based"):
        raise ValueError(f"kind must be 'actuated' or 'delay_based', not {kind!r}")
    root = ET.parse(Path(net_path)).getroot()
    out = ET.Element("additional")
    count = 0
    for tl in root.iter("tlLogic"):
        new = ET.SubElement(out, "tlLogic", {
            "id": tl.attrib["id"],
            "type": kind,
            "programID": program_id(kind),
            "offset": tl.attrib.get("offset", "0"),
        })
        for ph in tl.findall("phase"):
            attrs = dict(ph.attrib)
            if _is_green(attrs["state"]):
                lo = float(attrs.get("minDur", min_dur))
                hi = float(attrs.get("maxDur", max_dur))
                if hi < lo:
                    raise ValueError(f"{tl.attrib['id']}: phase {attrs['state']} has maxDur < minDur")
                dur = min(max(float(attrs["duration"]), lo), hi)
                attrs["duration"] = _fmt(dur)
                attrs["minDur"] = _fmt(lo)
                attrs["maxDur"] = _fmt(hi)
            ET.SubElement(new, "phase", attrs)
        merged: dict[str, str] = {p.attrib["key"]: p.attrib.get("value", "") for p in tl.findall("param")}
        merged.update(KIND_PARAMS.get(kind, {}))
        merged.update(params or {})
        for key, value in merged.items():
            ET.SubElement(new, "param", {"key": key, "value": str(value)})
        count += 1
    if count == 0:
        raise ValueError(f"{net_path}: no tlLogic")
    ET.indent(out, space="    ")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(out).write(out_path, encoding="UTF-8", xml_declaration=True)
    return out_path


def approach_lanes(net_path: str | os.PathLike[str], *, min_length: float = 50.0) -> dict[str, list[str]]:
    """Signal id -> lanes whose halting vehicles form that signal's queue.

    The controlled incoming lanes of each traffic light, each extended upstream (through the lanes
    that feed it) until ``min_length`` metres are covered, so a junction whose approach is a chain
    of very short lanes (ingolstadt7's gneJ143 has 1 m lanes) still shows its queue.  A lane
    upstream of two signals is counted for both.
    """
    import sumolib  # local: importing sumolib is slow-ish and only needed here

    net = sumolib.net.readNet(os.fspath(net_path), withInternal=False)
    out: dict[str, list[str]] = {}
    for tls in net.getTrafficLights():
        lanes: list[str] = []
        seen: set[str] = set()
        for in_lane, _out_lane, _idx in tls.getConnections():
            stack = [(in_lane, 0.0)]
            while stack:
                lane, covered = stack.pop()
                lid = lane.getID()
                if lid.startswith(":"):
                    continue
                if lid not in seen:
                    seen.add(lid)
                    lanes.append(lid)
                covered += lane.getLength()
                if covered < min_length:
                    for up in lane.getIncoming():
                        if up.getID() not in seen:
                            stack.append((up, covered))
        out[tls.getID()] = lanes
    return out


def sumo_binary(name: str = "sumo") -> str:
    """Path of a SUMO binary of the installed eclipse-sumo (``import sumo`` sets SUMO_HOME)."""
    import sumo  # noqa: F401  (sets SUMO_HOME)
    import sumolib

    return sumolib.checkBinary(name)


def _sumo_args(
    sumocfg: Path,
    policy: str,
    seed: int,
    out_dir: Path,
    time_to_teleport: float,
    extra_args: Sequence[str],
) -> list[str]:
    cfg = read_sumocfg(sumocfg)
    if policy not in BASELINES:
        raise ValueError(f"unknown baseline {policy!r}; one of {sorted(BASELINES)}")
    kind = BASELINES[policy]
    additional = [str(p) for p in cfg.additional_files]
    if kind is not None:
        additional.append(str(write_sumo_program(cfg.net_file, kind, out_dir / f"tls_{kind}.add.xml")))
    args = [
        "-c", str(cfg.path),
        "--seed", str(int(seed)),
        "--time-to-teleport", _fmt(time_to_teleport),
        "--no-step-log", "true",
        "--no-warnings", "true",
        *sumo_output_args(out_dir),
    ]
    if additional:
        args += ["--additional-files", ",".join(additional)]
    return args + list(extra_args)


def run_baseline(
    sumocfg: str | os.PathLike[str],
    policy: str,
    seed: int,
    out_dir: str | os.PathLike[str],
    *,
    queues: bool = False,
    time_to_teleport: float = -1,
    extra_args: Sequence[str] = (),
    timeout_s: float | None = 600,
) -> RunMetrics:
    """Run one SUMO baseline (a key of :data:`BASELINES`) and compute its metrics.

    Without ``queues`` it runs the ``sumo`` binary in a subprocess (``queue_veh`` is NaN).  With
    ``queues`` it runs sumo under TraCI (also a separate process) and samples, every step, the
    halting vehicles on the :func:`approach_lanes` of each signal (lane subscriptions).
    Outputs go to ``out_dir`` (tripinfo.xml, statistics.xml, the program file).
    """
    cfg = read_sumocfg(sumocfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    args = _sumo_args(cfg.path, policy, seed, out, time_to_teleport, extra_args)
    scheduled = scheduled_departures(cfg.route_files, cfg.begin, cfg.end)

    samples: np.ndarray | None = None
    junctions: list[str] | None = None
    times: np.ndarray | None = None
    if not queues:
        proc = subprocess.run(
            [sumo_binary(), *args], check=False, capture_output=True, text=True, timeout=timeout_s
        )
        (out / "sumo.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"sumo failed ({proc.returncode}): {proc.stderr[-2000:]}")
    else:
        # TraCI, i.e. a separate sumo process per run: libsumo runs in one process are not
        # independent (SUMO 1.28: a cologne1 run right after a grid4x4 delay_based run in the same
        # process gives 44.1 s instead of 43.0 s), so each run gets its own process.
        import traci
        from traci import constants as tc

        lanes = approach_lanes(cfg.net_file)
        junctions = list(lanes)
        label = f"lintas-baseline-{os.getpid()}-{id(out)}"
        traci.start([sumo_binary(), *args], label=label, stdout=subprocess.DEVNULL)
        conn = traci.getConnection(label)
        rows: list[list[float]] = []
        tlist: list[float] = []
        try:
            all_lanes = sorted({lid for j in junctions for lid in lanes[j]})
            for lid in all_lanes:
                conn.lane.subscribe(lid, (tc.LAST_STEP_VEHICLE_HALTING_NUMBER,))
            while conn.simulation.getTime() < cfg.end:
                conn.simulationStep()
                res = conn.lane.getAllSubscriptionResults()
                halting = {lid: res[lid][tc.LAST_STEP_VEHICLE_HALTING_NUMBER] for lid in all_lanes}
                tlist.append(conn.simulation.getTime())
                rows.append([float(sum(halting[lid] for lid in lanes[j])) for j in junctions])
        finally:
            conn.close()
        samples = np.asarray(rows, dtype=float).reshape(len(rows), len(junctions))
        times = np.asarray(tlist)

    return compute_metrics(
        out / OUTPUT_TRIPINFO,
        out / OUTPUT_STATISTICS,
        scheduled,
        cfg.end,
        samples,
        junction_ids=junctions,
        begin=cfg.begin,
        sample_times=times,
    )
