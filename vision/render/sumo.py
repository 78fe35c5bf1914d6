"""Clips driven by SUMO: a generated signalised junction, motorcycle-heavy demand, a camera on one approach.

:func:`build_junction` writes a four-arm junction (netconvert from plain nodes and edges) and a demand in which
motorcycles dominate, as on Indonesian roads (SUMO's sublane model lets them weave between cars). :class:`SumoClip`
runs it with libsumo and yields the vehicles every frame; :func:`random_camera` places a camera on the approach
(pole looking with or against the traffic, from the side, or top-down). :func:`vehicles_of` reads the vehicles of any
running SUMO (a libsumo or TraCI connection), for cameras in a closed-loop simulation.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vision.render.camera import Camera, look_at
from vision.render.scene import Lane, Scene, Vehicle

ARMS = {"W": (-1, 0), "E": (1, 0), "S": (0, -1), "N": (0, 1)}
#: the default class shares of the demand (motorcycles first, as counted on Indonesian urban roads)
MIX = {"motorcycle": 0.62, "car": 0.28, "truck": 0.06, "bus": 0.04}

_VTYPES = """
    <vType id="motorcycle" vClass="motorcycle" length="{ml:.2f}" width="{mw:.2f}" minGap="1.0" maxSpeed="16"
           latAlignment="arbitrary" minGapLat="0.25" maxSpeedLat="1.5" lcSublane="5" lcPushy="0.6" sigma="0.6"
           speedFactor="normc(1,0.15,0.6,1.6)"/>
    <vType id="car" vClass="passenger" length="{cl:.2f}" width="1.8" minGap="2.0" sigma="0.5"
           latAlignment="center" speedFactor="normc(1,0.1,0.7,1.3)"/>
    <vType id="bus" vClass="bus" length="{bl:.2f}" width="2.5" minGap="2.5" sigma="0.3" latAlignment="center"/>
    <vType id="truck" vClass="truck" length="{tl:.2f}" width="2.4" minGap="2.5" sigma="0.4" maxSpeed="14"
           latAlignment="center"/>
"""


@dataclass(frozen=True)
class Junction:
    net: Path
    routes: Path
    lanes: int
    arm: float


def build_junction(folder: Path, seed: int, lanes: int = 2, arm: float = 180.0, lane_width: float = 3.2,
                   veh_per_hour: float = 1800.0, mix: dict[str, float] | None = None,
                   duration: float = 3600.0) -> Junction:
    """Write ``junction.net.xml`` and ``junction.rou.xml`` into ``folder``: a signalised four-arm junction with
    ``lanes`` lanes each way and ``veh_per_hour`` vehicles per hour entering on each arm (shares ``mix``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5A0])
    nodes = ['<node id="C" x="0" y="0" type="traffic_light"/>']
    edges = []
    for name, (dx, dy) in ARMS.items():
        nodes.append(f'<node id="{name}" x="{dx * arm:.1f}" y="{dy * arm:.1f}" type="priority"/>')
        for a, b in ((name, "C"), ("C", name)):
            edges.append(f'<edge id="{a}2{b}" from="{a}" to="{b}" numLanes="{lanes}" speed="13.9" '
                         f'width="{lane_width:.2f}"/>')
    (folder / "junction.nod.xml").write_text("<nodes>\n" + "\n".join(nodes) + "\n</nodes>\n")
    (folder / "junction.edg.xml").write_text("<edges>\n" + "\n".join(edges) + "\n</edges>\n")
    net = folder / "junction.net.xml"
    cmd = [_binary("netconvert"), "-n", str(folder / "junction.nod.xml"), "-e", str(folder / "junction.edg.xml"),
           "-o", str(net), "--no-turnarounds", "--tls.default-type", "static", "--no-warnings",
           "--sidewalks.guess", "false", "--offset.disable-normalization", "true"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"netconvert failed on {folder}: {proc.stderr.strip()[-400:]}")
    mix = dict(mix or MIX)
    total = sum(mix.values())
    flows = []
    types = _VTYPES.format(ml=rng.uniform(1.8, 2.1), mw=rng.uniform(0.7, 0.85), cl=rng.uniform(3.9, 4.8),
                           bl=rng.uniform(9.0, 12.0), tl=rng.uniform(6.0, 10.0))
    for o in ARMS:
        for d in ARMS:
            if o == d:
                continue
            share = 0.6 if (ARMS[o][0] == -ARMS[d][0] and ARMS[o][1] == -ARMS[d][1]) else 0.2
            for cls, frac in mix.items():
                p = veh_per_hour * share * frac / total / 3600.0
                if p > 0:
                    flows.append(f'<flow id="{o}{d}_{cls}" type="{cls}" from="{o}2C" to="C2{d}" begin="0" '
                                 f'end="{duration:.0f}" probability="{min(p, 1.0):.5f}" departLane="random" '
                                 f'departPosLat="random" departSpeed="max"/>')
    routes = folder / "junction.rou.xml"
    routes.write_text("<routes>" + types + "\n".join(flows) + "\n</routes>\n")
    return Junction(net, routes, lanes, arm)


def _binary(name: str) -> str:
    """A binary of the installed eclipse-sumo (the ``[sim]`` install)."""
    import sumo  # noqa: F401  (sets SUMO_HOME)
    import sumolib

    return sumolib.checkBinary(name)


