"""The SUMO side of a run: starts SUMO through libsumo (or TraCI), reads Lintas' detectors as one columnar
batch per control tick (getters written straight into arrays, no subscriptions), shows signal strings,
samples queues and advances the simulation by one tick.

A tick is a second of simulated time, whatever SUMO's step length: ``advance(t)`` runs as many SUMO steps
as it takes to reach ``t`` (5 at ``step-length 0.2``), and the batch that ``read`` returns covers them all.
After every SUMO step a loop adds the vehicles that arrived over it (new ids on it: a real loop's rising
edges) and its occupancy; the batch reports the sum and the mean over the tick's steps. (SUMO's own
per-interval E1 output, ``getIntervalVehicleNumber``, was measured not to line up with the tick at 0.2-s
steps: docs/performance.md.) A lane-area detector (a camera) reports what it sees at the end of the tick."""

from __future__ import annotations

from collections.abc import Sequence

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
        kind = np.asarray(network.det_kind)
        ids = list(network.det_ids)
        e1_pos = np.flatnonzero(kind != DET_AREA)
        e2_pos = np.flatnonzero(kind == DET_AREA)
        self._e1 = [ids[i] for i in e1_pos]  # loops, in the network's order
        self._e2 = [ids[i] for i in e2_pos]  # lane-area detectors (cameras)
        self.layout = m.detector_layout(ids)  # the batches' index columns refer to the network's detector table
        live1 = np.array([d not in self.dead for d in self._e1], dtype=np.bool_)
        live2 = np.array([d not in self.dead for d in self._e2], dtype=np.bool_)
        self._live1, self._live2 = live1, live2
        self._index = np.concatenate((e1_pos[live1], e2_pos[live2])).astype(np.int32)
        self._area_junction = network.lane_junction[network.det_lane[kind == DET_AREA]].astype(np.int64)
        self.halting = np.zeros(len(self._e2))
        n1 = len(self._e1)
        self._on_loop: list[frozenset] = [frozenset()] * n1  # vehicles over each loop in the last step
        self._arrived = np.zeros(n1, dtype=np.int64)  # vehicles that arrived over each loop since the last read
        self._occ = np.zeros(n1)  # each loop's occupancy (%) summed over the steps since the last read
        self._steps = 0  # SUMO steps since the last read
        self.started = False

    def start(self, args: Sequence[str]) -> None:
        import sumolib

        binary = sumolib.checkBinary("sumo-gui" if self.gui else "sumo")
        self.conn.start([binary, *args])
        self.started = True

    def time(self) -> float:
        return float(self.conn.simulation.getTime())

    def _count_arrivals(self) -> None:
        """After one SUMO step (at 1-s steps): add the vehicles that arrived over each loop in it, and its
        occupancy (a loop with no vehicle in the step has occupancy 0: SUMO derives both from the same data)."""
        il = self.conn.inductionloop
        get_ids, get_occ = il.getLastStepVehicleIDs, il.getLastStepOccupancy
        on_loop, arrived, occ = self._on_loop, self._arrived, self._occ
        empty: frozenset = frozenset()
        for i, d in enumerate(self._e1):
            ids = get_ids(d)
            if ids:
                now = frozenset(ids)
                arrived[i] += len(now - on_loop[i])
                occ[i] += get_occ(d)
                on_loop[i] = now
            elif on_loop[i]:
                on_loop[i] = empty
        self._steps += 1

    def read(self, t: float, source: str = "sumo") -> m.DetectorBatch:
        """All detector readings since the last read, as one columnar batch (``index`` into the network's
        detector table): per loop the vehicles that arrived over it and its mean occupancy over the tick; per
        lane-area detector its last step."""
        if self._steps == 0:  # nothing stepped since the last read (the first read): this state as it is
            self._count_arrivals()
        la = self.conn.lanearea
        get_n, get_occ, get_h = la.getLastStepVehicleNumber, la.getLastStepOccupancy, la.getLastStepHaltingNumber
        n2 = len(self._e2)
        a_n = np.empty(n2, dtype=np.int64)
        a_o = np.empty(n2)
        halting = self.halting
        for i, d in enumerate(self._e2):
            a_n[i] = get_n(d)
            a_o[i] = get_occ(d)
            halting[i] = get_h(d)
        l_occ = np.minimum(np.maximum(self._occ / self._steps / 100.0, 0.0), 1.0)
        live1, live2 = self._live1, self._live2
        count = np.concatenate((self._arrived[live1], a_n[live2]))
        occ = np.concatenate((l_occ[live1], np.minimum(np.maximum(a_o / 100.0, 0.0), 1.0)[live2]))
        halt = np.concatenate((np.zeros(int(live1.sum()), dtype=np.int64), halting[live2]))
        self._arrived[:] = 0
        self._occ[:] = 0.0
        self._steps = 0
        return m.detector_batch(source, t, count, occ, halt, index=self._index, layout=self.layout)

    def queues(self) -> np.ndarray:
        """Halting vehicles on each junction's approaches (from the lane-area detectors)."""
        return np.bincount(self._area_junction, weights=self.halting, minlength=self.net.n_junctions)

    def show(self, tls_id: str, signal: str) -> None:
        self.conn.trafficlight.setRedYellowGreenState(tls_id, signal)

    @property
    def step_length(self) -> float:
        """SUMO's step, s (the scenario's ``step-length``, or a ``--step-length`` given to SUMO)."""
        return float(self.conn.simulation.getDeltaT())

    def advance(self, until: float) -> float:
        """Run SUMO steps until its clock reaches ``until`` (one control tick); returns SUMO's time then."""
        sim = self.conn.simulation
        while sim.getTime() < until - 1e-6:
            self.conn.simulationStep()
            self._count_arrivals()
        return float(sim.getTime())

    def close(self) -> None:
        if self.started:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
            self.started = False
