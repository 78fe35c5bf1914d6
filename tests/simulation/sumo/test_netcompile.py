"""simulation.sumo.netcompile / detectors / scenario against real SUMO nets (RESCO maps, netgenerate grids)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import sumo  # noqa: F401  (SUMO_HOME)
import sumolib

from engine.network import DET_ADVANCE, DET_AREA, DET_STOPLINE, Network
from simulation.sumo import netcompile
from simulation.sumo.detectors import DetectorLayout, existing_detectors, place_detectors
from simulation.sumo.netcompile import CompileReport, compile_for_run, compile_network
from simulation.sumo.scenario import Scenario, ScenarioError, check_routes, load_scenario

MAPS = {"cologne1": 1, "cologne3": 3, "ingolstadt1": 1, "ingolstadt7": 7, "grid4x4": 16}
GREEN = set("Gg")


def _sumo() -> str:
    return sumolib.checkBinary("sumo")


def _netgenerate() -> str:
    return sumolib.checkBinary("netgenerate")


@pytest.fixture(scope="module")
def compiled(resco_dir, tmp_path_factory):
    """map -> (scenario, network with detectors, detector file, seconds to compile)."""
    out = tmp_path_factory.mktemp("det")
    res = {}
    for m in MAPS:
        sc = load_scenario(resco_dir / m)
        t = time.perf_counter()
        net, det = compile_for_run(sc, out)
        res[m] = (sc, net, det, time.perf_counter() - t)
    return res


# ------------------------------------------------------------------------------------------------
# structure of the compiled networks
def check_network(net: Network) -> None:
    """Invariants every compiled network satisfies."""
    assert net.jn_phase_ptr[0] == 0 and net.jn_phase_ptr[-1] == net.n_phases
    assert [j.id for j in net.junctions] == sorted(j.id for j in net.junctions)
    for jj, j in enumerate(net.junctions):
        n = j.n_links
        assert n > 0 and j.n_phases > 0
        assert len(j.link_in_lane) == len(j.link_out_lane) == len(j.link_via) == n
        assert len(j.conflicts) == n and all(len(r) == n for r in j.conflicts)
        for s in j.green_states:
            assert len(s) == n
            assert set(s) & GREEN and not set(s) & set("yYu")
        for tr in j.net_transitions:
            assert all(len(s) == n for s, _ in tr)
        assert len(set(j.green_states)) == j.n_phases
        C = j.conflict_matrix()
        assert (C == C.T).all(), "conflicts not symmetric"
        assert not C.diagonal().any()
        # never conflicting links green together in one of the net's green phases
        for s in j.green_states:
            g = np.array([c in GREEN for c in s])
            assert not (C & np.outer(g, g)).any(), f"{j.id}: co-green links marked conflicting in {s}"
        assert sorted(j.net_next) == list(range(j.n_phases))
        assert all(y >= 3.0 for y in j.yellow) and all(a >= 0.0 for a in j.allred)
        assert all(lo <= hi for lo, hi in zip(j.min_green, j.max_green))
        assert 0 <= j.start_phase < j.n_phases
        # every link index is a movement or a pedestrian / empty link
        movs = {int(net.mov_link[m]) for m in range(net.n_movements) if net.mov_junction[m] == jj}
        for li in range(n):
            assert (li in movs) == bool(j.link_in_lane[li])
        # phase -> movements agrees with the green strings
        for k, p in enumerate(net.phases_of(jj)):
            served = net.phase_mov_idx[net.phase_mov_ptr[p]:net.phase_mov_ptr[p + 1]]
            expect = {li for li, c in enumerate(j.green_states[k]) if c in GREEN and li in movs}
            assert {int(net.mov_link[m]) for m in served} == expect
            assert all(net.mov_junction[m] == jj for m in served)
            assert net.phase_next[p] == net.jn_phase_ptr[jj] + j.net_next[k]
    assert len(net.lane_ids) == len(set(net.lane_ids))
    for m in range(net.n_movements):
        j = net.junctions[net.mov_junction[m]]
        li = int(net.mov_link[m])
        assert net.lane_ids[net.mov_in_lane[m]] == j.link_in_lane[li]
        assert net.mov_out_lane_id[m] == j.link_out_lane[li]
        assert -1 <= net.mov_out_lane[m] < net.n_lanes
        assert net.lane_junction[net.mov_in_lane[m]] == net.mov_junction[m]
    assert (net.lane_length > 0).all() and (net.lane_speed > 0).all()
    assert net.phase_min.shape == net.phase_max.shape == net.phase_yellow.shape == (net.n_phases,)


@pytest.mark.parametrize("m", list(MAPS))
def test_resco_structure(compiled, m):
    _, net, _, _ = compiled[m]
    assert net.n_junctions == MAPS[m]
    check_network(net)
    # every link index of the program string is covered by a lane of the net
    for j in net.junctions:
        assert all(j.link_in_lane), f"{j.id}: link without an incoming lane"


@pytest.mark.parametrize("m", list(MAPS))
def test_resco_conflicts_match_foes(compiled, m):
    """Foes in the junction's request matrix that no state of the net's program (greens and transitions)
    shows active together are conflicts, others aren't (checked with sumolib's own, slow, junction index
    lookup); on these maps that is also "never green together in a green phase", as before."""
    from simulation.sumo.programs import running_programs

    sc, net, _, _ = compiled[m]
    snet = sumolib.net.readNet(str(sc.net_file), withPrograms=True, withInternal=True,
                               withPedestrianConnections=True)
    programs = running_programs(sc.net_file, sc.additional_files, sc.begin).programs
    for j in net.junctions:
        conns = {}
        for in_lane, out_lane, li in snet.getTLS(j.id).getConnections():
            for c in in_lane.getOutgoing():
                if c.getToLane() is out_lane and c.getTLLinkIndex() == li:
                    conns[li] = c
        C = j.conflict_matrix()
        G = np.array([[ch in GREEN for ch in s] for s in j.green_states])
        cog = (G.T.astype(int) @ G.astype(int)) > 0
        A = np.array([[ch in "GgyY" for ch in p.state] for p in programs[j.id].phases])
        coa = (A.T.astype(int) @ A.astype(int)) > 0
        idx = {li: c.getJunctionIndex() for li, c in conns.items()}
        for a, ca in conns.items():
            for b, cb in conns.items():
                if a == b:
                    continue
                na, nb = ca.getJunction(), cb.getJunction()
                foe = na is nb and (na.areFoes(idx[a], idx[b]) or na.areFoes(idx[b], idx[a]))
                assert C[a, b] == (foe and not coa[a, b]) == (foe and not cog[a, b]), (j.id, a, b)


def test_cologne1_through_vs_cross(compiled):
    _, net, _, _ = compiled["cologne1"]
    j = net.junctions[0]
    assert j.id == "GS_cluster_357187_359543" and j.n_links == 20
    s_a = "rrrrrGGGggrrrrrGGGgg"  # one street's through + turns
    s_b = "GGGggrrrrrGGGggrrrrr"  # the cross street
    assert s_a in j.green_states and s_b in j.green_states
    C = j.conflict_matrix()
    # through 6 (green in s_a) vs through 1 (green in s_b): foes, never green together
    assert C[6, 1] and C[1, 6]
    assert C[6, 11] and C[16, 1]
    # same street, opposite through directions are green together: not conflicting
    assert not C[6, 16] and not C[1, 11]
    assert [j.green_states[k] for k in (0, 2)] == [s_a, s_b]
    assert j.net_next == [1, 2, 3, 0]
    assert j.fixed_green == [29.0, 6.0, 29.0, 6.0]
    assert j.yellow == [5.0] * 4 and j.allred == [0.0] * 4
    assert j.net_transitions[0] == [("rrrrryyyggrrrrryyygg", 5.0)]
    assert j.min_green == [5.0] * 4 and j.max_green == [60.0] * 4


def test_ingolstadt7_short_lanes_counted_upstream(compiled):
    _, net, _, _ = compiled["ingolstadt7"]
    jj = net.junction_index["gneJ143"]
    lanes = [i for i in range(net.n_lanes) if net.lane_junction[i] == jj]
    assert lanes
    for i in lanes:
        assert net.lane_length[i] >= 50.0, (net.lane_ids[i], net.lane_length[i])
    i = net.lane_ids.index("10425609#1_1")  # a 0.92 m lane
    assert net.lane_length[i] > 50.0
    # the 4-green-phase cluster whose consecutive greens have no transition
    j = net.junctions[net.junction_index[
        "cluster_306484187_cluster_1200363791_1200363826_1200363834_1200363898_1200363927_1200363938_"
        "1200363947_1200364074_1200364103_1507566554_1507566556_255882157_306484190"]]
    assert j.green_states == ["rrrrrrrrGGGG", "rrrrrrGGGGrr", "rrrrGGGGGGrr", "GGGGGGrrrrrr"]
    assert j.net_transitions[1] == [] and j.yellow[1] == 3.0
    assert j.net_transitions[0] == [("rrrrrrrrGGyy", 3.0)]
    # some movements feed another signal's approach
    assert (net.mov_out_lane >= 0).any()


def test_grid4x4(compiled):
    _, net, _, _ = compiled["grid4x4"]
    assert net.n_phases == 16 * 8
    assert (net.phase_fixed == 10.0).all()
    j = net.junctions[0]
    assert j.id == "A0"
    # grid4x4's yellow after phase 1 keeps links 6-8 green (the net's transition is kept verbatim)
    assert j.net_transitions[1] == [("sssrrrGGGsssrrrrrrsssrrryyysssrrrrrr", 3.0)]


def test_compile_speed(compiled):
    for m, (_, _, _, secs) in compiled.items():
        assert secs < 3.0, f"{m} took {secs:.2f} s to compile"


def test_json_roundtrip(compiled, tmp_path):
    _, net, _, _ = compiled["ingolstadt7"]
    p = tmp_path / "net.json"
    net.to_json(p)
    back = Network.from_json(p)
    assert back.lane_ids == net.lane_ids and back.det_ids == net.det_ids
    assert np.array_equal(back.phase_mov_idx, net.phase_mov_idx)
    assert [j.conflicts for j in back.junctions] == [j.conflicts for j in net.junctions]


# ------------------------------------------------------------------------------------------------
# detectors
@pytest.mark.parametrize("m", list(MAPS))
def test_resco_detectors_load_in_sumo(compiled, m):
    sc, net, det, _ = compiled[m]
    assert det.is_file()
    text = det.read_text()
    assert net.n_detectors == text.count("<inductionLoop") + text.count("<laneAreaDetector")
    # every incoming lane: stop line + area, advance unless the approach is short
    for li in range(net.n_lanes):
        kinds = sorted(int(k) for k in net.det_kind[net.det_lane == li])
        assert kinds in ([DET_STOPLINE, DET_ADVANCE, DET_AREA], [DET_STOPLINE, DET_AREA]), net.lane_ids[li]
        if DET_ADVANCE not in kinds:
            assert net.lane_length[li] < 15.0 + 1e-6
    assert (net.det_pos[net.det_kind == DET_STOPLINE] <= DetectorLayout().stopline_offset + 1e-6).all()
    adv = net.det_kind == DET_ADVANCE
    # 40 m upstream, or the end of the lane before the junction where 40 m falls inside it
    assert (net.det_pos[adv] > 1.0).all() and (net.det_pos[adv] <= 60.0).all()
    assert np.median(net.det_pos[adv]) == pytest.approx(40.0)
    area = net.det_kind == DET_AREA
    assert (net.det_length[area] > 0).all() and (net.det_length[area] <= 100.0 + 1e-6).all()
    assert np.allclose(net.det_pos[area], net.det_length[area])
    files = ",".join(str(f) for f in [*sc.additional_files, det])
    r = subprocess.run(
        [_sumo(), "-c", str(sc.sumocfg), "-a", files, "--end", str(sc.begin + 10), "--no-step-log",
         "--duration-log.disable"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Error" not in r.stderr, r.stderr[-2000:]


def test_detector_lengths_match_sumo(compiled):
    libsumo = pytest.importorskip("libsumo")
    sc, net, det, _ = compiled["ingolstadt7"]
    libsumo.start([_sumo(), "-c", str(sc.sumocfg), "-a", str(det), "--no-step-log", "--no-warnings"])
    try:
        assert set(libsumo.inductionloop.getIDList()) | set(libsumo.lanearea.getIDList()) == set(net.det_ids)
        for i, d in enumerate(net.det_ids):
            if net.det_kind[i] == DET_AREA:
                assert abs(libsumo.lanearea.getLength(d) - net.det_length[i]) < 0.05, d
                assert libsumo.lanearea.getLaneID(d) == net.lane_ids[net.det_lane[i]]
        libsumo.simulationStep()
    finally:
        libsumo.close()


def test_no_detectors_without_layout(resco_dir):
    net = compile_network(resco_dir / "cologne1")
    assert net.n_detectors == 0 and net.det_lane.shape == (0,) and net.det_kind.dtype == np.int8
    with pytest.raises(ValueError):
        compile_network(resco_dir / "cologne1", detectors=DetectorLayout())


def test_existing_detectors(resco_dir, tmp_path):
    sc = load_scenario(resco_dir / "ingolstadt1")
    base = compile_network(sc)
    snet = sumolib.net.readNet(str(sc.net_file))
    lane = next(l for l in base.lane_ids if snet.getLane(l).getLength() > 60)
    add = tmp_path / "own.add.xml"
    add.write_text(
        "<additional>\n"
        f'  <inductionLoop id="own_sl" lane="{lane}" pos="-2" period="60" file="NUL"/>\n'
        f'  <e1Detector id="own_adv" lane="{lane}" pos="5" period="60" file="NUL"/>\n'
        f'  <laneAreaDetector id="own_cam" lane="{lane}" pos="10" endPos="-1" period="60" file="NUL"/>\n'
        '  <inductionLoop id="own_elsewhere" lane="no_such_lane_0" pos="1" period="60" file="NUL"/>\n'
        "</additional>\n"
    )
    sc2 = Scenario(sc.name, sc.sumocfg, sc.net_file, sc.route_files, [add], sc.begin, sc.end)
    ids, dl, dk, dp, dlen = existing_detectors(sc2, base)
    assert ids == ["own_sl", "own_adv", "own_cam"]
    li = base.lane_ids.index(lane)
    assert list(dl) == [li] * 3
    assert list(dk) == [DET_STOPLINE, DET_ADVANCE, DET_AREA]
    L = snet.getLane(lane).getLength()
    assert dp[0] == pytest.approx(2.0) and dp[1] == pytest.approx(L - 5.0)
    assert dlen[2] == pytest.approx(L - 1 - 10) and dp[2] == pytest.approx(L - 10)
    net = compile_network(sc2, detectors=DetectorLayout(), detector_file=tmp_path / "det.add.xml")
    assert {"own_sl", "own_adv", "own_cam"} <= set(net.det_ids)
    assert net.n_detectors == len(base.lane_ids) * 3 - 1 + 3  # one 8.9 m lane has no advance loop


def test_place_detectors_standalone(resco_dir, tmp_path):
    sc = load_scenario(resco_dir / "cologne1")
    net = compile_network(sc)
    out = tmp_path / "x" / "d.add.xml"
    ids, dl, dk, dp, dlen = place_detectors(sc.net_file, net, DetectorLayout(area_length=30.0), out)
    assert out.is_file() and len(ids) == len(dl) == len(dk) == len(dp) == len(dlen)
    assert all(i.startswith("lintas_") for i in ids)
    assert dlen.max() <= 30.0 + 1e-6


# ------------------------------------------------------------------------------------------------
# programs: offsets, several programs, duplicates, unmappable links
def _gneJ207_add(tmp_path: Path, phases: list[tuple[str, float]], offset: float = 0.0, pid: str = "x") -> Path:
    p = tmp_path / f"tl_{pid}.add.xml"
    body = "".join(f'    <phase duration="{d:g}" state="{s}"/>\n' for s, d in phases)
    p.write_text(f'<additional>\n  <tlLogic id="gneJ207" type="static" programID="{pid}" offset="{offset:g}">\n'
                 f"{body}  </tlLogic>\n</additional>\n")
    return p


def test_start_phase_follows_offset_and_begin(resco_dir, tmp_path):
    sc = load_scenario(resco_dir / "ingolstadt1")  # cycle 90: G38 y3 G6 y3 G37 y3
    j = compile_network(sc).junctions[0]
    assert (j.start_phase, j.start_offset) == (0, 0.0)  # 57600 is a multiple of 90
    sc_b = Scenario(sc.name, sc.sumocfg, sc.net_file, sc.route_files, [], sc.begin + 45, sc.end)
    j = compile_network(sc_b).junctions[0]
    assert (j.start_phase, j.start_offset) == (1, 4.0)  # cycle second 45: the 6 s green, 4 s in
    phases = [("GGgGrGGG", 38), ("yygyryyy", 3), ("GGGrrrrr", 6), ("yyyrrrrr", 3), ("rrrGGGrr", 37),
              ("rrryyyrr", 3)]
    add = _gneJ207_add(tmp_path, phases, offset=10)
    sc_o = Scenario(sc.name, sc.sumocfg, sc.net_file, sc.route_files, [add], sc.begin, sc.end)
    rep = CompileReport()
    j = compile_network(sc_o, report=rep).junctions[0]
    assert rep.multi_program == {"gneJ207": 2} and rep.program_source["gneJ207"].endswith(":x")
    # SUMO: cycle position (t - offset) mod cycle = 80 -> the 37 s green, 30 s in (checked with libsumo)
    assert (j.start_phase, j.start_offset) == (2, 30.0)
    sc_y = Scenario(sc.name, sc.sumocfg, sc.net_file, sc.route_files, [], sc.begin + 39, sc.end)
    j = compile_network(sc_y).junctions[0]
    assert (j.start_phase, j.start_offset) == (1, 0.0)  # in a yellow: the next green


def test_libsumo_agrees_on_start_phase(resco_dir, tmp_path):
    libsumo = pytest.importorskip("libsumo")
    sc = load_scenario(resco_dir / "ingolstadt1")
    phases = [("GGgGrGGG", 38), ("yygyryyy", 3), ("GGGrrrrr", 6), ("yyyrrrrr", 3), ("rrrGGGrr", 37),
              ("rrryyyrr", 3)]
    add = _gneJ207_add(tmp_path, phases, offset=-17)
    sc_o = Scenario(sc.name, sc.sumocfg, sc.net_file, [], [add], 1000.0, 1100.0)
    j = compile_network(sc_o).junctions[0]
    libsumo.start([_sumo(), "-n", str(sc.net_file), "-a", str(add), "-b", "1000", "--no-step-log", "--no-warnings"])
    try:
        state = libsumo.trafficlight.getRedYellowGreenState("gneJ207")
        remaining = libsumo.trafficlight.getNextSwitch("gneJ207") - libsumo.simulation.getTime()
    finally:
        libsumo.close()
    assert state == j.green_states[j.start_phase]
    assert remaining == pytest.approx(j.fixed_green[j.start_phase] - j.start_offset)


def test_duplicate_green_states_and_allred(resco_dir, tmp_path):
    sc = load_scenario(resco_dir / "ingolstadt1")
    A, B, C = "GGgGrGGG", "GGGrrrrr", "rrrGGGrr"
    phases = [(A, 30), ("yygyryyy", 4), ("rrrrrrrr", 2), (B, 6), ("yyyrrrrr", 3), (A, 20), ("yygyryyy", 3),
              (C, 37), ("rrryyyrr", 3), ("rrrrrrrr", 1), ("rrrrrrrr", 1)]
    add = _gneJ207_add(tmp_path, phases)
    sc_o = Scenario(sc.name, sc.sumocfg, sc.net_file, sc.route_files, [add], sc.begin, sc.end)
    rep = CompileReport()
    j = compile_network(sc_o, report=rep, allred=0.5).junctions[0]
    assert j.green_states == [A, B, C] and j.net_next == [1, 2, 0]
    assert rep.duplicate_greens == {"gneJ207": 1}
    assert j.fixed_green == [30.0, 6.0, 37.0]
    assert j.yellow == [4.0, 3.0, 3.0]
    assert j.allred == [2.0, 0.5, 2.0]
    assert j.net_transitions[0] == [("yygyryyy", 4.0), ("rrrrrrrr", 2.0)]
    # B -> C never happens in the program: B keeps its own transition
    assert j.net_transitions[1] == [("yyyrrrrr", 3.0)]


def test_min_max_from_net(resco_dir):
    net = compile_network(resco_dir / "cologne1", min_green=3.0, max_green=40.0)
    j = net.junctions[0]  # net phases carry minDur=5 maxDur=50
    assert j.min_green == [5.0] * 4 and j.max_green == [50.0] * 4
    net = compile_network(resco_dir / "cologne1", min_green=7.0, max_green=40.0, yellow_min=6.0)
    j = net.junctions[0]
    assert j.min_green == [7.0] * 4 and j.max_green == [50.0] * 4 and j.yellow == [6.0] * 4


def test_unmapped_links_conflict_unless_co_green(resco_dir, monkeypatch):
    monkeypatch.setattr(netcompile, "_node_link_indices", lambda node, net: None)
    rep = CompileReport()
    net = compile_network(resco_dir / "cologne1", report=rep)
    j = net.junctions[0]
    assert rep.unmapped_links[j.id] == list(range(j.n_links))
    G = np.array([[c in GREEN for c in s] for s in j.green_states])
    cog = (G.T.astype(int) @ G.astype(int)) > 0
    expect = ~cog
    np.fill_diagonal(expect, False)
    assert (j.conflict_matrix() == expect).all()


# ------------------------------------------------------------------------------------------------
# netgenerate grids
def _grid(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / f"{name}.net.xml"
    r = subprocess.run(
        [_netgenerate(), "--grid", "--grid.number", "3", "--tls.guess", "true", "--default.lanenumber", "2",
         *extra, "-o", str(out)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return out


def test_netgenerate_grid(tmp_path):
    net = compile_network(_grid(tmp_path, "g"))
    assert net.n_junctions >= 1
    check_network(net)
    assert all(all(j.link_in_lane) for j in net.junctions)


def test_netgenerate_grid_with_crossings_and_turn_lanes(tmp_path):
    net_file = _grid(tmp_path, "gc", "--sidewalks.guess", "--crossings.guess", "--turn-lanes", "1")
    rep = CompileReport()
    net = compile_network(net_file, report=rep, detectors=DetectorLayout(), detector_file=tmp_path / "d.add.xml")
    check_network(net)
    assert not rep.unmapped_links
    crossings = [(j, li) for j in net.junctions for li in range(j.n_links) if not j.link_in_lane[li]]
    assert crossings, "expected pedestrian crossings in the signal strings"
    for j, li in crossings:
        assert j.link_out_lane[li] == "" and j.link_via[li] == ""
    # crossings are links but not movements
    assert net.n_movements == sum(j.n_links for j in net.junctions) - len(crossings)
    # a crossing conflicts with some vehicle link
    assert any(j.conflict_matrix()[li].any() for j, li in crossings)
    r = subprocess.run([_sumo(), "-n", str(net_file), "-a", str(tmp_path / "d.add.xml"), "--end", "5"],
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_net_without_traffic_lights(tmp_path):
    out = tmp_path / "plain.net.xml"
    subprocess.run([_netgenerate(), "--grid", "--grid.number", "2", "-o", str(out)], check=True,
                   capture_output=True, timeout=120)
    with pytest.raises(ScenarioError, match=r"plain.net.xml.*no traffic lights"):
        compile_network(out)


# ------------------------------------------------------------------------------------------------
# scenario errors
def test_scenario_errors(tmp_path, resco_dir):
    with pytest.raises(ScenarioError, match=r"does not exist"):
        load_scenario(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScenarioError, match=r"empty.*no .sumocfg"):
        load_scenario(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ScenarioError, match=r"x.txt.*not a scenario"):
        load_scenario(tmp_path / "x.txt")
    two = tmp_path / "two"
    two.mkdir()
    (two / "a.sumocfg").write_text("<configuration/>")
    (two / "b.sumocfg").write_text("<configuration/>")
    with pytest.raises(ScenarioError, match=r"several"):
        load_scenario(two)
    with pytest.raises(ScenarioError, match=r"a.sumocfg.*net-file"):
        load_scenario(two / "a.sumocfg")
    miss = tmp_path / "miss"
    miss.mkdir()
    (miss / "m.sumocfg").write_text(
        '<configuration><input><net-file value="m.net.xml"/></input></configuration>')
    with pytest.raises(ScenarioError, match=r"m.net.xml"):
        load_scenario(miss)


def test_scenario_defaults_and_lists(tmp_path, resco_dir):
    src = resco_dir / "ingolstadt1"
    d = tmp_path / "sc"
    d.mkdir()
    (d / "r2.rou.xml").write_text('<routes><route id="r" edges="164051413"/></routes>')
    (d / "sc.sumocfg").write_text(
        f'<configuration><input><net-file value="{src / "ingolstadt1.net.xml"}"/>'
        f'<route-files value="{src / "ingolstadt1.rou.xml"}, r2.rou.xml"/></input></configuration>')
    sc = load_scenario(d / "sc.sumocfg")
    assert sc.name == "sc" and sc.begin == 0.0 and sc.end == 3600.0
    assert [p.resolve() for p in sc.route_files] == [(src / "ingolstadt1.rou.xml").resolve(),
                                                     (d / "r2.rou.xml").resolve()]


def test_route_with_missing_edge(tmp_path, resco_dir):
    src = resco_dir / "ingolstadt1"
    d = tmp_path / "bad"
    d.mkdir()
    (d / "bad.rou.xml").write_text(
        '<routes>\n  <vehicle id="v0" depart="0"><route edges="164051413"/></vehicle>\n'
        '  <trip id="t1" depart="1" from="164051413" to="no_such_edge"/>\n</routes>\n')
    (d / "bad.sumocfg").write_text(
        f'<configuration><input><net-file value="{src / "ingolstadt1.net.xml"}"/>'
        '<route-files value="bad.rou.xml"/></input><time><begin value="10"/></time></configuration>')
    with pytest.raises(ScenarioError, match=r"bad\.rou\.xml.*no_such_edge"):
        load_scenario(d)
    sc = load_scenario(d, check=False)
    assert sc.begin == 10.0
    with pytest.raises(ScenarioError, match=r"bad\.rou\.xml"):
        check_routes(sc)


def test_resco_routes_are_consistent(resco_dir):
    for m in MAPS:
        check_routes(load_scenario(resco_dir / m, check=False))


# ------------------------------------------------------------------------------------------------
# greens spread over several program phases, lengthened intervals, program types
def test_consecutive_greens_with_the_same_links_are_one_green(resco_dir, tmp_path):
    """A green spread over consecutive program phases (the same state, or the same green links with other
    letters) is one green phase with the slices' total duration, not its first slice."""
    sc = load_scenario(resco_dir / "ingolstadt1")
    A, B1, B2, C = "GGgGrGGG", "GGGrrrrr", "GGgrrrrr", "rrrGGGrr"
    phases = [(A, 20), (A, 18), ("yygyryyy", 3), (B1, 4), (B2, 2), ("yyyrrrrr", 3), (C, 37), ("rrryyyrr", 3)]
    add = _gneJ207_add(tmp_path, phases)
    rep = CompileReport()
    sc_o = Scenario(sc.name, sc.sumocfg, sc.net_file, sc.route_files, [add], sc.begin + 25, sc.end)
    j = compile_network(sc_o, report=rep).junctions[0]
    assert j.green_states == [A, B1, C] and j.fixed_green == [38.0, 6.0, 37.0]  # B1: the longer slice's state
    assert j.program_greens == [0, 0, -1, 1, 1, -1, 2, -1]
    assert rep.merged_greens == {"gneJ207": [[0, 1], [3, 4]]} and not rep.duplicate_greens
    assert j.net_transitions == [[("yygyryyy", 3.0)], [("yyyrrrrr", 3.0)], [("rrryyyrr", 3.0)]]
    assert (j.start_phase, j.start_offset) == (0, 25.0)  # 25 s into the 38 s green (its second slice)
    # the program starts with the tail of a green: one green across the end of the cycle
    phases = [(A, 10), ("yygyryyy", 3), (C, 37), ("rrryyyrr", 3), (A, 28)]
    add = _gneJ207_add(tmp_path, phases, pid="w")
    cycle0 = sc.begin - sc.begin % 81  # the cycle is 81 s; at cycle second 5 the green began 33 s ago
    for begin, start in ((cycle0 + 5, (0, 33.0)), (cycle0 + 60, (0, 7.0)), (cycle0 + 14, (1, 1.0))):
        sc_w = Scenario(sc.name, sc.sumocfg, sc.net_file, sc.route_files, [add], begin, sc.end)
        rep = CompileReport()
        j = compile_network(sc_w, report=rep).junctions[0]
        assert j.green_states == [A, C] and j.fixed_green == [38.0, 37.0] and j.program_greens == [0, -1, 1, -1, 0]
        assert rep.merged_greens == {"gneJ207": [[4, 0]]}
        assert (j.start_phase, j.start_offset) == start


