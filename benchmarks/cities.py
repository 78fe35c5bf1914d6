"""Generated cities for the speed benchmarks: a netgenerate grid of signalised junctions with random demand
(SUMO's own tools, seeded), compiled once and kept under ``benchmarks/results/work/cities/``; and
``tile``, which repeats a compiled network to reach thousands of junctions with the same phase, movement
and detector counts per junction (the engine bench's 1,000- and 10,000-junction cities).

    grid_city(10)  # 100 junctions: 4 approaches of 2 lanes each, 3 detectors per lane (24 per junction)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np

from engine.network import Network

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "results" / "work" / "cities"
DEMAND_S = 1200  # s of random trips; the scenario ends 300 s later


class CityError(RuntimeError):
    """A SUMO tool failed while generating a city (the message quotes it)."""


def _run(cmd: list[str], cwd: Path) -> None:
    import sumo  # noqa: F401  (sets SUMO_HOME)

    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=dict(os.environ), check=False)
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise CityError(f"{Path(cmd[1] if cmd[0] == sys.executable else cmd[0]).name} failed "
                        f"(exit {res.returncode}) in {cwd}: {tail}")


def grid_city(n: int, seed: int = 1, period: float | None = None) -> Path:
    """An n x n grid of traffic lights (200 m blocks, 2 lanes per approach, 200 m feeder roads), random trips
    for DEMAND_S s; returns its ``.sumocfg`` (generated once, then reused)."""
    from simulation.sumo.tools import sumo_binary

    folder = WORK / f"grid{n}x{n}-seed{seed}"
    cfg = folder / "city.sumocfg"
    if cfg.exists():
        return cfg
    folder.mkdir(parents=True, exist_ok=True)
    _run([sumo_binary("netgenerate"), "--grid", "--grid.number", str(n), "--grid.length", "200",
          "--grid.attach-length", "200", "-L", "2", "-j", "traffic_light", "--tls.default-type", "static",
          "--no-turnarounds", "true", "-o", "net.net.xml"], folder)
    import sumo  # noqa: F401

    tool = Path(os.environ["SUMO_HOME"]) / "tools" / "randomTrips.py"
    # about one vehicle per junction every 20 s: busy, below gridlock
    p = period if period is not None else max(20.0 / (n * n), 0.02)
    _run([sys.executable, str(tool), "-n", "net.net.xml", "-o", "trips.rou.xml", "-b", "0", "-e", str(DEMAND_S),
          "-p", f"{p:g}", "--seed", str(seed), "--fringe-factor", "10", "--min-distance", "400", "--validate"],
         folder)
    _run([sumo_binary("sumo"), "-n", "net.net.xml", "-r", "trips.rou.xml", "--begin", "0", "--end",
          str(DEMAND_S + 300), "-C", "city.sumocfg"], folder)
    return cfg


def compiled(cfg: Path) -> Network:
    """The Lintas network of a generated city, with Lintas' detectors (compiled once, kept beside it)."""
    from simulation.sumo.netcompile import compile_for_run
    from simulation.sumo.scenario import load_scenario

    net, _det = compile_for_run(load_scenario(cfg), cfg.parent / "compiled")
    return net


def tile(net: Network, copies: int) -> Network:
    """``copies`` copies of ``net`` side by side (ids suffixed ``#k``), indices shifted; no link between copies."""
    if copies == 1:
        return net
    n_l, n_mov, n_ph, n_j = net.n_lanes, net.n_movements, net.n_phases, net.n_junctions

    def rep(a: np.ndarray, step: int = 0, keep_neg: bool = False) -> np.ndarray:
        parts = []
        for k in range(copies):
            if keep_neg:
                parts.append(np.where(a >= 0, a + k * step, a).astype(a.dtype))
            else:
                parts.append((a + k * step).astype(a.dtype))
        return np.concatenate(parts)

    def ptr(p: np.ndarray, step: int) -> np.ndarray:
        return np.concatenate([p[:1].astype(p.dtype)] + [(p[1:] + k * step).astype(p.dtype) for k in range(copies)])

    def ids(xs: list[str]) -> list[str]:
        return [f"{x}#{k}" if x else x for k in range(copies) for x in xs]

    junctions = [msgspec.structs.replace(j, id=f"{j.id}#{k}") for k in range(copies) for j in net.junctions]
    return Network(
        name=f"{net.name}x{copies}", junctions=junctions, lane_ids=ids(net.lane_ids),
        lane_junction=rep(net.lane_junction, n_j), lane_length=rep(net.lane_length), lane_speed=rep(net.lane_speed),
        mov_junction=rep(net.mov_junction, n_j), mov_link=rep(net.mov_link), mov_in_lane=rep(net.mov_in_lane, n_l),
        mov_out_lane=rep(net.mov_out_lane, n_l, keep_neg=True), mov_out_lane_id=ids(net.mov_out_lane_id),
        jn_phase_ptr=ptr(net.jn_phase_ptr, n_ph), phase_mov_ptr=ptr(net.phase_mov_ptr, int(net.phase_mov_ptr[-1])),
        phase_mov_idx=rep(net.phase_mov_idx, n_mov), phase_min=rep(net.phase_min), phase_max=rep(net.phase_max),
        phase_fixed=rep(net.phase_fixed), phase_next=rep(net.phase_next, n_ph, keep_neg=True),
        phase_yellow=rep(net.phase_yellow), phase_allred=rep(net.phase_allred),
        det_ids=ids(net.det_ids), det_lane=rep(net.det_lane, n_l), det_kind=rep(net.det_kind),
        det_pos=rep(net.det_pos), det_length=rep(net.det_length),
    )
