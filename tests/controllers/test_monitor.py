"""controllers/monitor.py: the conflict monitor catches every violation class on hand-made
sequences, latches until reset, and its failsafe is all red. The independent checker of
tests/controllers/junctions.py must flag the same sequences (so the two cross-check each other)."""

from __future__ import annotations

import msgspec
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
    """Every conflicting pair of the demo junctions shown together latches the monitor and is counted by
    the checker when neither link gives way (both major letters, or a minor one that does not yield to
    the other); a minor letter that yields to the other (SUMO's response matrix) is no conflict. The net's
    own green phases never conflict."""
    for spec in demo:
        conf = spec.conflict_matrix()
        ylds = spec.yield_matrix()
        assert ylds.any(), spec.id  # compiled with the junction's right of way
        pairs = [(a, b) for a in range(spec.n_links) for b in range(a + 1, spec.n_links) if conf[a, b]]
        assert pairs, spec.id
        for a, b in pairs:
            for ca, cb in (("G", "G"), ("Y", "G"), ("Y", "Y"), ("g", "G"), ("G", "g"), ("g", "y"), ("y", "y")):
                s = ["r"] * spec.n_links
                s[a], s[b] = ca, cb
                s = "".join(s)
                gives_way = (ca in "gy" and ylds[a, b]) or (cb in "gy" and ylds[b, a])
                mon = ConflictMonitor(spec)
                assert mon.check(s) == gives_way, (spec.id, a, b, s)
                assert check_sequence(spec, [s]).counts[CONFLICT] == (0 if gives_way else 1)
        for g in spec.green_states:
            assert ConflictMonitor(spec).check(g)
            assert check_sequence(spec, [g]).total == 0


def test_a_minor_link_that_yields_is_no_conflict():
    """Links 0 (through, north) and 2 (through, east) conflict; link 1 (left, north) yields to link 2 and
    link 3 (left, east) yields to link 0, as SUMO's response matrix says for permissive turns."""
    spec = small_spec(yields=["0000", "0010", "0000", "1000"])
    for state, ok in (("GgGr", False),  # 0 and 2 both major
                      ("rgGr", True),   # 1 minor, yields to 2
                      ("rGGr", False),  # 1 major: it does not give way
                      ("ryGr", True),   # a minor yellow gives way too
                      ("rYGr", False),  # a major yellow does not
                      ("Grrg", True),   # 3 minor, yields to 0
                      ("rgrg", False),  # 1 and 3 conflict and neither yields to the other
                      ("Grgr", False)):  # 0 and 2 both active, 2 minor but yields to nobody
        assert ConflictMonitor(spec).check(state) == ok, state
        assert (check_sequence(spec, [state]).counts[CONFLICT] == 0) == ok, state
    # a spec without yields (compiled before it existed): every conflicting pair is a conflict
    for state in ("rgGr", "Grrg"):
        assert not ConflictMonitor(small_spec()).check(state)


def test_net_yellow_to_green_only_between_the_nets_own_states():
    """A link that the net's own program takes from yellow straight to green (German turning arrows, a
    red-amber written as 'y') does not latch when the two states are the net's own pair; anywhere else
    yellow back to green latches."""
    spec = small_spec(net_yellow_to_green=[("ryrr", "rGrr")])
    seq = [G0] * 6 + ["ygrr"] * 3 + ["ryrr"] + ["rGrr"] * 5
    mon = ConflictMonitor(spec)
    assert feed(mon, seq) is None, mon.fault  # link 1: 'y' for 1 s, then green: no clearance, no fault
    assert check_sequence(spec, seq).total == 0
    other = [G0] * 6 + ["yyrr"] * 3 + ["rGrr"]  # link 1 from yellow to green, not between the net's pair
    assert feed(ConflictMonitor(spec), other) == 9
    assert check_sequence(spec, other).counts[YELLOW_TO_GREEN] == 1
    assert feed(ConflictMonitor(small_spec()), seq) == 10  # a spec without the pair


def test_yellow_letters_are_one_yellow():
    """'y' -> 'Y' does not end a yellow (nor cut it short)."""
    spec = small_spec()
    assert feed(ConflictMonitor(spec), [G0] * 6 + ["yyrr"] + ["YYrr"] * 2 + [R]) is None
    assert feed(ConflictMonitor(spec), [G0] * 6 + ["yyrr"] + ["YYrr"] + [R]) == 8


def test_a_spec_compiled_before_yields_existed_still_loads(tmp_path):
    """JSON without ``yields`` and ``net_yellow_to_green`` (older compiles) loads; nobody yields then."""
    import json

    from engine.protocol.junction import read_spec

    raw = json.loads(msgspec.json.encode(small_spec(yields=["0000", "0010", "0000", "0000"])))
    del raw["yields"], raw["net_yellow_to_green"]
    (tmp_path / "J.json").write_text(json.dumps(raw))
    spec = read_spec(tmp_path / "J.json")
    assert spec.yields == [] and spec.net_yellow_to_green == [] and not spec.yield_matrix().any()
    assert not ConflictMonitor(spec).check("rgGr")
