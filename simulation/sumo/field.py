"""The SUMO side of a run: starts SUMO through libsumo (or TraCI), reads Lintas' detectors every step
as one batch (subscriptions, one call), shows signal strings, samples queues and steps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.network import DET_AREA, Network
from engine.protocol import messages as m


def sumo_module(use_traci: bool = False):
    import sumo  # noqa: F401  (sets SUMO_HOME)

    if use_traci:
        import traci

        return traci
    import libsumo

    return libsumo


class SumoField:
    def __init__(self, network: Network, *, use_traci: bool = False, gui: bool = False,
                 dead: set[str] | None = None) -> None:
        self.net = network
        self.dead = set(dead or ())  # failed detectors: they send nothing (queues are still measured)
        self.conn = sumo_module(use_traci)
        self.use_traci = use_traci
        self.gui = gui
        kind = network.det_kind
        self._e2 = [d for d, k in zip(network.det_ids, kind) if k == DET_AREA]
        self._e1 = [d for d, k in zip(network.det_ids, kind) if k != DET_AREA]
        area = kind == DET_AREA
        self._area_junction = network.lane_junction[network.det_lane[area]].astype(np.int64)
        self._area_index = {d: i for i, d in enumerate(self._e2)}
        self.halting = np.zeros(len(self._e2))
        self._on_loop: dict[str, frozenset] = {}  # vehicles over each loop in the last step
        self.started = False

    def start(self, args: Sequence[str]) -> None:
        import sumolib

        binary = sumolib.checkBinary("sumo-gui" if self.gui else "sumo")
        self.conn.start([binary, *args])
        self.started = True
        tc = self.conn.constants
        for d in self._e1:
            # a loop counts vehicles that arrive over it (a real loop's rising edges), so the ids are read:
            # SUMO's last-step vehicle number counts a standing or slow vehicle again every step
            self.conn.inductionloop.subscribe(d, (tc.LAST_STEP_VEHICLE_ID_LIST, tc.LAST_STEP_OCCUPANCY))
        for d in self._e2:
            self.conn.lanearea.subscribe(
                d, (tc.LAST_STEP_VEHICLE_NUMBER, tc.LAST_STEP_OCCUPANCY, tc.LAST_STEP_VEHICLE_HALTING_NUMBER)
            )
        self._tc = tc

    def time(self) -> float:
        return float(self.conn.simulation.getTime())

    def read(self, t: float, source: str = "sumo") -> m.DetectorBatch:
        """All detector readings of the last step, as one batch."""
        tc = self._tc
        vn, oc, hn = tc.LAST_STEP_VEHICLE_NUMBER, tc.LAST_STEP_OCCUPANCY, tc.LAST_STEP_VEHICLE_HALTING_NUMBER
        ids_var = tc.LAST_STEP_VEHICLE_ID_LIST
        Reading = m.DetectorReading
        readings = []
        dead = self.dead
        on_loop = self._on_loop
        empty: frozenset = frozenset()
        for d, v in self.conn.inductionloop.getAllSubscriptionResults().items():
            ids = frozenset(v[ids_var])
            arrived = len(ids - on_loop.get(d, empty)) if ids else 0
            on_loop[d] = ids
            if d not in dead:
                readings.append(Reading(d, arrived, min(max(v[oc] / 100.0, 0.0), 1.0)))
        halting = self.halting
        ai = self._area_index
        for d, v in self.conn.lanearea.getAllSubscriptionResults().items():
            h = int(v[hn])
            halting[ai[d]] = h
            if d not in dead:
                readings.append(Reading(d, int(v[vn]), min(max(v[oc] / 100.0, 0.0), 1.0), h))
        return m.DetectorBatch(source=source, time=t, interval=1.0, readings=readings)

    def queues(self) -> np.ndarray:
        """Halting vehicles on each junction's approaches (from the lane-area detectors)."""
        return np.bincount(self._area_junction, weights=self.halting, minlength=self.net.n_junctions)

    def show(self, tls_id: str, signal: str) -> None:
        self.conn.trafficlight.setRedYellowGreenState(tls_id, signal)

    def step(self) -> None:
        self.conn.simulationStep()

    def close(self) -> None:
        if self.started:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
            self.started = False


def merge_additional(args: list[str], extra: list[Path]) -> list[str]:
    """Fold Lintas' additional files into ``-a/--additional-files`` (user ones kept)."""
    out: list[str] = []
    files = [str(p) for p in extra]
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-a", "--additional-files") and i + 1 < len(args):
            files.extend(x for x in args[i + 1].split(",") if x)
            i += 2
            continue
        if a.startswith("--additional-files="):
            files.extend(x for x in a.split("=", 1)[1].split(",") if x)
            i += 1
            continue
        out.append(a)
        i += 1
    if files:
        out += ["--additional-files", ",".join(files)]
    return out

