"""SUMO scenarios: what a ``.sumocfg`` points at, checked before anything is started.

``load_scenario(path)`` accepts a ``.sumocfg`` file or a folder holding exactly one, reads the
net, route and additional files and the time window from it (paths relative to the cfg's folder)
and raises :class:`ScenarioError` with a one-line message naming the file or option when
something is missing. ``check_routes`` verifies that the route files only use edges of the net.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from simulation.sumo.files import open_xml

__all__ = ["Scenario", "ScenarioError", "check_routes", "config_for_sumo", "load_scenario", "net_edge_ids",
           "parse_sumo_time"]

CONFIG_ROOTS = ("configuration", "sumoConfiguration")  # what people write, and what `sumo -C` writes
DEFAULT_BEGIN = 0.0
DEFAULT_END = 3600.0

# option name -> accepted element names in a sumocfg (long name first; SUMO also knows synonyms)
_OPTIONS = {
    "net-file": ("net-file", "net"),
    "route-files": ("route-files", "routes"),
    "additional-files": ("additional-files", "additional"),
    "begin": ("begin",),
    "end": ("end",),
    "step-length": ("step-length",),
    "tls.all-off": ("tls.all-off",),
}


class ScenarioError(Exception):
    """A scenario that cannot be run; the message is one line naming the file or option."""


@dataclass
class Scenario:
    name: str
    sumocfg: Path
    net_file: Path
    route_files: list[Path] = field(default_factory=list)
    additional_files: list[Path] = field(default_factory=list)
    begin: float = DEFAULT_BEGIN
    end: float = DEFAULT_END
    step_length: float = 1.0  # s per SUMO step; Lintas' clock ticks every second of simulated time whatever it is
    gui_only: list[str] = field(default_factory=list)  # options of the cfg's <gui_only> section (sumo-gui's)
    tls_all_off: bool = False  # the cfg switches every traffic light off (option tls.all-off)

    @property
    def folder(self) -> Path:
        return self.sumocfg.parent


# ------------------------------------------------------------------------------------------------
def _split_files(value: str) -> list[str]:
    return [v for v in re.split(r"[,\s]+", value.strip()) if v]


def parse_sumo_time(value: str | float) -> float:
    """Parse a SUMO time value: seconds (``"25200"``, ``"12.5"``) or ``[[D:]H:]M:S`` clock form."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    if ":" not in text:
        return float(text)
    parts = [float(p) for p in text.split(":")]
    if len(parts) > 4:
        raise ValueError(f"not a SUMO time: {value!r}")
    weights = (86400.0, 3600.0, 60.0, 1.0)[-len(parts):]
    sign = -1.0 if text.startswith("-") else 1.0
    return sign * sum(abs(p) * w for p, w in zip(parts, weights))



def _parse_time(value: str, option: str, cfg: Path) -> float:
    try:
        return parse_sumo_time(value)
    except (ValueError, IndexError):
        raise ScenarioError(f"{cfg}: option '{option}' has an invalid time value {value!r}") from None


def _find_cfg(path: Path) -> Path:
    if not path.exists():
        raise ScenarioError(f"{path}: scenario path does not exist")
    if path.is_dir():
        cfgs = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(".sumocfg"))
        if not cfgs:
            raise ScenarioError(f"{path}: folder holds no .sumocfg file")
        if len(cfgs) > 1:
            names = ", ".join(p.name for p in cfgs)
            raise ScenarioError(f"{path}: folder holds several .sumocfg files ({names}); name one")
        return cfgs[0]
    if not path.name.endswith(".sumocfg"):
        raise ScenarioError(f"{path}: not a scenario (expected a .sumocfg file or a folder holding one)")
    return path


