"""Helpers for the controller tests: junction specs (hand-built and compiled from real nets) and an
independent signal-sequence checker.

The checker deliberately shares no code with ``controllers/monitor.py``: it reads the conflict and
yield matrices straight from ``spec.conflicts`` / ``spec.yields`` and works on whole runs of letters per
link, after the fact. The rule (docs/safety.md): two active links conflict in a state when
``conflicts[a][b] == '1'`` and neither gives way (a gives way to b when it shows ``g``, ``y`` or ``o`` and
``yields[a][b] == '1'``); yellow straight to green is a violation unless the two states are a pair of
``spec.net_yellow_to_green`` (then it is no clearance, and no short yellow either).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from engine.protocol.junction import JunctionSpec
from simulation.experiments.catalog import DEMO, RESCO_DIR, RESCO_MAPS

DEMO_DIR = DEMO

GREEN = frozenset("Gg")
YELLOW = frozenset("yY")
ACTIVE = frozenset("GgyYoO")
MINOR = frozenset("gyo")
SIGNAL_LETTERS = frozenset("GgyYrRsuoO")

# violation classes of the checker
CONFLICT = "conflict"
SHORT_YELLOW = "short-yellow"
NO_YELLOW = "green-to-red-without-yellow"
SHORT_GREEN = "short-green"
YELLOW_TO_GREEN = "yellow-to-green"
BAD_STATE = "bad-state"


# -- junction specs -----------------------------------------------------------------------------------
def small_spec(**overrides) -> JunctionSpec:
    """A hand-built 4-link junction.

    Links: 0 north-south through, 1 north-south left, 2 east-west through, 3 east-west left.
    Phases: 0 NS through with permissive left ('Ggrr'), 1 NS protected left ('rGrr'),
    2 EW through and permissive left ('rrGg'). Ring 0 -> 1 -> 2 -> 0.
    Net transitions: 0->1 yellow 2 s (shorter than 3 s: the timer stretches it) then an all-red-ish
    1 s that keeps the left green; 1->2 yellow 4 s and all-red 2 s; 2->0 yellow 3 s.
    """
    kw = {
        "id": "J",
        "n_links": 4,
        "green_states": ["Ggrr", "rGrr", "rrGg"],
        "net_next": [1, 2, 0],
        "fixed_green": [10.0, 6.0, 12.0],
        "min_green": [5.0, 5.0, 5.0],
        "max_green": [20.0, 10.0, 30.0],
        "yellow": [3.0, 4.0, 3.0],
        "allred": [1.0, 2.0, 0.0],
        "net_transitions": [
            [("ygrr", 2.0), ("rgrr", 1.0)],
            [("ryrr", 4.0), ("rrrr", 2.0)],
            [("rryy", 3.0)],
        ],
        # NS links conflict with EW links; links of one road do not conflict with each other
        "conflicts": ["0011", "0011", "1100", "1100"],
        "link_in_lane": ["n_0", "n_1", "e_0", "e_1"],
        "link_out_lane": ["s_0", "w_0", "w_0", "s_0"],
        "link_via": [":J_0_0", ":J_1_0", ":J_2_0", ":J_3_0"],
    }
    kw.update(overrides)
    return JunctionSpec(**kw)


@cache
def _compile(path: str) -> tuple[JunctionSpec, ...]:
    from simulation.sumo.netcompile import compile_network
    from simulation.sumo.scenario import load_scenario

    return tuple(compile_network(load_scenario(Path(path))).junctions)


def demo_specs() -> list[JunctionSpec]:
    """Every junction of the demo city (bunda_kota)."""
    return list(_compile(str(DEMO_DIR)))


def resco_specs(name: str) -> list[JunctionSpec]:
    """Every junction of one RESCO map; skips the test when ../shared/scenarios/resco is missing."""
    if not (RESCO_DIR / name).is_dir():
        pytest.skip(f"RESCO scenario {name} not found under {RESCO_DIR}")
    return list(_compile(str(RESCO_DIR / name)))


#: Public plans nobody here wrote, shipped with SUMO's wheel: (name, path under sumo's tools, net, additional
#: files with the programs SUMO runs). A 46-phase German plan with pedestrians and bicycles (fokr_bs), a
#: hand-made plan that goes from green straight to red over a net with 17 programs for one light (fkk_in),
#: the RiLSA guideline examples (German plans, with 'o' links), and the game's crossing.
FOREIGN = (
    ("fokr_bs", "game/fokr_bs_demo", "fokr_bs.net.xml.gz", ("signalPlan.add.xml",)),
    ("fkk_in", "game/fkk_in", "ingolstadt.net.xml.gz", ("fkk_in.tls.add.xml",)),
    ("cross", "game/cross", "cross.net.xml", ("cross.tls.add.xml",)),
    *((f"rilsa{i}", f"sumolib/scenario/scenarios/RealWorld/RiLSA_example{i}", f"rilsa{i}.net.xml",
       (f"rilsa{i}_tls.add.xml",)) for i in (1, 2, 3, 4)),
)


@cache
def _compile_foreign(name: str) -> tuple[JunctionSpec, ...]:
    import sumo

    from simulation.sumo.netcompile import compile_network
    from simulation.sumo.scenario import Scenario

    entry = next(f for f in FOREIGN if f[0] == name)
    folder = Path(sumo.__file__).parent / "tools" / entry[1]
    if not (folder / entry[2]).is_file():
        pytest.skip(f"{folder / entry[2]} not found")
    sc = Scenario(name, folder / f"{name}.sumocfg", folder / entry[2], [], [folder / a for a in entry[3]], 0.0, 3600.0)
    return tuple(compile_network(sc).junctions)


def foreign_specs() -> list[tuple[str, JunctionSpec]]:
    """(plan name, spec) of every junction of :data:`FOREIGN` (skips the test when the wheel lacks them)."""
    return [(name, s) for name, *_ in FOREIGN for s in _compile_foreign(name)]


def all_real_specs() -> list[tuple[str, JunctionSpec]]:
    """(map name, spec) for the demo city and, where present, every RESCO map (never skips)."""
    out = [("bunda_kota", s) for s in demo_specs()]
    for name in RESCO_MAPS:
        if (RESCO_DIR / name).is_dir():
            out.extend((name, s) for s in _compile(str(RESCO_DIR / name)))
    return out


# -- independent checker -------------------------------------------------------------------------------
def _cat(c: str) -> str:
    if c in GREEN:
        return "G"
    if c in YELLOW:
        return "Y"
    return "R"


@dataclass
class Report:
    counts: Counter = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)

    def add(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.details) < 20:
            self.details.append(f"{kind}: {detail}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        return f"{dict(self.counts)}\n" + "\n".join(self.details)


def check_sequence(
    spec: JunctionSpec,
    signals: list[str],
    *,
    dt: float = 1.0,
    min_green: float = 5.0,
    yellow_min: float = 3.0,
) -> Report:
    """Check the signal strings shown on consecutive ticks of ``dt`` seconds.

    Counts: pairs of conflicting links active (green or yellow) together, yellows shorter than
    ``yellow_min``, links going from green to anything but yellow, greens shorter than
    ``min_green`` (a run that ends; the run under way at t=0 may be partial and is skipped) and
    yellow followed by green. Malformed strings count as ``bad-state``.
    """
    rep = Report()
    n = spec.n_links
    conf = [[spec.conflicts[a][b] == "1" for b in range(n)] for a in range(n)]
    ylds = [[bool(spec.yields) and spec.yields[a][b] == "1" for b in range(n)] for a in range(n)]
    net_pairs = {(a, b) for a, b in spec.net_yellow_to_green}
    for a in range(n):  # the matrix itself must be symmetric with an empty diagonal
        assert not conf[a][a], f"link {a} conflicts with itself"
        for b in range(n):
            assert conf[a][b] == conf[b][a], f"conflict matrix not symmetric at {a},{b}"
    cat = [None] * n  # current category per link
    start = [0] * n  # tick at which the current run began
    prev = None
    for t, s in enumerate(signals):
        if len(s) != n or any(c not in SIGNAL_LETTERS for c in s):
            rep.add(BAD_STATE, f"t={t}: {s!r}")
            continue
        active = [i for i, c in enumerate(s) if c in ACTIVE]
        for x, a in enumerate(active):
            for b in active[x + 1 :]:
                gives_way = (s[a] in MINOR and ylds[a][b]) or (s[b] in MINOR and ylds[b][a])
                if conf[a][b] and not gives_way:
                    rep.add(CONFLICT, f"t={t}: links {a} and {b} in {s!r}")
        net_pair = (prev, s) in net_pairs
        for i, c in enumerate(s):
            new = _cat(c)
            old = cat[i]
            if old == new:
                continue
            if old is not None:
                run = (t - start[i]) * dt
                first = start[i] == 0
                if old == "G":
                    if new != "Y":
                        rep.add(NO_YELLOW, f"t={t}: link {i} green -> {c!r}")
                    if not first and run < min_green - 1e-9:
                        rep.add(SHORT_GREEN, f"t={t}: link {i} green {run:g} s")
                elif old == "Y" and not (new == "G" and net_pair):
                    if not first and run < yellow_min - 1e-9:
                        rep.add(SHORT_YELLOW, f"t={t}: link {i} yellow {run:g} s")
                    if new == "G":
                        rep.add(YELLOW_TO_GREEN, f"t={t}: link {i} yellow -> green")
            cat[i] = new
            start[i] = t
        prev = s
    return rep


def runs(signals: list[str], state: str) -> list[tuple[int, int]]:
    """(start tick, length) of every maximal run of ``state`` in ``signals``."""
    out = []
    i = 0
    while i < len(signals):
        if signals[i] == state:
            j = i
            while j < len(signals) and signals[j] == state:
                j += 1
            out.append((i, j - i))
            i = j
        else:
            i += 1
    return out


class RecordingHeads:
    """A head driver that records every signal shown; ``occupied`` answers from a settable value
    (a bool, or a callable taking the list of links)."""

    def __init__(self, occupied=False) -> None:
        self.shown: list[str] = []
        self.occupied_answer = occupied
        self.occupied_calls: list[list[int]] = []

    def show(self, signal: str) -> None:
        self.shown.append(signal)

    def occupied(self, links: list[int]) -> bool:
        self.occupied_calls.append(list(links))
        a = self.occupied_answer
        return bool(a(links) if callable(a) else a)
