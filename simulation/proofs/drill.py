"""Fault-injection drill: the whole city as separate processes over tcp://, with failures injected.

Processes: ``lintas bus`` (forwarder), ``lintas engine``, one ``lintas controller`` per junction, and
this process as the field (SUMO through libsumo, paced at ``speed`` simulated seconds per wall
second). Clocks are simulation time, carried by the field's ``tick`` messages; nobody waits for
anybody (no lockstep), as in the field.

Timeline (simulated seconds after the start): the engine is killed with SIGKILL, restarted, one
controller is killed, and a process without keys publishes commands and readings. The drill measures
how long every controller takes to reach local mode, to come back under engine control, whether the
engine marks the dead controller offline and keeps commanding the others, whether anything from the
keyless process got through, and the delay of the run against the net's own program.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.junction import write_specs
from engine.protocol.messages import Action, Mode, TickPhase
from engine.protocol.security import safe_name
from simulation.experiments import metrics
from simulation.experiments.batch import simulate_runs
from simulation.sumo.field import SumoField
from simulation.sumo.netcompile import compile_for_run
from simulation.sumo.options import merge_additional
from simulation.sumo.outputs import sumo_output_args
from simulation.sumo.scenario import config_for_sumo, load_scenario

# a controller silent this long (simulated and wall s: a busy machine may stall a process for a moment)
# is taken for dead, and the field hands its junction to the cabinet's own plan (SUMO's program)
SILENT_CONTROLLER_S = 6.0
SILENT_CONTROLLER_WALL_S = 3.0
ROGUE_SEQ = 10**12  # sequence numbers the keyless process uses, to recognise any effect it has
OFFLINE_LIMIT_S = 10.0  # the engine's offline timeout (4 s) plus a busy machine's slack


@dataclass
class Timeline:
    kill_engine: float = 200.0
    restart_engine: float = 400.0
    kill_controller: float = 600.0
    rogue: float = 700.0
    end: float = 900.0


@dataclass
class DrillResult:
    scenario: str
    junctions: int
    speed: float
    backup_time: float
    local_after_kill_s: float | None = None  # engine killed -> every controller in local mode
    engine_up_after_restart_s: float | None = None  # restart -> the new engine's first heartbeat
    engine_back_after_restart_s: float | None = None  # engine up -> every controller under engine control
    offline_marked_after_s: float | None = None  # controller killed -> engine publishes junction-offline
    others_commanded_after_kill: bool = False
    rogue_messages_seen: int = 0
    rogue_refusals: int = 0  # refusals of the keyless process's commands (it must not reach anyone)
    rogue_accepted: int = 0  # controllers that took one of its commands
    delay_s: float | None = None
    static_delay_s: float | None = None
    collisions: int = 0
    teleports: int = 0
    events: list[str] = field(default_factory=list)

    def checks(self, *, final: bool = False) -> list[tuple[str, str, bool | None]]:
        """Each step of the drill as (name with its measured value and limit, key, passed); passed is None while
        the step is not yet decided (``final``: the run is over, so a step never measured has FAILED)."""

        def f(x: float | None) -> str:
            return "not measured" if x is None else f"{x:.1f} s"

        def within(x: float | None, limit: float) -> bool | None:
            if x is None:
                return False if final else None
            return x <= limit

        def at_end(v: bool) -> bool | None:
            return v if final else None

        lim_local = self.backup_time + 1.0
        return [
            (f"every controller local after the engine was killed: {f(self.local_after_kill_s)} "
             f"(limit {lim_local:g} s: backup time + 1 s)", "local", within(self.local_after_kill_s, lim_local)),
            (f"every controller back under engine control after the restart: "
             f"{f(self.engine_back_after_restart_s)} after the new engine's first heartbeat "
             f"({f(self.engine_up_after_restart_s)} after the restart; limit 10 s)", "back",
             within(self.engine_back_after_restart_s, 10.0)),
            (f"killed controller marked offline by the engine after {f(self.offline_marked_after_s)} "
             f"(limit {OFFLINE_LIMIT_S:g} s)", "offline", within(self.offline_marked_after_s, OFFLINE_LIMIT_S)),
            (f"the other controllers still commanded after the kill: {self.others_commanded_after_kill} "
             f"(limit: all of them)", "others",
             True if self.others_commanded_after_kill else at_end(False)),
            (f"keyless process: {self.rogue_messages_seen} messages seen on the bus, {self.rogue_refusals} commands "
             f"refused, {self.rogue_accepted} accepted (limit 0 each)", "rogue",
             at_end(self.rogue_messages_seen == 0 and self.rogue_refusals == 0 and self.rogue_accepted == 0)),
            (f"collisions {self.collisions} (limit 0), teleports {self.teleports}", "collisions",
             at_end(self.collisions == 0)),
        ]

    def delay_check(self) -> tuple[str, bool]:
        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.1f} s"

        ok = (self.delay_s is not None and self.static_delay_s is not None
              and self.delay_s <= 1.10 * self.static_delay_s)
        return (f"delay {f(self.delay_s)} against the net's program (sumo-static, same window) "
                f"{f(self.static_delay_s)} (limit +10 %)", ok)

    def ok(self) -> bool:
        return all(c[2] for c in self.checks(final=True)) and self.delay_check()[1]

    def summary_lines(self) -> list[str]:
        """What the drill measured, line by line, each with its limit and verdict."""
        steps = [(name, ok) for name, _key, ok in self.checks(final=True)] + [self.delay_check()]
        return [*(f"  {ev}" for ev in self.events),
                *(f"{'PASSED' if ok else 'FAILED'}  {name}" for name, ok in steps)]


class _Steps:
    """Says each event and each step of the drill as soon as it is known (``say(line)``), not at the end:
    an operator watching a log or a pipe sees the drill go on."""

    def __init__(self, res: DrillResult, say) -> None:
        self.res, self.say, self.events, self.done = res, say, 0, set()

    def update(self, *, final: bool = False) -> None:
        if self.say is None:
            return
        for ev in self.res.events[self.events:]:
            self.say(f"  {ev}")
        self.events = len(self.res.events)
        for name, key, ok in self.res.checks(final=final):
            if ok is not None and key not in self.done:
                self.done.add(key)
                self.say(f"{'PASSED' if ok else 'FAILED'}  {name}")


def _spawn(package: str, args: list[str], log: Path) -> subprocess.Popen:
    """``python -m PACKAGE ARGS``: a package's own commands (engine: engine, bus; controllers: the controller)."""
    fh = open(log, "ab")  # noqa: SIM115 - the process writes to it for as long as it lives
    return subprocess.Popen([sys.executable, "-m", package, *args], stdin=subprocess.DEVNULL, stdout=fh,
                            stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])


