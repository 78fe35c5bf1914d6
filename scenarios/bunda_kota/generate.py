"""Deterministic generator for the "Bunda Kota" demo city scenario.

Run from the repository root::

    python -m scenarios.bunda_kota.generate            # (re)write the scenario files
    python -m scenarios.bunda_kota.generate --check    # ... and run the calibration check

or import it::

    from scenarios.bunda_kota.generate import generate
    sumocfg = generate(Path("some/dir"))

Everything is derived from the constants below and fixed seeds, so running the
generator twice gives byte-identical files (for a given SUMO version).

Layout (x to the east, y to the north, metres)::

             T1          T2          T3          T4
             |           |           |           |
    N0 ----- N1 -------- N2 -------- N3 -------- N4 ----- N5      Jalan Melati (collector)
             |           |           |           |
    A0 ===== A1 ======== A2 ======== A3 ======== A4 ===== A5      Jalan Raya Bunda (arterial)
             |           |           |           |
    S0 ----- S1 -------- S2 -------- S3 -------- S4 ----- S5      Jalan Kenanga (collector)
             |           |           |           |
             B1          B2          B3          B4

The 12 inner junctions (A1-A4, N1-N4, S1-S4) are signalised; the 16 boundary
nodes (A0, A5, N0, N5, S0, S5, T1-T4, B1-B4) are unsignalised entry/exit
points.  The city centre lies to the east, so the morning peak is heaviest on
the eastbound ("inbound") arterial.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from simulation.sumo.tools import sumo_binary

HERE = Path(__file__).resolve().parent
NAME = "bunda_kota"

NET_FILE = f"{NAME}.net.xml"
ROUTE_FILE = f"{NAME}.rou.xml"
STOPS_FILE = f"{NAME}.stops.add.xml"
ACTUATED_FILE = f"{NAME}.actuated.add.xml"
TIMETABLE_FILE = f"{NAME}.timetable.json"
SUMOCFG_FILE = f"{NAME}.sumocfg"

SEED = 1  # used for netconvert and for all demand sampling
BEGIN, END = 0, 3600

# --------------------------------------------------------------------------------------
# Network parameters
# --------------------------------------------------------------------------------------
COL_X = [0.0, 400.0, 800.0, 1200.0]  # x of the four north-south streets
ROW_Y = {"N": 300.0, "A": 0.0, "S": -300.0}  # y of the three east-west streets
ARTERIAL_LEG = 400.0  # length of arterial entry links beyond A1 / A4
COLLECTOR_LEG = 300.0  # length of the collector entry links (rows N, S)
COLUMN_END_Y = 600.0  # columns run from y=-600 (B*) to y=+600 (T*)

ARTERIAL_SPEED = 16.67  # 60 km/h
COLLECTOR_SPEED = 11.11  # 40 km/h
ARTERIAL_LANES = 2  # per direction, plus a left-turn pocket at signals
POCKET_LENGTH = 70.0  # left-turn pocket length (m)
TWO_LANE_COLUMNS = (2, 3)  # Jalan Pahlawan and Jalan Merdeka have 2 lanes/direction

STREET_NAMES = {
    "A": "Jalan Raya Bunda",
    "N": "Jalan Melati",
    "S": "Jalan Kenanga",
    1: "Jalan Cempaka",
    2: "Jalan Pahlawan",
    3: "Jalan Merdeka",
    4: "Jalan Veteran",
}

# fmt: off
NETCONVERT_OPTIONS = [
    "--no-turnarounds",
    "--tls.default-type", "static",
    "--tls.layout", "opposites",
    "--tls.cycle.time", "90",
    "--tls.left-green.time", "10",
    # lefts from roads faster than 13 m/s (the 60 km/h arterial) never run
    # permissively against oncoming traffic: they only get the protected phase.
    # Collector lefts (40 km/h) stay permissive.
    "--tls.minor-left.max-speed", "13.0",
    "--junctions.corner-detail", "5",
    "--junctions.limit-turn-speed", "5.5",
    "--seed", str(SEED),
]
# fmt: on

# --------------------------------------------------------------------------------------
# Demand parameters
# --------------------------------------------------------------------------------------
TOTAL_CARS = 2800  # private vehicles in the hour (buses come on top)

# Morning production (trips starting) and attraction (trips ending) weights per
# fringe node.  The centre is east (A5, N5, S5); residential areas west/north/south.
# fmt: off
PRODUCTION = {
    "A0": 0.20, "A5": 0.06,
    "N0": 0.055, "S0": 0.055, "N5": 0.025, "S5": 0.025,
    "T1": 0.05, "T2": 0.055, "T3": 0.055, "T4": 0.04,
    "B1": 0.05, "B2": 0.055, "B3": 0.055, "B4": 0.04,
}
ATTRACTION = {
    "A0": 0.06, "A5": 0.22,
    "N0": 0.025, "S0": 0.025, "N5": 0.045, "S5": 0.045,
    "T1": 0.03, "T2": 0.04, "T3": 0.045, "T4": 0.035,
    "B1": 0.03, "B2": 0.04, "B3": 0.045, "B4": 0.035,
}
# fmt: on

# Route choice: free-flow travel time plus these penalties (s) per turn, so that
# drivers prefer going straight and avoid unnecessary left turns.
TURN_PENALTY = {"l": 25.0, "L": 25.0, "r": 6.0, "R": 6.0}

# Relative demand intensity at the given minutes (piecewise linear): ramp up,
# plateau around minutes 20-40, ease off towards the end of the hour.
PROFILE_POINTS = [(0, 0.45), (10, 0.75), (20, 1.0), (40, 1.0), (50, 0.6), (60, 0.12)]

# --------------------------------------------------------------------------------------
# Bus lines
# --------------------------------------------------------------------------------------
BUS_DWELL = 20  # s at every stop
BUS_STOP_LENGTH = 20.0
LINES = [
    {
        "id": "K1",
        "name": "Koridor 1 - Jalan Raya Bunda",
        "headway": 480,  # 8 min
        "first": {"E": 60, "W": 300},
        "color": "1,0.55,0",
        "directions": {
            "E": ["A0", "A1", "A2", "A3", "A4", "A5"],
            "W": ["A5", "A4", "A3", "A2", "A1", "A0"],
        },
        # stop names per block (index = block along the direction of travel)
        "stop_names": {
            "E": ["Terminal Barat", "Pasar Lama", "Masjid Agung", "Alun-Alun", "Balai Kota"],
            "W": ["Balai Kota", "Alun-Alun", "Masjid Agung", "Pasar Lama", "Terminal Barat"],
        },
    },
    {
        "id": "K2",
        "name": "Koridor 2 - Jalan Merdeka",
        "headway": 720,  # 12 min
        "first": {"S": 180, "N": 540},
        "color": "0,0.6,0.3",
        "directions": {
            "S": ["T3", "N3", "A3", "S3", "B3"],
            "N": ["B3", "S3", "A3", "N3", "T3"],
        },
        "stop_names": {
            "S": ["Perumahan Utara", "Sekolah Merdeka", "Rumah Sakit", "Kampus Selatan"],
            "N": ["Kampus Selatan", "Rumah Sakit", "Sekolah Merdeka", "Perumahan Utara"],
        },
    },
]


# ======================================================================================
# helpers
# ======================================================================================
def _strip_header(text: str, producer: str) -> str:
    """Replace the timestamp in SUMO's header comment with a fixed text (determinism)."""
    return re.sub(
        r"<!-- generated on [^\n]*",
        f"<!-- generated by scenarios/bunda_kota/generate.py ({producer})",
        text,
        count=1,
    )


