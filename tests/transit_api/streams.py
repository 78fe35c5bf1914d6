"""Helpers of the traffic and detection tests: the demo city's compiled network, and streams of real protocol
messages (DetectorBatch, ControllerState of engine/protocol/messages.py) written tick by tick from per-lane
conditions, as the SUMO field and the controllers publish them."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.network import DET_AREA, DET_STOPLINE, Network
from engine.protocol import messages as m
from simulation.experiments.catalog import DEMO

DEMO_NET = DEMO / "bunda_kota.net.xml"


@functools.cache
def demo_network() -> Path:
    """The demo city's network.json (what ``lintas compile`` writes), compiled once per test process."""
    from simulation.sumo.netcompile import compile_for_run

    out = Path(tempfile.mkdtemp(prefix="lintas-test-bk-"))
    net, _det = compile_for_run(DEMO, out)
    path = out / "network.json"
    net.to_json(path)
    return path


class Lane:
    """What one lane's detectors read in a tick: vehicles over the stop-line loop, vehicles (standing) in the zone."""

    def __init__(self, out: int = 0, count: int = 0, halting: int = 0, occ: float = 0.0) -> None:
        self.out, self.count, self.halting, self.occ = out, count, halting, occ


FREE = Lane(out=1, count=1, halting=0, occ=0.03)  # a vehicle every tick, none standing


def stream(net: Network, ticks: range, lane_at: Callable[[int, str], Lane], green_at: Callable[[int, str], bool]
           | None = None, source: str = "test", columnar: bool = False) -> Iterator[m.Message]:
    """For each tick t: the controllers' states of t-1 (their signals held during the tick ending at t: every link
    green where ``green_at(t, lane)`` for its lane, red otherwise; no states when ``green_at`` is None), then the
    detector batch of t: one reading map per detector, or (``columnar``) columns indexed into the network's
    detector table, as the SUMO field sends them."""
    layout = m.detector_layout(net.det_ids)
    lane_of_det = {d: net.lane_ids[int(li)] for d, li in zip(net.det_ids, net.det_lane)}
    kind = {d: int(k) for d, k in zip(net.det_ids, net.det_kind)}
    links: dict[str, list[tuple[str, int]]] = {j.id: [] for j in net.junctions}
    for k in range(net.n_movements):
        jid = net.junctions[int(net.mov_junction[k])].id
        links[jid].append((net.lane_ids[int(net.mov_in_lane[k])], int(net.mov_link[k])))
    for t in ticks:
        if green_at is not None:
            for j in net.junctions:
                sig = ["r"] * j.n_links
                for lane, link in links[j.id]:
                    if green_at(t, lane):
                        sig[link] = "G"
                yield m.ControllerState(junction=j.id, time=float(t - 1), signal="".join(sig))
        readings = []
        for d in net.det_ids:
            ln = lane_at(t, lane_of_det[d])
            if kind[d] == DET_STOPLINE:
                readings.append(m.DetectorReading(d, ln.out, min(1.0, ln.occ)))
            elif kind[d] == DET_AREA:
                readings.append(m.DetectorReading(d, ln.count, ln.occ, ln.halting))
            else:
                readings.append(m.DetectorReading(d, ln.out, min(1.0, ln.occ)))
        if columnar:
            yield m.detector_batch(source, t, [r.count for r in readings], [r.occupancy for r in readings],
                                   [r.halting for r in readings], index=list(range(len(readings))), layout=layout)
        else:
            yield m.DetectorBatch(source=source, time=float(t), interval=1.0, readings=readings)
