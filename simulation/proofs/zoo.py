"""The scenario zoo: small SUMO scenarios written by SUMO's own tools, varying what real scenarios vary, and
the check that every policy runs every one of them safely to its end.

``generate_zoo(out_dir, seed=1)`` writes one folder per scenario (a ``.sumocfg`` and what it names), built
with ``netgenerate`` (grid, spider and random nets; ``--tls.layout`` opposites and incoming; left-turn lanes
with permissive and protected lefts; static and actuated programs; sidewalks, crossings and bike lanes),
``netconvert`` (a second program per light in the net), ``randomTrips.py`` (trips with explicit departs;
pedestrians and bicycles; random flows in one scenario, marked), ``duarouter`` (routes for the next tools),
``tlsCycleAdaptation.py`` (a Webster program in an additional file), ``generateTLSE1Detectors.py`` and
``generateTLSE2Detectors.py`` (detectors of the scenario's own) and ``sumo -C`` (the configuration, SUMO's
``<sumoConfiguration>`` root; some are given the ``<configuration>`` root people write by hand). Around the
tools only this is done: the header comment SUMO writes into every file (a timestamp and the options, with
paths) is removed, files are gzipped without a timestamp, and a root element is renamed. Same seed, same
bytes. :data:`ZOO` lists the scenarios and what each varies.

``game_scenarios()`` lists the traffic-signal scenarios of the installed SUMO wheel's ``tools/game``;
``stage_game_scenarios(dest)`` copies them, so that runs never write into the installed wheel (their
``input_additional.add.xml`` writes ``tlsstate.xml`` and ``netstate.xml`` next to itself).

The check that every policy runs every one of them safely to its end is ``simulation/proofs/zoocheck.py``.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from simulation.sumo.files import open_xml
from simulation.sumo.netcompile import CompileReport, compile_network
from simulation.sumo.programs import TlsProgram, running_programs
from simulation.sumo.scenario import Scenario, load_scenario
from simulation.sumo.tools import sumo_binary

__all__ = [
    "GAME_EXCLUDED",
    "ZOO",
    "ZooError",
    "ZooScenario",
    "game_dir",
    "game_scenarios",
    "generate_zoo",
    "programs_of",
    "shortest_yellow",
    "stage_game_scenarios",
    "static_reference",
]


DEMAND_S = 600.0  # vehicles depart over 10 minutes
CLEAR_S = 300.0  # and the scenario runs 5 more


class ZooError(RuntimeError):
    """A SUMO tool failed while writing the zoo (the message names the tool and its last output)."""


# ------------------------------------------------------------------------------------------------
# what the zoo holds
@dataclass(frozen=True)
class ZooScenario:
    """One scenario of the zoo and what it varies. ``path`` is its ``.sumocfg`` (set by :func:`generate_zoo`).

    ``static_reference``: every program SUMO runs is static and Lintas shows it unchanged (see
    :func:`static_reference`), so ``fixed`` must match ``sumo-static`` within 2 %. ``tls``, ``vehicles`` and
    ``static_reference`` are computed from the files written."""

    name: str
    net: str = "grid"  # grid | spider | random
    layout: str = "opposites"  # netgenerate --tls.layout
    program: str = "static"  # static | actuated (the tlLogic type SUMO runs)
    lefts: str = "shared"  # shared (no turn lane) | permissive (turn lane, g then G) | protected (turn lane, G only)
    step_length: float = 1.0
    begin: float = 0.0
    root: str = "sumoConfiguration"  # the .sumocfg's root element
    gzipped: bool = False  # net and routes as .xml.gz
    pedestrians: bool = False  # sidewalks, crossings (links of the lights) and walking persons
    bicycles: bool = False  # bike lanes and bicycles
    tls_in_additional: bool = False  # the program SUMO runs comes from an additional file, over the net's
    two_programs: bool = False  # a second tlLogic per light in the net (SUMO runs the last)
    detectors: bool = False  # E1 and E2 detectors of the scenario's own (an additional file)
    random_flows: bool = False  # demand as flows with probability= (random departs), not explicit vehicles
    yellow: float | None = None  # netgenerate --tls.yellow.time (None: netgenerate's own)
    varies: tuple[str, ...] = ()
    path: Path | None = None
    end: float = 0.0
    static_reference: bool = False
    tls: int = 0  # traffic lights
    vehicles: int = 0  # vehicles, persons and flows in the demand (flows counted once)

    @property
    def folder(self) -> Path:
        assert self.path is not None
        return self.path.parent


_s = ZooScenario

#: the zoo's scenarios (before generation); each varies one thing of the base grid, or is another net
ZOO: tuple[ZooScenario, ...] = (
    _s(name="grid", varies=("netgenerate grid 2x2", "opposites layout", "static program", "step 1 s", "begin 0",
                            "<sumoConfiguration> root", "randomTrips trips")),
    _s(name="grid_step05", step_length=0.5, root="configuration", varies=("step-length 0.5", "<configuration> root")),
    _s(name="grid_step01", step_length=0.1, varies=("step-length 0.1",)),
    _s(name="grid_gz", gzipped=True, root="configuration", varies=("gzipped net and routes", "<configuration> root")),
    _s(name="grid_begin", begin=3650.0, varies=("begin 3650 (50 s into the cycle)",)),
    _s(name="grid_incoming", layout="incoming", varies=("--tls.layout incoming",)),
    _s(name="grid_lefts_permissive", lefts="permissive",
       varies=("left-turn lanes", "permissive lefts (g) then a protected left phase (G)")),
    _s(name="grid_lefts_protected", lefts="protected", varies=("left-turn lanes", "protected lefts only")),
    _s(name="grid_actuated", program="actuated", varies=("actuated programs (SUMO's own detectors)",)),
    _s(name="grid_ped_bike", pedestrians=True, bicycles=True,
       varies=("sidewalks and pedestrian crossings (signalised)", "bike lanes and bicycles", "2 lanes")),
    _s(name="grid_tls_additional", tls_in_additional=True,
       varies=("tlLogic in an additional file (Webster, tlsCycleAdaptation.py) over the net's",)),
    _s(name="grid_two_programs", two_programs=True,
       varies=("two programs per light in the net (opposites '0', incoming layout last: SUMO runs it)",)),
    _s(name="grid_detectors", detectors=True, root="configuration",
       varies=("existing E1 and E2 detectors (generateTLSE1/E2Detectors.py)", "<configuration> root")),
    _s(name="grid_random_flows", random_flows=True, varies=("random flows (probability=)",)),
    _s(name="grid_short_yellow", yellow=2.0, varies=("2 s yellows in the net's program (Lintas lengthens them)",)),
    _s(name="spider", net="spider", root="configuration", varies=("netgenerate spider (4 arms, 1 circle)",
                                                                  "<configuration> root")),
    _s(name="random", net="random", varies=("netgenerate random net",)),
)


# ------------------------------------------------------------------------------------------------
# running SUMO's tools
def _sumo_home() -> Path:
    import sumo  # noqa: F401  (sets SUMO_HOME)

    return Path(os.environ["SUMO_HOME"])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["SUMO_HOME"] = str(_sumo_home())
    return env


def _run(cmd: Sequence[str], cwd: Path) -> None:
    res = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=_env())
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise ZooError(f"{Path(cmd[1] if cmd[0] == sys.executable else cmd[0]).name} failed "
                       f"(exit {res.returncode}) in {cwd}: {tail}")


def _tool(name: str) -> str:
    return str(_sumo_home() / "tools" / name)


def _py(tool: str, *args: str, cwd: Path) -> None:
    _run([sys.executable, _tool(tool), *args], cwd)


_HEADER = re.compile(rb"<!-- generated on .*?-->\s*", re.DOTALL)


def _strip_header(path: Path) -> None:
    """Remove the comment SUMO's tools write after the XML declaration (a timestamp, the options, paths)."""
    data = path.read_bytes()
    new = _HEADER.sub(b"", data, count=1)
    if new != data:
        path.write_bytes(new)


