"""Plans nobody here wrote (SUMO's game scenarios, the RiLSA guideline examples): the net's own states are
compatible, the timer shows the net's transitions with Lintas' minimums kept (never relaxed, lengthened),
and no request sequence makes it unsafe. Plus unit tests of ``net_transition`` on hand-made plans."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from junctions import FOREIGN, check_sequence, foreign_specs, small_spec

from controllers.monitor import ConflictMonitor
from controllers.timing import Timer, TimingConfig, net_transition, transition_segments


@pytest.fixture(scope="module")
def specs():
    return foreign_specs()


def _net_states(spec):
    return [*spec.green_states, *(s for t in spec.net_transitions for s, _ in t)]


def test_the_nets_own_states_are_compatible(specs):
    """Every state of the net's own program (greens and transitions) passes the monitor's conflict rule and
    the independent checker's (a program the city runs is a set of compatible states)."""
    assert {name for name, _ in specs} == {f[0] for f in FOREIGN}
    for name, spec in specs:
        for s in _net_states(spec):
            assert ConflictMonitor(spec).check(s), (name, spec.id, s)
            assert check_sequence(spec, [s]).total == 0, (name, spec.id, s)


def _net_order(spec, cycles: int = 3) -> list[str]:
    tm = Timer(spec)
    out = []
    served = 0
    while served < cycles * spec.n_phases and len(out) < 20000:
        k = tm.phase
        if tm.interval == "green":
            tm.request = spec.net_next[k] if tm.since >= spec.fixed_green[k] else None
        out.append(tm.tick(1.0))
        if tm.interval == "green" and tm.phase != k:
            served += 1
    return out


def test_net_order_is_safe(specs):
    """The net's order (the fixed policy, the local plan) for three cycles: the monitor never latches and
    the checker finds nothing (the plans' 2 s yellows, 1 s green slices and greens ended without yellow
    are shown longer, never shorter)."""
    for name, spec in specs:
        sig = _net_order(spec)
        mon = ConflictMonitor(spec)
        for t, s in enumerate(sig):
            assert mon.check(s), f"{name} {spec.id} t={t}: {mon.fault}"
            mon.shown(s, 1.0)
        rep = check_sequence(spec, sig)
        assert rep.total == 0, f"{name} {spec.id}: {rep}"
        assert len({s for s in sig if s in spec.green_states}) == spec.n_phases


# 60 examples a run (was 150): test_timing.py's random-request property covers the same timer on the real maps'
# junctions with more options drawn, and the soak the whole controller
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), reqs=st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 20)), st.integers(1, 30)),
                                     min_size=1, max_size=30),
       dt=st.sampled_from([1.0, 1.0, 0.5, 0.2]))
def test_random_requests_never_unsafe(specs, data, reqs, dt):
    name, spec = data.draw(st.sampled_from(specs), label="junction")
    spec = msgspec.structs.replace(spec, start_phase=data.draw(st.integers(0, spec.n_phases - 1), label="start"))
    req = [v for v, k in reqs for _ in range(k)]
    tm = Timer(spec, occupied=lambda links: False)
    mon = ConflictMonitor(spec)
    sig = []
    for t in range(int(300 / dt)):
        r = req[t % len(req)]
        tm.request = r if r is None or r < spec.n_phases else None
        s = tm.tick(dt)
        assert mon.check(s), f"{name} {spec.id} t={t * dt:g}: {mon.fault}"
        mon.shown(s, dt)
        sig.append(s)
    rep = check_sequence(spec, sig, dt=dt)
    assert rep.total == 0, f"{name} {spec.id}: {rep}"


# -- net_transition on hand-made plans ----------------------------------------------------------------------
CFG = TimingConfig()


