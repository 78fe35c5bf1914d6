"""Locks: lanes at a Lintas junction where vehicles stand, the light shows green, and nobody leaves.

A **lock** is a lane controlled by a traffic light (an incoming lane of one of Lintas' junctions) on which
vehicles are standing (SUMO's halting number > 0) and from which no vehicle has left for ``LOCK_S`` = 300 s,
while its movement showed green (``G`` or ``g`` on any of its links) for at least ``LOCK_GREEN_S`` = 30 s in
total during those 300 s. A lane waiting at red is starvation, not a lock. Each episode is counted once,
with its junction, its lane, ``since`` (the last time a vehicle left the lane, or the lane was empty: when
the standing started) and ``at`` (when it was detected); it ends (``until``) when a vehicle leaves the lane
again, and stays ``None`` when the run ends locked.

What is measured is SUMO's truth, not Lintas' detectors: each lane's vehicle ids and halting number, and
each light's signal string (lanes: getters at each sample; lights: a subscription). "A vehicle left the
lane" means an id of the previous sample is not in this one (it crossed the stop line, ended its trip
there, or was teleported away). :class:`LockWatch` is sampled once per control tick (a second of simulated
time) by the runner; it works on libsumo and on a TraCI connection alike.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["LOCK_GREEN_S", "LOCK_S", "LockWatch"]

LOCK_S = 300.0  # s without a vehicle leaving the lane
LOCK_GREEN_S = 30.0  # s of green the lane's movement showed within those LOCK_S
_GREEN = frozenset("Gg")


class LockWatch:
    """Watches every incoming lane of the given lights for locks; ``sample(t)`` once per tick.

    ``conn``: a started libsumo module or TraCI connection (``SumoField.conn``); ``junctions``: the ids of
    Lintas' junctions (their traffic-light ids; railway signals and lights Lintas leaves to SUMO are not
    among them). The controlled links are read once, here."""

    def __init__(self, conn, junctions: Iterable[str]) -> None:
        self.conn = conn
        tc = conn.constants
        self._state_var = tc.TL_RED_YELLOW_GREEN_STATE
        self.lanes: list[str] = []  # every watched lane, once
        self.junction: dict[str, str] = {}  # lane -> the junction that controls it
        self._index: dict[str, int] = {}
        self._link_lane: dict[str, list[int | None]] = {}  # junction -> link index -> lane index
        for jid in junctions:
            per_link: list[int | None] = []
            for links in conn.trafficlight.getControlledLinks(jid):
                lane = links[0][0] if links else None
                if lane is not None and lane not in self._index:
                    self._index[lane] = len(self.lanes)
                    self.lanes.append(lane)
                    self.junction[lane] = jid
                per_link.append(self._index[lane] if lane is not None else None)
            self._link_lane[jid] = per_link
            conn.trafficlight.subscribe(jid, (self._state_var,))
        # lanes are read with getters at each sample (once per tick), in the order SUMO's subscription results came
        # in before (sorted ids): a lane subscription was evaluated inside every SUMO step, sub-steps included
        self._order = sorted(self.lanes)
        n = len(self.lanes)
        self._green_of: dict[str, dict[str, tuple[int, ...]]] = {j: {} for j in self._link_lane}  # signal -> lanes
        self._prev: list[tuple] = [()] * n  # each lane's vehicle ids at the last sample
        self._since: list[float | None] = [None] * n  # last time a vehicle left the lane, or it was empty
        self._green = [0.0] * n  # each lane's green seconds since the start (cumulative)
        self._history: deque[tuple[float, list[float]]] = deque()  # (t, cumulative greens) of the last LOCK_S
        self._open: dict[int, dict] = {}  # lane index -> its episode under way
        self._t: float | None = None
        self.events: list[dict] = []  # every episode, in the order detected

    @property
    def locks(self) -> int:
        """Lock episodes so far."""
        return len(self.events)

    def _greens(self, jid: str, signal: str) -> tuple[int, ...]:
        """The lanes a signal string of ``jid`` shows green (worked out the first time it is shown)."""
        per_link = self._link_lane[jid]
        lanes = tuple(sorted({per_link[i] for i, c in enumerate(signal)
                              if c in _GREEN and i < len(per_link) and per_link[i] is not None}))
        self._green_of[jid][signal] = lanes
        return lanes

    def sample(self, t: float) -> None:
        """Read SUMO's state now (simulated time ``t``): who left each lane, which lanes show green, and open or
        close lock episodes."""
        dt = 0.0 if self._t is None else t - self._t
        self._t = t
        green = self._green
        if dt > 0:
            state, green_of = self._state_var, self._green_of
            for jid, v in self.conn.trafficlight.getAllSubscriptionResults().items():
                signal = v[state]
                lanes = green_of[jid].get(signal)
                for i in self._greens(jid, signal) if lanes is None else lanes:
                    green[i] += dt
        history = self._history
        history.append((t, green.copy()))
        while len(history) > 1 and history[1][0] <= t - LOCK_S:
            history.popleft()
        get_ids, get_halt = self.conn.lane.getLastStepVehicleIDs, self.conn.lane.getLastStepHaltingNumber
        index, prev, since, opened = self._index, self._prev, self._since, self._open
        for lane in self._order:
            i = index[lane]
            ids = get_ids(lane)
            if not ids:
                since[i] = t
                if prev[i]:  # the last vehicle left
                    prev[i] = ids
                    if i in opened:
                        opened.pop(i)["until"] = t
                continue
            before = prev[i]
            if ids != before:
                prev[i] = ids
                if before and not set(before).issubset(ids):  # a vehicle left
                    since[i] = t
                    if i in opened:
                        opened.pop(i)["until"] = t
                    continue
            s = since[i]
            if s is None:
                since[i] = s = t
            if t - s >= LOCK_S and i not in opened and get_halt(lane) > 0:
                t0, old = history[0]
                if t0 <= t - LOCK_S:
                    window = green[i] - old[i]
                    if window >= LOCK_GREEN_S:
                        rec = {"junction": self.junction[lane], "lane": lane, "since": round(s, 3),
                               "at": round(t, 3), "until": None, "green_s": round(window, 1)}
                        opened[i] = rec
                        self.events.append(rec)