def _edge_id(a: str, b: str) -> str:
    return f"{a}_{b}"


def _is_signal(node: str) -> bool:
    return node[0] in "ANS" and node[1:] in {"1", "2", "3", "4"}


# ======================================================================================
# network
# ======================================================================================
def _plain_network() -> tuple[str, str]:
    nodes: list[str] = ["<nodes>"]
    edges: list[str] = ["<edges>"]

    for row, y in ROW_Y.items():
        for i, x in enumerate(COL_X, start=1):
            nodes.append(f'    <node id="{row}{i}" x="{x:.1f}" y="{y:.1f}" type="traffic_light"/>')
        leg = ARTERIAL_LEG if row == "A" else COLLECTOR_LEG
        nodes.append(
            f'    <node id="{row}0" x="{COL_X[0] - leg:.1f}" y="{y:.1f}" type="priority" fringe="outer"/>'
        )
        nodes.append(
            f'    <node id="{row}5" x="{COL_X[-1] + leg:.1f}" y="{y:.1f}" type="priority" fringe="outer"/>'
        )
    for i, x in enumerate(COL_X, start=1):
        nodes.append(
            f'    <node id="T{i}" x="{x:.1f}" y="{COLUMN_END_Y:.1f}" type="priority" fringe="outer"/>'
        )
        nodes.append(
            f'    <node id="B{i}" x="{x:.1f}" y="{-COLUMN_END_Y:.1f}" type="priority" fringe="outer"/>'
        )

    def edge(a: str, b: str, lanes: int, speed: float, prio: int, name: str, pocket: bool) -> None:
        eid = _edge_id(a, b)
        head = (
            f'    <edge id="{eid}" from="{a}" to="{b}" numLanes="{lanes}" speed="{speed:.2f}" '
            f'priority="{prio}" type="{"arterial" if prio == 3 else "collector"}" name={quoteattr(name)}'
        )
        if pocket:
            # extra leftmost lane over the last POCKET_LENGTH metres: a left-turn pocket
            lanes_after = " ".join(str(k) for k in range(lanes + 1))
            edges.append(head + ">")
            edges.append(
                f'        <split pos="-{POCKET_LENGTH:.1f}" lanes="{lanes_after}" id="{eid}.p" '
                f'idBefore="{eid}" idAfter="{eid}.L"/>'
            )
            edges.append("    </edge>")
        else:
            edges.append(head + "/>")

    for row in "NAS":
        chain = [f"{row}{k}" for k in range(6)]
        for a, b in itertools.pairwise(chain):
            if row == "A":
                edge(a, b, ARTERIAL_LANES, ARTERIAL_SPEED, 3, STREET_NAMES["A"], _is_signal(b))
                edge(b, a, ARTERIAL_LANES, ARTERIAL_SPEED, 3, STREET_NAMES["A"], _is_signal(a))
            else:
                edge(a, b, 1, COLLECTOR_SPEED, 1, STREET_NAMES[row], False)
                edge(b, a, 1, COLLECTOR_SPEED, 1, STREET_NAMES[row], False)
    for i in range(1, 5):
        chain = [f"B{i}", f"S{i}", f"A{i}", f"N{i}", f"T{i}"]
        lanes = 2 if i in TWO_LANE_COLUMNS else 1
        for a, b in itertools.pairwise(chain):
            edge(a, b, lanes, COLLECTOR_SPEED, 2, STREET_NAMES[i], False)
            edge(b, a, lanes, COLLECTOR_SPEED, 2, STREET_NAMES[i], False)

    nodes.append("</nodes>")
    edges.append("</edges>")
    return "\n".join(nodes) + "\n", "\n".join(edges) + "\n"


