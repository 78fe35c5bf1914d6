"""The lane graph of a SUMO net: normal lanes, their lengths and speeds, and the connections between them
(internal lanes folded into the connection's length). Read once per compile with sumolib and shared by the
net compiler and the detector placement."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sumo  # noqa: F401  (sets SUMO_HOME for sumolib and the binaries)
import sumolib

from simulation.sumo.scenario import ScenarioError

__all__ = ["ChainLane", "LaneGraph", "read_net"]


def read_net(net_file: Path):
    """The net as sumolib reads it (programs, internal lanes and pedestrian connections included);
    :class:`ScenarioError` naming the file when it cannot be read."""
    try:
        return sumolib.net.readNet(str(net_file), withPrograms=True, withInternal=True,
                                   withPedestrianConnections=True)
    except Exception as exc:  # noqa: BLE001 - sumolib raises a variety of parser errors
        raise ScenarioError(f"{net_file}: cannot read net ({type(exc).__name__}: {exc})") from None


@dataclass
class ChainLane:
    lane: str
    end_offset: float  # distance from the stop line of the chain's head to this lane's downstream end
    length: float


@dataclass
class LaneGraph:
    """Normal lanes and the connections between them (internal lanes folded into ``via`` lengths)."""

    length: dict[str, float]
    speed: dict[str, float]
    vehicle: dict[str, bool]  # lane allows some vehicle class other than pedestrians
    pred: dict[str, list[tuple[str, float]]]  # lane -> [(from lane, internal length)]
    succ: dict[str, list[tuple[str, float]]]  # lane -> [(to lane, internal length)]

    @classmethod
    def from_net(cls, net) -> LaneGraph:
        length: dict[str, float] = {}
        speed: dict[str, float] = {}
        vehicle: dict[str, bool] = {}
        internal_len: dict[str, float] = {}
        internal_next: dict[str, str] = {}
        normal_lanes = []
        for e in net.getEdges(withInternal=True):
            fn = e.getFunction()
            for ln in e.getLanes():
                lid = ln.getID()
                if fn == "":
                    length[lid] = ln.getLength()
                    speed[lid] = ln.getSpeed()
                    allowed = getattr(ln, "_allowed", None)
                    vehicle[lid] = bool(allowed is None or (set(allowed) - {"pedestrian"}))
                    normal_lanes.append(ln)
                elif fn == "internal":
                    internal_len[lid] = ln.getLength()
                    for c in ln.getOutgoing():
                        via = c.getViaLaneID()
                        if via:
                            internal_next[lid] = via
                            break
        pred: dict[str, list[tuple[str, float]]] = {}
        succ: dict[str, list[tuple[str, float]]] = {}
        for ln in normal_lanes:
            lid = ln.getID()
            for c in ln.getOutgoing():
                to = c.getToLane()
                if to.getEdge().getFunction() != "":
                    continue
                vlen = 0.0
                v = c.getViaLaneID()
                seen = set()
                while v and v in internal_len and v not in seen:
                    seen.add(v)
                    vlen += internal_len[v]
                    v = internal_next.get(v, "")
                tid = to.getID()
                succ.setdefault(lid, []).append((tid, vlen))
                pred.setdefault(tid, []).append((lid, vlen))
        return cls(length, speed, vehicle, pred, succ)

    def upstream_chain(self, lane: str, min_length: float, stop: set[str] | frozenset[str] = frozenset()
                       ) -> list[ChainLane]:
        """``lane`` plus its unique predecessors until ``min_length`` metres are covered.

        A predecessor is followed only when the current lane has exactly one incoming connection
        and the predecessor is not in ``stop`` (incoming lanes of signals).
        """
        chain = [ChainLane(lane, 0.0, self.length[lane])]
        covered = self.length[lane]
        seen = {lane}
        cur = lane
        while covered < min_length:
            preds = self.pred.get(cur, [])
            if len(preds) != 1:
                break
            p, vlen = preds[0]
            if p in stop or p in seen:
                break
            seen.add(p)
            chain.append(ChainLane(p, covered + vlen, self.length[p]))
            covered += vlen + self.length[p]
            cur = p
        return chain

    @staticmethod
    def chain_length(chain: list[ChainLane]) -> float:
        last = chain[-1]
        return last.end_offset + last.length
