"""Fusion's state, carried from tick to tick: per detector (``SensorState``), the per-lane model
(``LaneState``) and what the policies read (``FusionOutputs``). Plain arrays; the step functions in
``engine/fusion/health.py``, ``model.py`` and ``upstream.py`` read and write them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.fusion.config import NEVER, NO_DATA
from engine.fusion.layout import FusionLayout
from engine.policies.base import FusedObservations


@dataclass(eq=False)
class SensorState:
    """Per detector [n_detectors]: the latest raw reading and what its own data says about its health."""

    count: np.ndarray  # veh: loop, vehicles that arrived over it this tick; camera, vehicles in its zone
    occ: np.ndarray  # occupancy, 0..1
    halt: np.ndarray  # veh: halting vehicles in the zone (cameras)
    fresh: np.ndarray  # bool: reported in the batch being integrated
    last_seen: np.ndarray  # s: time of its last reading (-NEVER: never)
    first_seen: np.ndarray  # s: time of its first reading (inf: never; NEVER is below a Unix time)
    last_change: np.ndarray  # s: last time its reading differed from the previous one
    prev: np.ndarray  # [n_detectors, 3]: its previous (count, occ, halt) (NaN: none yet)
    other_events: np.ndarray  # veh: vehicles the lane's other sensors saw since this one last saw one
    events_since_change: np.ndarray  # veh: vehicles the lane's other sensors saw since its reading last changed
    health: np.ndarray  # int8: OK, STALE, STUCK, DEAD or NO_DATA
    readings: int = 0  # readings received
    unknown: int = 0  # readings of detectors not in the network (ignored)
    batches: int = 0  # batches integrated
    start: float = np.inf  # s: time of the first batch (a detector that never reported is no-data from it)

    @classmethod
    def initial(cls, n_detectors: int) -> SensorState:
        """No reading yet."""
        n_d = n_detectors
        return cls(
            count=np.zeros(n_d), occ=np.zeros(n_d), halt=np.zeros(n_d), fresh=np.zeros(n_d, dtype=np.bool_),
            last_seen=np.full(n_d, -NEVER), first_seen=np.full(n_d, np.inf), last_change=np.full(n_d, -NEVER),
            prev=np.full((n_d, 3), np.nan), other_events=np.zeros(n_d), events_since_change=np.zeros(n_d),
            health=np.full(n_d, NO_DATA, dtype=np.int8),
        )


@dataclass(eq=False)
class LaneState:
    """The per-lane model [n_lanes] unless noted (docs/fusion.md, 'The per-lane model')."""

    x: np.ndarray  # veh: vehicles between advance loop and stop line (loop-count Kalman estimate)
    P: np.ndarray  # veh^2: variance of x
    up: np.ndarray  # veh: vehicles queued upstream of the advance loop (loop model)
    rate_est: np.ndarray  # veh/s: arrival rate, exponentially smoothed over rate_tau
    sl_cover: np.ndarray  # s: the stop-line loop has been covered (occ >= 0.9, no count)
    adv_cover: np.ndarray  # s: the advance loop has been covered
    sl_empty: np.ndarray  # s: the stop-line loop has been empty and silent
    adv_quiet: np.ndarray  # s: the advance loop has been empty and silent
    idle: np.ndarray  # s: both loops (or the stop-line loop, without an advance loop) empty and silent
    cam_full: np.ndarray  # s: the camera zone has been full of standing vehicles
    cam_prev: np.ndarray  # veh: camera zone count at the previous tick
    cam_prev_valid: np.ndarray  # bool: cam_prev is from a usable camera at the previous tick
    last_cross: np.ndarray  # s: a vehicle last crossed a healthy loop or left the lane (-NEVER: never)
    queue_since: np.ndarray  # s: since when the queue stands without discharging (inf: no queue)
    prof_det: np.ndarray  # veh [n_lanes, H]: detected arrivals (advance loop), due in k..k+1 s, not yet queued
    blind_q: np.ndarray  # veh: model queue of a lane without sensors on a fed approach
    red_for: np.ndarray  # s: since the lane last showed green
    en_route: np.ndarray  # veh [n_apps, n_up]: upstream departures towards each approach, due at its stop line in k s
    feed_rate: np.ndarray  # veh/s [n_apps]: smoothed departures towards each approach
    beyond: np.ndarray  # veh [n_apps]: vehicles sent towards each approach not yet in its detection range
    green_phase: np.ndarray  # int64 [n_junctions]: green phase each junction reports (global index), or -1
    t: float = -NEVER  # s: time of the last batch integrated

    @classmethod
    def initial(cls, layout: FusionLayout) -> LaneState:
        """Nothing seen yet: empty lanes, no crossing, every junction outside green."""
        n_l, H = layout.n_lanes, layout.horizon
        return cls(
            x=np.zeros(n_l), P=np.ones(n_l), up=np.zeros(n_l), rate_est=np.zeros(n_l), sl_cover=np.zeros(n_l),
            adv_cover=np.zeros(n_l), sl_empty=np.zeros(n_l), adv_quiet=np.zeros(n_l), idle=np.zeros(n_l),
            cam_full=np.zeros(n_l), cam_prev=np.zeros(n_l), cam_prev_valid=np.zeros(n_l, dtype=np.bool_),
            last_cross=np.full(n_l, -NEVER), queue_since=np.full(n_l, np.inf), prof_det=np.zeros((n_l, H)),
            blind_q=np.zeros(n_l), red_for=np.zeros(n_l), en_route=np.zeros((layout.n_apps, layout.n_up)),
            feed_rate=np.zeros(layout.n_apps), beyond=np.zeros(layout.n_apps),
            green_phase=np.full(layout.n_junctions, -1, dtype=np.int64),
        )


@dataclass(eq=False)
class FusionOutputs:
    """What the policies read. The arrays are written in place, so the one ``FusedObservations`` built on
    them stays current; the plan arrays are written by the adaptive kernel or from ``Plan`` messages."""

    queue: np.ndarray  # veh [n_lanes]: standing vehicles
    vehicles: np.ndarray  # veh [n_lanes]: vehicles on the approach (``count``)
    gap: np.ndarray  # s [n_lanes]: since a vehicle last crossed a healthy loop or left the lane
    presence: np.ndarray  # 0..1 [n_lanes]: stop-line occupancy (camera: 1 while vehicles stand there)
    rate: np.ndarray  # veh/s [n_lanes]: arrival rate
    wait: np.ndarray  # s [n_lanes]: head-of-queue wait, standing without discharging (0: none, or no own sensor)
    space: np.ndarray  # veh [n_lanes]: free storage, capacity - queue (< 0 when over-full)
    profile: np.ndarray  # veh [n_lanes, H]: predicted to reach the stop line k..k+1 s from now, not queued
    known: np.ndarray  # 0/1 [n_lanes]: the lane has a usable sensor, or borrows its group's queue
    plan_rem: np.ndarray  # s [n_junctions]: predicted remaining green of the current phase
    plan_next: np.ndarray  # int32 [n_junctions]: predicted next green phase (global index), or -1
    mov_flow: np.ndarray  # veh/s [n_mov]: predicted outflow of each movement while its green lasts
    plan_time: np.ndarray  # s [n_junctions]: time of the plan in the arrays (-NEVER: none)

    @classmethod
    def initial(cls, layout: FusionLayout, n_junctions: int, n_movements: int) -> FusionOutputs:
        """Empty lanes, free storage, no plan."""
        n_l, n_j = layout.n_lanes, n_junctions
        return cls(
            queue=np.zeros(n_l), vehicles=np.zeros(n_l), gap=np.full(n_l, NEVER), presence=np.zeros(n_l),
            rate=np.zeros(n_l), wait=np.zeros(n_l), space=layout.capacity.copy(),
            profile=np.zeros((n_l, layout.horizon)), known=np.ones(n_l),
            plan_rem=np.zeros(n_j), plan_next=np.full(n_j, -1, dtype=np.int32), mov_flow=np.zeros(n_movements),
            plan_time=np.full(n_j, -NEVER),
        )

    def observations(self) -> FusedObservations:
        """The policies' view of these arrays (shared, not copied)."""
        return FusedObservations(self.queue, self.vehicles, self.gap, self.presence, self.rate, self.wait, self.space,
                                 self.profile, self.plan_rem, self.plan_next, self.mov_flow)
