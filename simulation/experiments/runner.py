"""Closed-loop runs: SUMO <-> bus <-> engine <-> command channel <-> controllers <-> SUMO heads.

``run_one`` performs one run (one policy, one seed) and returns its metrics as a plain dict (the
record written to the JSON file). Lintas policies go through the real product path: the field
publishes detector batches and clock ticks on the bus, the engine plans and commands every
controller over ROUTER/DEALER, each controller times its intervals and shows them on the heads; the
runner steps SUMO only once every controller has applied tick t (lockstep, deterministic for a seed).
Baselines (``sumo-*``) let SUMO run the lights itself, with the same detectors and outputs.

With ``controllers="process"`` each junction's controller is a ``python -m controllers`` process: all of them
in one process group, each tied to the runner (``--parent-pid``: they die with it, even by SIGKILL), each
writing what it counted to ``<run>/controllers/<junction>.json`` when it ends (``--stats``), which is where
the run's accepted / refused / faults / fallbacks come from. Every way out of a run (its end, an error,
Ctrl-C, SIGTERM) stops them and removes the ipc folder; a folder left by a runner killed outright is removed
by the next run on ipc (``bus.ipc_sweep_stale``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from controllers.controller import Controller, ControllerConfig
from controllers.drivers import SumoCabinet
from controllers.lifeline import ParentGone, counters_record, die_with_parent, read_stats
from engine.loop import Engine
from engine.network import Network
from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.junction import spec_file, write_specs
from engine.protocol.messages import Mode, TickPhase
from simulation.experiments import metrics
from simulation.experiments.policies import LINTAS_POLICIES, SUMO_POLICIES
from simulation.sumo import baselines
from simulation.sumo.cameras import FeedFactory, camera_sites, site_vehicles
from simulation.sumo.field import SumoField
from simulation.sumo.incident import IncidentInjector
from simulation.sumo.locks import LockWatch
from simulation.sumo.netcompile import compile_for_run
from simulation.sumo.options import sumo_command
from simulation.sumo.outputs import sumo_output_args
from simulation.sumo.scenario import config_for_sumo, load_scenario

log = logging.getLogger("lintas.runner")

CONTROLLER_MODES = ("inprocess", "process")
TICK = 1.0  # s of simulated time per control tick, whatever SUMO's step length (SumoField.advance)


RUN_KEYS = ("delay_s", "trip_duration_s", "waiting_s", "queue_veh", "throughput_veh", "teleports", "collisions",
            "vehicles", "never_inserted", "delay_max_s", "stops_per_veh")

#: pedestrians and bicycles beside the vehicles (metrics.py's docstring): counts, and delays None where none
PED_BIKE_KEYS = ("persons", "persons_unfinished", "ped_delay_s", "ped_wait_max_s", "bicycles", "bike_delay_s")

EXTRA_KEYS = ("wall_s", "transport", "step_length", "dead_detectors", "co2_kg", "commands_sent",
              "commands_accepted", "commands_refused", "faults", "fault_junctions", "failsafe_s", "fallbacks",
              "dropped_messages", "random_demand", "locks", "lock_events", "incidents_injected", "cameras",
              *PED_BIKE_KEYS)
SUMO_LOG = "sumo.log"  # in each run's folder: what SUMO (and the run) wrote to stderr
TLS_STATES = "tls_states.xml"  # in each run's folder with RunSpec.save_tls_states: SUMO's SaveTLSStates record


class RunError(RuntimeError):
    """A run that could not complete (the message says why)."""


class RunStopped(RunError):
    """A run stopped by SIGTERM: what it started was stopped and its sockets removed before this was raised."""


class _Terminated(BaseException):
    """SIGTERM, raised where the run is (like KeyboardInterrupt, not an Exception: code that must survive any
    error, a malformed frame say, does not swallow it); :func:`run_one` turns it into :class:`RunStopped`."""


@dataclass
class RunSpec:
    scenario: Path
    policy: str
    seed: int
    out_dir: Path
    transport: str = "inproc"
    controllers: str = "inprocess"
    sumo_args: list[str] = field(default_factory=list)
    end: float | None = None
    use_traci: bool = False
    gui: bool = False
    lockstep_wait: float = 5.0
    params: dict[str, float] = field(default_factory=dict)  # policy parameter overrides, by name
    fail_detectors: float = 0.0  # fraction of Lintas' detectors dead from the start (seeded choice)
    dead: str | None = None  # "cameras" or "loops": every detector of that kind dead
    local_plan: Path | None = None  # time-of-day local plan (TOML, controllers/localplan.py) for the controllers
    save_tls_states: bool = False  # SUMO records every light's state every step in the run's TLS_STATES file
    # transit (simulation/experiments/live.py): the buses' positions published on the run's bus every tick (topic
    # veh), relayed with the controllers' states and the engine's plans to a PUB bound at `publish` (the transit
    # API subscribes there), the run paced at `speed` simulated s per wall s, and `on_tick(t, conn, vehicles,
    # states, plans)` called every tick (a benchmark's tap; in this process only)
    publish: str | None = None
    speed: float | None = None
    on_tick: Callable | None = None
    incidents: list = field(default_factory=list)  # simulation.sumo.incident.IncidentSpec: vehicles stopped in a lane
    bus_tap: str | None = None  # also publish detector batches and controller states to this bus (its bus_in)
    cameras: tuple[str, ...] = ()  # junctions whose lane-area detectors are replaced by rendered cameras
    camera_feed: FeedFactory | None = None  # what renders, detects and counts them (passed down by the command tree)


def run_one(spec: RunSpec, progress=None) -> dict:
    """One run; ``progress(sim_seconds_done, total)`` is called every 60 simulated seconds. SIGTERM (what the
    batch's pool sends a worker it cancels) stops it as Ctrl-C does: :class:`RunStopped`, after every process
    it started has ended and its temporary sockets are gone."""
    try:
        with _sigterm_stops_the_run():
            _end_with_the_batch()
            return _run_one(spec, progress)
    except _Terminated as exc:
        raise RunStopped(str(exc)) from None


def _end_with_the_batch() -> None:
    """In a worker of the batch's process pool: a SIGTERM when the process that started it ends, however it
    ends (SIGKILL included), so the run stops what it started instead of running on, orphaned, to its end."""
    import multiprocessing as mp

    parent = mp.parent_process()
    if parent is None or parent.pid is None or threading.current_thread() is not threading.main_thread():
        return
    try:
        die_with_parent(parent.pid, sig=signal.SIGTERM)
    except ParentGone as exc:
        raise RunStopped(f"the run was not started: {exc}") from None


@contextmanager
def _sigterm_stops_the_run() -> Iterator[None]:
    """SIGTERM raises :class:`_Terminated` (once: a second one while the run cleans up is not let to cut that
    short). Only the main thread can take signals; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def stop(signum, _frame):
        if not fired:
            fired.append(signum)
            raise _Terminated(f"the run was stopped by {signal.Signals(signum).name}")

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the run stops what it started; deliver the first one afterwards (to the
    handler that was in force), so a Ctrl-C or a SIGTERM cannot leave processes or sockets behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    sigs = (signal.SIGINT, signal.SIGTERM)
    old = {sg: signal.signal(sg, lambda signum, _f: got.append(signum)) for sg in sigs}
    try:
        yield
    finally:
        for sg, h in old.items():
            signal.signal(sg, h)
    if got:
        signal.raise_signal(got[0])


def _run_one(spec: RunSpec, progress=None) -> dict:
    scn = load_scenario(spec.scenario)
    end = float(spec.end) if spec.end is not None else scn.end
    tag = "".join(f"-{k}={v:g}" for k, v in sorted(spec.params.items()))
    run_dir = spec.out_dir / "runs" / scn.name / f"{spec.policy}{tag}-seed{spec.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    net, det_file = compile_for_run(scn, spec.out_dir / "compiled")
    extra = [*scn.additional_files, det_file]
    if spec.policy in SUMO_POLICIES:
        kind = baselines.BASELINES[spec.policy]
        if kind is not None:
            prog = run_dir / f"program-{kind}.add.xml"
            baselines.write_sumo_program(scn.net_file, kind, prog, additional_files=scn.additional_files,
                                         begin=scn.begin)
            extra.append(prog)
    elif spec.policy not in LINTAS_POLICIES:
        raise RunError(f"unknown policy '{spec.policy}'")
    if spec.save_tls_states:  # SUMO's own record of what every light showed, for lintas check-tls
        save = run_dir / "save_tls_states.add.xml"
        save.write_text(f'<additional>\n    <timedEvent type="SaveTLSStates" dest="{run_dir / TLS_STATES}"/>\n'
                        f'</additional>\n')
        extra.append(save)
    # random flows (probability=, period="exp(...)"): their vehicles are known only to the run, so SUMO writes
    # the ones it loaded but never inserted too, and the metric counts them (metrics.compute_metrics)
    random_demand = metrics.random_demand(scn.route_files)
    defaults = [
        "-c", str(config_for_sumo(scn, run_dir, gui=spec.gui)),
        "--seed", str(spec.seed),
        "--time-to-teleport", "-1",
        "--no-step-log", "true",
        "--no-warnings", "true",
        "--duration-log.disable", "true",
        "--end", repr(float(end)),
        *sumo_output_args(run_dir, write_undeparted=random_demand),
    ]
    args = sumo_command(defaults, spec.sumo_args, extra)
    field_ = SumoField(net, use_traci=spec.use_traci, gui=spec.gui, dead=dead_detectors(net, spec))
    wall0 = time.perf_counter()
    with _sumo_messages(run_dir / SUMO_LOG):
        try:
            field_.start(args)
            begin = field_.time()
            step_length = field_.step_length
            locks = LockWatch(field_.conn, [j.id for j in net.junctions])  # SUMO's truth, every run alike
            injector = IncidentInjector(field_.conn, list(spec.incidents))
            injector.check()
            if spec.policy in SUMO_POLICIES:
                queue = _run_sumo_alone(field_, locks, begin, end, progress, injector, spec.bus_tap)
                loop_stats: dict = {}
            else:
                cams = _Cameras(field_, net, scn.net_file, spec) if spec.cameras else None
                try:
                    queue, loop_stats = _run_closed_loop(field_, locks, net, spec, begin, end, progress, run_dir,
                                                         injector, cams)
                finally:
                    if cams is not None:
                        cams.close()
                if cams is not None:
                    loop_stats["cameras"] = cams.stats()
        finally:
            field_.close()
    wall = time.perf_counter() - wall0
    sched = metrics.scheduled_departures(scn.route_files, scn.begin if spec.end is None else begin, end,
                                         random_flows=random_demand)
    res = metrics.compute_metrics(
        run_dir / "tripinfo.xml", run_dir / "statistics.xml", sched, end, queue,
        junction_ids=[j.id for j in net.junctions], unscheduled=random_demand,
        bicycles=metrics.bicycle_demand(scn.route_files, scn.additional_files),
    )
    rec = {
        "policy": spec.policy,
        "seed": spec.seed,
        **{k: getattr(res, k) for k in RUN_KEYS},
        "wall_s": round(wall, 3),
        "transport": spec.transport if spec.policy in LINTAS_POLICIES else None,
        "step_length": step_length,
        "random_demand": random_demand,
        "dead_detectors": len(field_.dead),
        "co2_kg": metrics.co2_total_kg(run_dir / "tripinfo.xml") if "--device.emissions.probability" in spec.sumo_args
        else None,
        "delay_by_arrival": res.delay_by_arrival,
        "queue_by_junction": res.queue_by_junction,
        "locks": locks.locks,  # lanes that stood still through green (simulation/sumo/locks.py)
        "lock_events": locks.events,
        **{k: v for k, v in res.to_dict().items() if k in PED_BIKE_KEYS},  # NaN (none walked or cycled): None
        **loop_stats,
    }
    if spec.incidents:
        rec["incidents_injected"] = injector.events
    return rec


@contextmanager
def _sumo_messages(log_path: Path) -> Iterator[None]:
    """SUMO writes its errors and warnings to the process's stderr: send them to the run's log, and turn a
    failed run into a :class:`RunError` that quotes SUMO's own error lines (a libsumo
    exception says only "Could not load configuration", and cannot even cross to the parent process)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "ab") as fh:
        os.dup2(fh.fileno(), 2)
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line the user reads
        sys.stderr.flush()
        os.dup2(saved, 2)
        errors = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.startswith("Error:")]
        what = "; ".join(dict.fromkeys(errors)) or f"{type(exc).__name__}: {exc}"
        if errors and str(exc) not in what:
            what += f" ({exc})"
        raise RunError(f"{what} [SUMO's messages: {log_path}]") from None
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _run_sumo_alone(field_: SumoField, locks: LockWatch, begin: float, end: float, progress,
                    injector: IncidentInjector | None = None, bus_tap: str | None = None) -> list:
    import numpy as np

    samples = []
    t = begin
    relay = ctx = None
    if bus_tap is not None:
        ctx = zmq.Context()
        relay = bus.Publisher(ctx, bus.Endpoints(bus_tap, "", ""))
    try:
        while t < end:
            batch = field_.read(t)
            if relay is not None:
                relay.publish(m.TOPIC_DETECTORS, batch)
            locks.sample(t)
            samples.append(field_.queues())
            if injector is not None:
                injector.step(t)
            t = field_.advance(t + TICK)
            if progress is not None and int(t - begin) % 60 == 0:
                progress(t - begin, end - begin)
    finally:
        if relay is not None:
            relay.close()
            ctx.destroy(linger=0)
    return np.array(samples)


class City:
    """Everything Lintas runs for one closed-loop run: forwarder, engine, controllers (in this
    process, or as ``lintas controller`` processes), and the runner's own bus sockets.

    Controller processes form one process group of their own (a Ctrl-C at the terminal reaches the runner,
    which stops them in order) and end with the runner whatever kills it (``--parent-pid``: a parent-death
    signal); each writes what it counted to ``<run>/controllers/<junction>.json`` when it ends. :meth:`close`
    stops and removes everything on every way out; a failure half-way through ``__init__`` closes what was
    started."""

    STOP_WAIT = 5.0  # s for controller processes to end after STOP at the end of a run (then SIGTERM, SIGKILL)
    ABORT_WAIT = 1.0  # the same when the run failed or was interrupted

    def __init__(self, net: Network, spec: RunSpec, field_: SumoField, run_dir: Path | None = None) -> None:
        self.net = net
        self.controllers: list[Controller] = []
        self.procs: list[subprocess.Popen] = []
        self.remote = spec.controllers == "process"
        self.proc_junction: list[str] = []
        self.stats_files: dict[str, Path] = {}
        self.states: dict[str, m.ControllerState] = {}
        self.engine_alive = False
        self.fwd = self.pub = self.sub = self.engine = self.bus_tap = None
        self.ctx = zmq.Context()
        if spec.transport == "ipc":
            for d in bus.ipc_sweep_stale():
                log.info("removed the ipc folder %s of a process that ended without removing it", d)
        self.ep = bus.endpoints(spec.transport)
        try:
            self._start(net, spec, field_, run_dir or spec.out_dir / "runs")
        except BaseException:
            self.close(wait=self.ABORT_WAIT)
            raise

    def _start(self, net: Network, spec: RunSpec, field_: SumoField, run_dir: Path) -> None:
        self.fwd = bus.Forwarder(self.ep, self.ctx).start()
        self.pub = bus.Publisher(self.ctx, self.ep)
        self.sub = bus.Subscriber(self.ctx, self.ep, [m.TOPIC_STATE, m.TOPIC_HEARTBEAT])
        if spec.bus_tap is not None:  # another bus hears the run's detectors and states (lintas api --bus-out)
            self.bus_tap = bus.Publisher(self.ctx, bus.Endpoints(spec.bus_tap, "", ""))
        from engine.policies import get_policy

        params = get_policy(spec.policy).params(**spec.params) if spec.params else None
        self.engine = Engine(net, spec.policy, self.ep, ctx=self.ctx, seed=spec.seed, params=params,
                             lockstep_wait=spec.lockstep_wait)
        cfg = ControllerConfig(lockstep_wait=spec.lockstep_wait)
        plans = {}
        if spec.local_plan is not None:
            from controllers.localplan import load_plan

            plans = load_plan(spec.local_plan).check_network(net.junctions, cfg.timing)
        if self.remote:
            specs = write_specs(net.junctions, spec.out_dir / "compiled" / "junctions")
            stats_dir = run_dir / "controllers"
            stats_dir.mkdir(parents=True, exist_ok=True)
            for j in net.junctions:
                self.stats_files[j.id] = stats = spec_file(stats_dir, j.id)
                stats.unlink(missing_ok=True)  # a file of an earlier run in this folder is not this run's count
                cmd = [sys.executable, "-m", "controllers", str(specs[j.id]),
                       "--bus-in", self.ep.bus_in, "--bus-out", self.ep.bus_out, "--commands", self.ep.commands,
                       "--lockstep", "--lockstep-wait", str(spec.lockstep_wait),
                       "--parent-pid", str(os.getpid()), "--stats", str(stats)]
                if spec.local_plan is not None:
                    cmd += ["--plan", str(spec.local_plan)]
                group = self.procs[0].pid if self.procs else 0  # one group for all, the first one leads it
                self.procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, process_group=group))
                self.proc_junction.append(j.id)
        else:
            for j in net.junctions:
                heads = SumoCabinet(field_.conn, j.id, j.link_via)
                self.controllers.append(Controller(j, self.ep, cfg=cfg, heads=heads, ctx=self.ctx,
                                                   plan=plans.get(j.id)))
        self.poller = zmq.Poller()
        for s in [self.sub.sock, *self.engine.sockets(), *(s for c in self.controllers for s in c.sockets())]:
            self.poller.register(s, zmq.POLLIN)

    def _check_processes(self) -> None:
        """A controller process that exited is a failed run, said at once (its messages are in the run's log)."""
        for p, jid in zip(self.procs, self.proc_junction):
            if p.poll() is not None:
                raise RunError(f"the controller process of junction {jid} exited with code {p.returncode}")

    def pump(self, timeout_ms: int = 0) -> None:
        progressed = self.engine.pump()
        for c in self.controllers:
            progressed |= c.pump()
        for _topic, msg in self.sub.drain():
            progressed = True
            if isinstance(msg, m.ControllerState):
                self.states[msg.junction] = msg
                if self.bus_tap is not None:
                    self.bus_tap.publish(m.TOPIC_STATE, msg)
            elif isinstance(msg, m.Heartbeat) and msg.sender == "engine":
                self.engine_alive = True
        if not progressed:
            self.poller.poll(timeout_ms)

    def sync(self, t: float, timeout: float = 60.0) -> None:
        """Wait until every component hears the runner and the runner hears every component."""
        ids = [j.id for j in self.net.junctions]
        deadline = time.monotonic() + timeout
        last = 0.0
        while True:
            if time.monotonic() - last > 0.05:
                self.pub.publish(m.TOPIC_TICK, m.ClockTick(time=t, step=-1, phase=TickPhase.SYNC))
                last = time.monotonic()
            self.pump(5)
            have = [i for i in ids if i in self.states and self.states[i].time == t]
            if len(have) == len(ids) and self.engine_alive and all(self.engine.online):
                return
            self._check_processes()
            if time.monotonic() > deadline:
                missing = sorted(set(ids) - set(have))
                raise RunError(f"controllers did not answer within {timeout:.0f} s: {', '.join(missing[:5])}")

    def tick(self, t: float, step: int, batch: m.DetectorBatch, wait: float) -> dict[str, m.ControllerState]:
        self.pub.publish(m.TOPIC_DETECTORS, batch)
        if self.bus_tap is not None:
            self.bus_tap.publish(m.TOPIC_DETECTORS, batch)
        self.pub.publish(m.TOPIC_TICK, m.ClockTick(time=t, step=step, phase=TickPhase.RUN))
        need = len(self.net.junctions)
        deadline = time.monotonic() + wait
        while True:
            self.pump(1)
            done = sum(1 for s in self.states.values() if s.time >= t)
            if done >= need:
                return self.states
            if self.remote:
                self._check_processes()
            if time.monotonic() > deadline:
                late = [j.id for j in self.net.junctions if self.states.get(j.id) is None or self.states[j.id].time < t]
                raise RunError(f"t={t:g}: no state from {', '.join(late[:5])} within {wait:g} s")

    def counters(self) -> dict[str, dict | None]:
        """What each junction's controller counted (:func:`controllers.lifeline.counters_record`), by junction:
        in process, read from it; in other processes, from the file each wrote when it ended (after
        :meth:`close`), or None for one that wrote none."""
        if not self.remote:
            return {c.id: counters_record(c) for c in self.controllers}
        return {jid: read_stats(f) for jid, f in self.stats_files.items()}

    def close(self, wait: float | None = None) -> None:
        """Stop everything, whatever state it is in: the controllers (STOP; then SIGTERM and SIGKILL to their
        process group), the engine, the sockets, the ipc folder. Signals wait until it is done."""
        with _signals_deferred():
            try:
                if self.pub is not None:
                    self.pub.publish(m.TOPIC_TICK, m.ClockTick(time=0, step=-1, phase=TickPhase.STOP))
            except zmq.ZMQError:
                pass
            try:
                self._end_processes(self.STOP_WAIT if wait is None else wait)
            finally:
                closers = [c.close for c in self.controllers]
                closers += [x.close for x in (self.engine, self.pub, self.sub, self.bus_tap) if x is not None]
                if self.fwd is not None:
                    closers.append(self.fwd.stop)
                for close in closers:
                    try:
                        close()
                    except Exception as exc:  # noqa: BLE001 - the rest must still be closed
                        log.warning("closing the run: %s: %s", type(exc).__name__, exc)
                self.ctx.destroy(linger=0)
                bus.ipc_cleanup(self.ep)

    def _end_processes(self, wait: float) -> None:
        """Wait up to ``wait`` s for the controller processes to end by themselves, then SIGTERM their group
        (they write their counters and close), then SIGKILL it."""
        for sig, grace in ((None, wait), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            if all(p.poll() is not None for p in self.procs):
                return
            if sig is not None:
                self._signal_group(sig)
            deadline = time.monotonic() + grace
            for p in self.procs:
                try:
                    p.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    break
        for p, jid in zip(self.procs, self.proc_junction):
            if p.poll() is None:
                log.error("the controller process of junction %s (pid %d) did not end", jid, p.pid)

    def _signal_group(self, sig: int) -> None:
        # while one of them is not reaped, the group's id cannot have been given to anyone else
        if not any(p.poll() is None for p in self.procs):
            return
        try:
            os.killpg(self.procs[0].pid, sig)
        except OSError:
            for p in self.procs:
                if p.poll() is None:
                    p.send_signal(sig)


def controller_totals(counted: dict[str, dict | None], states: dict[str, m.ControllerState]) -> dict:
    """The run's accepted / refused / faults / fallbacks from what each controller counted. A junction whose
    count is missing gives accepted and refused from its last state message (they travel in it), and makes
    faults and fallbacks unknown (None), never 0."""

    def total(key: str) -> int | None:
        vals = []
        for jid, rec in counted.items():
            v = rec.get(key) if rec is not None else None
            if v is None and key in ("accepted", "refused") and jid in states:
                v = getattr(states[jid], key)
            vals.append(v)
        return None if any(v is None for v in vals) else sum(vals)

    missing = sorted(jid for jid, rec in counted.items() if rec is None)
    if missing:
        log.warning("no counters from the controllers of %s: accepted and refused from their last states, faults "
                    "and fallbacks unknown", ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    return {"accepted": total("accepted"), "refused": total("refused"), "faults": total("faults"),
            "fallbacks": total("fallbacks")}


class _Cameras:
    """The cameras of ``--cameras`` in one run: each tick the vehicles of their sites go to the feed, and its
    readings replace the lane-area detectors' of those lanes in the batch (simulation/sumo/cameras.py)."""

    def __init__(self, field_: SumoField, net: Network, net_file: Path, spec: RunSpec) -> None:
        if spec.camera_feed is None:
            raise RunError("--cameras needs a camera feed (the [vision] install, through the lintas command)")
        self.conn = field_.conn
        self.sites = camera_sites(field_.conn, net, net_file, spec.cameras)
        self.shapes: dict = {}
        self.feed = spec.camera_feed(self.sites, spec.seed)
        self.replaced = set(self.feed.detectors) - field_.dead
        self.det_index = {d: i for i, d in enumerate(net.det_ids)}
        self.errors = {"ticks": 0, "count_abs": 0.0, "count_bias": 0.0, "halting_abs": 0.0, "readings": 0,
                       "e2_count": 0.0}

    def batch(self, t: float, batch: m.DetectorBatch) -> m.DetectorBatch:
        """The field's batch with the cameras' readings in place of the lane-area detectors' they stand for."""
        import numpy as np

        readings = self.feed.step(t, site_vehicles(self.conn, self.sites, self.shapes))
        cols = m.batch_columns(batch)
        count, occ = cols.count.copy(), cols.occupancy.copy()
        halt = cols.halting.copy() if cols.halting.size else np.zeros(count.shape[0], np.int32)
        at = {int(d): k for k, d in enumerate(cols.index.tolist())}  # detector table index -> column
        e = self.errors
        e["ticks"] += 1
        for r in readings:
            k = at.get(self.det_index[r.detector]) if r.detector in self.replaced else None
            if k is None:  # a dead detector: nothing of it is sent
                continue
            # against the lane-area detector it replaces: SUMO's own count of the same ground
            e["readings"] += 1
            e["count_abs"] += abs(r.count - int(count[k]))
            e["count_bias"] += r.count - int(count[k])
            e["e2_count"] += int(count[k])
            e["halting_abs"] += abs(r.halting - int(halt[k]))
            count[k], occ[k], halt[k] = r.count, r.occupancy, r.halting
        return m.detector_batch(batch.source, batch.time, count, occ, halt, index=cols.index, layout=cols.layout,
                                interval=batch.interval)

    def stats(self) -> dict:
        e, n = self.errors, max(self.errors["readings"], 1)
        return {"junctions": sorted({s.junction for s in self.sites}), "sites": len(self.sites),
                "detectors": len(self.replaced),
                # per reading, against the lane-area detector each replaced (vehicles in the zone, and halting)
                "count_mae": round(e["count_abs"] / n, 3), "count_bias": round(e["count_bias"] / n, 3),
                "halting_mae": round(e["halting_abs"] / n, 3), "e2_mean_count": round(e["e2_count"] / n, 3),
                **self.feed.stats()}

    def close(self) -> None:
        self.feed.close()


def _run_closed_loop(field_: SumoField, locks: LockWatch, net: Network, spec: RunSpec, begin: float, end: float,
                     progress, run_dir: Path | None = None, injector: IncidentInjector | None = None,
                     cams: _Cameras | None = None):
    import numpy as np

    city = City(net, spec, field_, run_dir)
    tap = None
    if spec.publish or spec.speed or spec.on_tick:
        from simulation.sumo.buses import LiveTap

        try:
            tap = LiveTap(field_.conn, city.ctx, city.ep, publish=spec.publish, speed=spec.speed, on_tick=spec.on_tick)
        except BaseException:
            city.close(wait=City.ABORT_WAIT)
            raise
    samples = []
    faults = 0
    fault_at: dict[str, float] = {}  # junction -> when it first latched a fault (all red from then)
    failsafe_s = 0.0  # junction-seconds shown all red after a latched fault
    failsafe = {j.id: False for j in net.junctions}
    finished = False
    try:
        city.sync(begin - 1.0)
        t = begin
        step = 0
        while t < end:
            batch = field_.read(t)
            if cams is not None:
                batch = cams.batch(t, batch)
            locks.sample(t)
            states = city.tick(t, step, batch, wait=max(30.0, 4 * spec.lockstep_wait))
            for jid, st in states.items():
                latched = st.mode == Mode.FAILSAFE
                if latched and not failsafe[jid]:
                    faults += 1
                    fault_at.setdefault(jid, t)
                    log.warning("%s seed %d: junction %s latched a fault at %g s", spec.policy, spec.seed, jid, t)
                failsafe[jid] = latched
                failsafe_s += TICK if latched else 0.0
            if city.remote:
                for j in net.junctions:
                    field_.show(j.id, states[j.id].signal)
            if tap is not None:
                tap.tick(t, states)
            samples.append(field_.queues())
            if injector is not None:
                injector.step(t)
            t = field_.advance(t + TICK)
            step += 1
            if progress is not None and step % 60 == 0:
                progress(t - begin, end - begin)
        finished = True
    finally:
        if tap is not None:
            tap.close()
        city.close(wait=None if finished else City.ABORT_WAIT)
    # after close: controller processes write what they counted when they end
    totals = controller_totals(city.counters(), city.states)
    if totals["faults"] is not None and totals["faults"] != faults:
        log.warning("%s seed %d: the controllers counted %d faults, their states showed %d latched",
                    spec.policy, spec.seed, totals["faults"], faults)
    stats = {
        "commands_sent": city.engine.commands_sent,
        "commands_accepted": totals["accepted"],
        "commands_refused": totals["refused"],
        # what the controllers counted; where a process left no count, the latches its states showed
        "faults": totals["faults"] if totals["faults"] is not None else faults,
        "fault_junctions": fault_at,
        "failsafe_s": failsafe_s,
        "fallbacks": totals["fallbacks"],
        "dropped_messages": city.engine.router.stats.dropped + city.engine.sub.stats.dropped,
    }
    return np.array(samples), stats


def dead_detectors(net: Network, spec: RunSpec) -> set[str]:
    """The detectors that send nothing in this run: a seeded random fraction, and/or a whole kind."""
    import numpy as np

    from engine.network import DET_AREA

    ids = list(net.det_ids)
    dead: set[str] = set()
    if spec.fail_detectors > 0:
        rng = np.random.default_rng(10_000 + spec.seed)
        k = round(spec.fail_detectors * len(ids))
        dead |= {ids[i] for i in rng.choice(len(ids), size=k, replace=False)}
    if spec.dead == "cameras":
        dead |= {d for d, kd in zip(ids, net.det_kind) if kd == DET_AREA}
    elif spec.dead == "loops":
        dead |= {d for d, kd in zip(ids, net.det_kind) if kd != DET_AREA}
    return dead


