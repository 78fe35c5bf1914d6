"""A one-junction SUMO scenario for the lock tests, written by netconvert from plain node and edge files.

One signalised junction ``C``: single-lane approaches ``WC`` and ``NC``, exits ``CE`` and ``CS``; a vehicle every
6 s from W to E and from N to S. With ``blocker`` a vehicle stands on ``CE_0`` right after the junction for that
many seconds (a ``<stop>``): nothing from ``WC`` can leave while it stands, whatever the light shows. SUMO's
program gives ``NC`` links 0-1 and ``WC`` links 2-3, 42 s of green each per 90 s cycle.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from simulation.sumo.tools import sumo_binary

NODES = """<nodes>
  <node id="C" x="0" y="0" type="traffic_light"/>
  <node id="W" x="-200" y="0"/><node id="E" x="200" y="0"/>
  <node id="N" x="0" y="200"/><node id="S" x="0" y="-200"/>
</nodes>
"""
EDGES = """<edges>
  <edge id="WC" from="W" to="C" numLanes="1" speed="13.9"/><edge id="CE" from="C" to="E" numLanes="1" speed="13.9"/>
  <edge id="NC" from="N" to="C" numLanes="1" speed="13.9"/><edge id="CS" from="C" to="S" numLanes="1" speed="13.9"/>
</edges>
"""
W_RED = "GGrr"  # NC green, WC red (links 0-1 are NC_0's, 2-3 WC_0's)
W_GREEN = "rrGG"


def one_junction(folder: Path, *, blocker: float | None = None, end: float = 700.0) -> Path:
    """Write the scenario into ``folder``; returns its .sumocfg."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "j.nod.xml").write_text(NODES)
    (folder / "j.edg.xml").write_text(EDGES)
    subprocess.run([sumo_binary("netconvert"), "-n", str(folder / "j.nod.xml"), "-e", str(folder / "j.edg.xml"),
                    "-o", str(folder / "j.net.xml"), "--no-turnarounds", "true"], check=True, capture_output=True)
    stop = ""
    if blocker is not None:  # stands with its front 8 m into CE: no room for anyone behind it on the exit
        stop = (f'<vehicle id="blocker" depart="0" departPos="0"><route edges="CE"/>'
                f'<stop lane="CE_0" endPos="8" duration="{blocker:g}"/></vehicle>')
    (folder / "j.rou.xml").write_text(f"""<routes>
  {stop}
  <flow id="we" begin="0" end="{end:g}" period="6" from="WC" to="CE"/>
  <flow id="ns" begin="0" end="{end:g}" period="6" from="NC" to="CS"/>
</routes>
""")
    cfg = folder / "j.sumocfg"
    cfg.write_text(f"""<configuration>
  <input><net-file value="j.net.xml"/><route-files value="j.rou.xml"/></input>
  <time><begin value="0"/><end value="{end:g}"/></time>
</configuration>
""")
    return cfg
