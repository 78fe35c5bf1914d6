"""The training zoo: small scenario families written by SUMO's own tools, each at three demand levels, for
choosing and checking the adaptive policy's parameters (issue 14). The RESCO maps and the demo city are the
test set and are never used to choose a parameter; these are.

``generate_training(out_dir, seed=1)`` writes one folder per family x level, ``out_dir/<family>-<level>/``
(a ``.sumocfg``, the net and the routes), with ``netgenerate`` (grids, spiders, random nets, the isolated
junction), ``netconvert`` (the arterial and the roadworks from nodes and edges written here),
``randomTrips.py`` (trips with explicit departs; one rate per 5-minute block; source weights where a family
wants them) and ``sumo -C`` (the configuration). The helpers are the scenario zoo's
(:mod:`simulation.proofs.zoo`): the header comment SUMO writes into every file is removed, so the same seed
writes the same bytes. The seed draws the random net's junctions and the trips.

**Time.** Every scenario runs 25 simulated minutes: demand over four 5-minute blocks (0-1200 s), then 5
minutes in which no vehicle departs (1200-1500 s).

**Levels** (:data:`LEVELS`, each a factor of the family's near-capacity rate per block):

- ``light``: half the near-capacity rate in every block;
- ``near``: the near-capacity rate in every block;
- ``over``: 1.5 times that rate for 15 minutes (demand above capacity), then half of it for the last block
  (falling); the queue built up has the last 10 minutes to clear, and does not always.

**The families** (:data:`FAMILIES`; near-capacity rates in vehicles per hour over the whole net):

=====================  ====  ==========================================================  =====
family                 tls   what it varies                                              near
=====================  ====  ==========================================================  =====
``grid2``              4     netgenerate 2x2 grid, opposites layout, 1 lane, lefts from   2000
                             the shared lane (permissive, ``g``)
``grid2_incoming``     4     2x2 grid, ``incoming`` layout (one approach at a time)        2200
``grid3_protected``    9     3x3 grid, a left-turn lane, protected lefts only (``G``)      4400
``spider``             5     netgenerate spider (4 arms, 1 circle), opposites, shared      2400
                             lefts
``spider_permissive``  5     spider, a left-turn lane, permissive lefts then a left        4400
                             phase
``random``             4-6   netgenerate random net (drawn with the seed), opposites,      1400
                             shared lefts
``random_protected``   4-6   random net, a left-turn lane, protected lefts only            2000
``arterial``           5     netconvert corridor of 5 lights 250 m apart, 2-lane main      3200
                             road, 1-lane side streets, the main road's ends weighted 5
                             to 1 as sources and sinks
``isolated``           1     one 4-arm junction, 2 lanes per approach, demand alternating  2800
                             between the axes every 5 minutes (80 % on one axis)
``oneway``             1     netconvert roadworks: a 150 m one-lane stretch both           1300
                             directions use in turn (``alternateOneWay``: one light at
                             both ends, 17 s all-red to clear the stretch)
=====================  ====  ==========================================================  =====

**How "near capacity" was chosen** (2026-12-07, SUMO 1.28, seeds 1 and 2; ``calibrate`` in
``benchmarks/zoo.py``): each family's demand was swept at a constant rate over the 20-minute window under
SUMO's actuated controller (``sumo-actuated``). The near rate is the highest rate of the sweep at which
actuated inserted every vehicle by the end and its mean delay stayed within 2.5 times its delay at half that
rate (the light level): at the next rate of the sweep (7-19 % higher) the delay rose past that, or vehicles
were left outside. So ``near`` sits at the knee of actuated's delay curve and ``over`` (1.5 times) is past it. The sweep
is in docs/adaptive.md, "The training zoo".
The random families' capacity changes with the net each seed draws (4 to 6 lights over seeds 1-5); their
rate is that of seeds 1 and 2.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from simulation.proofs.zoo import ZooError, ZooScenario, _netgenerate_args, _py, _run, _strip_header, programs_of
from simulation.sumo.tools import sumo_binary

__all__ = [
    "AXES",
    "BLOCKS",
    "BLOCK_S",
    "DEMAND_END_S",
    "END_S",
    "FAMILIES",
    "LEVELS",
    "Family",
    "TrainingScenario",
    "ZooError",
    "block_axis",
    "block_rates",
    "family",
    "generate_training",
]

BLOCK_S = 300.0  # demand changes every 5 minutes
BLOCKS = 4  # four blocks of demand (20 minutes)
DEMAND_END_S = BLOCK_S * BLOCKS
END_S = DEMAND_END_S + 300.0  # then 5 minutes without departures

#: level -> factor of the family's near-capacity rate in each block
LEVELS: dict[str, tuple[float, ...]] = {
    "light": (0.5, 0.5, 0.5, 0.5),
    "near": (1.0, 1.0, 1.0, 1.0),
    "over": (1.5, 1.5, 1.5, 0.5),
}


@dataclass(frozen=True)
class Family:
    """One family of the training zoo. ``near_vph``: the near-capacity rate (vehicles per hour over the net);
    ``tls``: the number of traffic lights (``None``: drawn with the net, the random families)."""

    name: str
    net: str  # grid | spider | random | arterial | isolated | oneway
    near_vph: float
    tls: int | None
    grid: int = 2  # grid: n x n
    layout: str = "opposites"  # --tls.layout
    lefts: str = "shared"  # shared | permissive | protected (as in the scenario zoo)
    lanes: int = 1  # lanes per direction (the arterial's main road; the isolated junction's approaches)
    alternating: bool = False  # demand alternates between the axes every block (80 % on one)
    main_weight: float = 1.0  # arterial: the weight of the main road's ends as sources and sinks (side: 1)
    varies: str = ""


_f = Family

#: the families, in the order the bench prints them
FAMILIES: tuple[Family, ...] = (
    _f("grid2", "grid", 2000, 4, varies="2x2 grid, opposites, 1 lane, lefts from the shared lane (permissive)"),
    _f("grid2_incoming", "grid", 2200, 4, layout="incoming", varies="2x2 grid, incoming layout"),
    _f("grid3_protected", "grid", 4400, 9, grid=3, lefts="protected",
       varies="3x3 grid, a left-turn lane, protected lefts only"),
    _f("spider", "spider", 2400, 5, varies="spider (4 arms, 1 circle), opposites, shared lefts"),
    _f("spider_permissive", "spider", 4400, 5, lefts="permissive",
       varies="spider, a left-turn lane, permissive lefts then a protected left phase"),
    _f("random", "random", 1400, None, varies="random net, opposites, shared lefts"),
    _f("random_protected", "random", 2000, None, lefts="protected",
       varies="random net, a left-turn lane, protected lefts only"),
    _f("arterial", "arterial", 3200, 5, lanes=2, main_weight=5.0,
       varies="corridor of 5 lights, 2-lane main road, 1-lane side streets, heavier main road"),
    _f("isolated", "isolated", 2800, 1, lanes=2, alternating=True,
       varies="one 4-arm junction, 2 lanes per approach, demand alternating between the axes every 5 min"),
    _f("oneway", "oneway", 1300, 1, layout="alternateOneWay",
       varies="roadworks: a one-lane stretch both directions use in turn (alternateOneWay)"),
)


def family(name: str) -> Family:
    """The family of that name (ValueError naming the families otherwise)."""
    for f in FAMILIES:
        if f.name == name:
            return f
    raise ValueError(f"not a training family: '{name}' (choose from: {', '.join(f.name for f in FAMILIES)})")


def block_rates(fam: Family, level: str) -> list[float]:
    """Vehicles per hour over the net in each 5-minute block of ``level``."""
    if level not in LEVELS:
        raise ValueError(f"not a demand level: '{level}' (choose from: {', '.join(LEVELS)})")
    return [fam.near_vph * k for k in LEVELS[level]]


@dataclass(frozen=True)
class TrainingScenario:
    """One family at one level, written for one seed. ``tls`` and ``vehicles`` are counted from the files."""

    family: str
    level: str
    seed: int
    path: Path
    tls: int
    vehicles: int
    end: float = END_S

    @property
    def name(self) -> str:
        return f"{self.family}-{self.level}"

    @property
    def folder(self) -> Path:
        return self.path.parent


# ------------------------------------------------------------------------------------------------
# nets
def _arterial_xml(fam: Family, work: Path) -> list[str]:
    """Nodes and edges of the corridor: lights J0..J4 250 m apart, main road W-E with ``fam.lanes`` lanes
    (priority 3), side streets N_i/S_i of one lane (priority 1), 200 m arms."""
    n, spacing, arm = 5, 250, 200
    nodes = [f'    <node id="W" x="{-arm}" y="0" type="priority"/>',
             f'    <node id="E" x="{(n - 1) * spacing + arm}" y="0" type="priority"/>']
    edges = []

    def edge(a: str, b: str, lanes: int, prio: int) -> None:
        for x, y in ((a, b), (b, a)):
            edges.append(f'    <edge id="{x}{y}" from="{x}" to="{y}" numLanes="{lanes}" priority="{prio}" '
                         f'speed="13.89"/>')

    for i in range(n):
        nodes.append(f'    <node id="J{i}" x="{i * spacing}" y="0" type="traffic_light"/>')
        nodes.append(f'    <node id="N{i}" x="{i * spacing}" y="{arm}" type="priority"/>')
        nodes.append(f'    <node id="S{i}" x="{i * spacing}" y="{-arm}" type="priority"/>')
        edge(f"N{i}", f"J{i}", 1, 1)
        edge(f"S{i}", f"J{i}", 1, 1)
    chain = ["W", *(f"J{i}" for i in range(n)), "E"]
    for a, b in itertools.pairwise(chain):
        edge(a, b, fam.lanes, 3)
    (work / "net.nod.xml").write_text("<nodes>\n" + "\n".join(nodes) + "\n</nodes>\n")
    (work / "net.edg.xml").write_text("<edges>\n" + "\n".join(edges) + "\n</edges>\n")
    return ["-n", "net.nod.xml", "-e", "net.edg.xml"]


def _oneway_xml(fam: Family, work: Path) -> list[str]:
    """Roadworks: W - A = B - E, where A-B (150 m) has one lane each way drawn as one, and one light (``works``)
    at A and B lets one direction in at a time (``alternateOneWay``: the stretch clears before the other)."""
    nodes = ['    <node id="W" x="-400" y="0" type="priority"/>',
             f'    <node id="A" x="0" y="0" type="traffic_light" tl="works" tlLayout="{fam.layout}"/>',
             f'    <node id="B" x="150" y="0" type="traffic_light" tl="works" tlLayout="{fam.layout}"/>',
             '    <node id="E" x="550" y="0" type="priority"/>']
    edges = [f'    <edge id="{a}{b}" from="{a}" to="{b}" numLanes="1" speed="13.89"/>'
             for a, b in (("W", "A"), ("A", "W"), ("A", "B"), ("B", "A"), ("B", "E"), ("E", "B"))]
    (work / "net.nod.xml").write_text("<nodes>\n" + "\n".join(nodes) + "\n</nodes>\n")
    (work / "net.edg.xml").write_text("<edges>\n" + "\n".join(edges) + "\n</edges>\n")
    return ["-n", "net.nod.xml", "-e", "net.edg.xml", "--no-turnarounds"]


def _write_net(fam: Family, seed: int, work: Path) -> str:
    net = "net.net.xml"
    if fam.net in ("grid", "spider", "random"):
        zs = ZooScenario(name=fam.name, net=fam.net, layout=fam.layout, lefts=fam.lefts)
        _run([sumo_binary("netgenerate"), *_netgenerate_args(zs, seed, grid=fam.grid), "-o", net], work)
    elif fam.net == "isolated":
        args = ["--grid", "--grid.x-number", "1", "--grid.y-number", "1", "--grid.attach-length", "250",
                "--default.lanenumber", str(fam.lanes), "--tls.set", "A0"]
        if fam.layout != "opposites":
            args += ["--tls.layout", fam.layout]
        _run([sumo_binary("netgenerate"), *args, "-o", net], work)
    elif fam.net == "arterial":
        _run([sumo_binary("netconvert"), *_arterial_xml(fam, work), "-o", net], work)
    elif fam.net == "oneway":
        _run([sumo_binary("netconvert"), *_oneway_xml(fam, work), "-o", net], work)
    else:
        raise ValueError(f"unknown net kind '{fam.net}'")
    _strip_header(work / net)
    return net


# ------------------------------------------------------------------------------------------------
# demand
def _weights(path: Path, weights: dict[str, float]) -> None:
    """A randomTrips weights file (``edgedata``): the edges named, nothing else."""
    lines = [f'        <edge id="{e}" value="{w:g}"/>' for e, w in weights.items()]
    path.write_text('<edgedata>\n    <interval id="w" begin="0" end="86400">\n' + "\n".join(lines)
                    + "\n    </interval>\n</edgedata>\n")


#: the isolated junction's incoming edges on each axis (netgenerate's 1x1 grid)
AXES: dict[str, tuple[str, ...]] = {"NS": ("top0A0", "bottom0A0"), "EW": ("left0A0", "right0A0")}
HEAVY_SHARE = 0.8  # share of the isolated junction's demand on the block's axis


def block_axis(block: int) -> str:
    """The isolated family's heavy axis in ``block`` (0-based): NS, EW, NS, EW."""
    return "NS" if block % 2 == 0 else "EW"


