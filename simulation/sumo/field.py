"""The SUMO side of a run: starts SUMO through libsumo (or TraCI), reads Lintas' detectors as one batch per
control tick (subscriptions, one call per SUMO step), shows signal strings, samples queues and advances the
simulation by one tick.

A tick is a second of simulated time, whatever SUMO's step length: ``advance(t)`` runs as many SUMO steps
as it takes to reach ``t`` (5 at ``step-length 0.2``), and the batch that ``read`` returns covers them all:
a loop counts every vehicle that arrived over it in any of those steps and reports its mean occupancy; a
lane-area detector (a camera) reports what it sees at the end of the tick."""

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
        kind = network.det_kind
        self._e2 = [d for d, k in zip(network.det_ids, kind) if k == DET_AREA]
        self._e1 = [d for d, k in zip(network.det_ids, kind) if k != DET_AREA]
        area = kind == DET_AREA
        self._area_junction = network.lane_junction[network.det_lane[area]].astype(np.int64)
        self._area_index = {d: i for i, d in enumerate(self._e2)}
        self.halting = np.zeros(len(self._e2))
        self._on_loop: dict[str, frozenset] = {}  # vehicles over each loop in the last step
        self._arrived: dict[str, int] = {}  # vehicles that arrived over each loop since the last read
        self._occ: dict[str, float] = {}  # each loop's occupancy (%) summed over the steps since the last read
        self._steps = 0  # SUMO steps since the last read
        self._e1_seen: list[str] | None = None
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

    def _loop_results(self) -> dict:
        return self.conn.inductionloop.getAllSubscriptionResults()

    def _count_arrivals(self) -> None:
        """After one SUMO step: add the vehicles that arrived over each loop in it, and its occupancy."""
        ids_var, oc = self._tc.LAST_STEP_VEHICLE_ID_LIST, self._tc.LAST_STEP_OCCUPANCY
        on_loop, arrived, occ = self._on_loop, self._arrived, self._occ
        empty: frozenset = frozenset()
        for d, v in self._loop_results().items():
            ids = frozenset(v[ids_var])
            arrived[d] = arrived.get(d, 0) + (len(ids - on_loop.get(d, empty)) if ids else 0)
            occ[d] = occ.get(d, 0.0) + v[oc]
            on_loop[d] = ids
        self._steps += 1

    def read(self, t: float, source: str = "sumo") -> m.DetectorBatch:
        """All detector readings since the last read, as one batch: per loop the vehicles that arrived over
        it and its mean occupancy over the SUMO steps of the tick; per lane-area detector its last step."""
        tc = self._tc
        vn, oc, hn = tc.LAST_STEP_VEHICLE_NUMBER, tc.LAST_STEP_OCCUPANCY, tc.LAST_STEP_VEHICLE_HALTING_NUMBER
        if self._steps == 0:  # nothing stepped since the last read (the first read): this state as it is
            self._count_arrivals()
        Reading = m.DetectorReading
        readings = []
        dead = self.dead
        arrived, occ, steps = self._arrived, self._occ, self._steps
        for d in self._e1_order():
            if d not in dead:
                readings.append(Reading(d, arrived.get(d, 0), min(max(occ.get(d, 0.0) / steps / 100.0, 0.0), 1.0)))
        self._arrived, self._occ, self._steps = {}, {}, 0
        halting = self.halting
        ai = self._area_index
        for d, v in self.conn.lanearea.getAllSubscriptionResults().items():
            h = int(v[hn])
            halting[ai[d]] = h
            if d not in dead:
                readings.append(Reading(d, int(v[vn]), min(max(v[oc] / 100.0, 0.0), 1.0), h))
        return m.DetectorBatch(source=source, time=t, interval=1.0, readings=readings)

    def _e1_order(self) -> list[str]:
        """The loops in the order SUMO reports their subscriptions (the batch's order, as before)."""
        if self._e1_seen is None:
            self._e1_seen = list(self._loop_results())
        return self._e1_seen

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