def _gzip(src: Path, dst: Path) -> None:
    """Gzip without a timestamp or a file name in the header: the same bytes every time."""
    with open(dst, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(src.read_bytes())
    src.unlink()


# ------------------------------------------------------------------------------------------------
# nets
def _grid(n: int) -> list[str]:
    """netgenerate's n x n grid (200 m blocks, 150 m arms at the boundary), every grid junction a light."""
    tls = ",".join(f"{chr(ord('A') + x)}{y}" for x in range(n) for y in range(n))
    return ["--grid", "--grid.number", str(n), "--grid.length", "200", "--grid.attach-length", "150",
            "--tls.set", tls]


def _netgenerate_args(sc: ZooScenario, seed: int, *, grid: int = 2) -> list[str]:
    if sc.net == "spider":
        args = ["--spider", "--spider.arm-number", "4", "--spider.circle-number", "1", "--spider.space-radius", "200",
                "--spider.attach-length", "150", "--tls.set", "A1,B1,B2,B3,B4"]
    elif sc.net == "random":
        args = ["--rand", "--rand.iterations", "12", "--rand.min-distance", "120", "--rand.max-distance", "250",
                "-j", "traffic_light", "--tls.discard-simple", "--seed", str(seed)]
    else:
        args = _grid(grid)
    if sc.layout != "opposites":
        args += ["--tls.layout", sc.layout]
    if sc.program != "static":
        args += ["--tls.default-type", sc.program]
    if sc.lefts != "shared":
        args += ["--turn-lanes", "1", "--turn-lanes.length", "40"]
    if sc.lefts == "protected":  # lefts may not run with the oncoming traffic above 5 m/s (the speed is 13.9)
        args += ["--tls.minor-left.max-speed", "5"]
    if sc.pedestrians:
        args += ["--sidewalks.guess", "--crossings.guess"]
    if sc.bicycles:
        args += ["--bikelanes.guess"]
    if sc.pedestrians or sc.bicycles:
        args += ["--default.lanenumber", "2"]
    if sc.yellow is not None:
        args += ["--tls.yellow.time", f"{sc.yellow:g}", "--tls.yellow.patch-small"]
    return args


def _trips(net: str, out: str, begin: float, *, period: float, seed: int, prefix: str, cwd: Path,
           extra: Sequence[str] = ()) -> None:
    _py("randomTrips.py", "-n", net, "-o", out, "-b", f"{begin:g}", "-e", f"{begin + DEMAND_S:g}", "-p", f"{period:g}",
        "--seed", str(seed), "--prefix", prefix, "--fringe-factor", "10", "--min-distance", "250", "--validate",
        *extra, cwd=cwd)


def _build(sc: ZooScenario, folder: Path, seed: int) -> ZooScenario:
    """Write one scenario into ``folder`` (empty), with SUMO's tools; returns it with path and end."""
    with tempfile.TemporaryDirectory(prefix=f"zoo-{sc.name}-") as tmp:
        work = Path(tmp)
        net = "net.net.xml"
        _run([sumo_binary("netgenerate"), *_netgenerate_args(sc, seed), "-o", net], work)
        begin = sc.begin
        routes = ["veh.rou.xml"]
        if sc.random_flows:
            _trips(net, routes[0], begin, period=48, seed=seed, prefix="f", cwd=work, extra=["--flows", "12",
                                                                                           "--binomial", "1"])
        else:
            _trips(net, routes[0], begin, period=4, seed=seed, prefix="v", cwd=work)
        if sc.pedestrians:
            routes.append("ped.rou.xml")
            _trips(net, "ped.rou.xml", begin, period=10, seed=seed + 1, prefix="p", cwd=work, extra=["--pedestrians"])
        if sc.bicycles:
            routes.append("bike.rou.xml")
            _trips(net, "bike.rou.xml", begin, period=15, seed=seed + 2, prefix="b", cwd=work,
                   extra=["--vehicle-class", "bicycle"])
        additional: list[str] = []
        if sc.tls_in_additional or sc.two_programs:
            # SUMO's Webster tool needs routes: duarouter's, for the tool only
            _run([sumo_binary("duarouter"), "-n", net, "-r", routes[0], "-o", "routed.rou.xml", "--no-step-log",
                  "--seed", str(seed)], work)
        if sc.tls_in_additional:
            additional.append("webster.add.xml")
            _py("tlsCycleAdaptation.py", "-n", net, "-r", "routed.rou.xml", "-o", "webster.add.xml", "-p", "webster",
                "-y", "3", "-g", "6", "--min-cycle", "40", "-b", f"{begin:g}", cwd=work)
        if sc.two_programs:
            # the same grid with the incoming layout gives a second program (same links); netconvert adds it
            _run([sumo_binary("netgenerate"), *_netgenerate_args(replace(sc, layout="incoming"), seed), "-o",
                  "incoming.net.xml"], work)
            _py("tlsCycleAdaptation.py", "-n", "incoming.net.xml", "-r", "routed.rou.xml", "-o", "incoming.add.xml",
                "-p", "incoming", "-y", "3", "-g", "6", "--min-cycle", "60", "-b", f"{begin:g}", cwd=work)
            _run([sumo_binary("netconvert"), "-s", net, "-i", "incoming.add.xml", "-o", "two.net.xml"], work)
            (work / "two.net.xml").replace(work / net)
        if sc.detectors:
            additional += ["e1.add.xml", "e2.add.xml"]
            _py("output/generateTLSE1Detectors.py", "-n", net, "-d", "30", "-f", "60", "-o", "e1.add.xml",
                "-r", "NUL", cwd=work)
            _py("output/generateTLSE2Detectors.py", "-n", net, "-d", "0.1", "-l", "40", "-f", "60",
                "-o", "e2.add.xml", "-r", "NUL", cwd=work)
        end = begin + DEMAND_S + CLEAR_S
        cfg = f"{sc.name}.sumocfg"
        shipped = [net, *routes, *additional]
        for f in shipped:
            _strip_header(work / f)
        if sc.gzipped:
            for f in [net, *routes]:
                _gzip(work / f, work / f"{f}.gz")
            net, routes = f"{net}.gz", [f"{r}.gz" for r in routes]
            shipped = [net, *routes, *additional]
        opts = ["-n", net, "-r", ",".join(routes), "--begin", f"{begin:g}", "--end", f"{end:g}"]
        if additional:
            opts += ["-a", ",".join(additional)]
        if sc.step_length != 1.0:
            opts += ["--step-length", f"{sc.step_length:g}"]
        _run([sumo_binary("sumo"), *opts, "-C", cfg], work)
        _strip_header(work / cfg)
        if sc.root != "sumoConfiguration":
            text = (work / cfg).read_text()
            text = text.replace("<sumoConfiguration ", f"<{sc.root} ", 1).replace("</sumoConfiguration>",
                                                                                  f"</{sc.root}>", 1)
            (work / cfg).write_text(text)
        folder.mkdir(parents=True, exist_ok=True)
        for f in [*shipped, cfg]:
            shutil.copyfile(work / f, folder / f)
    path = folder / cfg
    ok, _why = static_reference(path)
    return replace(sc, path=path, end=end, static_reference=ok, tls=len(programs_of(path)),
                   vehicles=_count_demand(load_scenario(path, check=False)))


def _count_demand(scn: Scenario) -> int:
    n = 0
    for rf in scn.route_files:
        with open_xml(rf) as fh:
            for _ev, el in ET.iterparse(fh, events=("end",)):
                if el.tag in ("vehicle", "trip", "person", "flow"):
                    n += 1
                    el.clear()
    return n


def generate_zoo(out_dir: Path, *, seed: int = 1, names: Iterable[str] | None = None,
                 jobs: int = 2) -> list[ZooScenario]:
    """Write the zoo's scenarios (:data:`ZOO`, or those ``names``) into ``out_dir/<name>/`` with SUMO's tools,
    ``jobs`` scenarios at a time; returns them in :data:`ZOO`'s order.

    Deterministic: the same ``seed`` writes the same bytes. Each folder holds exactly one ``.sumocfg``;
    a folder that exists is replaced."""
    out_dir = Path(out_dir).resolve()
    wanted = None if names is None else set(names)
    if wanted is not None and (unknown := wanted - {z.name for z in ZOO}):
        raise ValueError(f"not in the zoo: {', '.join(sorted(unknown))}")
    todo = [sc for sc in ZOO if wanted is None or sc.name in wanted]
    for sc in todo:
        if (out_dir / sc.name).exists():
            shutil.rmtree(out_dir / sc.name)
    # the tools run as processes: threads are enough to run them side by side
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(todo) or 1))) as pool:
        return list(pool.map(lambda sc: _build(sc, out_dir / sc.name, seed), todo))


