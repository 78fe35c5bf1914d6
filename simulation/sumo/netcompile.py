"""Compile a SUMO net (and its scenario) into the engine's :class:`engine.network.Network`.

For every traffic light of the net (sorted by TLS id) this reads the program SUMO will run
(the last one loaded for that id: the net's last program, overridden by a ``tlLogic`` in the
scenario's additional files), the controlled links with their lanes, the green phases with their
ring order, yellow and all-red, and a conflict matrix built from the junction's right-of-way
request matrix intersected with "never green together in the net's program".

Everything SUMO-specific lives here (sumolib); the engine only sees flat arrays.
"""

from __future__ import annotations

import time
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from engine.network import Network
from engine.protocol.junction import JunctionSpec
from simulation.sumo.detectors import DetectorLayout, existing_detectors, place_detectors
from simulation.sumo.files import open_xml
from simulation.sumo.lanegraph import LaneGraph, read_net
from simulation.sumo.scenario import Scenario, ScenarioError, load_scenario

__all__ = [
    "GREEN_CHARS",
    "QUEUE_MIN_LENGTH",
    "YELLOW_CHARS",
    "CompileReport",
    "TlsProgram",
    "compile_for_run",
    "compile_network",
]

QUEUE_MIN_LENGTH = 50.0  # a controlled lane shorter than this is counted with the lanes upstream
GREEN_CHARS = frozenset("Gg")
YELLOW_CHARS = frozenset("yYu")  # 'u' (red+yellow) is a transition state too


# ------------------------------------------------------------------------------------------------
# programs
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


def _is_green(state: str) -> bool:
    return any(c in GREEN_CHARS for c in state) and not any(c in YELLOW_CHARS for c in state)


def _phase_from_attrs(a: dict) -> Phase:
    return Phase(
        a["state"],
        float(a.get("duration", 0.0)),
        float(a["minDur"]) if "minDur" in a else -1.0,
        float(a["maxDur"]) if "maxDur" in a else -1.0,
    )


def _additional_programs(files: list[Path]) -> dict[str, list[TlsProgram]]:
    """tlLogic elements of additional files, in load order."""
    progs: dict[str, list[TlsProgram]] = {}
    for f in files:
        cur: TlsProgram | None = None
        try:
            with open_xml(f) as fh:
                for ev, el in ET.iterparse(fh, events=("start", "end")):
                    if ev == "start":
                        if el.tag == "tlLogic":
                            cur = TlsProgram(
                                el.get("id", ""),
                                el.get("programID", ""),
                                float(el.get("offset", "0") or 0.0),
                                el.get("type", "static"),
                                [],
                                source=str(f),
                            )
                        elif el.tag == "phase" and cur is not None:
                            cur.phases.append(_phase_from_attrs(el.attrib))
                    elif el.tag == "tlLogic" and cur is not None:
                        progs.setdefault(cur.tls_id, []).append(cur)
                        cur = None
        except ET.ParseError as exc:
            raise ScenarioError(f"{f}: not a valid additional XML file ({exc})") from None
    return progs


def _net_program(tls) -> tuple[TlsProgram | None, int]:
    progs = tls.getPrograms()
    if not progs:
        return None, 0
    # sumolib keeps file order; SUMO activates the last program loaded for an id
    pid, p = list(progs.items())[-1]
    phases = [Phase(ph.state, float(ph.duration), float(ph.minDur), float(ph.maxDur)) for ph in p.getPhases()]
    return TlsProgram(tls.getID(), str(pid), float(p.getOffset()), p.getType(), phases), len(progs)


def _node_link_indices(node, net) -> dict[int, int] | None:
    """id(connection) -> index in the node's request matrix, or None when it can't be rebuilt.

    Same order as SUMO: incoming lanes in ``incLanes`` order, each lane's connections in file order,
    skipping pedestrian connections into walking areas (as sumolib's ``Node.getLinkIndex``).
    """
    idx: dict[int, int] = {}
    k = 0
    for lane_id in getattr(node, "_incLanes", None) or []:
        if not lane_id:
            continue
        try:
            lane = net.getLane(lane_id)
        except KeyError:
            return None
        for c in lane.getOutgoing():
            ff = c.getFromLane().getEdge().getFunction()
            tf = c.getToLane().getEdge().getFunction()
            if tf == "walkingarea" or (ff == "walkingarea" and tf != "crossing"):
                continue
            idx[id(c)] = k
            k += 1
    foes = getattr(node, "_foes", {})
    if k != len(foes) or any(i not in foes for i in range(k)):
        return None
    return idx