def _trips(net: str, out: str, *, begin: float, end: float, rates: Sequence[float], seed: int, prefix: str,
           work: Path, weights: str | None = None) -> None:
    args = ["-n", net, "-o", out, "-b", f"{begin:g}", "-e", f"{end:g}",
            "--insertion-rate", *(f"{r:g}" for r in rates), "--seed", str(seed), "--prefix", prefix,
            "--fringe-factor", "10", "--min-distance", "250", "--validate"]
    if weights is not None:
        args += ["--weights-prefix", weights]
    _py("randomTrips.py", *args, cwd=work)
    _strip_header(work / out)


def _merge_trips(parts: Sequence[Path], out: Path) -> None:
    """One route file from per-block trip files (consecutive in time: their trips stay in departure order)."""
    root = ET.parse(parts[0]).getroot()
    for p in parts[1:]:
        root.extend(list(ET.parse(p).getroot()))
    ET.indent(root, space="    ")
    out.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n")


def _write_demand(fam: Family, level: str, seed: int, net: str, work: Path) -> str:
    rates = block_rates(fam, level)
    out = f"{level}.rou.xml"
    if fam.alternating:
        parts = []
        for k, rate in enumerate(rates):
            axis = block_axis(k)
            other = "EW" if axis == "NS" else "NS"
            heavy, light = HEAVY_SHARE / 2, (1 - HEAVY_SHARE) / 2  # per incoming edge
            _weights(work / f"b{k}.src.xml", {**dict.fromkeys(AXES[axis], heavy), **dict.fromkeys(AXES[other], light)})
            part = f"{level}-b{k}.rou.xml"
            _trips(net, part, begin=k * BLOCK_S, end=(k + 1) * BLOCK_S, rates=[rate], seed=seed * 10 + k,
                   prefix=f"b{k}_", work=work, weights=f"b{k}")
            parts.append(work / part)
        _merge_trips(parts, work / out)
        return out
    weights = None
    if fam.main_weight != 1.0:  # arterial: the main road's two ends weigh more, as sources and as sinks
        side = [f"{s}{i}" for i in range(5) for s in ("N", "S")]  # N0, S0, N1, ...
        _weights(work / "main.src.xml", {**dict.fromkeys(("WJ0", "EJ4"), fam.main_weight),
                                         **{f"{s}J{s[1:]}": 1.0 for s in side}})
        _weights(work / "main.dst.xml", {**dict.fromkeys(("J0W", "J4E"), fam.main_weight),
                                         **{f"J{s[1:]}{s}": 1.0 for s in side}})
        weights = "main"
    _trips(net, out, begin=0.0, end=DEMAND_END_S, rates=rates, seed=seed, prefix="v", work=work, weights=weights)
    return out