def load_scenario(path: str | Path, *, check: bool = True) -> Scenario:
    """Read a ``.sumocfg`` (or the single one in a folder) into a :class:`Scenario`.

    With ``check`` (default) every referenced file must exist and the route files must only use
    edges of the net (:func:`check_routes`).
    """
    if path is None or (isinstance(path, str) and not path.strip()):
        raise ScenarioError(f"{path!r}: not a scenario path")
    cfg = _find_cfg(Path(path).expanduser()).resolve()
    try:
        root = ET.parse(cfg).getroot()
    except ET.ParseError as exc:
        raise ScenarioError(f"{cfg}: not a valid sumocfg XML file ({exc})") from None
    if root.tag not in CONFIG_ROOTS:
        raise ScenarioError(f"{cfg}: not a SUMO configuration (root element <{root.tag}>, expected "
                            f"<{'> or <'.join(CONFIG_ROOTS)}>)")

    values: dict[str, str] = {}
    for el in root.iter():
        for opt, names in _OPTIONS.items():
            if el.tag in names and "value" in el.attrib:
                values[opt] = el.attrib["value"]
        # attribute style: <input net-file="..."/>
        for opt, names in _OPTIONS.items():
            for n in names:
                if n in el.attrib and el is not root:
                    values.setdefault(opt, el.attrib[n])

    base = cfg.parent
    if not values.get("net-file", "").strip():
        raise ScenarioError(f"{cfg}: option 'net-file' is missing")
    nets = _split_files(values["net-file"])
    net_file = (base / nets[0]).resolve()
    route_files = [(base / f).resolve() for f in _split_files(values.get("route-files", ""))]
    additional_files = [(base / f).resolve() for f in _split_files(values.get("additional-files", ""))]
    begin = _parse_time(values["begin"], "begin", cfg) if "begin" in values else DEFAULT_BEGIN
    end = _parse_time(values["end"], "end", cfg) if "end" in values else DEFAULT_END
    if end <= begin:
        raise ScenarioError(f"{cfg}: option 'end' ({end:g}) is not after 'begin' ({begin:g})")
    step = _parse_time(values["step-length"], "step-length", cfg) if "step-length" in values else 1.0
    if not step > 0:
        raise ScenarioError(f"{cfg}: option 'step-length' ({step:g}) must be positive")

    name = cfg.name[: -len(".sumocfg")]
    sc = Scenario(
        name=name,
        sumocfg=cfg,
        net_file=net_file,
        route_files=route_files,
        additional_files=additional_files,
        begin=begin,
        end=end,
        step_length=step,
        gui_only=[el.tag for section in root.findall("gui_only") for el in section],
        tls_all_off=values.get("tls.all-off", "false").strip().lower() in ("true", "1", "yes", "on", "x"),
    )
    for opt, files in (("net-file", [net_file]), ("route-files", route_files),
                       ("additional-files", additional_files)):
        for f in files:
            if not f.is_file():
                raise ScenarioError(f"{cfg}: option '{opt}' references missing file {f}")
    if check:
        check_routes(sc)
    return sc


def config_for_sumo(scenario: Scenario, folder: Path, *, gui: bool = False) -> Path:
    """The configuration to start SUMO with: the scenario's own; or, when it has options only sumo-gui knows
    (``<gui_only>``: ``osg-view`` makes the command-line ``sumo`` refuse the whole file) and the run is not
    in the GUI, a copy without them in ``folder``, its input files named by absolute path."""
    if gui or not scenario.gui_only:
        return scenario.sumocfg
    tree = ET.parse(scenario.sumocfg)
    root = tree.getroot()
    for section in root.findall("gui_only"):
        root.remove(section)
    files = {"net-file": [scenario.net_file], "route-files": scenario.route_files,
             "additional-files": scenario.additional_files}
    for el in root.iter():
        for opt, names in _OPTIONS.items():
            if opt in files and el.tag in names and "value" in el.attrib:
                el.set("value", ",".join(str(p) for p in files[opt]))
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / scenario.sumocfg.name
    tree.write(out, encoding="UTF-8", xml_declaration=True)
    return out


# ------------------------------------------------------------------------------------------------
def net_edge_ids(net_file: Path) -> set[str]:
    """Ids of all edges of a net (internal ones included), read with a fast iterparse."""
    ids: set[str] = set()
    try:
        with open_xml(net_file) as fh:
            for _event, el in ET.iterparse(fh, events=("end",)):
                if el.tag == "edge":
                    eid = el.get("id")
                    if eid:
                        ids.add(eid)
                    el.clear()
                elif el.tag in ("junction", "connection", "tlLogic"):
                    el.clear()
    except ET.ParseError as exc:
        raise ScenarioError(f"{net_file}: not a valid net XML file ({exc})") from None
    return ids


_ROUTE_TAGS = ("route", "trip", "flow")


def _edges_of(el: ET.Element) -> Iterable[str]:
    for attr in ("edges",):
        v = el.get(attr)
        if v:
            yield from v.split()
    for attr in ("from", "to"):
        v = el.get(attr)
        if v:
            yield v


def check_routes(scenario: Scenario, edges: set[str] | None = None) -> None:
    """Raise :class:`ScenarioError` naming the first edge the route files use that the net lacks.

    Scans ``edges=`` / ``from=`` / ``to=`` of route, trip and flow elements.
    """
    if edges is None:
        edges = net_edge_ids(scenario.net_file)
    for rf in scenario.route_files:
        try:
            with open_xml(rf) as fh:
                depth = 0
                root = None
                for event, el in ET.iterparse(fh, events=("start", "end")):
                    if event == "end":
                        depth -= 1
                        if depth == 1 and root is not None:
                            root.clear()  # keep memory flat on big route files
                        continue
                    depth += 1
                    if root is None:
                        root = el
                    if el.tag in _ROUTE_TAGS:
                        for e in _edges_of(el):
                            if e not in edges:
                                rid = el.get("id", "")
                                what = f"{el.tag} '{rid}'" if rid else el.tag
                                raise ScenarioError(
                                    f"{rf}: {what} uses edge '{e}' that is not in net {scenario.net_file.name}"
                                )
        except ET.ParseError as exc:
            raise ScenarioError(f"{rf}: not a valid route XML file ({exc})") from None