def test_lengthened_intervals_are_reported(resco_dir, tmp_path):
    """Lintas never relaxes its minimums: a 2 s yellow, a 3 s green and a green that ends without yellow
    are shown longer, and the report lists each (junction, phase, links, the net's and the shown value)."""
    sc = load_scenario(resco_dir / "ingolstadt1")
    phases = [("GGgGrGGG", 30), ("yyyGryyy", 2), ("rrrGGrrr", 3), ("rrrGrrrr", 20), ("rrryrrrr", 3)]
    add = _gneJ207_add(tmp_path, phases)
    rep = CompileReport()
    j = compile_network(Scenario(sc.name, sc.sumocfg, sc.net_file, sc.route_files, [add], sc.begin, sc.end),
                        report=rep).junctions[0]
    got = {(e["what"], e["phase"], e.get("to_phase"), tuple(e["links"]), e["net"], e["shown"]) for e in rep.lengthened}
    assert got == {
        ("yellow", 0, 1, (0, 1, 2, 5, 6, 7), 2.0, 3.0),  # link 3 stays green into the next phase
        ("green", 1, None, (), 3.0, 5.0),
        ("yellow", 1, 2, (4,), 0.0, 3.0),  # the net takes link 4 from green straight to red
        ("all-red", 1, 2, (), 0.0, 1.0),
    }
    assert all(e["junction"] == "gneJ207" for e in rep.lengthened) and not rep.shortened
    assert rep.program_type == {"gneJ207": "static"}
    # shortened: greens longer than the maximum green
    rep = CompileReport()
    compile_network(resco_dir / "ingolstadt1", max_green=30.0, report=rep)
    assert {(e["phase"], e["net"], e["shown"]) for e in rep.shortened} == {(0, 38.0, 30.0), (2, 37.0, 30.0)}
    assert j.yellow[0] == 3.0


