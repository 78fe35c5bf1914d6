"""Running a component as its own process: a poll loop, a wall-clock ticker for field use, and what every
command that starts one shares (its key pair from ``--keys``, its metrics endpoint from ``--metrics-port``,
and the one-line error that names a bad option).

In simulation the clock is the runner's ``tick`` messages on the bus; in the field each process
ticks from the wall clock (``WallTicker``). Either way the component only sees times it is given.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import zmq

from engine.protocol.bus import EndpointError
from engine.protocol.security import Security, SecurityError, handshake_watch
from engine.protocol.telemetry import ConnectionCollector, serve_metrics


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


def load_security(keys: Path | None, me: str, ctx: zmq.Context, *, serves: str | None = None) -> Security | None:
    """The CURVE security of process ``me`` from the key directory of ``--keys``, or None without it. A process
    that ``serves`` (the bus, the engine) is refused a directory whose ``allowed/`` is missing or empty."""
    if keys is None:
        return None
    try:
        sec = Security.load(keys, me, ctx)
    except SecurityError as exc:
        raise CommandError(str(exc)) from None
    if serves is not None:
        try:
            sec.check_serving(serves)
        except SecurityError as exc:
            sec.close()
            raise CommandError(str(exc)) from None
    return sec


def check_endpoints(options: Mapping[str, str]) -> None:
    """Refuse, naming the options, two options given the same endpoint (``--bus-in`` equal to ``--bus-out``:
    one bind would fail, or a socket would talk to itself) and a tcp port outside 1-65535 (ZeroMQ would
    silently bind another). ``options``: option name -> endpoint."""
    seen: dict[str, str] = {}
    for opt, ep in options.items():
        if not ep:
            continue
        if ep in seen:
            raise CommandError(f"{seen[ep]} and {opt} are the same endpoint ({ep}): each needs its own")
        seen[ep] = opt
        scheme, sep, rest = ep.partition("://")
        if sep and scheme.lower() == "tcp" and ":" in rest:
            port = rest.rsplit(":", 1)[1]
            if port != "*" and not (port.isdigit() and 0 < int(port) < 65536):
                raise CommandError(f"{opt}: {ep}: the port must be 1-65535 (or * for any)")


def endpoint_error(exc: EndpointError, options: Mapping[str, str]) -> CommandError:
    """The one-line error of a bind or connect that failed, naming the option that gave the endpoint."""
    opts = [o for o, ep in options.items() if ep == exc.endpoint]
    return CommandError(f"{' / '.join(opts) + ': ' if opts else ''}{exc}")


def start_metrics(port: int | None, collector, *more) -> Callable[[], None]:
    """Serve ``collector`` (and ``more``) on http://127.0.0.1:PORT/metrics when ``--metrics-port`` is given;
    returns the function that stops it (a no-op without a port)."""
    if port is None:
        return lambda: None
    if not 0 < port < 65536:
        raise CommandError(f"--metrics-port: {port}: the port must be 1-65535")
    try:
        return serve_metrics(port, collector, *more)
    except OSError as exc:
        raise CommandError(f"--metrics-port: cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}") from None


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
                      metrics_port: int | None = None, security: Security | None = None,
                      name: str | None = None, on_ready: Callable[[], object] | None = None) -> None:
    """Run a component as its process's main loop until it stops or Ctrl-C: on the bus's ticks
    (``clock="bus"``) or every wall-clock second (``on_tick``), with its metrics endpoint when a port is
    given (``collector``'s, and its connections' under ``lintas_<name>_``; ``name`` defaults to the
    collector's class name without ``Collector``: ``engine``, ``controller``); then close it, the handshake
    watch of its context (``watch_handshakes``, which the command started before making the component) and its
    security. ``on_ready()`` once everything is bound (a banner: a process that cannot serve prints only its
    error)."""
    socks = component.sockets()
    watch = handshake_watch(socks[0].context) if socks else None
    name = name or type(collector).__name__.removesuffix("Collector").lower()

    def close() -> None:
        component.close()
        if watch is not None:
            watch.close()
        if security is not None:
            security.close()

    try:
        stop_metrics = start_metrics(metrics_port, collector, ConnectionCollector(name, security, watch))
    except CommandError:
        close()
        raise
    if on_ready is not None:
        on_ready()
    try:
        if clock == "wall":
            serve(component, on_tick=on_tick, ticker=WallTicker(1.0))
        else:
            serve(component)
    except KeyboardInterrupt:
        pass
    finally:
        stop_metrics()
        close()


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
