"""simulation.sumo.baselines: SUMO's own actuated and delay-based programs, re-declared from the net's phases."""

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