def test_program_type_of_an_actuated_net(tmp_path):
    rep = CompileReport()
    compile_network(_grid(tmp_path, "act", "--tls.default-type", "actuated"), report=rep)
    assert rep.program_type and set(rep.program_type.values()) == {"actuated"}


# ------------------------------------------------------------------------------------------------
# compatibility: SUMO's right of way, the net's own states
def _foes_and_response(net_file: Path, tid: str, n_links: int):
    """(foes, must_yield) per link pair straight from sumolib's node objects (its own index lookup)."""
    snet = sumolib.net.readNet(str(net_file), withPrograms=True, withInternal=True, withPedestrianConnections=True)
    conns = {}
    for in_lane, out_lane, li in snet.getTLS(tid).getConnections():
        for c in in_lane.getOutgoing():
            if c.getToLane() is out_lane and c.getTLLinkIndex() == li:
                conns[li] = c
    foes = np.zeros((n_links, n_links), dtype=bool)
    yields = np.zeros((n_links, n_links), dtype=bool)
    for a, ca in conns.items():
        for b, cb in conns.items():
            if a != b and ca.getJunction() is cb.getJunction():
                ia, ib = ca.getJunctionIndex(), cb.getJunctionIndex()
                node = ca.getJunction()
                foes[a, b] = node.areFoes(ia, ib) or node.areFoes(ib, ia)
                yields[a, b] = node.forbids(cb, ca)
    return foes, yields, set(conns)


