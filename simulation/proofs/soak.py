"""Controller soak: many random command sequences, raw bytes, wrong junctions, huge and negative
numbers, sent to real controllers of real junctions; the signals they show are then checked by the
independent checker of ``simulation/proofs/tlscheck.py`` (not the controller's own conflict monitor).

    lintas soak --sequences 100000

A sequence is 1-12 random words (commands with arbitrary field values, heartbeats, garbage bytes)
followed by one tick. Words go through the controller's decoder and validation exactly as they would
off the command channel; the sockets themselves are exercised by the property tests.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from controllers.controller import Controller
from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.junction import JunctionSpec

HUGE = (2**63 - 1, -(2**63), 2**31, -(2**31), 10**9, -1, 0)
FLOATS = (math.nan, math.inf, -math.inf, 1e300, -1e300, -1.0, 0.0)


class _Heads:
    """Signal heads that record what they show; vehicles are still inside the junction at random (``rng``)."""

    def __init__(self, rng: random.Random) -> None:
        self.shown: list[tuple[float, str]] = []
        self.t = 0.0
        self.rng = rng

    def show(self, signal: str) -> None:
        self.shown.append((self.t, signal))

    def occupied(self, links: list[int]) -> bool:
        return self.rng.random() < 0.2


@dataclass
class SoakResult:
    sequences: int = 0
    words: int = 0
    accepted: int = 0
    refused: int = 0
    dropped: int = 0
    faults_latched: int = 0
    junctions: int = 0
    violations: int = 0
    violation_lines: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _word(rng: random.Random, ctrl: Controller, t: float) -> bytes:
    r = rng.random()
    if r < 0.15:  # garbage bytes
        n = rng.randint(0, 40)
        return bytes(rng.getrandbits(8) for _ in range(n))
    if r < 0.25:
        return m.encode(m.Heartbeat(sender=rng.choice(("engine", "engine", "x")), time=rng.choice((t, t - 10, t + 50)),
                                    seq=rng.randint(0, 10)))
    n_ph = ctrl.spec.n_phases
    plausible = rng.random() < 0.6
    return m.encode(m.PhaseCommand(
        junction=ctrl.id if rng.random() < 0.85 else "not-" + ctrl.id,
        action=rng.choice(("hold", "advance", "advance")),
        phase=rng.randrange(n_ph) if plausible else rng.choice((*HUGE, n_ph, rng.randint(-5, n_ph + 5))),
        seq=ctrl.last_seq + rng.randint(1, 3) if plausible else rng.choice((*HUGE, ctrl.last_seq)),
        issued_at=t + rng.choice((0.0, 0.0, -1.0, 1.0)) if plausible else rng.choice((*FLOATS, t - 100, t + 100)),
    ))


def soak(junctions: list[JunctionSpec], sequences: int, seed: int = 1, progress=None) -> SoakResult:
    from simulation.proofs.tlscheck import check_sequence

    rng = random.Random(seed)  # the words
    occupancy = random.Random(seed)  # the heads' occupancy sensing, a stream of its own
    ctx = zmq.Context()
    ep = bus.endpoints("inproc")
    fwd = bus.Forwarder(ep, ctx).start()
    engine_side = bus.CommandServer(ctx, ep)
    res = SoakResult(junctions=len(junctions))
    ctrls, heads = [], []
    for spec in junctions:
        h = _Heads(occupancy)
        ctrls.append(Controller(spec, ep, heads=h, ctx=ctx, lockstep=False))
        heads.append(h)
    clocks = [0.0] * len(ctrls)
    stats = bus.Stats()
    t0 = time.perf_counter()
    try:
        for i in range(sequences):
            k = rng.randrange(len(ctrls))
            ctrl, h = ctrls[k], heads[k]
            t = clocks[k]
            for _ in range(rng.randint(1, 12)):
                msg = bus.safe_decode(_word(rng, ctrl, t), stats)
                res.words += 1
                if msg is not None:
                    ctrl.receive(msg)
            h.t = t
            ctrl.do_tick(t)
            clocks[k] = t + 1.0
            res.sequences += 1
            if progress is not None and i % 5000 == 0:
                progress(i, sequences)
        res.seconds = time.perf_counter() - t0
        for spec, ctrl, h, t_end in zip(junctions, ctrls, heads, clocks):
            res.accepted += ctrl.counters.accepted
            res.refused += ctrl.counters.refused
            res.faults_latched += ctrl.counters.faults
            rep = check_sequence(spec, h.shown, end=t_end)
            res.violations += rep.violations
            if rep.violations:
                res.violation_lines += [f"{spec.id}: {ln}" for ln in rep.summary_lines()]
        res.dropped = stats.dropped
    finally:
        for c in ctrls:
            c.close()
        engine_side.close()
        fwd.stop()
        ctx.destroy(linger=0)
    return res


def soak_junctions(scenarios: list[Path]) -> list[JunctionSpec]:
    from simulation.sumo.netcompile import compile_network
    from simulation.sumo.scenario import load_scenario

    out: list[JunctionSpec] = []
    for s in scenarios:
        out += compile_network(load_scenario(s)).junctions
    return out
