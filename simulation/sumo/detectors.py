"""Detectors on the incoming controlled lanes: the engine's view of traffic in SUMO.

``place_detectors`` writes a SUMO additional file with, per incoming controlled lane, an induction
loop (E1) at the stop line, an E1 ``advance_distance`` upstream (on the upstream lane when the lane
is shorter) and a lane-area detector (E2) over the approach, ending at the stop line. Short lanes
are extended upstream along their unique predecessors (same rule as the queue length in
:mod:`simulation.sumo.netcompile`); a multi-lane E2 uses SUMO's ``lanes="a b c"`` form, SUMO inserts the
internal lanes between them itself.

``existing_detectors`` reads the E1/E2 detectors a scenario's own additional files define on the
approaches so the engine can read them too.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from engine.network import DET_ADVANCE, DET_AREA, DET_STOPLINE, Network
from simulation.sumo.files import open_xml
from simulation.sumo.lanegraph import LaneGraph, read_net
from simulation.sumo.scenario import Scenario, ScenarioError

__all__ = [
    "MIN_ADVANCE_CHAIN",
    "NULL_FILE",
    "DetectorArrays",
    "DetectorLayout",
    "detector_id",
    "existing_detectors",
    "place_detectors",
]

MIN_ADVANCE_CHAIN = 15.0  # no advance loop on approaches shorter than this (m)
NULL_FILE = "NUL"  # SUMO 1.28 maps "NUL" (and "/dev/null") to its null output device, on Linux too
STOPLINE_KIND_MAX_DIST = 10.0  # an existing E1 this close to the stop line counts as a stop-line loop

DetectorArrays = tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""(det_ids, det_lane int32, det_kind int8, det_pos float64, det_length float64)"""


@dataclass
class DetectorLayout:
    # m before the stop line: under the first waiting vehicle (SUMO stops it ~1 m short of the line)
    stopline_offset: float = 3.0
    advance_distance: float = 40.0  # m upstream of the stop line
    area_length: float = 100.0  # m of approach covered by the E2, ending at the stop line
    period: int = 1  # aggregation period of SUMO's (discarded) file output, s


_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_.#:+\-\[\]]")


def detector_id(prefix: str, lane_id: str) -> str:
    """``lintas_<prefix>_<lane>`` with characters SUMO may reject replaced by '_'."""
    return f"lintas_{prefix}_{_BAD_ID_CHARS.sub('_', lane_id)}"