@pytest.mark.parametrize("variant", [
    ("--turn-lanes", "1"),
    ("--turn-lanes", "1", "--tls.layout", "incoming"),
    ("--sidewalks.guess", "--crossings.guess", "--turn-lanes", "1"),
    ("--bikelanes.guess", "--turn-lanes", "1"),
])
def test_compatibility_follows_sumos_right_of_way(tmp_path, variant):
    """(a) every state of the net's own program (greens and transitions) is compatible; (b) a minor link
    that yields to its foe by the junction's response matrix may be active with it; (c) foes never shown
    together with no yield relation conflict whatever the letters; yields is SUMO's response matrix."""
    from controllers.monitor import ConflictMonitor
    from simulation.sumo.programs import running_programs

    net_file = _grid(tmp_path, "v", *variant)
    net = compile_network(net_file)
    run = running_programs(net_file)
    for j in net.junctions:
        C, Y = j.conflict_matrix(), j.yield_matrix()
        foes, must_yield, mapped = _foes_and_response(net_file, j.id, j.n_links)
        for a in mapped:
            for b in mapped:
                assert Y[a, b] == must_yield[a, b], (j.id, a, b)
        states = [p.state for p in run.programs[j.id].phases]
        act = np.array([[c in "GgyY" for c in s] for s in states])
        for s in states:
            assert ConflictMonitor(j).check(s), (j.id, s)
        for a in range(j.n_links):
            for b in range(a + 1, j.n_links):
                shown = bool((act[:, a] & act[:, b]).any())
                if a in mapped and b in mapped:
                    assert C[a, b] == (foes[a, b] and not shown), (j.id, a, b)
                if not C[a, b]:
                    continue
                s = ["r"] * j.n_links
                s[a], s[b] = "G", "G"
                assert not ConflictMonitor(j).check("".join(s))
                s[a] = "g"
                assert ConflictMonitor(j).check("".join(s)) == bool(Y[a, b]), (j.id, a, b)


