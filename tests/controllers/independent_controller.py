"""A second controller, written from docs/protocol.md alone, as another vendor would: Python with pyzmq and msgpack,
importing nothing from Lintas. ``lintas conformance`` must pass it (tests/controllers/test_conformance.py).

    python tests/controllers/independent_controller.py J1.json --bus-in tcp://127.0.0.1:5555 \
        --bus-out tcp://127.0.0.1:5556 --commands tcp://127.0.0.1:5557 [--clock-offset 30]

It runs on the wall clock (plus ``--clock-offset`` seconds, to play a controller whose clock is wrong), reports
``starting`` until the engine's first valid word, always builds its transitions (yellow for the links that end,
then all-red), and has no conflict monitor of its own (it only ever shows the spec's greens and the states it
builds from them).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import msgpack
import zmq

TICK = 1.0
BACKUP = 4.0
MAX_AGE = 2.0
FUTURE = 3.0
MIN_GREEN = 5.0
MIN_YELLOW = 3.0
MIN_ALLRED = 1.0
GREEN = "Gg"


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return (isinstance(x, int | float)) and not isinstance(x, bool)


# field -> (check, default) of the words an engine sends (docs/protocol.md, "Messages")
WORDS = {
    "command": {"junction": (lambda x: isinstance(x, str), ""), "action": (lambda x: x in ("hold", "advance"), "hold"),
                "phase": (_is_int, -1), "seq": (_is_int, 0), "issued_at": (_is_num, 0.0)},
    "heartbeat": {"sender": (lambda x: isinstance(x, str), ""), "time": (_is_num, 0.0), "seq": (_is_int, 0)},
    "reset": {"junction": (lambda x: isinstance(x, str), ""), "seq": (_is_int, 0), "issued_at": (_is_num, 0.0),
              "operator": (lambda x: isinstance(x, str), "")},
}


def decode_word(frames: list[bytes]) -> dict | None:
    """One engine word, its missing fields defaulted; None for anything to ignore."""
    if len(frames) != 1:
        return None
    try:
        msg = msgpack.unpackb(frames[0], raw=False, strict_map_key=False)
    except Exception:  # noqa: BLE001 - anything that is not MessagePack is dropped
        return None
    if not isinstance(msg, dict) or msg.get("t") not in WORDS:
        return None
    v = msg.get("v", 1)
    if not _is_int(v) or v > 1:
        return None
    out = {"t": msg["t"]}
    for name, (ok, default) in WORDS[msg["t"]].items():
        value = msg.get(name, default)
        if not ok(value):
            return None
        out[name] = value
    return out


class Controller:
    def __init__(self, spec: dict, bus_in: str, commands: str, clock_offset: float = 0.0,
                 defects: frozenset[str] = frozenset()) -> None:
        self.spec = spec
        self.defects = defects  # deliberate faults, to show that the kit catches them
        self.id = spec["id"]
        self.n = len(spec["green_states"])
        self.offset = clock_offset
        self.ctx = zmq.Context()
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.ROUTING_ID, self.id.encode())
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(commands)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.connect(bus_in)
        self.mode = "starting"
        self.phase = self.target = spec.get("start_phase", 0)
        self.interval = "green"
        self.since = float(spec.get("start_offset", 0.0))
        self.segments: list[tuple[str, float, str]] = []
        self.seg = 0
        self.seg_elapsed = 0.0
        self.request: int | None = None
        self.last_seq = -1
        self.accepted = 0
        self.refused = 0
        self.now: float | None = None
        self.started: float | None = None
        self.last_contact: float | None = None
        self.engine_back = False

    def clock(self) -> float:
        return time.time() + self.offset

    def minimum(self, k: int) -> float:
        return max(self.spec["min_green"][k], MIN_GREEN)

    def maximum(self, k: int) -> float:
        return max(self.spec["max_green"][k], self.minimum(k))

    # -- words ---------------------------------------------------------------------------------------------
    def on_word(self, w: dict) -> None:
        if w["t"] == "heartbeat":
            if w["sender"] == "engine" and math.isfinite(w["time"]):
                stamp = w["time"] if self.now is None else min(w["time"], self.now + FUTURE)
                self.contact(stamp)
            return
        probe = w if w["t"] == "command" else {**w, "action": "hold", "phase": -1}
        reason = self.validate(probe)
        if reason is not None:
            self.refuse(w["seq"], reason if w["t"] == "command" else f"reset-{reason}")
            return
        self.last_seq = w["seq"]
        self.contact(w["issued_at"] if self.now is None else min(w["issued_at"], self.now + FUTURE))
        if w["t"] == "reset":
            # no fault is ever latched here: an accepted reset changes nothing but last_seq ("reset", "A reset to a
            # controller with no latched fault")
            if "reset-restarts-green" in self.defects and self.interval == "green":
                self.since = 0.0
            return
        self.accepted += 1
        if self.mode == "local":
            return  # accepted, not obeyed: the local plan runs until the return
        if w["action"] == "hold":
            if self.interval == "green":
                self.request = None
        else:
            self.request = w["phase"]

    def validate(self, w: dict) -> str | None:
        if w["junction"] != self.id:
            return "wrong-junction"
        if not math.isfinite(w["issued_at"]):
            return "bad-time"
        if w["seq"] <= self.last_seq:
            return "replayed-or-out-of-sequence"
        if self.now is not None:
            if self.now - w["issued_at"] > MAX_AGE and "accept-stale" not in self.defects:
                return "stale"
            if w["issued_at"] - self.now > FUTURE:
                return "from-the-future"
        if w["action"] == "advance":
            if not 0 <= w["phase"] < self.n:
                return "no-such-phase"
            if self.interval != "green" and w["phase"] != self.target:
                return "in-transition"
        return None

    def contact(self, t: float) -> None:
        self.last_contact = t if self.last_contact is None else max(self.last_contact, t)
        if self.mode == "starting":
            self.mode = "engine"
        elif self.mode == "local":
            self.engine_back = True

    def refuse(self, seq: int, reason: str) -> None:
        self.refused += 1
        self.publish(b"refusal", {"t": "refusal", "v": 1, "junction": self.id, "time": self.now or 0.0,
                                  "seq": max(min(seq, 2**62), -(2**62)), "reason": reason})

    def publish(self, topic: bytes, msg: dict) -> None:
        self.pub.send_multipart([topic, msgpack.packb(msg)])

    # -- the tick --------------------------------------------------------------------------------------------
    def transition(self, k: int, p: int) -> list[tuple[str, float, str]]:
        cur, nxt = self.spec["green_states"][k], self.spec["green_states"][p]
        segs = []
        if any(c in GREEN and d not in GREEN for c, d in zip(cur, nxt)):
            yellow = "".join((c if d in GREEN else ("Y" if c == "G" else "y")) if c in GREEN else "r"
                             for c, d in zip(cur, nxt))
            short = "short-yellow" in self.defects
            segs.append((yellow, 2.0 if short else max(self.spec["yellow"][k], MIN_YELLOW), "yellow"))
        allred = "".join(c if (c in GREEN and d in GREEN) else "r" for c, d in zip(cur, nxt))
        segs.append((allred, max(self.spec["allred"][k], MIN_ALLRED), "allred"))
        return segs

    def tick(self, t: float) -> None:
        dt = TICK if self.now is None else max(t - self.now, TICK)
        first = self.now is None
        self.now = t
        if self.started is None:
            self.started = t
        if not first:
            self.since += dt
            self.seg_elapsed += dt
        silent_since = self.last_contact if self.last_contact is not None else self.started
        if self.mode in ("engine", "starting") and t - silent_since > BACKUP:
            self.mode = "local"
            self.request = None
            self.engine_back = False
        k = self.phase
        if self.interval == "green":
            want = self.request if self.request is not None and self.request != k else None
            if self.mode == "local":
                local = min(max(self.spec["fixed_green"][k], self.minimum(k)), self.maximum(k))
                want = self.spec["net_next"][k] if self.since >= local else None
            if want is None and self.since >= self.maximum(k) and self.spec["net_next"][k] != k:
                want = self.spec["net_next"][k]
            if want is not None and want != k and self.since >= self.minimum(k):
                self.target = want
                self.segments = self.transition(k, want)
                self.seg, self.seg_elapsed, self.since = 0, 0.0, 0.0
                self.interval = self.segments[0][2]
        elif self.seg_elapsed >= self.segments[self.seg][1]:
            self.seg += 1
            self.seg_elapsed = 0.0
            if self.seg == len(self.segments):
                self.phase, self.interval, self.since = self.target, "green", 0.0
                if self.request == self.phase:
                    self.request = None
            elif self.segments[self.seg][2] != self.interval:
                self.interval, self.since = self.segments[self.seg][2], 0.0
        if (self.mode == "local" and self.engine_back and self.interval == "green"
                and (self.since == 0.0 or self.since + TICK >= self.minimum(self.phase))
                and self.last_contact is not None and t - self.last_contact <= BACKUP):
            self.mode = "engine"
            self.engine_back = False
        signal = self.spec["green_states"][self.phase] if self.interval == "green" else self.segments[self.seg][0]
        state = {"t": "state", "v": 1, "junction": self.id, "time": t, "phase": self.phase,
                 "target": self.phase if self.interval == "green" else self.target, "interval": self.interval,
                 "since": self.since, "mode": self.mode, "signal": signal, "last_seq": self.last_seq,
                 "accepted": self.accepted, "refused": self.refused}
        try:
            self.dealer.send(msgpack.packb(state), zmq.NOBLOCK)
        except zmq.Again:
            pass
        self.publish(b"state", state)

    def run(self) -> None:
        nxt = math.floor(self.clock() / TICK) * TICK + TICK
        poller = zmq.Poller()
        poller.register(self.dealer, zmq.POLLIN)
        while True:
            wait = nxt - self.clock()
            if wait <= 0:
                late = self.clock()
                self.tick(math.floor(late / TICK) * TICK)  # a missed tick is skipped, never replayed
                nxt = math.floor(late / TICK) * TICK + TICK
                continue
            if dict(poller.poll(max(1, int(wait * 1000)))):
                while True:
                    try:
                        frames = self.dealer.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    w = decode_word(frames)
                    if w is not None:
                        self.on_word(w)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec")
    ap.add_argument("--bus-in", default="tcp://127.0.0.1:5555")
    ap.add_argument("--bus-out", default="tcp://127.0.0.1:5556")  # not read: the controller subscribes to nothing
    ap.add_argument("--commands", default="tcp://127.0.0.1:5557")
    ap.add_argument("--clock-offset", type=float, default=0.0)
    ap.add_argument("--defect", action="append", default=[],
                    choices=["accept-stale", "short-yellow", "reset-restarts-green"],
                    help="break a rule on purpose (the kit must say so)")
    a = ap.parse_args(argv)
    with open(a.spec) as f:
        spec = json.load(f)
    try:
        Controller(spec, a.bus_in, a.commands, a.clock_offset, frozenset(a.defect)).run()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