def run_drill(scenario: Path, out_dir: Path, *, policy: str = "maxpressure", speed: float = 2.0, seed: int = 1,
              timeline: Timeline | None = None, keys: Path | None = None, victim: str | None = None,
              progress=None, say=None) -> DrillResult:
    """The drill itself; ``say(line)`` hears each event and each step's verdict as it happens."""
    tl = timeline or Timeline()
    scn = load_scenario(scenario)
    out_dir.mkdir(parents=True, exist_ok=True)
    net, det_file = compile_for_run(scn, out_dir / "compiled")
    ids = [j.id for j in net.junctions]
    victim = victim or ids[-1]
    ep = bus.endpoints("tcp")
    res = DrillResult(scn.name, len(ids), speed, 4.0)
    steps = _Steps(res, say)
    logs = out_dir / "logs"
    logs.mkdir(exist_ok=True)
    if keys is None:  # the drill always runs keyed: the keyless process must be shut out
        from engine.protocol.security import create_keys

        keys = out_dir / "keys"
        create_keys(keys, ["engine", "bus", "field", "operator", "controller"])
    key_args = ["--keys", str(keys)]
    eps = ["--bus-in", ep.bus_in, "--bus-out", ep.bus_out]
    procs: dict[str, subprocess.Popen] = {}
    procs["bus"] = _spawn("engine", ["bus", *eps, *key_args], logs / "bus.log")
    network_file = out_dir / "compiled" / "network.json"
    net.to_json(network_file)  # the engine starts from the compiled network, as in the field (no SUMO)
    engine_args = ["engine", "--network", str(network_file), "-p", policy, *eps, "--commands", ep.commands,
                   "--clock", "bus", "--seed", str(seed), *key_args]
    procs["engine"] = _spawn("engine", engine_args, logs / "engine.log")
    specs = write_specs(net.junctions, out_dir / "compiled" / "junctions")
    for j in net.junctions:
        procs[j.id] = _spawn("controllers", [str(specs[j.id]), *eps, "--commands", ep.commands, "--clock", "bus",
                                             "--no-lockstep", "--parent-pid", str(os.getpid()), *key_args],
                               logs / f"controller-{safe_name(j.id)}.log")  # they die with the drill
    from engine.protocol.security import Security

    ctx = zmq.Context()
    security = Security.load(keys, "field", ctx)
    pub = bus.Publisher(ctx, ep, security=security)
    sub = bus.Subscriber(ctx, ep, [m.TOPIC_STATE, m.TOPIC_FAULT, m.TOPIC_HEARTBEAT, m.TOPIC_DETECTORS,
                                   m.TOPIC_REFUSAL], security=security)
    field_ = SumoField(net)
    run_dir = out_dir / "run"
    run_dir.mkdir(exist_ok=True)
    args = ["-c", str(config_for_sumo(scn, run_dir)), "--seed", str(seed), "--time-to-teleport", "-1",
            "--no-step-log", "true",
            "--no-warnings", "true", "--duration-log.disable", "true", "--end", f"{scn.begin + tl.end:g}",
            *sumo_output_args(run_dir)]
    args = merge_additional(args, [*scn.additional_files, det_file])
    states: dict[str, m.ControllerState] = {}
    last_seen: dict[str, float] = {}
    last_seen_wall: dict[str, float] = {}
    handed_back: set[str] = set()
    queue = []
    try:
        field_.start(args)
        begin = field_.time()
        # wait until every controller and the engine are heard (they publish state on sync ticks)
        deadline = time.monotonic() + 60
        engine_heard = False
        while time.monotonic() < deadline:
            pub.publish(m.TOPIC_TICK, m.ClockTick(time=begin - 1, step=-1, phase=TickPhase.SYNC))
            time.sleep(0.05)
            for _topic, msg in sub.drain():
                if isinstance(msg, m.ControllerState):
                    states[msg.junction] = msg
                elif isinstance(msg, m.Heartbeat) and msg.sender == "engine":
                    engine_heard = True
            if engine_heard and len(states) == len(ids):
                break
        else:
            raise RuntimeError(f"drill: components did not start (heard {len(states)}/{len(ids)} controllers)")
        if say is not None:
            say(f"PASSED  bus, engine and {len(ids)} controllers up (limit 60 s)")
        killed_engine = restarted = killed_ctrl = rogue_done = False
        t_restart = t_kill_ctrl = t_engine_up = None
        step = 0
        wall0 = time.monotonic()
        t = begin
        while t < begin + tl.end:
            rel = t - begin
            if not killed_engine and rel >= tl.kill_engine:
                os.kill(procs["engine"].pid, signal.SIGKILL)
                procs["engine"].wait()
                killed_engine = True
                res.events.append(f"t={rel:.0f}: engine killed (SIGKILL)")
            if killed_engine and not restarted and rel >= tl.restart_engine:
                procs["engine"] = _spawn("engine", engine_args, logs / "engine.log")
                restarted = True
                t_restart = rel
                res.events.append(f"t={rel:.0f}: engine restarted")
            if not killed_ctrl and rel >= tl.kill_controller:
                os.kill(procs[victim].pid, signal.SIGKILL)
                procs[victim].wait()
                killed_ctrl = True
                t_kill_ctrl = rel
                seq_at_kill = {k: s.last_seq for k, s in states.items()}
                res.events.append(f"t={rel:.0f}: controller {victim} killed (SIGKILL)")
            if not rogue_done and rel >= tl.rogue:
                _rogue(ep, ids, t)
                rogue_done = True
                res.events.append(f"t={rel:.0f}: keyless process published commands and readings")
            batch = field_.read(t)
            pub.publish(m.TOPIC_DETECTORS, batch)
            pub.publish(m.TOPIC_TICK, m.ClockTick(time=t, step=step, phase=TickPhase.RUN))
            # pace: speed simulated seconds per wall second
            target = wall0 + (step + 1) / speed
            while True:
                for _topic, msg in sub.drain():
                    if isinstance(msg, m.ControllerState):
                        if msg.junction in states and msg.time < states[msg.junction].time:
                            continue
                        states[msg.junction] = msg
                        if msg.last_seq >= ROGUE_SEQ:
                            res.rogue_accepted += 1
                        last_seen[msg.junction] = msg.time
                        last_seen_wall[msg.junction] = time.monotonic()
                        _observe_mode(res, msg, rel_of=lambda x: x - begin, tl=tl, t_up=t_engine_up, ids=ids,
                                      states=states)
                    elif (isinstance(msg, m.Heartbeat) and msg.sender == "engine" and t_restart is not None
                          and res.engine_up_after_restart_s is None):
                        res.engine_up_after_restart_s = msg.time - begin - t_restart
                        t_engine_up = msg.time - begin
                    elif isinstance(msg, m.Fault) and msg.kind == "junction-offline" and msg.detail == victim:
                        if t_kill_ctrl is not None and res.offline_marked_after_s is None:
                            res.offline_marked_after_s = msg.time - begin - t_kill_ctrl
                    elif isinstance(msg, (m.DetectorBatch,)) and msg.source == "rogue":
                        res.rogue_messages_seen += 1
                    elif isinstance(msg, m.Refusal) and msg.seq >= ROGUE_SEQ:
                        res.rogue_refusals += 1  # a controller heard the keyless process (it must not)
                now = time.monotonic()
                if now >= target:
                    break
                sub.sock.poll(max(1, int((target - now) * 1000)))
            for jid in ids:
                st = states.get(jid)
                if st is None:
                    continue
                silent = (t - last_seen.get(jid, t) > SILENT_CONTROLLER_S
                          and time.monotonic() - last_seen_wall.get(jid, time.monotonic()) > SILENT_CONTROLLER_WALL_S)
                if silent:  # dead controller: the cabinet's own plan
                    if jid not in handed_back:
                        field_.conn.trafficlight.setProgram(jid, _original_program(field_, jid))
                        handed_back.add(jid)
                        res.events.append(f"t={t - begin:.0f}: {jid} silent, cabinet runs its own plan")
                elif jid not in handed_back:
                    field_.show(jid, st.signal)
            if killed_ctrl and not res.others_commanded_after_kill and t - begin > t_kill_ctrl + 10:
                res.others_commanded_after_kill = all(
                    states[k].last_seq > seq_at_kill.get(k, -1) and states[k].mode == Mode.ENGINE
                    for k in ids if k != victim)
            queue.append(field_.queues())
            t = field_.advance(t + 1.0)
            step += 1
            steps.update()
            if progress and step % 60 == 0:
                progress(step, tl.end)
    finally:
        field_.close()
        try:
            pub.publish(m.TOPIC_TICK, m.ClockTick(time=0, step=-1, phase=TickPhase.STOP))
        except zmq.ZMQError:
            pass
        time.sleep(0.2)
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        pub.close()
        sub.close()
        security.close()
        ctx.destroy(linger=0)
    sched = metrics.scheduled_departures(scn.route_files, begin, begin + tl.end)
    met = metrics.compute_metrics(run_dir / "tripinfo.xml", run_dir / "statistics.xml", sched, begin + tl.end,
                                  np.array(queue))
    res.delay_s, res.collisions, res.teleports = met.delay_s, met.collisions, met.teleports
    steps.update(final=True)
    return res


