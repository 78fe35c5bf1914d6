"""controllers/timing.py: the Timer's interval rules, and a property over every real junction that
no request sequence can make it show an unsafe signal sequence."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from junctions import (
    all_real_specs,
    check_sequence,
    demo_specs,
    resco_specs,
    runs,
    small_spec,
)

from controllers.monitor import ConflictMonitor
from controllers.timing import Timer, TimingConfig


def drive(timer: Timer, n: int, request=None) -> list[str]:
    """Tick ``n`` times (dt 1 s). ``request``: None, a phase, or a callable (tick, timer) -> phase|None
    set before each tick (a callable returning ... leaves the request as it is)."""
    out = []
    for t in range(n):
        if callable(request):
            r = request(t, timer)
            if r is not ...:
                timer.request = r
        elif t == 0:
            timer.request = request
        out.append(timer.tick(1.0))
    return out


def no_violations(spec, signals):
    rep = check_sequence(spec, signals)
    assert rep.total == 0, str(rep)
    mon = ConflictMonitor(spec)
    for t, s in enumerate(signals):
        assert mon.check(s), f"monitor latched at t={t}: {mon.fault}"
        mon.shown(s, 1.0)


# -- minimum green ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", [1, 2])
def test_green_lasts_min_green_even_when_asked_at_once(target):
    spec = small_spec()
    tm = Timer(spec)
    sig = drive(tm, 12, request=target)
    assert sig[:5] == ["Ggrr"] * 5  # 5 s of green although the request came at since=0
    assert sig[5] != "Ggrr"
    no_violations(spec, sig)


def test_min_green_of_spec_wins_when_longer():
    spec = small_spec(min_green=[8.0, 5.0, 5.0])
    sig = drive(Timer(spec), 15, request=2)
    assert sig[:8] == ["Ggrr"] * 8 and sig[8] != "Ggrr"


def test_min_green_counts_from_the_start_of_each_green():
    spec = small_spec()
    tm = Timer(spec)
    sig = drive(tm, 60, request=lambda t, tm: 2 if tm.phase == 0 else 0)
    greens = [ln for st_, ln in runs(sig, "rrGg")] + [ln for st_, ln in runs(sig, "Ggrr")[1:-1]]
    assert greens and all(ln == 5 for ln in greens), greens
    no_violations(spec, sig)


@pytest.mark.parametrize("offset", [1.0, 3.0, 4.5])
def test_start_offset_does_not_shorten_the_first_green(offset):
    """A junction that starts part-way into its green (start_offset) still shows min green before
    leaving it: the monitor has only seen what was shown, and would latch otherwise."""
    spec = small_spec(start_offset=offset)
    sig = drive(Timer(spec), 12, request=2)
    assert sig[:5] == ["Ggrr"] * 5 and sig[5] == "Yyrr"
    no_violations(spec, sig)


def test_start_offset_counts_for_max_green():
    spec = small_spec(start_offset=12.0)
    sig = drive(Timer(spec), 12)
    assert sig[:8] == ["Ggrr"] * 8 and sig[8] == "ygrr"  # max 20 s of program time


def test_can_end_green():
    tm = Timer(small_spec())
    for _ in range(5):
        assert not tm.can_end_green()
        tm.tick(1.0)
    assert tm.can_end_green()


# -- yellow and all-red ------------------------------------------------------------------------------------
def test_net_order_transition_shows_net_states_yellow_stretched_to_yellow_min():
    spec = small_spec()
    sig = drive(Timer(spec), 5 + 3 + 1 + 2, request=1)
    # the net's 'ygrr' lasts 2 s: stretched to 3 s; then its 1 s 'rgrr'; then phase 1
    assert sig == ["Ggrr"] * 5 + ["ygrr"] * 3 + ["rgrr"] + ["rGrr"] * 2


def test_net_order_transition_keeps_net_yellow_when_longer_and_all_red_in_full():
    spec = small_spec()
    tm = Timer(spec, TimingConfig())
    sig = drive(
        tm, 5 + 3 + 1 + 5 + 4 + 2 + 2, request=lambda t, tm: 1 if t == 0 else (2 if tm.phase == 1 else ...)
    )
    assert (
        sig
        == ["Ggrr"] * 5 + ["ygrr"] * 3 + ["rgrr"] + ["rGrr"] * 5 + ["ryrr"] * 4 + ["rrrr"] * 2 + ["rrGg"] * 2
    )
    no_violations(spec, sig)


def test_net_yellow_longer_than_three_seconds_on_real_junction():
    spec = resco_specs("cologne1")[0]
    assert spec.yellow[0] == 5.0
    tm = Timer(spec)
    sig = drive(tm, 5 + 5 + 2, request=spec.net_next[0])
    ((st_, ln),) = runs(sig, spec.net_transitions[0][0][0])
    assert (st_, ln) == (5, 5)
    # out of order (0 -> 2): yellow from the transition, at least the net's 5 s
    tm = Timer(spec)
    sig = drive(tm, 5 + 5 + 1 + 2, request=2)
    yel = sig[5]
    assert set(yel) <= set("GgyYr") and "Y" in yel
    assert sig[5:10] == [yel] * 5 and sig[10] != yel
    no_violations(spec, sig)


def test_out_of_order_yellow_built_from_transition_and_all_red():
    spec = small_spec(yellow=[4.0, 4.0, 3.0])
    cfg = TimingConfig(allred_out_of_order=2.0)
    tm = Timer(spec, cfg)
    sig = drive(tm, 5 + 4 + 2 + 2, request=2)  # 0 -> 2 is not the net's next phase
    # links green now and not in the target -> 'Y' ('G') / 'y' ('g'); others 'r'; yellow = net's 4 s (> 3 s)
    assert sig == ["Ggrr"] * 5 + ["Yyrr"] * 4 + ["rrrr"] * 2 + ["rrGg"] * 2
    no_violations(spec, sig)


def test_out_of_order_keeps_letter_of_links_green_in_both():
    # 1 ('rGrr') -> 0 ('Ggrr'): link 1 is green in both: no yellow at all, all-red keeps it green
    spec = small_spec()
    tm = Timer(spec)
    sig = drive(
        tm, 60, request=lambda t, tm: 1 if tm.phase == 0 and t < 20 else (0 if tm.phase == 1 else ...)
    )
    i = sig.index("rGrr")
    j = i + sig[i:].index("Ggrr")
    between = sig[i:j]
    assert set(between) == {"rGrr"}  # the all-red state of this transition keeps link 1's 'G'
    no_violations(spec, sig)


def test_out_of_order_with_common_links_on_real_junction():
    """cologne1 phase 2 -> 0 is out of order; links green in both keep their letter in the yellow."""
    spec = resco_specs("cologne1")[0]
    cur, nxt = spec.green_states[2], spec.green_states[0]
    tm = Timer(spec)
    sig = drive(
        tm, 100, request=lambda t, tm: 2 if tm.phase == 0 and t < 10 else (0 if tm.phase == 2 else ...)
    )
    k = sig.index(cur)
    k += sig[k:].index(next(s for s in sig[k:] if s != cur))
    yel = sig[k]
    for c, n, y in zip(cur, nxt, yel):
        if c in "Gg" and n not in "Gg":
            assert y == ("Y" if c == "G" else "y")
        elif c in "Gg":
            assert y == c
        else:
            assert y == "r"
    no_violations(spec, sig)


def test_net_transition_never_shows_yellow_then_green_for_links_green_in_both():
    """Some nets (ingolstadt, cologne3) show a link yellow between two phases that both serve it;
    the timer must keep it green (yellow back to green is not allowed)."""
    spec = small_spec(net_transitions=[[("yyrr", 3.0)], [("ryrr", 4.0), ("rrrr", 2.0)], [("rryy", 3.0)]])
    sig = drive(Timer(spec), 12, request=1)
    assert sig[5:8] == ["yGrr"] * 3 or sig[5:8] == ["ygrr"] * 3
    no_violations(spec, sig)


def test_all_red_extended_while_occupied_up_to_clearance_max():
    spec = small_spec()
    calls = []

    def occupied(links):
        calls.append(list(links))
        return True

    cfg = TimingConfig(clearance_max=8.0)
    sig = drive(Timer(spec, cfg, occupied=occupied), 5 + 3 + 1 + 8 + 2, request=2)
    assert sig[5:8] == ["Yyrr"] * 3
    assert sig[8:17] == ["rrrr"] * 9  # 1 s all-red + 8 s extension (capped)
    assert sig[17:] == ["rrGg"] * 2
    assert calls and all(c == [0, 1] for c in calls)  # asked about the cleared links
    no_violations(spec, sig)


def test_all_red_extension_ends_when_junction_clears():
    spec = small_spec()
    answers = iter([True, True, False])
    sig = drive(Timer(spec, occupied=lambda links: next(answers)), 5 + 3 + 1 + 2 + 2, request=2)
    assert sig[8:11] == ["rrrr"] * 3 and sig[11:] == ["rrGg"] * 2


def test_net_order_transitions_are_not_extended():
    spec = small_spec()
    sig = drive(Timer(spec, occupied=lambda links: True), 5 + 3 + 1 + 1, request=1)
    assert sig[-1] == "rGrr"


# -- max green and holds ------------------------------------------------------------------------------------
def test_max_green_ends_green_on_its_own_to_net_next():
    spec = small_spec()
    sig = drive(Timer(spec), 25, request=None)
    assert sig[:20] == ["Ggrr"] * 20  # max green 20 s
    assert sig[20] == "ygrr"  # net order transition to phase 1
    no_violations(spec, sig)


def test_max_green_from_config():
    spec = small_spec()
    sig = drive(Timer(spec, TimingConfig(max_green=7.0)), 10)
    assert sig[:7] == ["Ggrr"] * 7 and sig[7] == "ygrr"


def test_max_green_ends_a_hold_for_the_current_phase():
    spec = small_spec()
    tm = Timer(spec)
    sig = drive(tm, 25, request=0)  # asking for the phase that is green = hold
    assert sig[:20] == ["Ggrr"] * 20 and sig[20] == "ygrr"


def test_request_for_current_phase_is_a_hold():
    spec = small_spec()
    tm = Timer(spec)
    sig = drive(tm, 15, request=0)
    assert sig == ["Ggrr"] * 15
    assert tm.phase == 0 and tm.interval == "green"


def test_request_reached_is_cleared():
    spec = small_spec()
    tm = Timer(spec)
    drive(tm, 5 + 3 + 1 + 1, request=1)
    assert tm.phase == 1 and tm.interval == "green" and tm.request is None


def test_max_green_does_not_fire_on_single_phase_ring():
    spec = small_spec(
        green_states=["GGrr"],
        net_next=[0],
        fixed_green=[10.0],
        min_green=[5.0],
        max_green=[8.0],
        yellow=[3.0],
        allred=[0.0],
        net_transitions=[[]],
        conflicts=["0000"] * 4,
    )
    sig = drive(Timer(spec), 20)
    assert sig == ["GGrr"] * 20


# -- property over every real junction ------------------------------------------------------------------------
MAPS = ("bunda_kota", "cologne1", "cologne3", "ingolstadt1", "ingolstadt7", "grid4x4")


@pytest.fixture(scope="module")
def real_specs():
    """(map, spec) of every junction of the demo city and of the RESCO maps found (compiled once)."""
    specs = all_real_specs()
    assert len(specs) >= len(demo_specs())
    return specs


def map_specs(name):
    return demo_specs() if name == "bunda_kota" else resco_specs(name)


request_runs = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(-2, 10)), st.integers(1, 40)), min_size=1, max_size=30
)
occupied_runs = st.lists(st.tuples(st.booleans(), st.integers(1, 15)), min_size=1, max_size=30)


def _expand(rs, n):
    out = []
    while len(out) < n:
        for v, k in rs:
            out.extend([v] * k)
    return out[:n]


# 80 examples a run (was 200): the same property runs through the whole controller in the soak
# (tests/simulation/proofs/test_soak.py: 3,000 random command sequences on the demo city's junctions, judged
# independently), over the wire (test_controller.py's random traffic) and on foreign plans (test_foreign_plans.py);
# `lintas soak --sequences 100000` is the deep run
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    data=st.data(),
    reqs=request_runs,
    occ=occupied_runs,
    allred_ooo=st.sampled_from([0.0, 1.0, 2.5]),
    clearance=st.sampled_from([0.0, 3.0, 8.0]),
    offset=st.sampled_from([0.0, 0.0, 2.0, 4.0, 30.0, 70.0]),
    dt=st.sampled_from([1.0, 1.0, 1.0, 0.5, 2.0]),
)
def test_random_requests_never_unsafe(real_specs, data, reqs, occ, allred_ooo, clearance, offset, dt):
    name, spec = data.draw(st.sampled_from(real_specs), label="junction")
    start = data.draw(st.integers(0, spec.n_phases - 1), label="start_phase")
    spec = msgspec.structs.replace(spec, start_phase=start, start_offset=offset)
    n = 300
    req = _expand(reqs, n)
    occ_seq = _expand(occ, n)
    clock = {"t": 0}
    tm = Timer(
        spec,
        TimingConfig(allred_out_of_order=allred_ooo, clearance_max=clearance),
        occupied=lambda links: occ_seq[clock["t"]],
    )
    mon = ConflictMonitor(spec)
    signals = []
    for t in range(n):
        clock["t"] = t
        r = req[t]
        if r is None:
            tm.request = None
        elif 0 <= r < spec.n_phases:  # the caller (controller) refuses phases that do not exist
            tm.request = r
        s = tm.tick(dt)
        assert mon.check(s), f"{name} {spec.id} t={t}: monitor latched: {mon.fault}"
        mon.shown(s, dt)
        signals.append(s)
    rep = check_sequence(spec, signals, dt=dt)
    assert rep.total == 0, f"{name} {spec.id}: {rep}"


def _every_transition(spec) -> None:
    tm = Timer(spec)
    sig = drive(tm, 300, request=lambda t, tm: spec.net_next[tm.phase] if tm.interval == "green" else ...)
    no_violations(spec, sig)
    assert len({s for s in sig if s in spec.green_states}) == spec.n_phases  # every phase served

    order = [x for a in range(spec.n_phases) for b in range(spec.n_phases) if a != b for x in (a, b)]
    pos = {"i": 0}

    def pick(t, tm):
        if tm.interval != "green":
            return ...
        while pos["i"] < len(order) and order[pos["i"]] == tm.phase:
            pos["i"] += 1
        return order[pos["i"]] if pos["i"] < len(order) else None

    tm = Timer(spec)
    sig = drive(tm, 25 * len(order) + 50, request=pick)
    assert pos["i"] == len(order), f"{spec.id}: did not get through every pair of phases"
    no_violations(spec, sig)


@pytest.mark.parametrize("name", MAPS)
def test_every_transition_is_safe_on_every_real_junction(name):
    """The local plan (always the net's next phase) over several cycles, then every ordered pair of
    phases once: no violation by the checker, monitor never latches."""
    for spec in map_specs(name):
        _every_transition(spec)
