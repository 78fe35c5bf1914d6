"""The signal programs SUMO runs: one reader for the compiler and the baselines.

SUMO loads the net's ``tlLogic`` elements first, in file order, then those of the additional files, in the
order of ``additional-files``; the program loaded **last** for a traffic light id is the one it runs
(checked with libsumo ``trafficlight.getProgram``). A WAUT (``<WAUT>`` with ``<wautJunction>``) switches
programs by time of day: Lintas does not follow the switches; it takes the program the WAUT runs at
``begin`` and says so (:attr:`RunningPrograms.waut`). (SUMO leaves a light Lintas drives alone: a WAUT
switch does not replace the program set over TraCI/libsumo. The SUMO baselines do follow the switches.)

:func:`running_programs` returns, per traffic light, that program with its phases and the ``tlLogic``
element as loaded (every attribute of every phase, ``next`` and ``name`` included, and its children), so
``netcompile`` and ``baselines`` work on the same program. Gzipped files are read through
:func:`simulation.sumo.files.open_xml`.
"""

from __future__ import annotations

import copy
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from simulation.sumo.files import open_xml
from simulation.sumo.scenario import ScenarioError, parse_sumo_time

__all__ = ["Phase", "RunningPrograms", "TlsProgram", "Waut", "read_programs", "running_programs"]


class Phase(NamedTuple):
    state: str
    duration: float
    min_dur: float  # -1 when not given
    max_dur: float  # -1 when not given


@dataclass
class TlsProgram:
    tls_id: str
    program_id: str
    offset: float
    type: str
    phases: list[Phase]
    source: str = "net"  # "net" or the additional file that defined it
    n_programs: int = 1  # how many programs were seen for this TLS (net + additional files)
    element: ET.Element | None = field(default=None, repr=False, compare=False)  # the tlLogic as loaded


@dataclass
class Waut:
    """A WAUT: programs switched by time (``<WAUT>``, its ``<wautSwitch>`` and ``<wautJunction>`` elements)."""

    id: str
    ref_time: float
    start_prog: str
    period: float
    switches: list[tuple[float, str]]  # (time, program id), as written
    junctions: list[str] = field(default_factory=list)
    source: str = ""

    def program_at(self, t: float) -> str:
        """The program id the WAUT runs at time ``t``: ``startProg`` until the first switch at or before ``t``
        (switch times count from ``refTime``; with a ``period`` they repeat)."""
        rel = t - self.ref_time
        if self.period > 0:
            rel %= self.period
        prog = self.start_prog
        for when, to in sorted(self.switches):
            if when <= rel + 1e-9:
                prog = to
        return prog


@dataclass
class RunningPrograms:
    """What :func:`running_programs` found."""

    programs: dict[str, TlsProgram]  # traffic light id -> the program SUMO runs at begin
    counts: dict[str, int]  # traffic light id -> programs loaded for it (net and additional files)
    wauts: list[Waut] = field(default_factory=list)
    #: traffic light id -> what the WAUT that switches it means here (not supported: the program at begin runs)
    waut: dict[str, str] = field(default_factory=dict)


def _float(text: str | None, default: float = 0.0) -> float:
    if text is None or text == "":
        return default
    return parse_sumo_time(text)


def _phase_from_attrs(a: dict) -> Phase:
    return Phase(
        a["state"],
        float(a.get("duration", 0.0)),
        float(a["minDur"]) if "minDur" in a else -1.0,
        float(a["maxDur"]) if "maxDur" in a else -1.0,
    )


def _program(el: ET.Element, source: str) -> TlsProgram:
    phases = [_phase_from_attrs(ph.attrib) for ph in el.findall("phase")]
    return TlsProgram(el.get("id", ""), el.get("programID", ""), _float(el.get("offset")), el.get("type", "static"),
                      phases, source=source, element=el)


