"""Detector readings -> per-lane observation arrays for the policy kernels.

This is the plain measurement stage: the latest reading of every detector, summed per lane by kind.
Sensor fusion with health states builds on it (docs/fusion.md once it exists).
"""

from __future__ import annotations

import numpy as np

from engine import messages as m
from engine.network import DET_ADVANCE, DET_AREA, DET_STOPLINE, Network

NEVER = 1e6


class Observer:
    def __init__(self, network: Network) -> None:
        self.net = network
        n_d, n_l = network.n_detectors, network.n_lanes
        self.count = np.zeros(n_d)
        self.occ = np.zeros(n_d)
        self.halt = np.zeros(n_d)
        self.fresh = np.zeros(n_d, dtype=np.bool_)
        self.last_actuation = np.full(n_l, -NEVER)
        self._lane = network.det_lane.astype(np.int64)
        kind = network.det_kind
        self._area = (kind == DET_AREA).astype(np.float64)
        self._stop = (kind == DET_STOPLINE).astype(np.float64)
        self._loop = ((kind == DET_STOPLINE) | (kind == DET_ADVANCE))
        self.queue = np.zeros(n_l)
        self.vehicles = np.zeros(n_l)
        self.gap = np.full(n_l, NEVER)
        self.presence = np.zeros(n_l)
        self.readings = 0
        self.unknown = 0

    def update(self, batch: m.DetectorBatch) -> None:
        idx = self.net.det_index
        count, occ, halt, fresh = self.count, self.occ, self.halt, self.fresh
        for r in batch.readings:
            i = idx.get(r.detector)
            if i is None:
                self.unknown += 1
                continue
            count[i] = r.count
            occ[i] = r.occupancy
            halt[i] = r.halting
            fresh[i] = True
        self.readings += len(batch.readings)
        actuated = self._loop & fresh & (count > 0)
        if actuated.any():
            self.last_actuation[self._lane[actuated]] = batch.time
        fresh[:] = False

    def observations(self, t: float):
        n_l = self.net.n_lanes
        lane = self._lane
        self.queue[:] = np.bincount(lane, weights=self.halt * self._area, minlength=n_l)
        self.vehicles[:] = np.bincount(lane, weights=self.count * self._area, minlength=n_l)
        self.presence[:] = np.minimum(np.bincount(lane, weights=self.occ * self._stop, minlength=n_l), 1.0)
        np.subtract(t, self.last_actuation, out=self.gap)
        return self.queue, self.vehicles, self.gap, self.presence
