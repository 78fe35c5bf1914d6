"""A closed-loop run seen from outside: the buses' positions on the bus, a relay for the transit API, pacing.

:class:`~simulation.sumo.buses.LiveTap` is what :func:`~simulation.experiments.runner.run_one` adds to a
closed-loop run given ``RunSpec.publish``, ``speed`` or ``on_tick``: every tick it reads SUMO's buses
(:class:`~simulation.sumo.buses.BusTracker`) and publishes them on the run's bus (topic ``veh``); with
``publish`` it binds a PUB there and relays, each tick, the vehicles, every controller's ``state``, the
engine's ``plan`` messages and a ``tick`` (the transit API subscribes to it: ``lintas api --bus-out``); with
``speed`` it paces the run at that many simulated seconds per wall second; ``on_tick(t, conn, vehicles,
states, plans)`` gives a benchmark in this process the same messages (and SUMO's connection, for its ground
truth and its incident).

``python -m simulation.experiments.live SCENARIO --publish tcp://127.0.0.1:5570 --speed 1`` runs one such run
(what ``lintas api --demo`` starts as a subprocess, so the transit API never imports the simulation).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from engine.protocol import bus


def main(argv: list[str] | None = None) -> int:
    """One paced closed-loop run publishing its buses (``lintas api --demo`` starts it)."""
    from simulation.experiments.runner import RunError, RunSpec, run_one

    ap = argparse.ArgumentParser(prog="python -m simulation.experiments.live", description=main.__doc__)
    ap.add_argument("scenario", type=Path)
    ap.add_argument("--publish", required=True, help="endpoint to bind the relay's PUB on (tcp://127.0.0.1:5570)")
    ap.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (default 1)")
    ap.add_argument("--policy", default="adaptive")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--end", type=float, default=None)
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--parent-pid", type=int, default=None, help="end (SIGTERM) when this process ends")
    ap.add_argument("--network-out", type=Path, default=None, help="write the compiled network (network.json) here "
                    "before the first step (the transit API's traffic information reads it)")
    ap.add_argument("--incident", action="append", default=[], help="LANE_OR_EDGE@T:DURATION: a vehicle stopped "
                    "in the lane (simulation/sumo/incident.py); repeat")
    args = ap.parse_args(argv)
    if args.parent_pid is not None:
        import signal

        from controllers.lifeline import ParentGone, die_with_parent

        try:
            die_with_parent(args.parent_pid, sig=signal.SIGTERM)
        except ParentGone as exc:
            print(f"simulation.experiments.live: {exc}", file=sys.stderr)
            return 2
    if not args.speed > 0:
        ap.error(f"--speed must be > 0, not {args.speed}")
    from simulation.sumo.incident import parse_incident

    try:
        incidents = [parse_incident(x) for x in args.incident]
    except ValueError as exc:
        ap.error(f"--incident {exc}")
    out = args.out or Path(tempfile.mkdtemp(prefix="lintas-live-"))
    if args.network_out is not None:
        from simulation.sumo.netcompile import compile_for_run
        from simulation.sumo.scenario import ScenarioError

        try:
            net, _det = compile_for_run(args.scenario, out / "compiled")
        except ScenarioError as exc:
            print(f"simulation.experiments.live: error: {exc}", file=sys.stderr)
            return 2
        tmp = args.network_out.with_name(f".{args.network_out.name}.tmp")
        net.to_json(tmp)
        tmp.replace(args.network_out)  # whole or not at all: the API waits for it
    spec = RunSpec(scenario=args.scenario, policy=args.policy, seed=args.seed, out_dir=out, end=args.end,
                   publish=args.publish, speed=args.speed, incidents=incidents)
    try:
        rec = run_one(spec)
    except (RunError, bus.TransportError) as exc:
        print(f"simulation.experiments.live: error: {exc}", file=sys.stderr)
        return 2
    print(f"simulation.experiments.live: run ended, delay {rec['delay_s']:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    raise SystemExit(main())
