"""Fault injection with separate processes over tcp:// and CURVE keys (lintas drill, shortened)."""

import json
import subprocess
import sys

from simulation.experiments.catalog import REPO


def test_drill_kill_engine_restart_kill_controller_keyless_publisher(tmp_path):
    out = tmp_path / "drill"
    r = subprocess.run(
        [sys.executable, "-m", "cli", "drill", "--out", str(out), "--speed", "2",
         "--kill-engine", "60", "--restart-engine", "100", "--kill-controller", "170", "--rogue", "200",
         "--end", "260"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    doc = json.loads((out / "drill.json").read_text())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert doc["ok"] is True
    assert doc["local_after_kill_s"] <= doc["backup_time"] + 1.0
    assert doc["engine_back_after_restart_s"] <= 10.0
    assert doc["offline_marked_after_s"] is not None and doc["others_commanded_after_kill"]
    assert doc["rogue_messages_seen"] == 0 and doc["rogue_refusals"] == 0 and doc["rogue_accepted"] == 0
    assert doc["collisions"] == 0
    assert doc["delay_s"] <= 1.10 * doc["static_delay_s"]
