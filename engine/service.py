"""Running a component as its own process: a poll loop, and a wall-clock ticker for field use.

In simulation the clock is the runner's ``tick`` messages on the bus; in the field each process
ticks from the wall clock (``WallTicker``). Either way the component only sees times it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import zmq


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
