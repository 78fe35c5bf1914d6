"""Closed-loop runs: SUMO <-> bus <-> engine <-> command channel <-> controllers <-> SUMO heads.

``run_one`` performs one run (one policy, one seed) and returns its metrics as a plain dict (the
record written to the JSON file). Lintas policies go through the real product path: the field
publishes detector batches and clock ticks on the bus, the engine plans and commands every
controller over ROUTER/DEALER, each controller times its intervals and shows them on the heads; the
runner steps SUMO only once every controller has applied tick t (lockstep, deterministic for a seed).
Baselines (``sumo-*``) let SUMO run the lights itself, with the same detectors and outputs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from controllers.controller import Controller, ControllerConfig
from controllers.drivers import SumoCabinet
from engine.loop import Engine
from engine.network import Network
from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.junction import write_specs
from engine.protocol.messages import Mode, TickPhase
from simulation.experiments import metrics
from simulation.experiments.policies import LINTAS_POLICIES, SUMO_POLICIES
from simulation.sumo import baselines
from simulation.sumo.field import SumoField
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
              "dropped_messages", "random_demand", "locks", "lock_events", *PED_BIKE_KEYS)
SUMO_LOG = "sumo.log"  # in each run's folder: what SUMO (and the run) wrote to stderr
TLS_STATES = "tls_states.xml"  # in each run's folder with RunSpec.save_tls_states: SUMO's SaveTLSStates record


class RunError(RuntimeError):
    """A run that could not complete (the message says why)."""


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


def run_one(spec: RunSpec, progress=None) -> dict:
    """One run; ``progress(sim_seconds_done, total)`` is called every 60 simulated seconds."""
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
        "--end", f"{end:g}",
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
            if spec.policy in SUMO_POLICIES:
                queue = _run_sumo_alone(field_, locks, begin, end, progress)
                loop_stats: dict = {}
            else:
                queue, loop_stats = _run_closed_loop(field_, locks, net, spec, begin, end, progress)
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


def _run_sumo_alone(field_: SumoField, locks: LockWatch, begin: float, end: float, progress) -> list:
    import numpy as np

    samples = []
    t = begin
    while t < end:
        field_.read(t)
        locks.sample(t)
        samples.append(field_.queues())
        t = field_.advance(t + TICK)
        if progress is not None and int(t - begin) % 60 == 0:
            progress(t - begin, end - begin)
    return np.array(samples)


class City:
    """Everything Lintas runs for one closed-loop run: forwarder, engine, controllers (in this
    process, or as ``lintas controller`` processes), and the runner's own bus sockets."""

    def __init__(self, net: Network, spec: RunSpec, field_: SumoField) -> None:
        self.net = net
        self.ctx = zmq.Context()
        self.ep = bus.endpoints(spec.transport)
        self.fwd = bus.Forwarder(self.ep, self.ctx).start()
        self.pub = bus.Publisher(self.ctx, self.ep)
        self.sub = bus.Subscriber(self.ctx, self.ep, [m.TOPIC_STATE, m.TOPIC_HEARTBEAT])
        from engine.policies import get_policy

        params = get_policy(spec.policy).params(**spec.params) if spec.params else None
        self.engine = Engine(net, spec.policy, self.ep, ctx=self.ctx, seed=spec.seed, params=params,
                             lockstep_wait=spec.lockstep_wait)
        cfg = ControllerConfig(lockstep_wait=spec.lockstep_wait)
        plans = {}
        if spec.local_plan is not None:
            from controllers.localplan import load_plan

            plans = load_plan(spec.local_plan).check_network(net.junctions, cfg.timing)
        self.controllers: list[Controller] = []
        self.procs: list[subprocess.Popen] = []
        self.remote = spec.controllers == "process"
        self.proc_junction = [j.id for j in net.junctions] if self.remote else []
        if self.remote:
            specs = write_specs(net.junctions, spec.out_dir / "compiled" / "junctions")
            for j in net.junctions:
                cmd = [sys.executable, "-m", "controllers", str(specs[j.id]),
                       "--bus-in", self.ep.bus_in, "--bus-out", self.ep.bus_out, "--commands", self.ep.commands,
                       "--lockstep", "--lockstep-wait", str(spec.lockstep_wait)]
                if spec.local_plan is not None:
                    cmd += ["--plan", str(spec.local_plan)]
                self.procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL))
        else:
            for j in net.junctions:
                heads = SumoCabinet(field_.conn, j.id, j.link_via)
                self.controllers.append(Controller(j, self.ep, cfg=cfg, heads=heads, ctx=self.ctx,
                                                   plan=plans.get(j.id)))
        self.poller = zmq.Poller()
        for s in [self.sub.sock, *self.engine.sockets(), *(s for c in self.controllers for s in c.sockets())]:
            self.poller.register(s, zmq.POLLIN)
        self.states: dict[str, m.ControllerState] = {}
        self.engine_alive = False

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

    def close(self) -> None:
        try:
            self.pub.publish(m.TOPIC_TICK, m.ClockTick(time=0, step=-1, phase=TickPhase.STOP))
        except zmq.ZMQError:
            pass
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        for c in self.controllers:
            c.close()
        self.engine.close()
        self.pub.close()
        self.sub.close()
        self.fwd.stop()
        bus.ipc_cleanup(self.ep)
        self.ctx.term()


def _run_closed_loop(field_: SumoField, locks: LockWatch, net: Network, spec: RunSpec, begin: float, end: float,
                     progress):
    import numpy as np

    city = City(net, spec, field_)
    samples = []
    faults = 0
    fault_at: dict[str, float] = {}  # junction -> when it first latched a fault (all red from then)
    failsafe_s = 0.0  # junction-seconds shown all red after a latched fault
    failsafe = {j.id: False for j in net.junctions}
    try:
        city.sync(begin - 1.0)
        t = begin
        step = 0
        while t < end:
            batch = field_.read(t)
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
            samples.append(field_.queues())
            t = field_.advance(t + TICK)
            step += 1
            if progress is not None and step % 60 == 0:
                progress(t - begin, end - begin)
        stats = {
            "commands_sent": city.engine.commands_sent,
            "commands_accepted": sum(c.counters.accepted for c in city.controllers),
            "commands_refused": sum(c.counters.refused for c in city.controllers),
            "faults": faults,  # from the controllers' states, in process or not
            "fault_junctions": fault_at,
            "failsafe_s": failsafe_s,
            "fallbacks": sum(c.counters.fallbacks for c in city.controllers),
            "dropped_messages": city.engine.router.stats.dropped + city.engine.sub.stats.dropped,
        }
    finally:
        city.close()
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