def _original_program(field_: SumoField, tls: str) -> str:
    progs = field_.conn.trafficlight.getAllProgramLogics(tls)
    ids = [p.programID for p in progs if p.programID != "online"]
    return ids[0] if ids else "0"


def _observe_mode(res: DrillResult, st: m.ControllerState, *, rel_of, tl: Timeline, t_up, ids, states) -> None:
    rel = rel_of(st.time)
    if (res.local_after_kill_s is None and tl.kill_engine <= rel < tl.restart_engine
            and all(states.get(j) is not None and states[j].mode == Mode.LOCAL for j in ids)):
        res.local_after_kill_s = rel - tl.kill_engine
    if (t_up is not None and res.engine_back_after_restart_s is None and rel < tl.kill_controller
            and all(states.get(j) is not None and states[j].mode == Mode.ENGINE and rel_of(states[j].time) >= t_up
                    for j in ids)):
        res.engine_back_after_restart_s = rel - t_up


def _rogue(ep: bus.Endpoints, ids: list[str], t: float) -> None:
    """A process without keys: publishes fake readings and ticks, and commands every junction through a
    ROUTER it binds itself and through the engine's endpoint."""
    ctx = zmq.Context()
    try:
        pub = bus.Publisher(ctx, ep)
        router = ctx.socket(zmq.DEALER)
        router.setsockopt(zmq.LINGER, 0)
        router.connect(ep.commands)
        time.sleep(0.3)
        for i in range(20):
            pub.publish(m.TOPIC_DETECTORS, m.DetectorBatch(source="rogue", time=t,
                                                          readings=[m.DetectorReading("x", 999, 1.0, 999)]))
            for j in ids:
                cmd = m.PhaseCommand(junction=j, action=Action.ADVANCE, phase=0, seq=ROGUE_SEQ + i, issued_at=t)
                try:
                    router.send(m.encode(cmd), zmq.NOBLOCK)  # no peer will ever take it: never block
                except zmq.Again:
                    pass
            time.sleep(0.01)
        time.sleep(0.2)
        pub.close()
        router.close(0)
    finally:
        ctx.destroy(linger=0)



def drill(scenario: Path, out_dir: Path, *, policy: str = "maxpressure", speed: float = 2.0,
          timeline: Timeline | None = None, say=None) -> DrillResult:
    """The drill, then the net's own program (sumo-static) over the same window for comparison; writes
    ``out_dir/drill.json`` (the result and ``ok``)."""
    tl = timeline or Timeline()
    res = run_drill(scenario, out_dir, policy=policy, speed=speed, timeline=tl, say=say)
    if say is not None:
        say("running the net's own program (sumo-static) over the same window for comparison")
    scn = load_scenario(scenario)
    static, _ = simulate_runs(scenario, ["sumo-static"], 1, out_dir=out_dir / "static", end=scn.begin + tl.end,
                              jobs=1, quiet=True)
    res.static_delay_s = static[0]["delay_s"] if static else None
    if say is not None:
        name, ok = res.delay_check()
        say(f"{'PASSED' if ok else 'FAILED'}  {name}")
    doc = dataclasses.asdict(res) | {"ok": res.ok()}
    (out_dir / "drill.json").write_text(json.dumps(doc, indent=2))
    return res