def test_green_straight_to_red_gets_a_yellow_inserted():
    """fkk_in-like: the net's transition takes link 1 from green straight to red; Lintas inserts the state
    before with link 1 yellow, for the minimum yellow, and reports it."""
    states, changes = net_transition("GGrr", [("yrrr", 3.0), ("rrrr", 2.0)], "rrGG", CFG)
    assert states == [("GYrr", 3.0), ("yrrr", 3.0), ("rrrr", 2.0)]
    assert {"what": "yellow", "links": [1], "net": 0.0, "shown": 3.0} in changes


def test_each_links_yellow_is_stretched_not_the_transitions_sum():
    """Two yellow states of 1 s and 2 s: link 0 is yellow in both (3 s, fine), link 1 only in the last
    (2 s): that state is lengthened to 3 s."""
    states, changes = net_transition("GGrr", [("yGrr", 1.0), ("yyrr", 2.0), ("rrrr", 1.0)], "rrGG", CFG)
    assert states == [("yGrr", 1.0), ("yyrr", 3.0), ("rrrr", 1.0)]
    assert changes == [{"what": "yellow", "links": [0], "net": 3.0, "shown": 4.0},
                       {"what": "yellow", "links": [1], "net": 2.0, "shown": 3.0}]


def test_no_yellow_back_to_green():
    """A yellow followed by green: the green goes on where there was one before (a link green in both
    phases, or a turning arrow green, yellow, green again), and a red-amber written as 'y' shows 'u'."""
    states, _ = net_transition("GGrr", [("yyrr", 3.0)], "GrGG", CFG)  # link 0 green in both phases
    assert states == [("Gyrr", 3.0)]
    states, changes = net_transition("GrGr", [("Gryr", 3.0), ("yryr", 1.0), ("Grrr", 2.0)], "rGrG", CFG)
    assert states == [("Gryr", 3.0), ("Gryr", 1.0), ("Grrr", 2.0), ("Yrrr", 3.0)]  # then its own yellow
    assert changes == [{"what": "yellow", "links": [0], "net": 0.0, "shown": 3.0}]
    states, _ = net_transition("GGrr", [("yyyr", 3.0)], "rrGG", CFG)  # link 2: red, 'y', then green
    assert states == [("yyur", 3.0)]


def test_a_green_born_and_ended_in_the_transition_lasts_min_green():
    states, changes = net_transition("Grrr", [("yGrr", 3.0), ("ryrr", 3.0)], "rrGr", CFG)
    assert states == [("yGrr", 5.0), ("ryrr", 3.0)]
    assert {"what": "green", "links": [1], "net": 3.0, "shown": 5.0} in changes
    assert {"what": "yellow", "links": [0], "net": 3.0, "shown": 5.0} in changes  # lengthened with it


def test_a_link_green_in_both_phases_keeps_the_nets_red_next_to_a_foe():
    """Link 0 is green before and after; the net shows it red while its foe, link 2, starts (``g``): it
    is not kept green there (that state would be a conflict), it clears with a yellow and comes back."""
    conflicts = ["0010", "0000", "1000", "0000"]
    states, _ = net_transition("GGrr", [("rygr", 3.0)], "GrrG", CFG, conflicts=conflicts)
    assert states == [("YGrr", 3.0), ("rygr", 5.0), ("ryyr", 3.0)]
    states, _ = net_transition("GGrr", [("rygr", 3.0)], "GrrG", CFG)  # no conflict known: kept green
    assert states == [("Gygr", 5.0), ("Gyyr", 3.0)]


def test_the_timer_uses_it_for_the_nets_order_only():
    spec = small_spec(net_transitions=[[("yyrr", 2.0)], [("ryrr", 4.0), ("rrrr", 2.0)], [("rryy", 3.0)]])
    segs = transition_segments(spec, 0, 1, CFG)
    assert [(s.state, s.duration) for s in segs] == [("ygrr", 3.0)]  # link 1 green in both: kept
    segs = transition_segments(spec, 0, 2, CFG)  # out of order: built yellow and all-red
    assert [s.state for s in segs] == ["Yyrr", "rrrr"] and segs[1].extendable