# ------------------------------------------------------------------------------------------------
# the programs SUMO runs, and whether Lintas shows them unchanged
def programs_of(scenario: str | Path | Scenario) -> dict[str, TlsProgram]:
    """The program SUMO runs for each light (``simulation.sumo.programs``: the last one loaded)."""
    scn = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, check=False)
    return running_programs(scn.net_file, scn.additional_files, scn.begin).programs


def static_reference(scenario: str | Path | Scenario) -> tuple[bool, list[str]]:
    """(True, []) when every program SUMO runs is static and Lintas' ``fixed`` shows it unchanged, so that
    ``fixed`` must match ``sumo-static``; else (False, the reasons), from what compiling the scenario noticed
    (``CompileReport``): a program that is not static, a WAUT, an interval Lintas lengthens to its minimums
    (a yellow under 3 s, a green under 5 s, a yellow added where a green goes straight to red) or a green it
    ends at its maximum."""
    scn = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, check=False)
    rep = CompileReport()
    compile_network(scn, report=rep)
    why = [f"{tls}: program type {kind}" for tls, kind in sorted(rep.program_type.items()) if kind != "static"]
    why += [f"{tls}: {what}" for tls, what in sorted(rep.waut.items())]
    why += [f"{c['junction']}: {c['what']} of green phase {c['phase']} shown {c['shown']:g} s, the program's "
            f"{c['net']:g} s" for c in [*rep.lengthened, *rep.shortened]]
    return not why, why