# ------------------------------------------------------------------------------------------------
# scenarios
def _count_trips(route_file: Path) -> int:
    return sum(1 for el in ET.parse(route_file).getroot() if el.tag in ("trip", "vehicle"))


def _build(fam: Family, levels: Sequence[str], seed: int, out_dir: Path) -> list[TrainingScenario]:
    """One family's net, written once, and its demand at each level, each in ``out_dir/<family>-<level>/``."""
    built = []
    with tempfile.TemporaryDirectory(prefix=f"training-{fam.name}-") as tmp:
        work = Path(tmp)
        net = _write_net(fam, seed, work)
        for level in levels:
            routes = _write_demand(fam, level, seed, net, work)
            name = f"{fam.name}-{level}"
            cfg = f"{name}.sumocfg"
            _run([sumo_binary("sumo"), "-n", net, "-r", routes, "--begin", "0", "--end", f"{END_S:g}", "-C", cfg],
                 work)
            _strip_header(work / cfg)
            folder = out_dir / name
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            for f in (net, routes, cfg):
                shutil.copyfile(work / f, folder / f)
            path = folder / cfg
            built.append(TrainingScenario(fam.name, level, seed, path, tls=len(programs_of(path)),
                                          vehicles=_count_trips(folder / routes)))
    return built


def generate_training(out_dir: Path, *, seed: int = 1, families: Iterable[str | Family] | None = None,
                      levels: Iterable[str] | None = None, jobs: int = 2) -> list[TrainingScenario]:
    """Write the training zoo (:data:`FAMILIES` x :data:`LEVELS`, or those named; a :class:`Family` of one's
    own, such as one at another rate, is written too) for ``seed`` into ``out_dir/<family>-<level>/``, ``jobs``
    families at a time; returns them in family then level order.

    Deterministic: the same seed writes the same bytes. A folder that exists is replaced."""
    fams = list(FAMILIES) if families is None else [f if isinstance(f, Family) else family(f) for f in families]
    lvls = list(LEVELS) if levels is None else list(levels)
    for lv in lvls:
        if lv not in LEVELS:
            raise ValueError(f"not a demand level: '{lv}' (choose from: {', '.join(LEVELS)})")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(fams) or 1))) as pool:
        per_family = list(pool.map(lambda f: _build(f, lvls, seed, out_dir), fams))
    return [sc for group in per_family for sc in group]

