"""Compile a SUMO net (and its scenario) into the engine's :class:`engine.network.Network`.

For every traffic light of the net (sorted by TLS id) this reads the program SUMO will run
(``simulation.sumo.programs``: the last one loaded for that id, the net's last program overridden by a
``tlLogic`` in the scenario's additional files, or the one a WAUT runs at ``begin``), the controlled links
with their lanes, the green phases (consecutive program phases with the same green links are one) with
their ring order, yellow and all-red, and the compatibility of the links: a conflict matrix built from the
junction's request matrix (foes) intersected with "never active, green or yellow, together in any state
of the net's program", and who gives way to whom (the junction's response matrix).

Everything SUMO-specific lives here (sumolib); the engine only sees flat arrays.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from controllers.timing import TimingConfig, net_order_transition, transition_segments
from engine.network import Network
from engine.protocol.junction import JunctionSpec
from engine.protocol.messages import Interval
from simulation.sumo.detectors import DetectorLayout, existing_detectors, place_detectors
from simulation.sumo.lanegraph import LaneGraph, read_net
from simulation.sumo.programs import Phase, TlsProgram, running_programs
from simulation.sumo.scenario import Scenario, ScenarioError, load_scenario

__all__ = [
    "GREEN_CHARS",
    "QUEUE_MIN_LENGTH",
    "YELLOW_CHARS",
    "CompileReport",
    "Phase",
    "TlsProgram",
    "compile_for_run",
    "compile_network",
]

QUEUE_MIN_LENGTH = 50.0  # a controlled lane shorter than this is counted with the lanes upstream
GREEN_CHARS = frozenset("Gg")
YELLOW_CHARS = frozenset("yYu")  # 'u' (red+yellow) is a transition state too
ACTIVE_CHARS = frozenset("GgyY")  # what makes two links "shown together" by the net's program


# ------------------------------------------------------------------------------------------------
# programs
def _is_green(state: str) -> bool:
    return any(c in GREEN_CHARS for c in state) and not any(c in YELLOW_CHARS for c in state)


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
    """What compile_network noticed (for logs, the CLI and the run report): nothing here is needed to run.

    ``program_source``: traffic light -> ``"<net or additional file>:<programID>"`` of the program compiled;
    ``program_type``: its ``type`` (``static``, ``actuated``, ``delay_based``, ...): Lintas' ``fixed``
    policy runs its durations as a fixed-time plan whatever the type. ``waut``: lights a WAUT switches
    (not supported: the program in force at ``begin`` is compiled; the sentence says which).
    ``merged_greens``: program phases (SUMO's indices) that are one green phase of Lintas (consecutive
    phases with the same green links). ``lengthened``: every interval Lintas shows longer than the net's
    program (Lintas never relaxes its minimums), one dict each: ``junction``, ``what`` (``green``,
    ``yellow`` or ``all-red``), ``phase`` (Lintas' green phase; for a transition the one it leaves, with
    ``to_phase``), ``program_phases`` (SUMO's indices), ``links`` (empty for a whole green phase), ``net``
    and ``shown`` (seconds). ``shortened``: greens longer than the maximum green Lintas allows (same keys).
    """

    multi_program: dict[str, int] = field(default_factory=dict)
    program_source: dict[str, str] = field(default_factory=dict)
    program_type: dict[str, str] = field(default_factory=dict)
    waut: dict[str, str] = field(default_factory=dict)
    unmapped_links: dict[str, list[int]] = field(default_factory=dict)
    uncovered_links: dict[str, list[int]] = field(default_factory=dict)
    skipped_tls: dict[str, str] = field(default_factory=dict)
    duplicate_greens: dict[str, int] = field(default_factory=dict)
    merged_greens: dict[str, list[list[int]]] = field(default_factory=dict)
    lengthened: list[dict] = field(default_factory=list)
    shortened: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _green_groups(phases: list[Phase]) -> list[list[int]]:
    """The program's greens: runs of consecutive (cyclically) green phases with the same green links,
    as lists of program phase indices, in ring order (the one holding phase 0 first)."""
    n = len(phases)
    green = [_is_green(p.state) for p in phases]
    links = [frozenset(i for i, c in enumerate(p.state) if c in GREEN_CHARS) for p in phases]
    if not any(green):
        return []
    if all(green) and all(x == links[0] for x in links):
        return [list(range(n))]

    def joins(i: int) -> bool:  # phase i goes on with the green of the phase before it
        j = (i - 1) % n
        return green[i] and green[j] and links[i] == links[j]

    start = next(i for i in range(n) if green[i] and not joins(i))
    groups: list[list[int]] = []
    for x in range(n):
        i = (start + x) % n
        if not green[i]:
            continue
        if groups and joins(i) and groups[-1][-1] == (i - 1) % n:
            groups[-1].append(i)
        else:
            groups.append([i])
    groups.sort(key=lambda g: 0 if 0 in g else g[0])
    return groups


def _merged(phases: list[Phase], group: list[int]) -> Phase:
    """One green made of its slices: the state of the longest slice (the first of equals), the durations
    summed (a slice without minDur/maxDur counts its duration)."""
    rep = max(group, key=lambda i: (phases[i].duration, -group.index(i)))
    dur = sum(phases[i].duration for i in group)
    lo = sum(phases[i].min_dur if phases[i].min_dur > 0 else phases[i].duration for i in group) \
        if any(phases[i].min_dur > 0 for i in group) else -1.0
    hi = sum(phases[i].max_dur if phases[i].max_dur > 0 else phases[i].duration for i in group) \
        if any(phases[i].max_dur > 0 for i in group) else -1.0
    return Phase(phases[rep].state, dur, lo, hi)


def _green_structure(prog: TlsProgram, min_green: float, max_green: float, yellow_min: float,
                     allred: float, begin: float):
    phases = prog.phases
    n = len(phases)
    groups = _green_groups(phases)
    if not groups:
        return None
    group_of: dict[int, int] = {i: gi for gi, g in enumerate(groups) for i in g}
    merged = [_merged(phases, g) for g in groups]
    # unique green states, ring order = order of first appearance
    uniq: list[str] = []
    uidx: dict[str, int] = {}
    for m in merged:
        if m.state not in uidx:
            uidx[m.state] = len(uniq)
            uniq.append(m.state)
    ng = len(uniq)
    n_dup = len(groups) - ng

    def intermediates(gi: int) -> tuple[list[int], int]:
        """Program phases after green group gi up to the next green (and that green's group)."""
        out = []
        j = (groups[gi][-1] + 1) % n
        for _ in range(n):
            if j in group_of:
                return out, group_of[j]
            out.append(j)
            j = (j + 1) % n
        return out, gi

    fixed = [0.0] * ng
    mins = [0.0] * ng
    maxs = [0.0] * ng
    nxt = [0] * ng
    trans: list[list[int] | None] = [None] * ng
    first_trans: list[list[int]] = [[] for _ in range(ng)]
    program_phases: list[list[int]] = [[] for _ in range(ng)]
    seen = [False] * ng
    for gi, m in enumerate(merged):
        k = uidx[m.state]
        mids, gj = intermediates(gi)
        if not seen[k]:
            seen[k] = True
            fixed[k] = m.duration
            mins[k] = max(min_green, m.min_dur) if m.min_dur > 0 else min_green
            maxs[k] = max(max_green, m.max_dur if m.max_dur > 0 else 0.0, mins[k])
            first_trans[k] = mids
            program_phases[k] = list(groups[gi])
        kn = (k + 1) % ng
        if trans[k] is None and uidx[merged[gj].state] == kn:
            trans[k] = mids
    yellows = [0.0] * ng
    allreds = [0.0] * ng
    transitions: list[list[tuple[str, float]]] = []
    transition_phases: list[list[int]] = []
    for k in range(ng):
        nxt[k] = (k + 1) % ng
        if trans[k] is None:
            trans[k] = first_trans[k]
        t = [(phases[i].state, phases[i].duration) for i in trans[k]]
        transitions.append(t)
        transition_phases.append(list(trans[k]))
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
    start_phase, start_offset = uidx[merged[0].state], 0.0
    if cycle > 0:
        pos = (begin - prog.offset) % cycle
        starts = []
        t0 = 0.0
        for ph in phases:
            starts.append(t0)
            t0 += ph.duration
        for i, ph in enumerate(phases):
            if starts[i] <= pos < starts[i] + ph.duration or i == n - 1:
                if i in group_of:
                    gi = group_of[i]
                    start_phase = uidx[merged[gi].state]
                    start_offset = max(0.0, (pos - starts[groups[gi][0]]) % cycle)
                else:  # in a transition: the green that follows it
                    j = next((i + x) % n for x in range(1, n + 1) if (i + x) % n in group_of)
                    start_phase, start_offset = uidx[merged[group_of[j]].state], 0.0
                break
    return {
        "green_states": uniq, "net_next": nxt, "fixed_green": fixed, "min_green": mins, "max_green": maxs,
        "yellow": yellows, "allred": allreds, "net_transitions": transitions, "start_phase": start_phase,
        "start_offset": float(start_offset), "n_dup": n_dup,
        "program_greens": [uidx[merged[group_of[i]].state] if i in group_of else -1 for i in range(n)],
        "program_phases": program_phases, "transition_phases": transition_phases,
        "merged": [g for g in groups if len(g) > 1],
    }


def _must_yield(node, i: int, j: int) -> bool:
    """Link ``i`` of ``node``'s request matrix waits for link ``j`` (bit j of i's ``response``)."""
    resp = getattr(node, "_prohibits", {}).get(i)
    return resp is not None and 0 <= j < len(resp) and resp[len(resp) - 1 - j] == "1"


def _report_intervals(rep: CompileReport, spec: JunctionSpec, gs: dict, cfg: TimingConfig) -> None:
    """What Lintas shows longer (or shorter) than the net's program when it runs it in the net's order
    (the ``fixed`` policy, the local plan): the timer's own transitions (controllers/timing.py) against
    the net's intermediate phases."""
    tid = spec.id
    for k in range(spec.n_phases):
        base = {"junction": tid, "phase": k, "program_phases": list(gs["program_phases"][k]), "links": []}
        fixed = spec.fixed_green[k]
        shortest = max(cfg.min_green, spec.min_green[k])
        longest = max(spec.max_green[k], shortest)
        if fixed + 1e-9 < shortest:
            rep.lengthened.append({**base, "what": "green", "net": fixed, "shown": shortest})
        elif fixed > longest + 1e-9:
            rep.shortened.append({**base, "what": "green", "net": fixed, "shown": longest})
        nn = spec.net_next[k]
        if nn == k:
            continue
        base = {"junction": tid, "phase": k, "to_phase": nn, "program_phases": list(gs["transition_phases"][k])}
        if spec.net_transitions[k]:
            _states, changes = net_order_transition(spec, k, cfg)
            rep.lengthened.extend({**base, **c} for c in changes)
            continue
        for seg in transition_segments(spec, k, nn, cfg):  # none in the net: Lintas builds it
            if seg.kind == Interval.YELLOW:
                links = [i for i, c in enumerate(seg.state) if c in "yY"]
                rep.lengthened.append({**base, "what": "yellow", "links": links, "net": 0.0, "shown": seg.duration})
            else:
                rep.lengthened.append({**base, "what": "all-red", "links": [], "net": 0.0, "shown": seg.duration})


def skipped_summary(skipped: dict[str, str]) -> str:
    """``{light: why}`` in a line: the lights grouped by reason (at most five named per reason)."""
    by_why: dict[str, list[str]] = {}
    for tls, why in skipped.items():
        by_why.setdefault(why, []).append(tls)
    return "; ".join(f"{', '.join(ids[:5])}{f' and {len(ids) - 5} more' if len(ids) > 5 else ''}: {why}"
                     for why, ids in by_why.items())


#: vehicle classes of railways: a light whose every link carries only these is a railway signal, not Lintas'
RAIL_CLASSES = frozenset({"rail", "rail_urban", "rail_electric", "rail_fast", "cable_car", "subway"})


def _rail_only(by_index: dict[int, list]) -> bool:
    """True when every connection a light controls leaves a lane that only trains may use."""
    conns = [c for cs in by_index.values() for c in cs]
    if not conns:
        return False
    for c in conns:
        allowed = getattr(c.getFromLane(), "_allowed", None)
        if allowed is None or not set(allowed) or not set(allowed) <= RAIL_CLASSES:
            return False
    return True


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
    running = running_programs(net_file, add_files, begin)
    rep.waut.update(running.waut)

    tls_ids = sorted(t.getID() for t in net.getTrafficLights())
    tls_ids = sorted(set(tls_ids) | set(links_by_tls))
    if not tls_ids:
        raise ScenarioError(f"{net_file}: net has no traffic lights")

    node_idx_cache: dict[str, dict[int, int] | None] = {}
    cfg = TimingConfig(min_green=min_green, yellow_min=yellow_min)

    junctions: list[JunctionSpec] = []
    jlinks: list[list[_Link]] = []
    for tid in tls_ids:
        prog = running.programs.get(tid)
        n_progs = running.counts.get(tid, 0)
        if n_progs > 1:
            rep.multi_program[tid] = n_progs
        if prog is None or not prog.phases:
            rep.skipped_tls[tid] = "no program"
            warnings.warn(f"{net_file.name}: traffic light {tid} has no program; skipped", stacklevel=2)
            continue
        rep.program_source[tid] = f"{prog.source}:{prog.program_id}"
        rep.program_type[tid] = prog.type
        n_links = len(prog.phases[0].state)
        if any(len(p.state) != n_links for p in prog.phases):
            raise ScenarioError(f"{net_file}: traffic light {tid} program {prog.program_id} has states of "
                                f"different lengths")
        gs = _green_structure(prog, min_green, max_green, yellow_min, allred, begin)
        if gs is None:
            rep.skipped_tls[tid] = "no green phase"
            warnings.warn(f"{net_file.name}: traffic light {tid} has no green phase; skipped", stacklevel=2)
            continue
        if gs["merged"]:
            rep.merged_greens[tid] = gs["merged"]
        if gs["n_dup"]:
            rep.duplicate_greens[tid] = gs["n_dup"]

        # links
        by_index = links_by_tls.get(tid, {})
        if _rail_only(by_index):
            rep.skipped_tls[tid] = "a railway signal (trains only): left to SUMO's own program"
            warnings.warn(f"{net_file.name}: traffic light {tid} guards rail only; left to SUMO", stacklevel=2)
            continue
        lk = [_Link(i) for i in range(n_links)]
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

        # compatibility: foes (same node) or unmapped conflict unless some state of the net's program (greens
        # and transitions alike) shows them active together; who gives way to whom is the node's response
        A = np.array([[c in ACTIVE_CHARS for c in p.state] for p in prog.phases], dtype=np.int32)
        coactive = (A.T @ A) > 0
        conf = np.zeros((n_links, n_links), dtype=bool)
        ylds = np.zeros((n_links, n_links), dtype=bool)
        for a in range(n_links):
            La = lk[a]
            for b in range(a + 1, n_links):
                Lb = lk[b]
                if La.jidx < 0 or Lb.jidx < 0:
                    foe = True
                elif La.node is Lb.node:
                    foe = La.node.areFoes(La.jidx, Lb.jidx) or La.node.areFoes(Lb.jidx, La.jidx)
                    ylds[a, b] = _must_yield(La.node, La.jidx, Lb.jidx)
                    ylds[b, a] = _must_yield(Lb.node, Lb.jidx, La.jidx)
                else:
                    foe = False
                if foe and not coactive[a, b]:
                    conf[a, b] = conf[b, a] = True
        conflicts = ["".join("1" if v else "0" for v in row) for row in conf]
        yields = ["".join("1" if v else "0" for v in row) for row in ylds] if ylds.any() else []
        states = [p.state for p in prog.phases]
        y2g: list[tuple[str, str]] = []
        for i, st in enumerate(states):
            nx = states[(i + 1) % len(states)]
            if any(c in "yY" and d in GREEN_CHARS for c, d in zip(st, nx)) and (st, nx) not in y2g:
                y2g.append((st, nx))

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
                yields=yields,
                net_yellow_to_green=y2g,
            )
        )
        jlinks.append(lk)
        _report_intervals(rep, junctions[-1], gs, cfg)

    if not junctions:
        raise ScenarioError(f"{net_file}: net has no traffic light Lintas can control "
                            f"({skipped_summary(rep.skipped_tls)})")

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
