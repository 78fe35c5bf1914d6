"""Drivers for the signal heads. A driver shows a signal string; nothing else touches the heads."""

from __future__ import annotations

from typing import Protocol


class HeadDriver(Protocol):
    def show(self, signal: str) -> None: ...

    def occupied(self, links: list[int]) -> bool:
        """True while vehicles of ``links`` are still inside the junction (optional sensing)."""
        ...


class NullHeads:
    """Heads that are driven elsewhere: the controller only publishes its state (remote cabinet)."""

    def show(self, signal: str) -> None:
        pass

    def occupied(self, links: list[int]) -> bool:
        return False


class SumoCabinet:
    """Shows a controller's output on a SUMO traffic light with setRedYellowGreenState.

    ``conn`` is the ``libsumo`` or ``traci`` module (or a traci connection). ``via_lanes`` are the
    internal lanes of the junction's links (from the net), used to tell whether vehicles of cleared
    links are still inside the junction."""

    def __init__(self, conn, tls_id: str, via_lanes: list[str] | None = None) -> None:
        self.conn = conn
        self.tls_id = tls_id
        self.via = via_lanes or []
        self._last: str | None = None
        self._chains: dict[int, list[str]] = {}

    def _chain(self, i: int) -> list[str]:
        """Internal lanes a vehicle of link ``i`` passes (the via lane and any internal-junction lane
        after it, where left-turners wait for a gap)."""
        chain = self._chains.get(i)
        if chain is None:
            chain = []
            lane = self.via[i] if i < len(self.via) else ""
            while lane and lane.startswith(":") and lane not in chain and len(chain) < 4:
                chain.append(lane)
                nxt = ""
                for link in self.conn.lane.getLinks(lane):
                    cand = link[4] if len(link) > 4 and link[4] else link[0]
                    if cand.startswith(":"):
                        nxt = cand
                        break
                lane = nxt
            self._chains[i] = chain
        return chain

    def show(self, signal: str) -> None:
        if signal != self._last:
            self.conn.trafficlight.setRedYellowGreenState(self.tls_id, signal)
            self._last = signal

    def occupied(self, links: list[int]) -> bool:
        count = self.conn.lane.getLastStepVehicleNumber
        seen: set[str] = set()
        for i in links:
            for v in self._chain(i):
                if v not in seen:
                    seen.add(v)
                    if count(v) > 0:
                        return True
        return False