def build_network(out_dir: Path) -> Path:
    nod, edg = _plain_network()
    net_path = out_dir / NET_FILE
    with tempfile.TemporaryDirectory(prefix="bunda_kota_") as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "bk.nod.xml").write_text(nod)
        (tmpdir / "bk.edg.xml").write_text(edg)
        cmd = [
            sumo_binary("netconvert"),
            "--node-files",
            "bk.nod.xml",
            "--edge-files",
            "bk.edg.xml",
            "--output-file",
            "bk.net.xml",
            *NETCONVERT_OPTIONS,
        ]
        res = subprocess.run(cmd, check=False, cwd=tmpdir, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"netconvert failed:\n{res.stdout}\n{res.stderr}")
        text = (tmpdir / "bk.net.xml").read_text()
    net_path.write_text(_strip_header(text, "netconvert"))
    return net_path


# ======================================================================================
# static-program inspection and the actuated alternative
# ======================================================================================
def read_tl_programs(net_path: Path) -> dict[str, list[tuple[int, str]]]:
    import xml.etree.ElementTree as ET

    root = ET.parse(net_path).getroot()
    out: dict[str, list[tuple[int, str]]] = {}
    for tl in root.findall("tlLogic"):
        out[tl.get("id")] = [(int(float(p.get("duration"))), p.get("state")) for p in tl.findall("phase")]
    return out


def is_green_phase(state: str) -> bool:
    return ("G" in state or "g" in state) and "y" not in state and "Y" not in state