def vehicles_of(tc) -> list[Vehicle]:
    """The vehicles of a running SUMO (``tc``: the ``libsumo`` or ``traci`` module, or a TraCI connection), as the
    renderer draws them."""
    out = []
    for vid in tc.vehicle.getIDList():
        v = Vehicle.from_sumo(vid, tc.vehicle.getVehicleClass(vid), tc.vehicle.getPosition(vid),
                              tc.vehicle.getAngle(vid), tc.vehicle.getLength(vid), tc.vehicle.getWidth(vid))
        if v is not None:
            out.append(v)
    return out


def scene_of(tc) -> Scene:
    """The road of a running SUMO: every lane (no internal lanes; those before a traffic light end at a stop line)
    and every junction's paved shape."""
    lanes = []
    tls_lanes = set()
    for tl in tc.trafficlight.getIDList():
        tls_lanes.update(tc.trafficlight.getControlledLanes(tl))
    for lid in tc.lane.getIDList():
        if lid.startswith(":"):
            continue
        edge = tc.lane.getEdgeID(lid)
        index = int(lid.rsplit("_", 1)[1])
        lanes.append(Lane(lid, np.asarray(tc.lane.getShape(lid), dtype=np.float64), float(tc.lane.getWidth(lid)),
                          edge, index, stop=lid in tls_lanes))
    junctions = tuple(np.asarray(tc.junction.getShape(j), dtype=np.float64) for j in tc.junction.getIDList()
                      if len(tc.junction.getShape(j)) >= 3)
    return Scene(tuple(lanes), junctions)


def random_camera(rng: np.random.Generator, lanes: int, lane_width: float = 3.2, size: tuple[int, int] | None = None,
                  approach: str = "W") -> Camera:
    """A camera watching the ``approach`` arm of :func:`build_junction`'s junction (traffic entering from there): a
    pole looking along or against the traffic, from the kerb or over the road, or a top-down view."""
    dx, dy = ARMS[approach]
    inbound = math.degrees(math.atan2(-dy, -dx))  # the direction the approach's traffic drives in
    if size is None:
        size = [(480, 320), (416, 320), (320, 320), (512, 288), (448, 336)][int(rng.integers(5))]
    w, h = size
    along = rng.uniform(12, 60)  # metres upstream of the stop line
    target = (dx * (along + 8), dy * (along + 8))
    r = rng.random()
    if r < 0.25:  # top-down
        height = rng.uniform(18, 40)
        yaw = float(inbound + rng.choice([0, 90, 180, 270]) + rng.uniform(-20, 20))
        return Camera(target[0], target[1], height, yaw, 90.0, rng.uniform(45, 75), w, h, rng.uniform(-3, 3))
    towards = float(inbound + (0.0 if r < 0.5 else 180.0) + rng.uniform(-25, 25))
    side = lanes * lane_width * rng.uniform(-1.6, 1.6)
    return look_at(target, rng.uniform(10, 45), rng.uniform(5, 15), towards, rng.uniform(40, 85), w, h,
                   rng.uniform(-4, 4), side)


class SumoClip:
    """SUMO running a junction of :func:`build_junction` through libsumo; iterate :meth:`frames` for the vehicles.
    One clip at a time per process (libsumo is a single simulation)."""

    def __init__(self, junction: Junction, seed: int, step_length: float = 0.1, lateral_resolution: float = 0.6):
        self.junction, self.seed, self.step_length = junction, int(seed), step_length
        self.lateral_resolution = lateral_resolution
        self._tc = None

    def __enter__(self) -> SumoClip:
        import libsumo

        args = ["sumo", "-n", str(self.junction.net), "-r", str(self.junction.routes), "--seed", str(self.seed % 2**31),
                "--step-length", str(self.step_length), "--lateral-resolution", str(self.lateral_resolution),
                "--no-step-log", "true", "--no-warnings", "true", "--time-to-teleport", "-1",
                "--collision.action", "none"]
        libsumo.start(args)
        self._tc = libsumo
        return self

    def __exit__(self, *exc) -> None:
        if self._tc is not None:
            self._tc.close()
            self._tc = None

    @property
    def tc(self):
        if self._tc is None:
            raise RuntimeError("SumoClip: use it in a with-block")
        return self._tc

    def scene(self) -> Scene:
        return scene_of(self.tc)

    def frames(self, start: float, every: float, count: int) -> Iterator[tuple[float, list[Vehicle]]]:
        """``count`` frames (time, vehicles), ``every`` seconds of simulated time apart (rounded to whole steps),
        the first at ``start`` (or the first step after it)."""
        tc = self.tc
        k = max(1, round(every / self.step_length))
        while tc.simulation.getTime() < start - 1e-9:
            tc.simulationStep()
        for n in range(count * k):
            if n % k == 0:
                yield tc.simulation.getTime(), vehicles_of(tc)
            tc.simulationStep()


def temp_junction(seed: int, **kw) -> tuple[tempfile.TemporaryDirectory, Junction]:
    """:func:`build_junction` in a fresh temporary folder (keep the folder object alive while SUMO runs)."""
    tmp = tempfile.TemporaryDirectory(prefix="lintas-vision-")
    return tmp, build_junction(Path(tmp.name), seed, **kw)
