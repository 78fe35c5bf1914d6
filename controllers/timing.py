"""The controller's interval timing: a pure state machine, no sockets, no clock of its own.

Green, yellow and all-red are timed here and nowhere else. Engine commands only express a wish
(``request``): the timer ends a green no earlier than its minimum, always runs yellow and all-red in
full, and ends a green at its maximum on its own.

Transitions: between a green phase and the phase the net's program serves after it, the net's own
intermediate states are shown, changed only where they would break a rule and never shorter
(:func:`net_transition`: links green in both phases stay green, no yellow back to green, a yellow where
the net goes from green straight to red, every link's yellow at least ``yellow_min``). Any other
transition is built from the two phases: links green now and not green in the target turn yellow,
links green in both keep their letter, all others are red; then all-red for at least
``allred_out_of_order``, extended while vehicles of the cleared links are still inside the junction
(up to ``clearance_max``), because such a pair of phases may have no yield rule between them and a
vehicle left inside would block the junction (../shared/notes/control.md).

In a yellow built here, a link that was ``G`` (priority) shows ``Y``, not ``y``: in SUMO a lowercase
letter is a link without priority, so ``G`` -> ``y`` takes the priority away from through vehicles
still crossing the junction, and a permissive movement merging with them (``g`` -> ``y``) stops
yielding and drives into them (cologne1, docs/safety.md). ``g`` links show ``y``. The net's own
intermediate states keep the net's letters (a yellow inserted into them follows the same rule).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.protocol.junction import JunctionSpec
from engine.protocol.messages import Interval

GREEN_CHARS = frozenset("Gg")
YELLOW_CHARS = frozenset("yY")
ACTIVE_CHARS = GREEN_CHARS | YELLOW_CHARS
_EPS = 1e-6


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
        states, _changes = net_order_transition(spec, k, cfg)
        segs = [Segment(st, d, Interval.YELLOW if any(c in YELLOW_CHARS for c in st) else Interval.ALLRED)
                for st, d in states]
        return [s for s in segs if s.duration > 0]
    yellow = max(cfg.yellow_min, spec.yellow[k])
    allred = max(spec.allred[k], cfg.allred_out_of_order)
    segs = []
    if _needs_yellow(cur, nxt):
        segs.append(Segment(_yellow_state(cur, nxt), yellow, Interval.YELLOW))
    segs.append(Segment(_allred_state(cur, nxt), allred, Interval.ALLRED, extendable=True))
    return segs


def net_order_transition(spec: JunctionSpec, k: int, cfg: TimingConfig) -> tuple[list[tuple[str, float]], list[dict]]:
    """The net's own transition from green phase ``k`` to ``net_next[k]`` as the timer shows it, and what it
    lengthened (:func:`net_transition`; a yellow inserted where the net has none at all lasts the junction's
    yellow)."""
    trans = spec.net_transitions[k]
    inserted = cfg.yellow_min
    if not any(c in YELLOW_CHARS for state, _ in trans for c in state):
        inserted = max(cfg.yellow_min, spec.yellow[k])
    return net_transition(spec.green_states[k], trans, spec.green_states[spec.net_next[k]], cfg,
                          conflicts=spec.conflicts or None, inserted_yellow=inserted)


def net_transition(
    cur: str,
    states: Sequence[tuple[str, float]],
    nxt: str,
    cfg: TimingConfig,
    *,
    conflicts: Sequence[str] | None = None,
    inserted_yellow: float | None = None,
) -> tuple[list[tuple[str, float]], list[dict]]:
    """The states shown between green ``cur`` and green ``nxt`` in the net's order: the net's own
    intermediate ``states`` ((state, seconds), at least one), made to keep Lintas' rules for every link.
    Lintas never relaxes a minimum: it changes a letter where the net's would break a rule, and lengthens
    an interval where the net's is too short. Returns the states with their durations, and the changes
    that lengthened something (``{"what": "yellow" | "green", "links": [...], "net": s, "shown": s}``).

    1. A link green in ``cur`` and in ``nxt`` stays green throughout, with its letter in ``cur`` (some nets
       show it yellow or red in between), unless the net shows it red or red+yellow in a state where a
       link it conflicts with (``conflicts``) is active: there it keeps the net's letter.
    2. No yellow straight back to green: a yellow run followed by green shows the green before it when
       there was one (the green goes on), and red+yellow ``u`` otherwise (the net's red-amber written as
       ``y``).
    3. No green straight to red: where a link goes from green to a letter that is neither green nor
       yellow, a state is inserted before the change: the state before it with those links yellow (``G``
       shows ``Y``, ``g`` shows ``y``), lasting ``inserted_yellow`` (default ``cfg.yellow_min``).
    4. Every yellow run of a link lasts at least ``cfg.yellow_min``, and every green run that begins and
       ends inside the transition at least ``cfg.min_green``: the last state of a short run is
       lengthened by what is missing (which only lengthens the other links' runs in that state).
    """
    n = len(cur)
    ins_yellow = cfg.yellow_min if inserted_yellow is None else inserted_yellow
    seq = [[list(st), float(d), float(d)] for st, d in states]  # letters, duration shown, the net's duration
    common = [i for i in range(n) if cur[i] in GREEN_CHARS and nxt[i] in GREEN_CHARS]
    conf = [[c == "1" for c in row] for row in conflicts] if conflicts else None
    # 1. links green in both phases stay green
    for letters, _d, _o in seq:
        active = [j for j, c in enumerate(letters) if c in ACTIVE_CHARS]
        for i in common:
            if letters[i] in ACTIVE_CHARS or conf is None or not any(conf[i][j] for j in active):
                letters[i] = cur[i]
    # 2. no yellow back to green
    for i in range(n):
        col = [cur[i]] + [s[0][i] for s in seq] + [nxt[i]]
        p = 1
        while p <= len(seq):
            if col[p] not in YELLOW_CHARS:
                p += 1
                continue
            q = p
            while q + 1 <= len(seq) and col[q + 1] in YELLOW_CHARS:
                q += 1
            if col[q + 1] in GREEN_CHARS:
                fill = col[p - 1] if col[p - 1] in GREEN_CHARS else "u"
                for x in range(p, q + 1):
                    seq[x - 1][0][i] = fill
            p = q + 1
    # 3. a yellow where the net goes from green straight to red
    b = 0
    while b <= len(seq):
        before = list(cur) if b == 0 else seq[b - 1][0]
        after = list(nxt) if b == len(seq) else seq[b][0]
        cleared = [i for i in range(n) if before[i] in GREEN_CHARS and after[i] not in GREEN_CHARS
                   and after[i] not in YELLOW_CHARS]
        if cleared:
            seq.insert(b, [[(_yellow_of(c) if i in cleared else c) for i, c in enumerate(before)], ins_yellow, 0.0])
            b += 1  # the inserted state and the one after it differ only in the cleared links
        b += 1
    # 4. yellow and green runs long enough
    runs: list[tuple[str, int, int, int]] = []  # (kind, link, first, last) as indices into seq
    for i in range(n):
        col = [cur[i]] + [s[0][i] for s in seq] + [nxt[i]]
        p = 1
        while p <= len(seq):
            kind = "yellow" if col[p] in YELLOW_CHARS else "green" if col[p] in GREEN_CHARS else ""
            if not kind or (kind == "green" and col[p - 1] in GREEN_CHARS):  # cur's green goes on
                p += 1
                continue
            chars = YELLOW_CHARS if kind == "yellow" else GREEN_CHARS
            q = p
            while q + 1 <= len(seq) and col[q + 1] in chars:
                q += 1
            if kind == "yellow" or col[q + 1] not in GREEN_CHARS:  # a green going on into nxt is nxt's green
                runs.append((kind, i, p - 1, q - 1))
            p = q + 1
    for kind, _i, first, last in runs:
        need = cfg.yellow_min if kind == "yellow" else cfg.min_green
        got = sum(seq[x][1] for x in range(first, last + 1))
        if got + _EPS < need:
            seq[last][1] += need - got
    grouped: dict[tuple[str, float, float], list[int]] = {}
    for kind, i, first, last in runs:
        net = sum(seq[x][2] for x in range(first, last + 1))
        shown = sum(seq[x][1] for x in range(first, last + 1))
        if shown > net + _EPS:
            grouped.setdefault((kind, round(net, 6), round(shown, 6)), []).append(i)
    changes = [{"what": kind, "links": links, "net": net, "shown": shown}
               for (kind, net, shown), links in grouped.items()]
    return [("".join(letters), d) for letters, d, _o in seq], changes


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