def write_actuated(net_path: Path, out_path: Path, min_dur: int = 5, max_dur: int = 50) -> Path:
    """Re-declare every tlLogic as type="actuated", programID="actuated".

    Loading this additional file after the net makes the actuated program active.
    """
    lines = ["<additional>"]
    for tl_id, phases in read_tl_programs(net_path).items():
        lines.append(f'    <tlLogic id="{tl_id}" type="actuated" programID="actuated" offset="0">')
        for dur, state in phases:
            if is_green_phase(state):
                lines.append(
                    f'        <phase duration="{dur}" minDur="{min_dur}" maxDur="{max_dur}" state="{state}"/>'
                )
            else:
                lines.append(f'        <phase duration="{dur}" state="{state}"/>')
        lines.append("    </tlLogic>")
    lines.append("</additional>")
    out_path.write_text("\n".join(lines) + "\n")
    return out_path


# ======================================================================================
# demand
# ======================================================================================
class _Net:
    """Tiny wrapper around sumolib for routing and lengths."""

    def __init__(self, net_path: Path):
        import sumo  # noqa: F401  (the eclipse-sumo wheel sets SUMO_HOME)
        import sumolib

        self.net = sumolib.net.readNet(str(net_path), withInternal=False)

    def path_edges(self, nodes: list[str]) -> list[str]:
        """Edges along a chain of plain-XML nodes, including pocket segments."""
        edges: list[str] = []
        for a, b in itertools.pairwise(nodes):
            eid = _edge_id(a, b)
            edges.append(eid)
            if self.net.hasEdge(eid + ".L"):
                edges.append(eid + ".L")
        return edges

    def od_route(self, origin: str, dest: str) -> list[str]:
        """Fastest free-flow path with turn penalties (drivers avoid left turns)."""
        import heapq

        src = self._fringe_edge(origin, outgoing=True)
        dst = self._fringe_edge(dest, outgoing=False)

        def cost(edge) -> float:
            return edge.getLength() / edge.getSpeed()

        best = {src.getID(): cost(src)}
        prev: dict[str, str | None] = {src.getID(): None}
        heap = [(cost(src), src.getID())]
        while heap:
            c, eid = heapq.heappop(heap)
            if c > best[eid]:
                continue
            if eid == dst.getID():
                break
            edge = self.net.getEdge(eid)
            for nxt, conns in sorted(edge.getOutgoing().items(), key=lambda it: it[0].getID()):
                direction = conns[0].getDirection()
                nc = c + cost(nxt) + TURN_PENALTY.get(direction, 0.0)
                if nc < best.get(nxt.getID(), math.inf) - 1e-9:
                    best[nxt.getID()] = nc
                    prev[nxt.getID()] = eid
                    heapq.heappush(heap, (nc, nxt.getID()))
        if dst.getID() not in prev:
            raise RuntimeError(f"no route {origin}->{dest}")
        path = [dst.getID()]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        return path[::-1]

    def _fringe_edge(self, node_id: str, outgoing: bool):
        node = self.net.getNode(node_id)
        edges = node.getOutgoing() if outgoing else node.getIncoming()
        assert len(edges) == 1, (node_id, edges)
        return edges[0]

    def free_flow_time(self, edges: list[str]) -> float:
        return sum(self.net.getEdge(e).getLength() / self.net.getEdge(e).getSpeed() for e in edges)

    def length(self, edge: str) -> float:
        return self.net.getEdge(edge).getLength()

    def speed(self, edge: str) -> float:
        return self.net.getEdge(edge).getSpeed()


def _profile_weights(edges_s: np.ndarray) -> np.ndarray:
    xs = np.array([m * 60.0 for m, _ in PROFILE_POINTS])
    ys = np.array([v for _, v in PROFILE_POINTS])
    return np.interp(edges_s, xs, ys)


