"""simulation/sumo/locks.py on real SUMO (libsumo, in a fresh process per run): a lane whose exit is blocked locks
through green, the episode ends when a vehicle leaves again, a lane held at red is starvation and no lock, and a
lock needs 30 s of green within the 300 s without a departure."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from onejunction import W_GREEN, W_RED, one_junction

from simulation.sumo.locks import LOCK_GREEN_S, LOCK_S

# Steps SUMO one second at a time and samples the watch every second, as the runner does. Until ``hold`` the
# light shows ``state`` (set by hand); then SUMO's own program again, or ``after`` when given.
SCRIPT = textwrap.dedent("""
    import json, sys
    import sumo  # noqa: F401  (sets SUMO_HOME)
    import libsumo as conn
    import sumolib
    from simulation.sumo.locks import LockWatch

    cfg, end, hold, state, after = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
    conn.start([sumolib.checkBinary("sumo"), "-c", cfg, "--time-to-teleport", "-1", "--no-step-log", "true",
                "--no-warnings", "true"])
    links = [ls[0][0] for ls in conn.trafficlight.getControlledLinks("C")]
    watch = LockWatch(conn, ["C"])
    t = conn.simulation.getTime()
    watch.sample(t)
    halting = {}
    while t < end:
        if t < hold:
            conn.trafficlight.setRedYellowGreenState("C", state)
        elif after != "-":
            conn.trafficlight.setRedYellowGreenState("C", after)
        elif t == hold:
            conn.trafficlight.setProgram("C", "0")
        conn.simulationStep()
        t = conn.simulation.getTime()
        watch.sample(t)
        if t == hold - 1:
            halting = {lane: conn.lane.getLastStepHaltingNumber(lane) for lane in watch.lanes}
    conn.close()
    print(json.dumps({"links": links, "lanes": watch.lanes, "events": watch.events, "locks": watch.locks,
                      "halting": halting}))
""")


def watch(cfg: Path, *, end: float = 700, hold: float = 0, state: str = "-", after: str = "-") -> dict:
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(cfg), f"{end:g}", f"{hold:g}", state, after],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["links"] == ["NC_0", "NC_0", "WC_0", "WC_0"]  # what W_RED and W_GREEN assume
    assert out["lanes"] == ["NC_0", "WC_0"]
    return out


def test_a_blocked_exit_locks_its_lane_until_a_vehicle_leaves(tmp_path):
    """The blocker stands on the exit for 500 s: WC_0 queues through every green from t=0, is a lock at 300 s
    (no vehicle left for 300 s, 42 s of green a cycle), and the episode ends when the queue moves again."""
    out = watch(one_junction(tmp_path / "j", blocker=500))
    (ev,) = out["events"]
    assert out["locks"] == 1
    assert ev["junction"] == "C" and ev["lane"] == "WC_0"
    assert ev["since"] == 0.0 and ev["at"] == LOCK_S  # the first vehicle entered the empty lane at 0
    assert 3 * 42 <= ev["green_s"] <= 4 * 42  # three or four greens of SUMO's program in those 300 s
    assert 500 < ev["until"] < 560  # the blocker leaves at ~502 s, the head of the queue follows


def test_a_lane_held_at_red_is_starvation_not_a_lock(tmp_path):
    """WC_0 is held red for 400 s with its queue standing, then SUMO's program: no vehicle left for 400 s, but
    with no green that is starvation; once green it discharges."""
    out = watch(one_junction(tmp_path / "j"), hold=400, state=W_RED)
    assert out["halting"]["WC_0"] >= 20  # the queue truly stood through the whole red
    assert out["events"] == [] and out["locks"] == 0


def test_a_lock_needs_its_green(tmp_path):
    """The exit is blocked and WC_0 held red for 400 s, then green for good: the lock is detected when the lane
    has had 30 s of green without a departure, not before."""
    out = watch(one_junction(tmp_path / "j", blocker=2000), hold=400, state=W_RED, after=W_GREEN)
    (ev,) = out["events"]
    assert ev["lane"] == "WC_0" and ev["junction"] == "C" and ev["until"] is None
    assert ev["since"] == 0.0 and ev["at"] == 400 + LOCK_GREEN_S and ev["green_s"] == LOCK_GREEN_S