def shortest_yellow(programs: Iterable[TlsProgram]) -> float:
    """The shortest yellow run of any link in these programs (inf when none)."""
    best = math.inf
    for p in programs:
        if not p.phases:
            continue
        for link in range(len(p.phases[0].state)):
            kinds = [("y" if (link < len(ph.state) and ph.state[link] in "yY") else "x", ph.duration)
                     for ph in p.phases]
            if all(k == "y" for k, _ in kinds) or not any(k == "y" for k, _ in kinds):
                continue
            start = next(i for i in range(len(kinds)) if kinds[i][0] != kinds[i - 1][0])
            run = 0.0
            for i in range(len(kinds)):
                k, d = kinds[(start + i) % len(kinds)]
                if k == "y":
                    run += d
                elif run:
                    best = min(best, run)
                    run = 0.0
            if run:
                best = min(best, run)
    return best


# ------------------------------------------------------------------------------------------------
# the game scenarios of the installed wheel
#: ``tools/game`` configurations that are not traffic-signal scenarios, and why they are left out
_DRT = ("demand-responsive transport game: the configuration switches every light off (tls.all-off), which "
        "lintas simulate refuses in one line")
GAME_EXCLUDED: dict[str, str] = {
    "DRT": _DRT,
    "DRT2": _DRT,
    "DRT_demo": _DRT,
    "rail": "railway game: its lights are railway signals (trains only), which Lintas leaves to SUMO, so "
            "lintas simulate refuses it in one line (no traffic light Lintas can control)",
    "rail_demo": "railway demo: the net has no traffic light",
}