def _sample_departures(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sample n departure times (integer seconds in [BEGIN, END)) from the profile."""
    grid = np.arange(BEGIN, END + 1, dtype=float)
    dens = _profile_weights(grid[:-1] + 0.5)
    cdf = np.concatenate([[0.0], np.cumsum(dens)])
    cdf /= cdf[-1]
    u = rng.random(n)
    t = np.interp(u, cdf, grid)
    return np.floor(t).astype(int)


def _od_counts(total: int) -> dict[tuple[str, str], int]:
    pairs = []
    for o, p in PRODUCTION.items():
        for d, a in ATTRACTION.items():
            if o == d:
                continue
            pairs.append(((o, d), p * a))
    s = sum(w for _, w in pairs)
    exact = [(od, total * w / s) for od, w in pairs]
    counts = {od: math.floor(x) for od, x in exact}
    rest = total - sum(counts.values())
    # largest remainder, ties broken by OD name -> deterministic
    for od, _x in sorted(exact, key=lambda it: (-(it[1] - math.floor(it[1])), it[0]))[:rest]:
        counts[od] += 1
    return {od: c for od, c in counts.items() if c > 0}


def _bus_stop_position(length: float) -> tuple[float, float]:
    """Mid-block stop, clear of both the junction and the turn pocket."""
    mid = 0.45 * length
    return round(mid - BUS_STOP_LENGTH / 2, 1), round(mid + BUS_STOP_LENGTH / 2, 1)


def build_transit(net: _Net) -> tuple[list[dict], list[dict], str]:
    """Return (line descriptions, stop descriptions, stops additional file text)."""
    lines_out: list[dict] = []
    stops_out: list[dict] = []
    stop_xml = ["<additional>"]
    for line in LINES:
        line_desc = {
            "id": line["id"],
            "name": line["name"],
            "vtype": "bus",
            "headway_s": line["headway"],
            "dwell_s": BUS_DWELL,
            "color": line["color"],
            "directions": [],
        }
        for dname, chain in line["directions"].items():
            route_edges = net.path_edges(chain)
            stops = []
            for k, (a, b) in enumerate(itertools.pairwise(chain)):
                if k >= len(line["stop_names"][dname]):
                    break
                edge = _edge_id(a, b)  # stop on the main part of the block (before any pocket)
                start, end = _bus_stop_position(net.length(edge))
                stop = {
                    "id": f"{line['id']}{dname}_{k + 1}",
                    "name": line["stop_names"][dname][k],
                    "lane": f"{edge}_0",
                    "edge": edge,
                    "startPos": start,
                    "endPos": end,
                    "position": round((start + end) / 2, 1),
                    "lines": [line["id"]],
                }
                stops.append(stop)
                stop_xml.append(
                    f'    <busStop id="{stop["id"]}" name={quoteattr(stop["name"])} '
                    f'lane="{stop["lane"]}" startPos="{start:.1f}" endPos="{end:.1f}" '
                    f'lines="{line["id"]}" friendlyPos="false"/>'
                )
            stops_out.extend(stops)
            # Scheduled departure offsets (s after leaving the terminus): free-flow
            # driving time x1.4 (signal allowance) + dwell at every stop so far,
            # rounded up to 10 s.  Scheduled arrival = departure - dwell.
            offsets = []
            for k, stop in enumerate(stops):
                idx = route_edges.index(stop["edge"])
                drive = net.free_flow_time(route_edges[:idx]) + stop["endPos"] / net.speed(stop["edge"])
                off = 1.4 * drive + BUS_DWELL * (k + 1)
                offsets.append(int(math.ceil(off / 10.0) * 10))
            trips = []
            first = line["first"][dname]
            for n, dep in enumerate(range(first, END, line["headway"])):
                trips.append(
                    {
                        "vehicle": f"bus_{line['id']}{dname}_{n + 1:02d}",
                        "depart": dep,
                        "stops": [
                            {"stop": st["id"], "arrival": dep + off - BUS_DWELL, "until": dep + off}
                            for st, off in zip(stops, offsets)
                        ],
                    }
                )
            line_desc["directions"].append(
                {
                    "id": dname,
                    "from": chain[0],
                    "to": chain[-1],
                    "route": route_edges,
                    "stops": [st["id"] for st in stops],
                    "trips": trips,
                }
            )
        lines_out.append(line_desc)
    stop_xml.append("</additional>")
    return lines_out, stops_out, "\n".join(stop_xml) + "\n"


def build_routes(net: _Net, lines: list[dict]) -> tuple[str, int]:
    rng = np.random.default_rng(SEED)
    counts = _od_counts(TOTAL_CARS)

    out = [
        (
            '<routes xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:noNamespaceSchemaLocation="http://sumo.dlr.de/xsd/routes_file.xsd">'
        ),
        f"    <!-- Bunda Kota morning peak, {BEGIN}-{END} s; generated by scenarios/bunda_kota/generate.py -->",
        (
            '    <vType id="car" vClass="passenger" length="4.5" minGap="2.5" accel="2.6" decel="4.5" '
            'sigma="0.5" speedFactor="normc(1,0.1,0.2,2)" color="0.8,0.8,0.8"/>'
        ),
        (
            '    <vType id="bus" vClass="bus" length="12" minGap="3" accel="1.2" decel="4" '
            'sigma="0.3" maxSpeed="16.67" personCapacity="70" guiShape="bus" color="1,0.55,0"/>'
        ),
    ]

    # one route per OD pair
    vehicles: list[tuple[int, str, str]] = []  # (depart, sort key, xml)
    for (o, d), c in sorted(counts.items()):
        rid = f"r_{o}_{d}"
        out.append(f'    <route id="{rid}" edges="{" ".join(net.od_route(o, d))}"/>')
        for t in _sample_departures(rng, c):
            vehicles.append((int(t), rid, ""))

    # bus routes
    for line in lines:
        for direction in line["directions"]:
            rid = f"r_bus_{line['id']}{direction['id']}"
            out.append(f'    <route id="{rid}" edges="{" ".join(direction["route"])}"/>')

    vehicles.sort(key=lambda v: (v[0], v[1]))
    entries: list[tuple[int, int, str]] = []
    for k, (t, rid, _) in enumerate(vehicles):
        xml = (
            f'    <vehicle id="car{k:05d}" type="car" route="{rid}" depart="{t}" '
            'departLane="best" departSpeed="max"/>'
        )
        entries.append((t, 1, xml))
    for line in lines:
        for direction in line["directions"]:
            rid = f"r_bus_{line['id']}{direction['id']}"
            color = next(ln["color"] for ln in LINES if ln["id"] == line["id"])
            for trip in direction["trips"]:
                head = (
                    f'    <vehicle id="{trip["vehicle"]}" type="bus" route="{rid}" depart="{trip["depart"]}" '
                    f'line="{line["id"]}" departLane="0" departSpeed="max" color="{color}">'
                )
                xml = [head]
                for s in trip["stops"]:
                    xml.append(
                        f'        <stop busStop="{s["stop"]}" duration="{BUS_DWELL}" until="{s["until"]}"/>'
                    )
                xml.append("    </vehicle>")
                entries.append((trip["depart"], 0, "\n".join(xml)))
    entries.sort(key=lambda e: (e[0], e[1]))
    out.extend(e[2] for e in entries)
    out.append("</routes>")
    return "\n".join(out) + "\n", len(vehicles)


# ======================================================================================
# top level
# ======================================================================================
def write_sumocfg(out_dir: Path) -> Path:
    cfg = out_dir / SUMOCFG_FILE
    cfg.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Bunda Kota demo city; generated by scenarios/bunda_kota/generate.py -->
<configuration xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="http://sumo.dlr.de/xsd/sumoConfiguration.xsd">
    <input>
        <net-file value="{NET_FILE}"/>
        <route-files value="{ROUTE_FILE}"/>
        <additional-files value="{STOPS_FILE}"/>
    </input>
    <time>
        <begin value="{BEGIN}"/>
        <end value="{END}"/>
    </time>
</configuration>
""")
    return cfg