@dataclass
class _Link:
    index: int
    conn: object | None = None  # sumolib Connection
    in_lane: str = ""
    out_lane: str = ""
    via: str = ""
    vehicle: bool = False
    node: object | None = None
    jidx: int = -1  # index in node's request matrix, -1 unmapped


@dataclass
class CompileReport:
    """What compile_network noticed (for logs and the CLI): nothing here is needed to run."""

    multi_program: dict[str, int] = field(default_factory=dict)
    program_source: dict[str, str] = field(default_factory=dict)
    unmapped_links: dict[str, list[int]] = field(default_factory=dict)
    uncovered_links: dict[str, list[int]] = field(default_factory=dict)
    skipped_tls: dict[str, str] = field(default_factory=dict)
    duplicate_greens: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _green_structure(prog: TlsProgram, min_green: float, max_green: float, yellow_min: float,
                     allred: float, begin: float):
    phases = prog.phases
    n = len(phases)
    green_pos = [i for i, ph in enumerate(phases) if _is_green(ph.state)]
    if not green_pos:
        return None
    # unique green states, ring order = order of first appearance
    uniq: list[str] = []
    uidx: dict[str, int] = {}
    for i in green_pos:
        s = phases[i].state
        if s not in uidx:
            uidx[s] = len(uniq)
            uniq.append(s)
    ng = len(uniq)
    n_dup = len(green_pos) - ng

    def intermediates(i: int) -> tuple[list[Phase], int]:
        """Non-green phases after program phase i up to the next green phase (and that one)."""
        out = []
        j = (i + 1) % n
        for _ in range(n):
            if _is_green(phases[j].state):
                return out, j
            out.append(phases[j])
            j = (j + 1) % n
        return out, i

    fixed = [0.0] * ng
    mins = [0.0] * ng
    maxs = [0.0] * ng
    nxt = [0] * ng
    trans: list[list[tuple[str, float]] | None] = [None] * ng
    first_trans: list[list[Phase]] = [[] for _ in range(ng)]
    seen = [False] * ng
    for i in green_pos:
        k = uidx[phases[i].state]
        mids, j = intermediates(i)
        if not seen[k]:
            seen[k] = True
            ph = phases[i]
            fixed[k] = ph.duration
            mins[k] = max(min_green, ph.min_dur) if ph.min_dur > 0 else min_green
            maxs[k] = max(max_green, ph.max_dur if ph.max_dur > 0 else 0.0, mins[k])
            first_trans[k] = mids
        kn = (k + 1) % ng
        if trans[k] is None and uidx[phases[j].state] == kn:
            trans[k] = [(p.state, p.duration) for p in mids]
    yellows = [0.0] * ng
    allreds = [0.0] * ng
    transitions: list[list[tuple[str, float]]] = []
    for k in range(ng):
        nxt[k] = (k + 1) % ng
        if trans[k] is None:
            trans[k] = [(p.state, p.duration) for p in first_trans[k]]
        t = trans[k]
        transitions.append(t)
        y = 0.0
        ar = 0.0
        after_yellow = False
        for st, d in t:
            if any(c in "yY" for c in st):
                y += d
                after_yellow = True
            elif after_yellow and not any(c in GREEN_CHARS for c in st):
                ar += d
        yellows[k] = max(yellow_min, y)
        allreds[k] = max(allred, ar)

    # phase in force at `begin`: SUMO's cycle position is (t - offset) mod cycle
    cycle = sum(p.duration for p in phases)
    start_phase, start_offset = uidx[phases[green_pos[0]].state], 0.0
    if cycle > 0:
        pos = (begin - prog.offset) % cycle
        t0 = 0.0
        for i, ph in enumerate(phases):
            if t0 <= pos < t0 + ph.duration or i == n - 1:
                if _is_green(ph.state):
                    start_phase, start_offset = uidx[ph.state], max(0.0, pos - t0)
                else:
                    _mids, j = intermediates(i)
                    start_phase, start_offset = uidx[phases[j].state], 0.0
                break
            t0 += ph.duration
    return {
        "green_states": uniq, "net_next": nxt, "fixed_green": fixed, "min_green": mins, "max_green": maxs,
        "yellow": yellows, "allred": allreds, "net_transitions": transitions, "start_phase": start_phase,
        "start_offset": float(start_offset), "n_dup": n_dup,
        "program_greens": [uidx[ph.state] if _is_green(ph.state) else -1 for ph in phases],
    }


