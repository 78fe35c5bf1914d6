"""``lintas api --demo``: the demo city (Bunda Kota) simulated behind the API, in real time or faster.

The simulation runs as a subprocess (``python -m simulation.experiments.live``: the closed loop of ``lintas
simulate`` with the adaptive policy, publishing its buses, the controllers' states and the engine's plans on
a ZeroMQ endpoint it binds); the API subscribes to that endpoint like any bus. The transit API imports nothing
of the simulation (the layers: they are siblings), it only starts the process and reads the bus.

The demo's clock: simulation second 0 is 07:00:00 of today in the feed's time zone (the demo feed's times,
scenarios/bunda_kota/gtfs.py's ``SIM_ZERO``), and the API's "now" is the simulation's latest time, so a
commuter asking for the next buses at a stop sees the simulated buses coming.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, time
from pathlib import Path

from transit_api.gtfs import Feed
from transit_api.vehicles import Clock

REPO = Path(__file__).resolve().parents[1]
DEMO_SCENARIO = REPO / "scenarios" / "bunda_kota"
DEMO_GTFS = DEMO_SCENARIO / "gtfs"
DEMO_NET = DEMO_SCENARIO / "bunda_kota.net.xml"
SIM_ZERO = time(7, 0)  # simulation second 0 (scenarios/bunda_kota/gtfs.py: SIM_ZERO = 7 * 3600)


def demo_clock(feed: Feed, today: datetime | None = None) -> Clock:
    """Simulation second 0 = today's 07:00 in the feed's time zone."""
    day = (today or datetime.now(feed.timezone)).astimezone(feed.timezone).date()
    return Clock(datetime.combine(day, SIM_ZERO, tzinfo=feed.timezone))


def simulation_command(endpoint: str, speed: float, seed: int = 1, end: float | None = None,
                       scenario: Path = DEMO_SCENARIO, network_out: Path | None = None,
                       incidents: list[str] | tuple[str, ...] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "simulation.experiments.live", str(scenario), "--publish", endpoint,
           "--speed", repr(float(speed)), "--seed", str(seed), "--parent-pid", str(os.getpid())]
    if end is not None:
        cmd += ["--end", repr(float(end))]
    if network_out is not None:  # the compiled network (traffic information), written before the first step
        cmd += ["--network-out", str(network_out)]
    for x in incidents:  # vehicles stopped in a lane (simulation/sumo/incident.py)
        cmd += ["--incident", x]
    return cmd


def start_simulation(endpoint: str, speed: float, seed: int = 1, end: float | None = None,
                     log: Path | None = None, network_out: Path | None = None,
                     incidents: list[str] | tuple[str, ...] = ()) -> subprocess.Popen:
    """Start the demo city's simulation publishing on ``endpoint`` (it binds it); its output goes to ``log``. It
    ends with this process however this one ends (a parent-death signal, controllers/lifeline.py)."""
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed by the process's end
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(simulation_command(endpoint, speed, seed, end, network_out=network_out,
                                               incidents=incidents), stdin=subprocess.DEVNULL, stdout=out,
                            stderr=out, env=env, start_new_session=True)


def stop_simulation(proc: subprocess.Popen, wait: float = 10.0) -> None:
    """SIGTERM to its process group (the run stops its controllers and SUMO), then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, wait), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            proc.send_signal(sig)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
