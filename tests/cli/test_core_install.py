"""The core install: a fresh virtualenv with ``pip install lintas`` (no extras) has no SUMO, yet runs a
controller that comes online with an engine over real sockets, and says what to install for a SUMO command.

pip takes the core's wheels from its cache or the package index (some 20 s with a warm cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
import zmq

from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.junction import JunctionSpec
from simulation.experiments.catalog import REPO


def two_phase_spec() -> JunctionSpec:
    """A crossing of two one-lane roads: phase 0 north-south green, phase 1 east-west green."""
    return JunctionSpec(
        id="J1", n_links=2, green_states=["Gr", "rG"], net_next=[1, 0], fixed_green=[20.0, 20.0],
        min_green=[5.0, 5.0], max_green=[40.0, 40.0], yellow=[3.0, 3.0], allred=[1.0, 1.0],
        net_transitions=[[("yr", 3.0), ("rr", 1.0)], [("ry", 3.0), ("rr", 1.0)]], conflicts=["01", "10"],
        link_in_lane=["n_0", "e_0"], link_out_lane=["s_0", "w_0"], link_via=[":J1_0_0", ":J1_1_0"],
    )


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("core") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # a copy of the working tree, so the build never writes into the repository (build/, egg-info)
    src = tmp_path_factory.mktemp("src") / "lintas"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build",
                                                             "reports", "lintas-*", "results", ".*cache"))
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        str(src)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.fail(f"pip install of the core failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return venv


def _run(venv: Path, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SUMO_HOME")}
    return subprocess.run([str(venv / "bin" / "lintas"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_the_core_has_no_sumo_and_says_what_to_install(core_venv, tmp_path):
    py = str(core_venv / "bin" / "python")
    for module in ("sumo", "sumolib", "libsumo", "traci", "matplotlib"):
        r = subprocess.run([py, "-c", f"import {module}"], cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode != 0, f"{module} is installed with the core"
    r = _run(core_venv, "--help", cwd=tmp_path)
    assert r.returncode == 0 and "controller" in r.stdout, r.stderr
    r = _run(core_venv, "simulate", "anything", cwd=tmp_path)
    assert r.returncode == 2 and "pip install 'lintas[sim]'" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_controller_of_the_core_install_comes_online_and_obeys(core_venv, tmp_path):
    spec = two_phase_spec()
    spec_file = tmp_path / "J1.json"
    spec_file.write_bytes(msgspec.json.encode(spec))
    ctx = zmq.Context()
    ep = bus.endpoints("ipc")
    fwd = bus.Forwarder(ep, ctx).start()
    engine_side = bus.CommandServer(ctx, ep)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SUMO_HOME")}
    proc = subprocess.Popen([str(core_venv / "bin" / "lintas"), "controller", str(spec_file), "--clock", "wall",
                             "--bus-in", ep.bus_in, "--bus-out", ep.bus_out, "--commands", ep.commands],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    states: list[m.ControllerState] = []
    try:
        deadline = time.monotonic() + 60
        seq = 0
        while time.monotonic() < deadline and proc.poll() is None:
            for sender, msg in engine_side.drain():
                if isinstance(msg, m.ControllerState) and sender == spec.id:
                    states.append(msg)
            if states:
                # answer as an engine does, one word per tick: advance to phase 1 once its minimum green has run
                seq += 1
                now = time.time()
                engine_side.send(spec.id, m.PhaseCommand(junction=spec.id, action=m.Action.ADVANCE, phase=1, seq=seq,
                                                         issued_at=now))
            if any(s.phase == 1 and s.interval == m.Interval.GREEN and s.mode == m.Mode.ENGINE for s in states):
                break
            time.sleep(0.2)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        engine_side.close()
        fwd.stop()
        ctx.destroy(linger=0)
        bus.ipc_cleanup(ep)
    assert states, f"the controller never reported: {err[-2000:]}"
    assert all(s.junction == spec.id for s in states)
    served = [s for s in states if s.phase == 1 and s.interval == m.Interval.GREEN]
    assert served and served[-1].mode == m.Mode.ENGINE and served[-1].accepted >= 1, states[-3:]
    assert "Traceback" not in err