def game_dir() -> Path:
    """``$SUMO_HOME/tools/game`` of the installed SUMO wheel."""
    return _sumo_home() / "tools" / "game"


def game_scenarios() -> list[Path]:
    """The ``.sumocfg`` files of the installed wheel's ``tools/game`` that are traffic-signal scenarios, sorted.

    Left out: ``*.sumocfg.disabled`` (SUMO ships them disabled), and those of :data:`GAME_EXCLUDED`: the
    three DRT ones (``DRT``, ``DRT2``, ``DRT_demo``: a taxi-dispatch game whose configuration sets
    ``tls.all-off``, so no light shows a signal), ``rail`` (rail switches flipped by the player: single-link
    lights with 86400 s phases, trains only) and ``rail_demo`` (no traffic light at all)."""
    return sorted(p for p in game_dir().glob("*.sumocfg") if p.is_file() and p.stem not in GAME_EXCLUDED)


def stage_game_scenarios(dest: Path) -> list[Path]:
    """Copy the game folder (without its sounds, images and Python) to ``dest`` and return the copies of
    :func:`game_scenarios`. Runs write into the copy (its ``input_additional.add.xml`` writes next to itself),
    never into the installed wheel."""
    src = game_dir()
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("sounds", "images", "__pycache__", "*.py", "*.pyc",
                                                             "*.gif", "*.spec", "*.sh"))
    return [dest / p.name for p in game_scenarios()]
