"""controllers/monitor.py: the conflict monitor catches every violation class on hand-made
sequences, latches until reset, and its failsafe is all red. The independent checker of
tests/controllers/junctions.py must flag the same sequences (so the two cross-check each other)."""

from __future__ import annotations

import pytest
from junctions import (
    CONFLICT,
    NO_YELLOW,
    SHORT_GREEN,
    SHORT_YELLOW,
    YELLOW_TO_GREEN,
    check_sequence,
    demo_specs,
    small_spec,
)

from controllers.monitor import ConflictMonitor

G0 = "Ggrr"  # phase 0 of the small junction
Y0 = "yyrr"
R = "rrrr"
G2 = "rrGg"


def feed(mon: ConflictMonitor, seq: list[str], dt: float = 1.0) -> int | None:
    """Show ``seq`` one state per tick; returns the index of the first refused state (or None)."""
    first = None
    for i, s in enumerate(seq):
        if mon.check(s):
            mon.shown(s, dt)
        else:
            if first is None:
                first = i
            mon.shown(mon.failsafe_state(), dt)
    return first


VIOLATIONS = {
    # name: (sequence, index of the bad state, checker class)
    "conflicting-greens": ([G0] * 6 + ["GgGr"], 6, CONFLICT),
    "conflicting-green-and-yellow": ([G0] * 6 + ["ygGr"], 6, CONFLICT),
    "conflict-at-first-state": (["rGGr"], 0, CONFLICT),
    "yellow-cut-short": ([G0] * 6 + [Y0] * 2 + [R], 8, SHORT_YELLOW),
    "yellow-1s": ([G0] * 6 + [Y0] + [G2], 7, SHORT_YELLOW),
    "green-to-red": ([G0] * 6 + [R], 6, NO_YELLOW),
    "green-to-red-one-link": ([G0] * 6 + ["Grrr"], 6, NO_YELLOW),
    "short-green": ([R] * 2 + [G0] * 3 + [Y0] * 3 + [R], 5, SHORT_GREEN),
    "short-green-4.9s": ([R] + [G0] * 4 + [Y0] * 3, 5, SHORT_GREEN),
    "yellow-to-green": ([G0] * 6 + [Y0] * 3 + [G0], 9, YELLOW_TO_GREEN),
    "yellow-to-green-one-link": ([G0] * 6 + ["yGrr"] * 3 + ["GGrr"], 9, YELLOW_TO_GREEN),
}


@pytest.mark.parametrize("name", list(VIOLATIONS))
def test_monitor_catches_and_latches(name):
    seq, bad, kind = VIOLATIONS[name]
    spec = small_spec()
    mon = ConflictMonitor(spec)
    assert feed(mon, seq) == bad
    assert mon.fault and mon.faults == 1
    # latched: a perfectly good state is refused too, and the fault does not change
    why = mon.fault
    for s in (R, R, R):
        assert not mon.check(s)
    assert mon.fault == why and mon.faults == 1
    # the independent checker flags the same sequence with the same class
    rep = check_sequence(spec, seq)
    assert rep.counts[kind] >= 1, str(rep)


def test_short_green_flagged_by_monitor_even_for_first_green():
    mon = ConflictMonitor(small_spec())
    assert feed(mon, [G0] * 2 + [Y0]) == 2


def test_reset_clears_the_latch():
    spec = small_spec()
    mon = ConflictMonitor(spec)
    assert feed(mon, [G0] * 6 + ["GgGr"]) == 6
    assert not mon.check(R)
    mon.reset()
    assert mon.fault is None
    assert feed(mon, [R] * 2 + [G2] * 6 + ["rryy"] * 3 + [R]) is None
    assert mon.faults == 1


def test_failsafe_state_is_all_red(demo):
    for spec in [small_spec(), *demo]:
        mon = ConflictMonitor(spec)
        fs = mon.failsafe_state()
        assert fs == "r" * spec.n_links
        assert mon.check(fs)


def test_valid_sequences_pass():
    spec = small_spec()
    mon = ConflictMonitor(spec)
    seq = (
        [G0] * 5  # exactly min green
        + ["ygrr"] * 3  # exactly yellow min, permissive left stays
        + ["rgrr"]
        + ["rGrr"] * 5  # g -> G is not the end of a green
        + ["ryrr"] * 4
        + [R] * 2
        + [G2] * 7
        + ["rryy"] * 3
        + [G0] * 5
    )
    assert feed(mon, seq) is None and mon.fault is None
    assert check_sequence(spec, seq).total == 0


def test_wrong_length_state_refused():
    mon = ConflictMonitor(small_spec())
    assert not mon.check("Ggr")
    assert "length" in mon.fault


def test_monitor_uses_configured_minimums():
    spec = small_spec()
    mon = ConflictMonitor(spec, min_green=7.0, yellow_min=4.0)
    assert feed(mon, [G0] * 6 + [Y0]) == 6
    mon = ConflictMonitor(spec, min_green=7.0, yellow_min=4.0)
    assert feed(mon, [G0] * 7 + [Y0] * 3 + [R]) == 10
    mon = ConflictMonitor(spec, min_green=7.0, yellow_min=4.0)
    assert feed(mon, [G0] * 7 + [Y0] * 4 + [R]) is None


def test_monitor_with_fractional_ticks():
    spec = small_spec()
    mon = ConflictMonitor(spec)
    assert feed(mon, [G0] * 10 + [Y0] * 6 + [R], dt=0.5) is None
    mon = ConflictMonitor(spec)
    assert feed(mon, [G0] * 9 + [Y0], dt=0.5) == 9  # 4.5 s green


@pytest.fixture(scope="module")
def demo():
    return demo_specs()


def test_conflicting_pairs_of_real_junctions_are_caught(demo):
    """Every conflicting pair of the demo junctions shown together (green/green, green/yellow,
    yellow/yellow) latches the monitor and is counted by the checker; the net's own green phases
    never conflict."""
    for spec in demo:
        conf = spec.conflict_matrix()
        pairs = [(a, b) for a in range(spec.n_links) for b in range(a + 1, spec.n_links) if conf[a, b]]
        assert pairs, spec.id
        for a, b in pairs:
            for ca, cb in (("G", "G"), ("g", "y"), ("y", "y")):
                s = ["r"] * spec.n_links
                s[a], s[b] = ca, cb
                s = "".join(s)
                mon = ConflictMonitor(spec)
                assert not mon.check(s), (spec.id, a, b, s)
                assert check_sequence(spec, [s]).counts[CONFLICT] == 1
        for g in spec.green_states:
            assert ConflictMonitor(spec).check(g)
            assert check_sequence(spec, [g]).total == 0
