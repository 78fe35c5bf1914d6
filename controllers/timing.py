"""The controller's interval timing: a pure state machine, no sockets, no clock of its own.

Green, yellow and all-red are timed here and nowhere else. Engine commands only express a wish
(``request``): the timer ends a green no earlier than its minimum, always runs yellow and all-red in
full, and ends a green at its maximum on its own.

Transitions: between a green phase and the phase the net's program serves after it, the net's own
intermediate states are shown (stretched so that yellow lasts at least ``yellow_min``). Any other
transition is built from the two phases: links green now and not green in the target turn yellow,
links green in both keep their letter, all others are red; then all-red for at least
``allred_out_of_order``, extended while vehicles of the cleared links are still inside the junction
(up to ``clearance_max``), because such a pair of phases may have no yield rule between them and a
vehicle left inside would block the junction (../shared/notes/control.md).

In a yellow built here, a link that was ``G`` (priority) shows ``Y``, not ``y``: in SUMO a lowercase
letter is a link without priority, so ``G`` -> ``y`` takes the priority away from through vehicles
still crossing the junction, and a permissive movement merging with them (``g`` -> ``y``) stops
yielding and drives into them (cologne1, docs/safety.md). ``g`` links show ``y``. The net's own
intermediate states are shown as the net has them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.protocol.junction import JunctionSpec
from engine.protocol.messages import Interval

GREEN_CHARS = frozenset("Gg")


@dataclass(frozen=True)
class TimingConfig:
    min_green: float = 5.0
    yellow_min: float = 3.0
    allred_out_of_order: float = 1.0
    clearance_max: float = 8.0
    max_green: float | None = None  # None: the junction spec's per-phase maximum


@dataclass(frozen=True)
class Segment:
    state: str
    duration: float
    kind: Interval  # Interval.YELLOW | Interval.ALLRED
    extendable: bool = False


def transition_segments(spec: JunctionSpec, k: int, target: int, cfg: TimingConfig) -> list[Segment]:
    """The intervals shown between green phase ``k`` and green phase ``target``."""
    cur = spec.green_states[k]
    nxt = spec.green_states[target]
    if target == spec.net_next[k] and spec.net_transitions[k]:
        segs: list[Segment] = []
        for state, dur in spec.net_transitions[k]:
            state = _keep_common_greens(state, cur, nxt)
            kind = Interval.YELLOW if ("y" in state or "Y" in state) else Interval.ALLRED
            segs.append(Segment(state, float(dur), kind))
        yel = sum(s.duration for s in segs if s.kind == Interval.YELLOW)
        if yel < cfg.yellow_min:
            idx = max((i for i, s in enumerate(segs) if s.kind == Interval.YELLOW), default=None)
            if idx is None:
                segs.insert(0, Segment(_yellow_state(cur, nxt), cfg.yellow_min, Interval.YELLOW))
            else:
                s = segs[idx]
                segs[idx] = Segment(s.state, s.duration + cfg.yellow_min - yel, Interval.YELLOW)
        if not any(s.kind == Interval.YELLOW for s in segs) and _needs_yellow(cur, nxt):
            segs.insert(0, Segment(_yellow_state(cur, nxt), max(cfg.yellow_min, spec.yellow[k]), Interval.YELLOW))
        return [s for s in segs if s.duration > 0]
    yellow = max(cfg.yellow_min, spec.yellow[k])
    allred = max(spec.allred[k], cfg.allred_out_of_order)
    segs = []
    if _needs_yellow(cur, nxt):
        segs.append(Segment(_yellow_state(cur, nxt), yellow, Interval.YELLOW))
    segs.append(Segment(_allred_state(cur, nxt), allred, Interval.ALLRED, extendable=True))
    return segs


def _keep_common_greens(state: str, cur: str, nxt: str) -> str:
    """A link green in both phases stays green through the net's intermediate states (some nets show
    it yellow there, and yellow back to green is not allowed)."""
    return "".join(c if (c in GREEN_CHARS and n in GREEN_CHARS) else s for s, c, n in zip(state, cur, nxt))


def _yellow_of(c: str) -> str:
    """The yellow of a link whose green letter is ``c``: ``Y`` keeps a priority link's priority."""
    return "Y" if c == "G" else "y"


