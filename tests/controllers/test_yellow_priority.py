"""The yellow of an out-of-order transition keeps a priority link's priority: 'G' -> 'Y', 'g' -> 'y'.

In SUMO a lowercase letter is a link without priority. A yellow showing 'y' to a 'G' through movement
took its priority away while its vehicles were crossing, and the permissive u-turn merging with it
(cologne1 link 19 -> 32038051#0_1, foe of through link 7) stopped yielding: the two collided 3-5 m
after the junction exit (docs/safety.md, "Merge collisions at the start of an out-of-order yellow").
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from junctions import all_real_specs, resco_specs

from controllers import timing
from controllers.drivers import SumoCabinet
from controllers.timing import Timer, transition_segments

DATA = Path(__file__).resolve().parent / "data"


def _yellow(spec, k, target):
    return next(
        s.state for s in transition_segments(spec, k, target, timing.TimingConfig()) if s.kind == "yellow"
    )


def test_cologne1_out_of_order_yellow_keeps_through_priority():
    spec = resco_specs("cologne1")[0]
    assert spec.green_states[0] == "rrrrrGGGggrrrrrGGGgg" and spec.green_states[2] == "GGGggrrrrrGGGggrrrrr"
    assert spec.net_next[0] != 2  # 0 -> 2 is out of order: the timer builds the yellow
    yel = _yellow(spec, 0, 2)
    assert yel == "rrrrrYYYyyrrrrrYYYyy"
    assert yel[7] == "Y" and yel[19] == "y"  # through 23429231#1_1 keeps priority over the merging u-turn


def test_every_built_yellow_maps_G_to_Y_and_g_to_y():
    n = 0
    for _name, spec in all_real_specs():
        for k in range(spec.n_phases):
            for target in range(spec.n_phases):
                if target == k or (target == spec.net_next[k] and spec.net_transitions[k]):
                    continue
                cur, nxt = spec.green_states[k], spec.green_states[target]
                segs = transition_segments(spec, k, target, timing.TimingConfig())
                for s in segs:
                    for c, x, ch in zip(cur, nxt, s.state):
                        if c in "Gg" and x not in "Gg" and s.kind == "yellow":
                            assert ch == ("Y" if c == "G" else "y")
                            n += 1
                        if ch in "yY":
                            assert c in "Gg" and ch == ("Y" if c == "G" else "y")
    assert n > 0


def _replay(tmp_path: Path, resco: Path) -> list[tuple[float, str, str, str]]:
    """cologne1, maxpressure seed 2, from t=27790 (saved state): the Timer and SumoCabinet run the
    transition 2 -> 0 (out of order) and, 5 s into phase 0, 0 -> 2 again, as the run did; returns the
    collisions SUMO reports up to t=27830."""
    libsumo = pytest.importorskip("libsumo")
    state = tmp_path / "state.xml"
    with gzip.open(DATA / "cologne1_merge_t27790.state.xml.gz", "rb") as src, state.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    spec = resco_specs("cologne1")[0]
    libsumo.start(
        [
            "sumo",
            "-c",
            str(resco / "cologne1" / "cologne1.sumocfg"),
            "--seed",
            "2",
            "--time-to-teleport",
            "-1",
            "--no-step-log",
            "true",
            "--no-warnings",
            "true",
            "--load-state",
            str(state),
            "--end",
            "27830",
        ]
    )
    out = []
    try:
        cab = SumoCabinet(libsumo, spec.id, spec.link_via)
        tm = Timer(spec, occupied=cab.occupied)
        tm.phase, tm.since, tm.green_shown = 2, 12.0, 12.0  # phase 2 green since t=27778
        tm.signal = spec.green_states[2]
        t = libsumo.simulation.getTime()
        assert t == 27790.0
        while t < 27830:
            if t == 27803:
                tm.request = 0
            if tm.phase == 0 and tm.interval == "green" and t < 27820:
                tm.request = 2
            cab.show(tm.tick(1.0))
            libsumo.simulationStep()
            t = libsumo.simulation.getTime()
            out += [(t, c.collider, c.victim, c.lane) for c in libsumo.simulation.getCollisions()]
    finally:
        libsumo.close()
    return out


def test_sumo_no_merge_collision_at_out_of_order_yellow(tmp_path, resco_dir, monkeypatch):
    if not (resco_dir / "cologne1").is_dir():
        pytest.skip("cologne1 not found")
    assert _replay(tmp_path, resco_dir) == []
    # the same replay with the old letters ('y' for 'G' links) reproduces the collision (SUMO 1.28)
    monkeypatch.setattr(timing, "_yellow_of", lambda c: "y")
    old = _replay(tmp_path, resco_dir)
    if not old:
        pytest.skip("this SUMO version does not reproduce the 1.28 collision from the saved state")
    assert [(c[1], c[2], c[3]) for c in old] == [("157354_421_0", "197127_436_0", "32038051#0_1")]
