"""``Fusion``: detector batches in, ``FusedObservations`` out; the tick as a sequence of named steps over
the layout and state objects (docs/fusion.md, 'Code map')."""

from __future__ import annotations

import numpy as np

from engine.fusion import model, upstream
from engine.fusion.config import FusionConfig
from engine.fusion.health import assess_health, health_summary, label_health
from engine.fusion.layout import FusionLayout
from engine.fusion.state import FusionOutputs, LaneState, SensorState
from engine.network import Network
from engine.policies.base import FusedObservations, JunctionState
from engine.protocol import messages as m


class Fusion:
    """Sensor fusion for one network: ``update(batch)`` per detector batch, ``set_signal`` per junction
    state report, ``on_plan`` per plan on the bus; ``observations(t)`` for the policy kernel, ``plans`` to
    publish the kernel's plans, ``health_summary()`` for the metrics.

    ``layout`` is static (compiled from the network once); ``sensors`` (per detector), ``lanes`` (the
    per-lane model) and ``out`` (what the policies read) are the state the tick updates."""

    def __init__(self, network: Network, cfg: FusionConfig | None = None, *, reference: bool = False) -> None:
        self.net = network
        self.cfg = cfg or FusionConfig()
        self.reference = reference  # every step in NumPy/Python, no Numba kernel (the reference the kernels equal)
        self.layout = FusionLayout.compile(network, self.cfg)
        self.sensors = SensorState.initial(network.n_detectors)
        self.lanes = LaneState.initial(self.layout)
        self.out = FusionOutputs.initial(self.layout, network.n_junctions, network.n_movements)
        self._obs = self.out.observations()
        self.layout_digest = m.detector_layout(network.det_ids)  # what an index batch's `layout` must name
        self._by_source: dict[str, tuple[list[str], np.ndarray]] = {}  # ids batches: the last ids -> positions

    # -- input -----------------------------------------------------------------------------------
    def set_signal(self, j: int, phase: int) -> None:
        """Junction ``j`` shows green phase ``phase`` (global index), or -1 for anything else."""
        self.lanes.green_phase[j] = phase

    def update(self, batch: m.DetectorBatch) -> None:
        """Take a detector batch (readings of unknown detectors are counted and ignored) and run the model.
        A malformed batch (columns of different lengths) raises ``ValueError`` before anything changes."""
        self.take_batch(batch)
        self.integrate(float(batch.time), float(batch.interval) or 1.0)

    def take_batch(self, batch: m.DetectorBatch) -> None:
        """Take a detector batch's readings without running the model (``integrate`` runs it, once for every
        source's batch of an interval). A malformed batch raises ``ValueError`` before anything changes."""
        cols = m.batch_columns(batch)
        self.take(cols.index if cols.index is not None else self._indices(batch.source, cols.detectors),
                  cols.count, cols.occupancy, cols.halting, layout=cols.layout if cols.index is not None else None)

    def take(self, index: np.ndarray, count: np.ndarray, occupancy: np.ndarray, halting: np.ndarray,
             layout: str | None = None) -> None:
        """Write readings into the per-detector arrays: ``index`` the detectors' positions in the network
        (-1 or out of range: unknown, counted and ignored). With ``layout`` (an index batch's digest) not this
        network's, every reading is unknown."""
        s = self.sensors
        n = int(count.shape[0])
        s.readings += n
        if layout is not None and layout != self.layout_digest:
            s.unknown += n
            return
        ok = (index >= 0) & (index < s.count.shape[0])
        if not ok.all():
            s.unknown += int(n - np.count_nonzero(ok))
            index, count, occupancy, halting = index[ok], count[ok], occupancy[ok], halting[ok]
        s.count[index] = count
        s.occ[index] = occupancy
        s.halt[index] = halting
        s.fresh[index] = True

    def integrate(self, t: float, dt: float) -> None:
        """Run the model on the readings taken since the last call, for the interval of ``dt`` s ending at ``t``."""
        self.sensors.batches += 1
        self._integrate(t, dt)
        self.sensors.fresh[:] = False

    def _indices(self, source: str, ids: list[str]) -> np.ndarray:
        """Positions of detectors named by id (-1: unknown); a source that sends the same ids again reuses them."""
        hit = self._by_source.get(source)
        if hit is not None and hit[0] == ids:
            return hit[1]
        idx = self.net.det_index
        out = np.fromiter((idx.get(d, -1) for d in ids), dtype=np.int64, count=len(ids))
        self._by_source[source] = (list(ids), out)
        return out

    def idle(self, elapsed: float) -> None:
        """No batch for ``elapsed`` s of the engine's clock: age every detector's health by as much (the batches'
        clock: the last batch's time plus ``elapsed``; ``elapsed`` since the start before any batch). Only the
        health labels change (for the metrics), never the model: the next batch labels them again first."""
        s = self.sensors
        if s.batches:
            label_health(self.layout, self.cfg, s, self.lanes.t + elapsed, s.start)
        else:
            label_health(self.layout, self.cfg, s, elapsed, 0.0)

    def on_plan(self, plan: m.Plan) -> None:
        """A junction's plan from the bus (this engine's own or a neighbouring engine's)."""
        upstream.apply_plan(self.net, self.layout, self.out, plan)

    # -- output ----------------------------------------------------------------------------------
    def observations(self, t: float) -> FusedObservations:
        """The policies' view at time ``t`` (the same arrays every tick; ``gap`` is computed for ``t``)."""
        np.subtract(t, self.lanes.last_cross, out=self.out.gap)
        return self._obs

    def plans(self, t: float, state: JunctionState) -> list[m.Plan]:
        """This engine's plans for its junctions (from the kernel's plan arrays), to publish."""
        return upstream.make_plans(self.net, self.layout, self.out, t, state)

    def health_summary(self) -> dict[str, int | dict[str, int]]:
        """Detector counts per health state, overall and per kind, and the lanes with no usable sensor."""
        return health_summary(self.layout, self.sensors, self.out.known)

    # -- the model, once per batch ---------------------------------------------------------------
    def _integrate(self, t: float, dt: float) -> None:
        lay, cfg, lanes, out = self.layout, self.cfg, self.lanes, self.out
        assess_health(lay, cfg, self.sensors, lanes, t, reference=self.reference)
        r = model.read_sensors(lay, self.sensors, lanes)
        model.update_timers(lanes, r, dt)
        model.update_rate(cfg, lanes, r, dt)
        ref = self.reference
        dep = model.departures(lay, cfg, lanes, r, t, dt, reference=ref)
        feed = upstream.track_en_route(lay, cfg, lanes, dep.outflow, dep.gp, dep.green_mov, dt)
        model.predict(cfg, lanes, r, dep.outflow, dt)
        model.correct(lay, cfg, lanes, r)
        (model.shift_profile_reference if ref else model.shift_profile)(lay, lanes, r)
        en_route = lanes.prof_det.sum(axis=1)
        q_loop = model.loop_queue(lay, cfg, lanes, r, dep.no_dep, en_route, dt)
        q = np.where(r.cam_ok, model.camera_queue(lay, lanes, r, dt), q_loop)
        (model.consume_profile_reference if ref else model.consume_profile)(lanes, q, out.queue)
        q, borrowed = model.borrow_from_group(lay, r, q)
        known = r.any_ok | borrowed
        q = model.sensorless_queue(lay, cfg, lanes, r, dep, q, borrowed, dt)
        model.write_outputs(lanes, out, r, dep.no_dep, q, en_route, known)
        if borrowed.any():
            model.lend_group_flow(lay, lanes, out, r.any_ok, borrowed)
        model.wait_and_space(lay, lanes, out, r.any_ok, dep.left, q, t)
        model.link_space(lay, cfg, lanes, out, r, dep, feed, q)
        model.predicted_profile(lay, lanes, out, r, q, en_route, known, reference=ref)
        if borrowed.any():
            model.lend_group_profile(lay, out, r.any_ok, borrowed)
        (upstream.add_feed_reference if ref else upstream.add_feed)(lay, out)
        lanes.t = t

    # -- state read from outside (tests, tools) -----------------------------------------------------
    @property
    def n_lanes(self) -> int:
        return self.layout.n_lanes

    @property
    def health(self) -> np.ndarray:
        """int8 per detector: OK, STALE, STUCK, DEAD or NO_DATA."""
        return self.sensors.health

    @property
    def known(self) -> np.ndarray:
        """0/1 per lane: a usable sensor of its own, or its group's queue."""
        return self.out.known

    @property
    def x(self) -> np.ndarray:
        """Vehicles between advance loop and stop line (loop model), per lane."""
        return self.lanes.x

    @property
    def up(self) -> np.ndarray:
        """Vehicles queued upstream of the advance loop (loop model), per lane."""
        return self.lanes.up

    @property
    def prof_det(self) -> np.ndarray:
        """Detected arrivals (advance loop) per lane and 1-s bin, not yet queued."""
        return self.lanes.prof_det

    @property
    def blind_q(self) -> np.ndarray:
        """Model queue of each lane without sensors on a fed approach."""
        return self.lanes.blind_q

    @property
    def plan_rem(self) -> np.ndarray:
        """Predicted remaining green per junction, s."""
        return self.out.plan_rem

    @property
    def plan_next(self) -> np.ndarray:
        """Predicted next green phase per junction (global index), or -1."""
        return self.out.plan_next

    @property
    def mov_flow(self) -> np.ndarray:
        """Predicted outflow per movement while its green lasts, veh/s."""
        return self.out.mov_flow

    @property
    def readings(self) -> int:
        """Readings received."""
        return self.sensors.readings

    @property
    def unknown(self) -> int:
        """Readings of detectors not in the network."""
        return self.sensors.unknown