def _needs_yellow(cur: str, nxt: str) -> bool:
    return any(c in GREEN_CHARS and n not in GREEN_CHARS for c, n in zip(cur, nxt))


def _yellow_state(cur: str, nxt: str) -> str:
    return "".join(
        (_yellow_of(c) if n not in GREEN_CHARS else c) if c in GREEN_CHARS else "r" for c, n in zip(cur, nxt)
    )


def _allred_state(cur: str, nxt: str) -> str:
    return "".join(c if (c in GREEN_CHARS and n in GREEN_CHARS) else "r" for c, n in zip(cur, nxt))


@dataclass
class Timer:
    """Interval state of one junction. ``tick(dt)`` is called once per control tick: it decides the
    interval to show during the next ``dt`` seconds and returns the signal string."""

    spec: JunctionSpec
    cfg: TimingConfig = field(default_factory=TimingConfig)
    occupied: Callable[[list[int]], bool] | None = None  # vehicles inside the junction on these links?

    def __post_init__(self) -> None:
        s = self.spec
        self.phase = s.start_phase
        self.target = s.start_phase
        self.interval = Interval.GREEN
        self.since = float(s.start_offset)  # seconds already shown in the current interval
        self.request: int | None = None  # green phase wanted next (None: hold)
        self._segs: list[Segment] = []
        self._seg = 0
        self._seg_since = 0.0
        self._cleared: list[int] = []
        self.green_shown = 0.0  # length of the green that is running (for the minimum)
        self.min_green = [max(self.cfg.min_green, x) for x in s.min_green]
        if self.cfg.max_green is not None:
            self.max_green = [max(self.cfg.max_green, g) for g in self.min_green]
        else:
            self.max_green = [max(a, b) for a, b in zip(s.max_green, self.min_green)]
        self.signal = s.green_states[self.phase]

    # -- what the engine (or the local plan) may ask ---------------------------------------------
    def can_end_green(self) -> bool:
        return self.interval == Interval.GREEN and self.green_shown >= self.min_green[self.phase]

    def tick(self, dt: float) -> str:
        """Advance one tick: returns the signal to show for the next ``dt`` seconds."""
        if self.interval == Interval.GREEN:
            k = self.phase
            want = self.request if (self.request is not None and self.request != k) else None
            if self.since >= self.max_green[k] and want is None:
                want = self.spec.net_next[k] if self.spec.net_next[k] != k else None
            # the minimum counts what was shown (since starts at start_offset)
            if want is not None and self.green_shown >= self.min_green[k]:
                self._begin_transition(want)
        else:
            self._advance_transition()
        if self.interval == Interval.GREEN:
            self.signal = self.spec.green_states[self.phase]
        else:
            self.signal = self._segs[self._seg].state
        self.since += dt
        if self.interval != Interval.GREEN:
            self._seg_since += dt
        else:
            self.green_shown += dt
        return self.signal

    def _begin_transition(self, target: int) -> None:
        k = self.phase
        self.target = target
        self._segs = transition_segments(self.spec, k, target, self.cfg)
        cur, nxt = self.spec.green_states[k], self.spec.green_states[target]
        self._cleared = [i for i, (c, n) in enumerate(zip(cur, nxt)) if c in GREEN_CHARS and n not in GREEN_CHARS]
        self._seg = 0
        self._seg_since = 0.0
        self.since = 0.0
        if not self._segs:  # only greens are added: no clearance needed
            self._finish_transition()
            return
        self.interval = self._segs[0].kind

    def _advance_transition(self) -> None:
        seg = self._segs[self._seg]
        if self._seg_since < seg.duration:
            return
        if (
            seg.extendable
            and self.occupied is not None
            and self._seg_since < seg.duration + self.cfg.clearance_max
            and self.occupied(self._cleared)
        ):
            return
        self._seg += 1
        self._seg_since = 0.0
        if self._seg < len(self._segs):
            kind = self._segs[self._seg].kind
            if kind != self.interval:
                self.interval = kind
                self.since = 0.0
            return
        self._finish_transition()

    def _finish_transition(self) -> None:
        self.phase = self.target
        self.interval = Interval.GREEN
        self.since = 0.0
        self.green_shown = 0.0
        if self.request == self.phase:
            self.request = None
