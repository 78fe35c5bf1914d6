"""simulation.sumo.baselines: SUMO's own actuated and delay-based programs, re-declared from the program SUMO runs."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from simulation.sumo.baselines import BASELINES, program_id, write_sumo_program
from simulation.sumo.scenario import load_scenario
from simulation.sumo.tools import sumo_binary


def test_baselines_table() -> None:
    assert BASELINES == {"sumo-static": None, "sumo-actuated": "actuated", "sumo-delay": "delay_based"}


@pytest.mark.parametrize("kind", ["actuated", "delay_based"])
def test_write_sumo_program(tmp_path: Path, kind: str, resco_dir: Path) -> None:
    net_file = load_scenario(resco_dir / "ingolstadt7").net_file
    out = write_sumo_program(net_file, kind, tmp_path / "prog.add.xml")
    net_tls = {tl.get("id"): tl for tl in ET.parse(net_file).getroot().iter("tlLogic")}
    new_tls = {tl.get("id"): tl for tl in ET.parse(out).getroot().iter("tlLogic")}
    assert set(new_tls) == set(net_tls) and len(new_tls) == 7
    for tid, tl in new_tls.items():
        assert tl.get("type") == kind and tl.get("programID") == program_id(kind)
        old = net_tls[tid].findall("phase")
        new = tl.findall("phase")
        assert [p.get("state") for p in new] == [p.get("state") for p in old]
        for po, pn in zip(old, new):
            state = po.get("state")
            if ("G" in state or "g" in state) and "y" not in state:
                assert float(pn.get("minDur")) == 5.0 and float(pn.get("maxDur")) == 50.0
            else:  # yellow / red phases unchanged
                assert pn.attrib == po.attrib


def test_write_sumo_program_from_a_gzipped_net(tmp_path: Path) -> None:
    """Published scenarios often ship ``.net.xml.gz``: the program is written from it all the same."""
    from simulation.experiments.catalog import DEMO

    net = load_scenario(DEMO).net_file
    gz = tmp_path / "demo.net.xml.gz"
    with open(net, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain = ET.parse(write_sumo_program(net, "actuated", tmp_path / "a.add.xml")).getroot()
    zipped = ET.parse(write_sumo_program(gz, "actuated", tmp_path / "b.add.xml")).getroot()
    assert ET.tostring(plain) == ET.tostring(zipped) and len(zipped.findall("tlLogic")) == 12


def test_sumo_program_becomes_active(tmp_path: Path, resco_dir: Path) -> None:
    """The re-declared program is the active one (TraCI: a separate sumo process, so no libsumo
    state is left in the test process)."""
    traci = pytest.importorskip("traci")
    scn = load_scenario(resco_dir / "cologne1")
    prog = write_sumo_program(scn.net_file, "actuated", tmp_path / "act.add.xml")
    label = f"test-program-{id(tmp_path)}"
    traci.start([sumo_binary(), "-c", str(scn.sumocfg), "--additional-files", str(prog),
                 "--no-step-log", "true", "--no-warnings", "true"], label=label, stdout=subprocess.DEVNULL)
    conn = traci.getConnection(label)
    try:
        conn.simulationStep()
        ids = conn.trafficlight.getIDList()
        assert ids == ("GS_cluster_357187_359543",)
        for tid in ids:
            assert conn.trafficlight.getProgram(tid) == "lintas_actuated"
            logic = [lg for lg in conn.trafficlight.getAllProgramLogics(tid) if lg.programID == "lintas_actuated"]
            assert len(logic) == 1 and logic[0].type == 3  # TRAFFICLIGHT_TYPE_ACTUATED
    finally:
        conn.close()


def _two_program_net(tmp_path: Path, resco_dir: Path) -> Path:
    """ingolstadt1's net with a second program for its light (programID '1', other durations), as public
    nets sometimes ship."""
    src = load_scenario(resco_dir / "ingolstadt1").net_file
    root = ET.parse(src).getroot()
    tl = root.find("tlLogic")
    second = ET.fromstring(ET.tostring(tl))
    second.set("programID", "1")
    for ph in second.findall("phase"):
        if "y" not in ph.get("state"):
            ph.set("duration", "17")
    root.insert(list(root).index(tl) + 1, second)
    out = tmp_path / "two.net.xml"
    ET.ElementTree(root).write(out, encoding="UTF-8", xml_declaration=True)
    return out


@pytest.mark.parametrize("kind", ["actuated", "delay_based"])
def test_a_net_with_two_programs_for_one_light(tmp_path: Path, resco_dir: Path, kind: str) -> None:
    """One program per light, the one SUMO runs (the last loaded): re-declaring both gave SUMO two programs
    with the same new programID ("Another logic with id ... exists")."""
    net = _two_program_net(tmp_path, resco_dir)
    out = write_sumo_program(net, kind, tmp_path / "prog.add.xml")
    tls = ET.parse(out).getroot().findall("tlLogic")
    assert len(tls) == 1 and tls[0].get("programID") == program_id(kind)
    greens = [float(p.get("duration")) for p in tls[0].findall("phase") if "y" not in p.get("state")]
    assert greens == [17.0, 17.0, 17.0]  # program '1', the last loaded
    r = subprocess.run([sumo_binary(), "-n", str(net), "-a", str(out), "--end", "5", "--no-step-log"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and "Error" not in r.stderr, r.stderr[-2000:]


def test_program_from_the_additional_files_with_every_phase_attribute(tmp_path: Path, resco_dir: Path) -> None:
    """The scenario's own tlLogic (last loaded wins, gzipped or not) is the one re-declared, with its phases'
    attributes (name, next, ...); SUMO runs the new program."""
    traci = pytest.importorskip("traci")
    scn = load_scenario(resco_dir / "ingolstadt1")
    add = tmp_path / "own.add.xml.gz"
    with gzip.open(add, "wt") as fh:
        fh.write('<additional>\n  <tlLogic id="gneJ207" type="static" programID="city" offset="5">\n'
                 '    <phase duration="30" state="GGgGrGGG" name="main" next="1"/>\n'
                 '    <phase duration="3" state="yygyryyy" name="clear"/>\n'
                 '    <phase duration="20" state="rrrGGGrr" name="side"/>\n'
                 '    <phase duration="3" state="rrryyyrr"/>\n'
                 '  </tlLogic>\n</additional>\n')
    out = write_sumo_program(scn.net_file, "actuated", tmp_path / "act.add.xml", additional_files=[add])
    (tl,) = ET.parse(out).getroot().findall("tlLogic")
    phases = tl.findall("phase")
    assert tl.get("offset") == "5" and [p.get("name") for p in phases] == ["main", "clear", "side", None]
    assert phases[0].get("next") == "1" and phases[0].get("minDur") == "5" and phases[0].get("maxDur") == "50"
    assert phases[1].attrib == {"duration": "3", "state": "yygyryyy", "name": "clear"}
    label = f"test-additional-{id(tmp_path)}"
    traci.start([sumo_binary(), "-c", str(scn.sumocfg), "--additional-files", f"{add},{out}",
                 "--no-step-log", "true", "--no-warnings", "true"], label=label, stdout=subprocess.DEVNULL)
    conn = traci.getConnection(label)
    try:
        conn.simulationStep()
        assert conn.trafficlight.getProgram("gneJ207") == "lintas_actuated"
        logic = [lg for lg in conn.trafficlight.getAllProgramLogics("gneJ207") if lg.programID == "lintas_actuated"]
        assert [p.name for p in logic[0].phases][:3] == ["main", "clear", "side"]
    finally:
        conn.close()