class _Found:
    """Detectors as they are found, turned into the Network's detector arrays at the end."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.rows: list[tuple[int, int, float, float]] = []  # (lane index, kind, pos, length)

    def add(self, did: str, lane: int, kind: int, pos: float, length: float) -> None:
        self.ids.append(did)
        self.rows.append((lane, kind, pos, length))

    def arrays(self) -> DetectorArrays:
        lanes, kinds, poss, lens = zip(*self.rows) if self.rows else ((), (), (), ())
        return (self.ids, np.asarray(lanes, dtype=np.int32), np.asarray(kinds, dtype=np.int8),
                np.asarray(poss, dtype=np.float64), np.asarray(lens, dtype=np.float64))


def _unique(ident: str, used: set[str]) -> str:
    if ident not in used:
        used.add(ident)
        return ident
    n = 2
    while f"{ident}~{n}" in used:
        n += 1
    used.add(f"{ident}~{n}")
    return f"{ident}~{n}"


def _f(x: float) -> str:
    return f"{x:.2f}"


def _graph_for(net_path: Path, graph: LaneGraph | None) -> LaneGraph:
    if graph is not None:
        return graph
    return LaneGraph.from_net(read_net(Path(net_path)))


def place_detectors(
    net_path: str | Path,
    network: Network,
    layout: DetectorLayout,
    out_path: str | Path,
    *,
    graph: LaneGraph | None = None,
) -> DetectorArrays:
    """Write the detector additional file for ``network``'s incoming lanes to ``out_path``.

    Returns (det_ids, det_lane, det_kind, det_pos, det_length) in the conventions of
    :class:`engine.network.Network`; det_pos is the distance from the stop line (the upstream end
    for E2), det_length the E2 zone length (0 for loops). ``lane_ids -> detector ids`` can be rebuilt
    with :func:`detector_id`.
    """
    g = _graph_for(Path(net_path), graph)
    controlled = frozenset(network.lane_ids)
    reach = max(layout.area_length, layout.advance_distance)
    found = _Found()
    used: set[str] = set()
    lines = [
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        (
            f"<!-- Lintas detectors for {network.name}: stop line {layout.stopline_offset:g} m, advance "
            f"{layout.advance_distance:g} m, area {layout.area_length:g} m -->"
        ),
        "<additional>",
    ]
    for li, lane in enumerate(network.lane_ids):
        if lane not in g.length:
            raise ScenarioError(f"{net_path}: lane {lane} of network {network.name} is not in the net")
        chain = g.upstream_chain(lane, reach, controlled)
        total = chain[-1].end_offset + chain[-1].length
        head_len = chain[0].length

        # stop line loop
        pos = max(0.0, head_len - layout.stopline_offset)
        did = _unique(detector_id("sl", lane), used)
        lines.append(
            f"    <inductionLoop id={quoteattr(did)} lane={quoteattr(lane)} pos=\"{_f(pos)}\" "
            f"period=\"{layout.period}\" file=\"{NULL_FILE}\"/>"
        )
        found.add(did, li, DET_STOPLINE, head_len - pos, 0.0)

        # advance loop
        if total >= MIN_ADVANCE_CHAIN:
            target = layout.advance_distance
            on = None
            if total >= target:
                for cl in chain:
                    if cl.end_offset + cl.length >= target:
                        on = cl
                        # target inside the internal lane downstream of cl: cl's downstream end
                        apos = max(0.0, min(cl.length - 0.1, cl.length - (target - cl.end_offset)))
                        break
            if on is None:  # the approach is shorter than the advance distance
                on = chain[-1]
                apos = min(0.5, on.length)
            did = _unique(detector_id("adv", lane), used)
            lines.append(
                f"    <inductionLoop id={quoteattr(did)} lane={quoteattr(on.lane)} pos=\"{_f(apos)}\" "
                f"period=\"{layout.period}\" file=\"{NULL_FILE}\"/>"
            )
            found.add(did, li, DET_ADVANCE, on.end_offset + on.length - apos, 0.0)

        # lane-area detector ending at the stop line
        cover = min(layout.area_length, total)
        parts = [cl for cl in chain if cl.end_offset < cover] or [chain[0]]
        up = parts[-1]
        spos = max(0.0, up.length - max(0.0, cover - up.end_offset))
        if len(parts) > 1 and up.length - spos < 0.1:  # would start on the very end of a lane
            parts = parts[:-1]
            up = parts[-1]
            spos = 0.0
        actual = up.end_offset + up.length - spos
        did = _unique(detector_id("cam", lane), used)
        if len(parts) == 1:
            where = f"lane={quoteattr(lane)}"
        else:
            where = "lanes=" + quoteattr(" ".join(cl.lane for cl in reversed(parts)))
        lines.append(
            f"    <laneAreaDetector id={quoteattr(did)} {where} pos=\"{_f(spos)}\" endPos=\"{_f(head_len)}\" "
            f"period=\"{layout.period}\" file=\"{NULL_FILE}\"/>"
        )
        found.add(did, li, DET_AREA, actual, actual)

    lines.append("</additional>")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # write-then-rename: parallel runs compiling the same scenario never see a half-written file
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return found.arrays()


_E1_TAGS = ("inductionLoop", "e1Detector", "instantInductionLoop")
_E2_TAGS = ("laneAreaDetector", "e2Detector")


def _num(v: str | None, default: float | None) -> float | None:
    if v is None or v == "":
        return default
    try:
        return float(v)
    except ValueError:
        return default


def existing_detectors(
    scenario: Scenario,
    network: Network,
    *,
    graph: LaneGraph | None = None,
    reach: float = 200.0,
) -> DetectorArrays:
    """E1/E2 detectors that the scenario's own additional files define on the approaches.

    Only detectors on an incoming controlled lane, or on the lanes counted with it upstream (up to
    ``reach`` metres), are returned; kinds: E2 -> area, E1 within 10 m of the stop line -> stopline,
    other E1 -> advance. Detectors of this module (ids ``lintas_*``) are skipped.
    """
    empty: DetectorArrays = ([], np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0), np.zeros(0))
    if not scenario.additional_files:
        return empty
    g = _graph_for(scenario.net_file, graph)
    controlled = frozenset(network.lane_ids)
    where: dict[str, tuple[int, float]] = {}  # lane -> (controlled lane index, end offset)
    for li, lane in enumerate(network.lane_ids):
        for cl in g.upstream_chain(lane, reach, controlled):
            where.setdefault(cl.lane, (li, cl.end_offset))

    found = _Found()
    for f in scenario.additional_files:
        try:
            with open_xml(f) as fh:
                for _ev, el in ET.iterparse(fh, events=("start",)):
                    tag = el.tag
                    if tag not in _E1_TAGS and tag not in _E2_TAGS:
                        continue
                    did = el.get("id", "")
                    if not did or did.startswith("lintas_"):
                        continue
                    if tag in _E1_TAGS:
                        lane = el.get("lane", "")
                        if lane not in where or lane not in g.length:
                            continue
                        li, off = where[lane]
                        ln = g.length[lane]
                        p = _num(el.get("pos"), 0.0)
                        p = ln + p if p < 0 else min(p, ln)
                        dist = off + ln - p
                        found.add(did, li, DET_STOPLINE if dist <= STOPLINE_KIND_MAX_DIST else DET_ADVANCE, dist, 0.0)
                    else:
                        lane_list = (el.get("lanes") or el.get("lane") or "").split()
                        if not lane_list:
                            continue
                        last = lane_list[-1]
                        if last not in where or last not in g.length:
                            continue
                        li, off = where[last]
                        ln = g.length[last]
                        length = _num(el.get("length"), None)
                        end = _num(el.get("endPos"), None)
                        start = _num(el.get("pos"), None)
                        if len(lane_list) == 1:
                            s = start if start is not None else 0.0
                            s = ln + s if s < 0 else s
                            if end is None:
                                end = s + length if length is not None else ln
                        if end is None:
                            end = ln
                        end = ln + end if end < 0 else min(end, ln)
                        if length is None:
                            if len(lane_list) == 1:
                                length = end - s
                            else:
                                first = lane_list[0]
                                fl = g.length.get(first, 0.0)
                                s0 = start if start is not None else 0.0
                                s0 = fl + s0 if s0 < 0 else s0
                                if first in where and where[first][0] == li:
                                    length = (where[first][1] + fl - s0) - (off + ln - end)
                                else:
                                    length = sum(g.length.get(x, 0.0) for x in lane_list) - s0 - (ln - end)
                        down = off + ln - end
                        found.add(did, li, DET_AREA, down + max(0.0, length), max(0.0, length))
        except ET.ParseError as exc:
            raise ScenarioError(f"{f}: not a valid additional XML file ({exc})") from None
    return found.arrays()
