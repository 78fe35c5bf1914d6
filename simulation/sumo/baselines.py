"""SUMO's own signal programs as baselines: the net's static program, actuated, delay_based.

``write_sumo_program`` re-declares every ``tlLogic`` of a net in an additional file with the same
phases, ``type="actuated"`` or ``type="delay_based"`` and the programID ``lintas_<kind>``; SUMO
activates the program loaded last, so loading that file switches every signal to it (checked with
libsumo ``trafficlight.getProgram``).  Green phases keep the net's ``minDur``/``maxDur`` or get
5 s / 50 s; yellow, red-yellow and all-red phases are copied unchanged (fixed duration).  SUMO
places its own detectors for both types.

The runs themselves go through the one runner of every policy (``simulation/experiments/runner.py``),
with the same detectors, options and outputs as Lintas' own policies.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from simulation.sumo.files import open_xml

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
    with open_xml(net_path) as fh:
        root = ET.parse(fh).getroot()
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
