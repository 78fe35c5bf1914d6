"""Running a component as its own process: a poll loop, a wall-clock ticker for field use, and what every
command that starts one shares (its key pair from ``--keys``, its metrics endpoint from ``--metrics-port``,
and the one-line error that names a bad option).

In simulation the clock is the runner's ``tick`` messages on the bus; in the field each process
ticks from the wall clock (``WallTicker``). Either way the component only sees times it is given.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from engine.protocol.security import Security, SecurityError
from engine.protocol.telemetry import serve_metrics


class CommandError(Exception):
    """A command that cannot run as asked: one line naming the option or file. The command tree (and
    :func:`run_commands` for ``python -m`` of a package) shows it as ``lintas: error: <message>`` and exits
    with code 2."""


def run_commands(app, prog_name: str) -> None:
    """Run a package's typer ``app`` as a program (``python -m engine``, ``python -m controllers``), with a
    :class:`CommandError` shown as one line and exit code 2."""
    try:
        app(prog_name=prog_name)
    except CommandError as exc:
        print(f"lintas: error: {exc}", file=sys.stderr)
        sys.exit(2)


def load_security(keys: Path | None, me: str, ctx: zmq.Context) -> Security | None:
    """The CURVE security of process ``me`` from the key directory of ``--keys``, or None without it."""
    if keys is None:
        return None
    try:
        return Security.load(keys, me, ctx)
    except SecurityError as exc:
        raise CommandError(str(exc)) from None


def start_metrics(port: int | None, collector) -> Callable[[], None]:
    """Serve ``collector`` on http://127.0.0.1:PORT/metrics when ``--metrics-port`` is given; returns the
    function that stops it (a no-op without a port)."""
    if port is None:
        return lambda: None
    try:
        return serve_metrics(port, collector)
    except OSError as exc:
        raise CommandError(f"--metrics-port: cannot serve on port {port}: {exc.strerror or exc}") from None


class WallTicker:
    """Ticks every ``period`` seconds of the given clock (default: Unix time)."""

    def __init__(self, period: float = 1.0, now: Callable[[], float] = time.time) -> None:
        self.period = period
        self.now = now
        self.next = (int(now() / period) + 1) * period

    def due(self) -> float | None:
        t = self.now()
        if t < self.next:
            return None
        tick = self.next
        # never replay a backlog of ticks after a stall: jump to the latest one
        self.next = (int(t / self.period) + 1) * self.period
        return tick

    def ms_until_next(self) -> int:
        return max(0, int((self.next - self.now()) * 1000))


CLOCKS = ("bus", "wall")  # a component's clock: the runner's ticks on the bus, or the wall clock


def run_until_stopped(component, *, clock: str, on_tick: Callable[[float], object], collector,
                      metrics_port: int | None = None, security: Security | None = None) -> None:
    """Run a component as its process's main loop until it stops or Ctrl-C: on the bus's ticks
    (``clock="bus"``) or every wall-clock second (``on_tick``), with its metrics endpoint when a port is
    given; then close it and its security."""
    try:
        stop_metrics = start_metrics(metrics_port, collector)
    except CommandError:
        component.close()
        if security is not None:
            security.close()
        raise
    try:
        if clock == "wall":
            serve(component, on_tick=on_tick, ticker=WallTicker(1.0))
        else:
            serve(component)
    except KeyboardInterrupt:
        pass
    finally:
        stop_metrics()
        component.close()
        if security is not None:
            security.close()


def serve(component, on_tick: Callable[[float], object] | None = None, ticker: WallTicker | None = None,
          stop: Callable[[], bool] | None = None) -> None:
    """Pump ``component`` (``sockets()``, ``pump()``, ``stopped``) until it stops; with a ticker,
    call ``on_tick(t)`` on every wall-clock tick."""
    poller = zmq.Poller()
    for s in component.sockets():
        poller.register(s, zmq.POLLIN)
    while not component.stopped and not (stop and stop()):
        progressed = component.pump()
        if ticker is not None and on_tick is not None:
            t = ticker.due()
            if t is not None:
                on_tick(t)
                continue
        if not progressed:
            wait = 50 if ticker is None else min(50, ticker.ms_until_next())
            poller.poll(wait)