def test_a_pair_shown_only_in_a_transition_is_compatible(resco_dir, tmp_path):
    """The net's transition states are compatible states: a foe of the green that ends, shown starting
    (``G``) while that green is still yellow (``Y``), is no conflict (the monitor latched on such states)."""
    from controllers.monitor import ConflictMonitor

    sc = load_scenario(resco_dir / "ingolstadt1")
    base = compile_network(sc).junctions[0]
    C = base.conflict_matrix()
    A, C2 = "GGgGrGGG", "rrrGGGrr"
    a, b = next((x, y) for x in range(8) for y in range(8) if A[x] == "G" and C2[y] == "G" and C[x, y])
    mid = ["r"] * 8
    mid[a], mid[b] = "Y", "G"
    mid = "".join(mid)
    assert not ConflictMonitor(base).check(mid)  # not a state of the net's program: a conflict
    phases = [(A, 38), ("yygyryyy", 3), (mid, 2), (C2, 37), ("rrryyyrr", 3)]
    add = _gneJ207_add(tmp_path, phases)
    j = compile_network(Scenario(sc.name, sc.sumocfg, sc.net_file, sc.route_files, [add], sc.begin,
                                 sc.end)).junctions[0]
    assert not j.conflict_matrix()[a, b]
    assert ConflictMonitor(j).check(mid)


def test_net_yellow_to_green_pairs(resco_dir):
    """ingolstadt1's own program takes links 0 and 1 from yellow straight to green: the pair of states is
    in the spec (tlscheck and the monitor accept exactly these)."""
    j = compile_network(resco_dir / "ingolstadt1").junctions[0]
    assert ("yygyryyy", "GGGrrrrr") in j.net_yellow_to_green
    assert all(any(x in "yY" and y in "Gg" for x, y in zip(p, q)) for p, q in j.net_yellow_to_green)