def _collect_links(net) -> dict[str, dict[int, list]]:
    """tls id -> link index -> [Connection] over every connection of the net (linkIndex2 too)."""
    out: dict[str, dict[int, list]] = {}
    for e in net.getEdges(withInternal=True):
        fn = e.getFunction()
        if fn == "internal":
            continue
        for ln in e.getLanes():
            for c in ln.getOutgoing():
                tl = c.getTLSID()
                if not tl:
                    continue
                d = out.setdefault(tl, {})
                for li in (c.getTLLinkIndex(), c.getTLLinkIndex2()):
                    if li is not None and li >= 0:
                        d.setdefault(li, []).append(c)
    return out


def compile_network(
    scenario_or_net_path: Scenario | str | Path,
    *,
    min_green: float = 5.0,
    max_green: float = 60.0,
    yellow_min: float = 3.0,
    allred: float = 0.0,
    detectors: DetectorLayout | None = None,
    detector_file: str | Path | None = None,
    include_existing_detectors: bool = True,
    report: CompileReport | None = None,
) -> Network:
    """Compile every traffic light of a net into a :class:`Network`.

    ``scenario_or_net_path``: a :class:`Scenario`, a ``.sumocfg`` / scenario folder, or a
    ``.net.xml``. With ``detectors`` a SUMO additional file with the layout's detectors is written
    to ``detector_file`` and the ``det_*`` arrays describe it (plus the detectors the scenario's own
    additional files define on the approaches); with ``detectors=None`` they are empty.
    """
    t_start = time.perf_counter()
    rep = report if report is not None else CompileReport()
    scenario: Scenario | None
    if isinstance(scenario_or_net_path, Scenario):
        scenario = scenario_or_net_path
    else:
        p = Path(scenario_or_net_path)
        if p.is_file() and (p.name.endswith(".net.xml") or p.name.endswith(".net.xml.gz")):
            scenario = None
        else:
            scenario = load_scenario(p)
    if scenario is not None:
        net_file, name, begin = scenario.net_file, scenario.name, scenario.begin
        add_files = list(scenario.additional_files)
    else:
        net_file = Path(scenario_or_net_path).resolve()
        if not net_file.is_file():
            raise ScenarioError(f"{net_file}: net file does not exist")
        name = net_file.name.split(".net.xml")[0]
        begin = 0.0
        add_files = []

    net = read_net(net_file)
    graph = LaneGraph.from_net(net)
    links_by_tls = _collect_links(net)
    add_progs = _additional_programs(add_files) if add_files else {}

    tls_ids = sorted(t.getID() for t in net.getTrafficLights())
    tls_ids = sorted(set(tls_ids) | set(links_by_tls))
    if not tls_ids:
        raise ScenarioError(f"{net_file}: net has no traffic lights")
    tls_by_id = {t.getID(): t for t in net.getTrafficLights()}

    node_idx_cache: dict[str, dict[int, int] | None] = {}

    junctions: list[JunctionSpec] = []
    jlinks: list[list[_Link]] = []
    for tid in tls_ids:
        prog, n_net_progs = _net_program(tls_by_id[tid]) if tid in tls_by_id else (None, 0)
        extra = add_progs.get(tid, [])
        if extra:
            prog = extra[-1]
        n_progs = n_net_progs + len(extra)
        if n_progs > 1:
            rep.multi_program[tid] = n_progs
        if prog is None or not prog.phases:
            rep.skipped_tls[tid] = "no program"
            warnings.warn(f"{net_file.name}: traffic light {tid} has no program; skipped", stacklevel=2)
            continue
        rep.program_source[tid] = f"{prog.source}:{prog.program_id}"
        n_links = len(prog.phases[0].state)
        if any(len(p.state) != n_links for p in prog.phases):
            raise ScenarioError(f"{net_file}: traffic light {tid} program {prog.program_id} has states of "
                                f"different lengths")
        gs = _green_structure(prog, min_green, max_green, yellow_min, allred, begin)
        if gs is None:
            rep.skipped_tls[tid] = "no green phase"
            warnings.warn(f"{net_file.name}: traffic light {tid} has no green phase; skipped", stacklevel=2)
            continue
        if gs["n_dup"]:
            rep.duplicate_greens[tid] = gs["n_dup"]

        # links
        lk = [_Link(i) for i in range(n_links)]
        by_index = links_by_tls.get(tid, {})
        uncovered = []
        for i in range(n_links):
            conns = by_index.get(i, [])
            if not conns:
                uncovered.append(i)
                continue
            veh = [c for c in conns if c.getFromLane().getEdge().getFunction() == ""
                   and c.getToLane().getEdge().getFunction() == ""
                   and graph.vehicle.get(c.getFromLane().getID(), False)]
            c = veh[0] if veh else conns[0]
            L = lk[i]
            L.conn = c
            L.vehicle = bool(veh)
            if L.vehicle:
                L.in_lane = c.getFromLane().getID()
                L.out_lane = c.getToLane().getID()
                L.via = c.getViaLaneID() or ""
            node = c.getJunction()
            L.node = node
            nid = node.getID()
            if nid not in node_idx_cache:
                node_idx_cache[nid] = _node_link_indices(node, net)
            m = node_idx_cache[nid]
            L.jidx = m.get(id(c), -1) if m is not None else -1
        if uncovered:
            rep.uncovered_links[tid] = uncovered
        unm = [L.index for L in lk if L.jidx < 0]
        if unm:
            rep.unmapped_links[tid] = unm

        # conflicts: foes (same node) or unmapped, and never green together in a net green phase
        G = np.array([[c in GREEN_CHARS for c in s] for s in gs["green_states"]], dtype=np.int32)
        cogreen = (G.T @ G) > 0
        conf = np.zeros((n_links, n_links), dtype=bool)
        for a in range(n_links):
            La = lk[a]
            for b in range(a + 1, n_links):
                if cogreen[a, b]:
                    continue
                Lb = lk[b]
                if La.jidx < 0 or Lb.jidx < 0:
                    foe = True
                elif La.node is Lb.node:
                    foe = La.node.areFoes(La.jidx, Lb.jidx) or La.node.areFoes(Lb.jidx, La.jidx)
                else:
                    foe = False
                if foe:
                    conf[a, b] = conf[b, a] = True
        conflicts = ["".join("1" if v else "0" for v in row) for row in conf]

        junctions.append(
            JunctionSpec(
                id=tid,
                n_links=n_links,
                green_states=gs["green_states"],
                net_next=gs["net_next"],
                fixed_green=[float(x) for x in gs["fixed_green"]],
                min_green=[float(x) for x in gs["min_green"]],
                max_green=[float(x) for x in gs["max_green"]],
                yellow=[float(x) for x in gs["yellow"]],
                allred=[float(x) for x in gs["allred"]],
                net_transitions=[[(s, float(d)) for s, d in t] for t in gs["net_transitions"]],
                conflicts=conflicts,
                link_in_lane=[L.in_lane for L in lk],
                link_out_lane=[L.out_lane for L in lk],
                link_via=[L.via for L in lk],
                start_phase=int(gs["start_phase"]),
                start_offset=float(gs["start_offset"]),
                program_greens=list(gs["program_greens"]),
            )
        )
        jlinks.append(lk)

    if not junctions:
        raise ScenarioError(f"{net_file}: net has no usable traffic lights ({', '.join(rep.skipped_tls)})")

    # incoming controlled lanes
    lane_ids: list[str] = []
    lane_pos: dict[str, int] = {}
    lane_junction: list[int] = []
    for j, lk in enumerate(jlinks):
        for L in lk:
            if L.vehicle and L.in_lane and L.in_lane not in lane_pos:
                lane_pos[L.in_lane] = len(lane_ids)
                lane_ids.append(L.in_lane)
                lane_junction.append(j)
    controlled = frozenset(lane_ids)
    lane_length = np.zeros(len(lane_ids), dtype=np.float64)
    lane_speed = np.zeros(len(lane_ids), dtype=np.float64)
    chain_member: dict[str, int] = {}
    for li, lid in enumerate(lane_ids):
        chain = graph.upstream_chain(lid, QUEUE_MIN_LENGTH, controlled)
        lane_length[li] = LaneGraph.chain_length(chain)
        lane_speed[li] = graph.speed[lid]
        for cl in chain[1:]:
            chain_member.setdefault(cl.lane, li)

    # movements
    mov_junction, mov_link, mov_in, mov_out, mov_out_id = [], [], [], [], []
    mov_of: list[dict[int, int]] = []
    for j, lk in enumerate(jlinks):
        d = {}
        for L in lk:
            if not (L.vehicle and L.in_lane):
                continue
            d[L.index] = len(mov_junction)
            mov_junction.append(j)
            mov_link.append(L.index)
            mov_in.append(lane_pos[L.in_lane])
            out = lane_pos.get(L.out_lane, chain_member.get(L.out_lane, -1))
            mov_out.append(out)
            mov_out_id.append(L.out_lane)
        mov_of.append(d)

    # phases
    jn_phase_ptr = [0]
    phase_mov_ptr = [0]
    phase_mov_idx: list[int] = []
    pmin, pmax, pfix, pnext, pyel, pall = [], [], [], [], [], []
    for j, js in enumerate(junctions):
        base = jn_phase_ptr[-1]
        for k, st in enumerate(js.green_states):
            phase_mov_idx.extend(m for li, m in sorted(mov_of[j].items()) if st[li] in GREEN_CHARS)
            phase_mov_ptr.append(len(phase_mov_idx))
            pmin.append(js.min_green[k])
            pmax.append(js.max_green[k])
            pfix.append(js.fixed_green[k])
            pnext.append(base + js.net_next[k])
            pyel.append(js.yellow[k])
            pall.append(js.allred[k])
        jn_phase_ptr.append(base + js.n_phases)

    network = Network(
        name=name,
        junctions=junctions,
        lane_ids=lane_ids,
        lane_junction=np.asarray(lane_junction, dtype=np.int32),
        lane_length=lane_length,
        lane_speed=lane_speed,
        mov_junction=np.asarray(mov_junction, dtype=np.int32),
        mov_link=np.asarray(mov_link, dtype=np.int32),
        mov_in_lane=np.asarray(mov_in, dtype=np.int32),
        mov_out_lane=np.asarray(mov_out, dtype=np.int32),
        mov_out_lane_id=mov_out_id,
        jn_phase_ptr=np.asarray(jn_phase_ptr, dtype=np.int32),
        phase_mov_ptr=np.asarray(phase_mov_ptr, dtype=np.int32),
        phase_mov_idx=np.asarray(phase_mov_idx, dtype=np.int32),
        phase_min=np.asarray(pmin, dtype=np.float64),
        phase_max=np.asarray(pmax, dtype=np.float64),
        phase_fixed=np.asarray(pfix, dtype=np.float64),
        phase_next=np.asarray(pnext, dtype=np.int32),
        phase_yellow=np.asarray(pyel, dtype=np.float64),
        phase_allred=np.asarray(pall, dtype=np.float64),
        det_ids=[],
        det_lane=np.zeros(0, dtype=np.int32),
        det_kind=np.zeros(0, dtype=np.int8),
        det_pos=np.zeros(0, dtype=np.float64),
        det_length=np.zeros(0, dtype=np.float64),
    )

    if detectors is not None:
        if detector_file is None:
            raise ValueError("compile_network(detectors=...) needs detector_file= (where to write them)")
        ids, dl, dk, dp, dlen = place_detectors(net_file, network, detectors, Path(detector_file), graph=graph)
        if include_existing_detectors and scenario is not None and scenario.additional_files:
            eids, edl, edk, edp, edlen = existing_detectors(scenario, network, graph=graph)
            keep = [i for i, d in enumerate(eids) if d not in set(ids)]
            ids = ids + [eids[i] for i in keep]
            dl = np.concatenate([dl, edl[keep]]).astype(np.int32)
            dk = np.concatenate([dk, edk[keep]]).astype(np.int8)
            dp = np.concatenate([dp, edp[keep]]).astype(np.float64)
            dlen = np.concatenate([dlen, edlen[keep]]).astype(np.float64)
        network.det_ids = ids
        network.det_lane, network.det_kind, network.det_pos, network.det_length = dl, dk, dp, dlen
        network.det_index = {d: i for i, d in enumerate(ids)}

    rep.seconds = time.perf_counter() - t_start
    return network


def compile_for_run(scenario: Scenario | str | Path, out_dir: str | Path, *,
                    layout: DetectorLayout | None = None, **kwargs) -> tuple[Network, Path]:
    """Compile a scenario for a SUMO run: the Network (with detectors) and the detector additional
    file written to ``out_dir`` (pass it to SUMO together with the scenario's own additional files;
    ``-a`` on the command line replaces the cfg's additional-files)."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    det_file = out / f"{sc.name}.lintas_det.add.xml"
    network = compile_network(sc, detectors=layout or DetectorLayout(), detector_file=det_file, **kwargs)
    return network, det_file


def network_for_field(scenario: Scenario | str | Path) -> Network:
    """The network an engine controls a scenario's field with: compiled with the detectors the SUMO field
    places (the same ids the field reports), the detector file itself discarded."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lintas-compile-") as d:
        network, _ = compile_for_run(scenario, Path(d))
    return network
