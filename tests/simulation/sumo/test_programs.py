"""simulation.sumo.programs: the program SUMO runs for each light (last loaded wins, additional files in
order, gzipped files, WAUTs), checked against SUMO itself."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from simulation.experiments.catalog import REPO
from simulation.sumo.netcompile import CompileReport, compile_network
from simulation.sumo.programs import read_programs, running_programs
from simulation.sumo.scenario import Scenario, load_scenario

PHASES_A = [("GGgGrGGG", 40), ("yygyryyy", 3), ("rrrGGGrr", 40), ("rrryyyrr", 3)]
PHASES_B = [("GGgGrGGG", 20), ("yygyryyy", 3), ("rrrGGGrr", 20), ("rrryyyrr", 3)]


def _tl(pid: str, phases, tid: str = "gneJ207", extra: str = "") -> str:
    body = "".join(f'    <phase duration="{d:g}" state="{s}"{extra}/>\n' for s, d in phases)
    return f'  <tlLogic id="{tid}" type="static" programID="{pid}" offset="0">\n{body}  </tlLogic>\n'


def _libsumo_program(net: Path, adds: list[Path], begin: float) -> str:
    """The program SUMO runs for gneJ207 one step after ``begin`` (its own process: libsumo keeps state)."""
    code = (
        "import sumo, libsumo\n"
        "from simulation.sumo.tools import sumo_binary\n"
        f"adds = {','.join(map(str, adds))!r}\n"
        f"libsumo.start([sumo_binary(), '-n', {str(net)!r}, *(['-a', adds] if adds else []), '-b', '{begin:g}',"
        " '--no-step-log', '--no-warnings'])\n"
        "libsumo.simulationStep()\n"
        "print(libsumo.trafficlight.getProgram('gneJ207'))\n"
        "libsumo.close()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip().splitlines()[-1]


@pytest.fixture()
def ingolstadt1(resco_dir) -> Scenario:
    return load_scenario(resco_dir / "ingolstadt1")


def test_last_loaded_program_wins_in_file_order(tmp_path, ingolstadt1):
    a = tmp_path / "a.add.xml"
    a.write_text("<additional>\n" + _tl("first", PHASES_A) + _tl("second", PHASES_B) + "</additional>\n")
    b = tmp_path / "b.add.xml.gz"  # gzipped, and loaded after a
    with gzip.open(b, "wt") as fh:
        fh.write("<additional>\n" + _tl("third", PHASES_A) + "</additional>\n")
    run = running_programs(ingolstadt1.net_file, [a, b], ingolstadt1.begin)
    prog = run.programs["gneJ207"]
    assert (prog.program_id, prog.source, run.counts["gneJ207"]) == ("third", str(b), 4)
    assert _libsumo_program(ingolstadt1.net_file, [a, b], ingolstadt1.begin) == "third"
    run = running_programs(ingolstadt1.net_file, [a], ingolstadt1.begin)
    assert run.programs["gneJ207"].program_id == "second" == _libsumo_program(ingolstadt1.net_file, [a],
                                                                                  ingolstadt1.begin)
    assert running_programs(ingolstadt1.net_file).programs["gneJ207"].source == "net"


def test_a_net_with_two_programs_runs_its_last(tmp_path, ingolstadt1):
    text = ingolstadt1.net_file.read_text()
    start = text.index("<tlLogic")
    end = text.index("</tlLogic>", start) + len("</tlLogic>")
    second = text[start:end].replace('programID="0"', 'programID="1"').replace('duration="38"', 'duration="17"')
    net = tmp_path / "two.net.xml"
    net.write_text(text[:end] + "\n    " + second + text[end:])
    run = running_programs(net, [], ingolstadt1.begin)
    assert run.programs["gneJ207"].program_id == "1" == _libsumo_program(net, [], ingolstadt1.begin)
    assert run.counts["gneJ207"] == 2 and run.programs["gneJ207"].phases[0].duration == 17.0
    rep = CompileReport()
    j = compile_network(net, report=rep).junctions[0]
    assert rep.multi_program == {"gneJ207": 2} and rep.program_source["gneJ207"] == "net:1"
    assert j.fixed_green[0] == 17.0


def test_a_file_whose_root_is_a_tllogic_keeps_every_phase_attribute(tmp_path):
    f = tmp_path / "plan.add.xml"
    f.write_text('<tlLogic id="J" programID="p" type="static" offset="3">\n'
                 '  <phase duration="10" state="Gr" name="main" next="1"/>\n'
                 '  <phase duration="3" state="yr" minDur="3" maxDur="3"/>\n'
                 '</tlLogic>\n')
    (prog,), wauts = read_programs(f)
    assert not wauts and prog.offset == 3.0 and [p.state for p in prog.phases] == ["Gr", "yr"]
    assert prog.phases[1].min_dur == 3.0 and prog.phases[0].min_dur == -1.0
    assert prog.element.findall("phase")[0].attrib == {"duration": "10", "state": "Gr", "name": "main", "next": "1"}


def test_waut_program_at_begin_and_reported(tmp_path, ingolstadt1):
    add = tmp_path / "w.add.xml"
    add.write_text("<additional>\n" + _tl("day", PHASES_A) + _tl("night", PHASES_B)
                   + '  <WAUT refTime="0" id="w1" startProg="night">\n'
                     '    <wautSwitch time="57000" to="day"/>\n    <wautSwitch time="58000" to="night"/>\n'
                     '  </WAUT>\n  <wautJunction wautID="w1" junctionID="gneJ207"/>\n</additional>\n')
    for begin, want in ((56000.0, "night"), (57600.0, "day"), (58500.0, "night")):
        run = running_programs(ingolstadt1.net_file, [add], begin)
        assert run.programs["gneJ207"].program_id == want
        assert "WAUT 'w1'" in run.waut["gneJ207"] and "not supported" in run.waut["gneJ207"]
        assert _libsumo_program(ingolstadt1.net_file, [add], begin) == want
    sc = Scenario(ingolstadt1.name, ingolstadt1.sumocfg, ingolstadt1.net_file, ingolstadt1.route_files, [add],
                  57600.0, 58600.0)
    rep = CompileReport()
    j = compile_network(sc, report=rep).junctions[0]
    assert rep.program_source["gneJ207"].endswith(":day") and "gneJ207" in rep.waut
    assert j.fixed_green == [40.0, 40.0]