def generate(out_dir: Path = HERE) -> Path:
    """Write all scenario files into ``out_dir`` and return the .sumocfg path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net_path = build_network(out_dir)
    write_actuated(net_path, out_dir / ACTUATED_FILE)
    net = _Net(net_path)
    lines, stops, stops_xml = build_transit(net)
    (out_dir / STOPS_FILE).write_text(stops_xml)
    routes_xml, _n_cars = build_routes(net, lines)
    (out_dir / ROUTE_FILE).write_text(routes_xml)
    timetable = {
        "scenario": NAME,
        "description": "Scheduled bus services of the Bunda Kota demo city (SUMO scenario).",
        "time_unit": "s",
        "begin": BEGIN,
        "end": END,
        "files": {"net": NET_FILE, "routes": ROUTE_FILE, "stops": STOPS_FILE},
        "semantics": {
            "stops": "busStop elements of the stops file; lane = SUMO lane id, startPos/endPos/position "
            "in metres from the lane start.",
            "trips": "one entry per scheduled bus (SUMO vehicle id); depart = departure from the first "
            "terminus; per stop, arrival = scheduled arrival, until = scheduled departure (the "
            "bus dwells at least dwell_s and never leaves before 'until').",
        },
        "stops": stops,
        "lines": lines,
    }
    (out_dir / TIMETABLE_FILE).write_text(json.dumps(timetable, indent=1) + "\n")
    return write_sumocfg(out_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("--check", action="store_true", help="run the calibration check afterwards")
    args = ap.parse_args(argv)
    cfg = generate(args.out_dir)
    print(f"wrote {cfg}")
    if args.check:
        from scenarios.bunda_kota.check import main as check_main

        return check_main(["--config", str(cfg)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
