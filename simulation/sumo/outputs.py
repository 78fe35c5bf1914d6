"""SUMO's output files that every run writes: which options write them, and reading its statistics.

``sumo_output_args(dir)`` asks SUMO for ``dir/tripinfo.xml`` (unfinished vehicles included, for the RESCO
delay metric; SUMO writes every person's ``<personinfo>`` with its walks there too, unfinished ones included
with ``--tripinfo-output.write-unfinished``) and ``dir/statistics.xml`` (teleports, collisions, insertions);
``read_statistics`` reads the latter, for the run's metrics and for the safety check alike.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from simulation.sumo.files import open_xml
from simulation.sumo.scenario import ScenarioError

__all__ = ["OUTPUT_STATISTICS", "OUTPUT_TRIPINFO", "SumoOutputError", "read_statistics", "sumo_output_args"]

#: File names used by :func:`sumo_output_args` inside ``out_dir``.
OUTPUT_TRIPINFO = "tripinfo.xml"
OUTPUT_STATISTICS = "statistics.xml"


class SumoOutputError(ScenarioError):
    """A SUMO output file that is missing or is not what SUMO writes (one line naming the file)."""


def sumo_output_args(out_dir: str | os.PathLike[str], *, write_undeparted: bool = False) -> list[str]:
    """SUMO command-line arguments that write what the run's metrics read.

    ``out_dir/tripinfo.xml`` with unfinished vehicles, ``out_dir/statistics.xml`` (teleports,
    collisions, insertion counts).  The metric does not need ``write_undeparted`` (never-inserted
    vehicles are charged from the route files), but it is accepted and handled.
    """
    out = Path(out_dir)
    args = [
        "--tripinfo-output", str(out / OUTPUT_TRIPINFO),
        "--tripinfo-output.write-unfinished", "true",
        "--statistic-output", str(out / OUTPUT_STATISTICS),
    ]
    if write_undeparted:
        args += ["--tripinfo-output.write-undeparted", "true"]
    return args


# (key, element, attribute) of SUMO's --statistic-output
_STATISTICS = (
    ("teleports", "teleports", "total"),
    ("teleports_jam", "teleports", "jam"),
    ("teleports_yield", "teleports", "yield"),
    ("teleports_wrong_lane", "teleports", "wrongLane"),
    ("collisions", "safety", "collisions"),
    ("emergency_stops", "safety", "emergencyStops"),
    ("emergency_braking", "safety", "emergencyBraking"),
    ("loaded", "vehicles", "loaded"),
    ("inserted", "vehicles", "inserted"),
    ("running", "vehicles", "running"),
    ("waiting", "vehicles", "waiting"),
)


def read_statistics(statistics_xml: str | os.PathLike[str]) -> dict[str, float]:
    """Flat dict of SUMO's ``--statistic-output``: teleports (total, jam, yield, wrong lane), collisions,
    emergency stops and braking, vehicles loaded, inserted, running and waiting (0 where SUMO left an
    attribute out). :class:`SumoOutputError` when the file is missing, is not XML, or lacks the
    ``<statistics>`` root with ``<safety>`` and ``<teleports>``."""
    p = Path(statistics_xml)
    if not p.is_file():
        raise SumoOutputError(f"{p}: statistics file does not exist")
    try:
        with open_xml(p) as fh:
            root = ET.parse(fh).getroot()
    except ET.ParseError as exc:
        raise SumoOutputError(f"{p}: not a valid XML file ({exc})") from None
    if root.tag != "statistics" or root.find("safety") is None or root.find("teleports") is None:
        raise SumoOutputError(f"{p}: not a SUMO statistics file (needs <statistics> with <safety> and <teleports>)")
    out: dict[str, float] = {}
    for key, tag, name in _STATISTICS:
        el = root.find(tag)
        try:
            out[key] = float(el.get(name, "0")) if el is not None else 0.0
        except ValueError:
            raise SumoOutputError(f"{p}: <{tag} {name}=...> is not a number") from None
    return out
