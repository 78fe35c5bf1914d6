"""SUMO's own signal programs as baselines: the net's static program, actuated, delay_based.

``write_sumo_program`` re-declares, for every traffic light, the program SUMO runs
(``simulation.sumo.programs.running_programs``: the last ``tlLogic`` loaded for its id, from the net or
the scenario's additional files, the same program Lintas compiles) in an additional file with the same
phases (every attribute: ``next``, ``name``, ...), ``type="actuated"`` or ``type="delay_based"`` and the
programID ``lintas_<kind>``; SUMO activates the program loaded last, so loading that file after the
scenario's own switches every signal to it (checked with libsumo ``trafficlight.getProgram``). One
program per light: a net with several programs for one light gets one new program, not one per old
program (two would share the new programID, which SUMO refuses).  Green phases keep the program's
``minDur``/``maxDur`` or get 5 s / 50 s; yellow, red-yellow and all-red phases are copied unchanged
(fixed duration).  SUMO places its own detectors for both types.  A WAUT in the scenario is not
followed (netcompile's ``CompileReport.waut`` says so): SUMO switches to the WAUT's programs at its
switch times.

The runs themselves go through the one runner of every policy (``simulation/experiments/runner.py``),
with the same detectors, options and outputs as Lintas' own policies.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path

from simulation.sumo.programs import running_programs

__all__ = [
    "BASELINES",
    "DEFAULT_MAX_DUR",
    "DEFAULT_MIN_DUR",
    "KIND_PARAMS",
    "program_id",
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
    additional_files: Iterable[str | os.PathLike[str]] = (),
    begin: float = 0.0,
    min_dur: float = DEFAULT_MIN_DUR,
    max_dur: float = DEFAULT_MAX_DUR,
    params: Mapping[str, str] | None = None,
) -> Path:
    """Write an additional file re-declaring the program each traffic light runs as a ``kind`` program.

    kind: ``"actuated"`` or ``"delay_based"``.  The program of each light is the one SUMO runs with
    ``net_path`` and ``additional_files`` (the scenario's, in their order; gzipped files are fine) at
    ``begin``.  Each keeps its id, offset and phases (state, duration, name, next, ...), gets
    ``type=kind`` and ``programID="lintas_<kind>"``.  Green phases (some ``G``/``g`` and no ``y``/``u``)
    keep the program's ``minDur``/``maxDur``, or get ``min_dur``/``max_dur``; their initial ``duration``
    is clamped into that range.  Other phases are copied unchanged.  The program's ``<param>`` entries
    are kept, then :data:`KIND_PARAMS` and ``params`` are applied on top.  Load the file after the
    scenario's own additional files.  Returns ``out_path``.
    """
    if kind not in ("actuated", "delay_based"):
        raise ValueError(f"kind must be 'actuated' or 'delay_based', not {kind!r}")
    running = running_programs(net_path, list(additional_files), begin)
    out = ET.Element("additional")
    count = 0
    for tid, prog in running.programs.items():
        tl = prog.element
        if tl is None or not prog.phases:
            continue
        new = ET.SubElement(out, "tlLogic", {
            "id": tid,
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
                    raise ValueError(f"{tid}: phase {attrs['state']} has maxDur < minDur")
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
