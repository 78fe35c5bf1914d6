"""Conflict monitor: an independent check of every signal state before it reaches the heads.

It shares no code with the timer (controllers/timing.py). It keeps, per link, what was shown and
for how long, and rejects a state that would
- show two links active (green ``G g``, yellow ``y Y``, off ``o O``) together that conflict
  (``spec.conflicts``) while neither gives way to the other: a link gives way when it shows a minor
  letter (``g y o``) and yields to the other (``spec.yields``, the junction's right of way);
- end a link's yellow before ``yellow_min``,
- take a link from green straight to red (no yellow),
- end a link's green before ``min_green``,
- take a link from yellow straight back to green, unless the previous state and this one are a pair
  the net's own program shows (``spec.net_yellow_to_green``).
This is the compatibility rule of ``engine/protocol/junction.py`` and docs/safety.md.
On a violation it latches: ``check`` returns False for this and every later state until ``reset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.protocol.junction import JunctionSpec

_GREEN = frozenset("Gg")
_YELLOW = frozenset("yY")
_ACTIVE = frozenset("GgyYoO")
_MINOR = frozenset("gyo")  # a link showing one of these gives way to the links it yields to
_EPS = 1e-6


@dataclass
class ConflictMonitor:
    spec: JunctionSpec
    min_green: float = 5.0
    yellow_min: float = 3.0
    fault: str | None = None
    faults: int = 0
    _conf: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._conf = self.spec.conflict_matrix()
        self._yields = self.spec.yield_matrix()
        self._net_y2g = {(a, b) for a, b in self.spec.net_yellow_to_green}
        n = self.spec.n_links
        self._prev = ["r"] * n
        self._run = [1e9] * n  # seconds the current letter of each link has been shown
        self._conflict_cache: dict[str, str] = {}

    def _violation(self, state: str) -> str | None:
        if len(state) != self.spec.n_links:
            return f"state length {len(state)} != {self.spec.n_links} links"
        conflict = self._conflict_cache.get(state)
        if conflict is None:
            if len(self._conflict_cache) > 4096:
                self._conflict_cache.clear()
            conflict = self._conflict_cache[state] = self._conflict(state)
        if conflict:
            return conflict
        return self._transition_violation(state)

    def _conflict(self, state: str) -> str:
        """'' when no two conflicting links are active together with neither giving way."""
        active = np.fromiter((c in _ACTIVE for c in state), dtype=np.bool_, count=len(state))
        if active.any():
            idx = np.flatnonzero(active)
            sub = self._conf[np.ix_(idx, idx)]
            if sub.any():
                minor = np.fromiter((state[i] in _MINOR for i in idx), dtype=np.bool_, count=len(idx))
                gives_way = minor[:, None] & self._yields[np.ix_(idx, idx)]  # [a, b]: a gives way to b
                bad = sub & ~gives_way & ~gives_way.T
                if bad.any():
                    a, b = np.argwhere(bad)[0]
                    return f"conflicting links {idx[a]} and {idx[b]} both active in {state!r}"
        return ""

    def _transition_violation(self, state: str) -> str | None:
        net_pair: bool | None = None  # whether (previous state, state) is one of the net's own pairs
        for i, (old, new) in enumerate(zip(self._prev, state)):
            if old == new or (old in _GREEN and new in _GREEN) or (old in _YELLOW and new in _YELLOW):
                continue
            run = self._run[i]
            if old in _GREEN and new not in _YELLOW:
                return f"link {i} from green to {new!r} without yellow"
            if old in _GREEN and run + _EPS < self.min_green:
                return f"link {i} green ended after {run:g} s < minimum {self.min_green:g} s"
            if old in _YELLOW and new in _GREEN:
                if net_pair is None:
                    net_pair = bool(self._net_y2g) and ("".join(self._prev), state) in self._net_y2g
                if net_pair:  # the net's own program goes on to green here: no clearance, no fault
                    continue
                return f"link {i} from yellow back to green"
            if old in _YELLOW and run + _EPS < self.yellow_min:
                return f"link {i} yellow cut to {run:g} s < {self.yellow_min:g} s"
        return None

    def check(self, state: str) -> bool:
        """True when ``state`` may be shown. Call :meth:`shown` once it is."""
        if self.fault is not None:
            return False
        why = self._violation(state)
        if why is not None:
            self.fault = why
            self.faults += 1
            return False
        return True

    def shown(self, state: str, dt: float) -> None:
        """Record that ``state`` was shown for ``dt`` seconds."""
        for i, (old, new) in enumerate(zip(self._prev, state)):
            same = old == new or (old in _GREEN and new in _GREEN) or (old in _YELLOW and new in _YELLOW)
            self._run[i] = self._run[i] + dt if same else dt
        self._prev = list(state)

    def reset(self) -> None:
        self.fault = None
        n = self.spec.n_links
        self._run = [1e9] * n

    def failsafe_state(self) -> str:
        return "r" * self.spec.n_links