def read_programs(path: str | os.PathLike[str], source: str | None = None
                  ) -> tuple[list[TlsProgram], list[Waut]]:
    """The ``tlLogic`` and ``WAUT`` elements of one SUMO file (a net or an additional file), in file order.

    ``source``: what the programs record as their origin (default: the file's path)."""
    p = Path(path)
    src = str(p) if source is None else source
    progs: list[TlsProgram] = []
    wauts: dict[str, Waut] = {}
    waut_junctions: list[tuple[str, str]] = []
    depth = 0
    root_tag = ""
    try:
        with open_xml(p) as fh:
            for ev, el in ET.iterparse(fh, events=("start", "end")):
                if ev == "start":
                    depth += 1
                    root_tag = root_tag or el.tag
                    continue
                depth -= 1
                if el.tag == "tlLogic":
                    progs.append(_program(copy.deepcopy(el), src))
                elif el.tag == "WAUT":
                    try:
                        switches = [(_float(s.get("time")), s.get("to", "")) for s in el.findall("wautSwitch")]
                        w = Waut(el.get("id", ""), _float(el.get("refTime")), el.get("startProg", ""),
                                 _float(el.get("period")), switches, source=src)
                    except ValueError as exc:
                        raise ScenarioError(f"{p}: WAUT {el.get('id', '')!r}: bad time ({exc})") from None
                    wauts[w.id] = w
                elif el.tag == "wautJunction":
                    waut_junctions.append((el.get("wautID", ""), el.get("junctionID", "")))
                if depth == 1 and root_tag not in ("tlLogic", "WAUT"):
                    el.clear()  # a top-level element of the file (edge, junction, ...): done with it
    except ET.ParseError as exc:
        raise ScenarioError(f"{p}: not a valid SUMO XML file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise ScenarioError(f"{p}: cannot read ({exc})") from None
    except ValueError as exc:
        raise ScenarioError(f"{p}: bad number in a tlLogic ({exc})") from None
    for wid, jid in waut_junctions:
        if wid in wauts:
            wauts[wid].junctions.append(jid)
    return progs, list(wauts.values())


def running_programs(net_file: str | os.PathLike[str], additional_files: Iterable[str | os.PathLike[str]] = (),
                     begin: float = 0.0) -> RunningPrograms:
    """The program SUMO runs for each traffic light at ``begin``: the last ``tlLogic`` loaded for its id
    (the net's, then the additional files' in their order), or, where a WAUT switches the light, the
    program the WAUT runs at ``begin`` (the switches themselves are not followed: see ``waut``)."""
    loaded: dict[str, list[TlsProgram]] = {}
    wauts: list[Waut] = []
    net_progs, net_wauts = read_programs(net_file, source="net")
    for prog in net_progs:
        loaded.setdefault(prog.tls_id, []).append(prog)
    wauts.extend(net_wauts)
    for f in additional_files:
        progs, ws = read_programs(f)
        for prog in progs:
            if prog.phases:  # a tlLogic without phases is no program of its own
                loaded.setdefault(prog.tls_id, []).append(prog)
        wauts.extend(ws)
    out: dict[str, TlsProgram] = {}
    counts: dict[str, int] = {}
    for tid, progs in loaded.items():
        counts[tid] = len(progs)
        chosen = progs[-1]
        chosen.n_programs = len(progs)
        out[tid] = chosen
    why: dict[str, str] = {}
    for w in wauts:
        pid = w.program_at(begin)
        for tid in w.junctions:
            cands = [p for p in loaded.get(tid, []) if p.program_id == pid]
            switches = ", ".join(f"{t:g} s -> {to}" for t, to in sorted(w.switches)) or "none"
            if cands:
                out[tid] = cands[-1]
                out[tid].n_programs = counts[tid]
                why[tid] = (f"WAUT {w.id!r} ({w.source}) switches programs ({switches}): not supported; Lintas "
                            f"compiles program {pid!r}, the one running at begin {begin:g} s, and runs its phases "
                            f"for the whole run, while SUMO's own baselines follow the switches")
            else:
                why[tid] = (f"WAUT {w.id!r} ({w.source}) names program {pid!r} at begin {begin:g} s, which is not "
                            f"loaded for {tid}; the last program loaded is compiled; WAUT switching is not supported")
    return RunningPrograms(out, counts, wauts, why)
