"""Transit vehicles as SUMO sees them: every bus's position, line, next stop and next signal, one
:class:`~engine.protocol.messages.VehicleBatch` per tick, for the bus topic ``veh`` (docs/protocol.md).

A vehicle is a transit vehicle when SUMO gives it a ``line`` (the routes file's ``line=`` attribute) or a
``bus`` vehicle class and it has stops; what it is is asked once per vehicle id. Its trip is its vehicle id
(the demo city's GTFS feed names the timetabled trips after the SUMO buses; a headway-based line's vehicles
are matched to a frequency instance by the transit API). The net of a scenario may have no geo-projection,
so ``lat``/``lon`` are NaN unless the caller says it has one (the API places the bus on the GTFS shape by
its odometer).

:class:`LiveTap` is what a closed-loop run adds given ``RunSpec.publish``, ``speed`` or ``on_tick``
(simulation/experiments/live.py says more): the buses on the run's bus every tick, a relay for the transit
API, pacing, a benchmark's tap."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import zmq

from engine.protocol import bus
from engine.protocol import messages as m

STOP_AT_BUS_STOP = 8  # SUMO's stop-state bit of a stop at a busStop (getStopState)


def _stop_fields(s) -> tuple[str, float, str]:
    """(lane, endPos, stopping place) of one of getNextStops' items: libsumo gives objects, TraCI tuples."""
    if isinstance(s, tuple):
        return s[0], float(s[1]), s[2]
    return s.lane, float(s.endPos), s.stoppingPlaceID


class BusTracker:
    """Reads SUMO's buses; ``read(t)`` after the step(s) of tick ``t``."""

    def __init__(self, conn, source: str = "sumo", geo: bool = False) -> None:
        self.conn = conn
        self.source = source
        self._transit: dict[str, bool] = {}  # vehicle id -> is a transit vehicle (asked once)
        self._geo = geo  # the net has a geo-projection: lat/lon by SUMO's convertGeo

    def _is_transit(self, vid: str) -> bool:
        known = self._transit.get(vid)
        if known is None:
            v = self.conn.vehicle
            known = bool(v.getLine(vid)) or v.getVehicleClass(vid) == "bus"
            known = known and bool(v.getStops(vid, 1) or v.getNextStops(vid))
            self._transit[vid] = known
        return known

    def _lat_lon(self, x: float, y: float) -> tuple[float, float]:
        if not self._geo:
            return math.nan, math.nan
        lon, lat = self.conn.simulation.convertGeo(x, y)
        return lat, lon

    def read(self, t: float) -> m.VehicleBatch:
        v = self.conn.vehicle
        out = []
        for vid in v.getIDList():
            if not self._is_transit(vid):
                continue
            x, y = v.getPosition(vid)
            lat, lon = self._lat_lon(x, y)
            stops = v.getNextStops(vid)  # (lane, endPos, stoppingPlaceID, flags, duration, until), the current first
            next_stop, stop_dist, at_stop = "", 0.0, False
            if stops:
                lane, end_pos, place = _stop_fields(stops[0])
                next_stop = place or lane
                at_stop = bool(v.getStopState(vid) & 1) and v.getRoadID(vid) == lane.rsplit("_", 1)[0]
                if not at_stop:
                    d = v.getDrivingDistance(vid, lane.rsplit("_", 1)[0], end_pos)
                    stop_dist = max(0.0, d) if d > -1e9 else 0.0
            tls = v.getNextTLS(vid)  # (tlsID, linkIndex, distance, state)
            next_tls, link, tls_dist = (tls[0][0], int(tls[0][1]), float(tls[0][2])) if tls else ("", -1, 0.0)
            out.append(m.VehiclePosition(
                vehicle=vid, line=v.getLine(vid), trip=vid, start=float(v.getDeparture(vid)), x=x, y=y,
                lat=lat, lon=lon, odometer=max(0.0, float(v.getDistance(vid))), speed=float(v.getSpeed(vid)),
                next_stop=next_stop, stop_dist=stop_dist, at_stop=at_stop, next_tls=next_tls, tls_link=link,
                tls_dist=tls_dist))
        return m.VehicleBatch(source=self.source, time=t, vehicles=out)


# besides the vehicles, the states and the tick; the detector batches for the API's traffic information
RELAYED = (m.TOPIC_PLAN, m.TOPIC_FAULT, m.TOPIC_DETECTORS)


class LiveTap:
    def __init__(self, conn, ctx: zmq.Context, ep: bus.Endpoints, *, publish: str | None = None,
                 speed: float | None = None, on_tick: Callable | None = None) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0 (simulated s per wall s), not {speed}")
        self.conn = conn
        self.buses = BusTracker(conn)
        self.speed = speed
        self.on_tick = on_tick
        self.pub = bus.Publisher(ctx, ep)
        self.sub = bus.Subscriber(ctx, ep, RELAYED) if (publish or on_tick) else None
        self.out = None
        if publish:
            self.out = ctx.socket(zmq.PUB)
            self.out.setsockopt(zmq.LINGER, 0)
            self.out.setsockopt(zmq.SNDHWM, 100000)
            bus._attach(self.out, publish, bind=True)
        self._wall0: float | None = None
        self._t0 = 0.0
        self.published = 0

    def _send(self, topic: bytes, msg: m.Message) -> None:
        if self.out is not None:
            self.out.send_multipart((topic, m.encode(msg)), copy=False)

    def tick(self, t: float, states: dict[str, m.ControllerState]) -> None:
        batch = self.buses.read(t)
        self.pub.publish(m.TOPIC_VEHICLES, batch)
        plans: list[m.Plan] = []
        if self.sub is not None:
            for topic, msg in self.sub.drain():
                if isinstance(msg, m.PlanBatch):  # the engine's plans of a tick, in one frame
                    plans.extend(msg.plans)
                elif isinstance(msg, m.Plan):
                    plans.append(msg)
                self._send(topic, msg)
        if self.out is not None:
            self._send(m.TOPIC_TICK, m.ClockTick(time=t, step=self.published, phase=m.TickPhase.RUN))
            for st in states.values():
                self._send(m.TOPIC_STATE, st)
            self._send(m.TOPIC_VEHICLES, batch)
        self.published += 1
        if self.on_tick is not None:
            self.on_tick(t, self.conn, batch, states, plans)
        if self.speed is not None:
            if self._wall0 is None:
                self._wall0, self._t0 = time.monotonic(), t
            ahead = self._wall0 + (t - self._t0) / self.speed - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def close(self) -> None:
        for s in (self.pub, self.sub):
            if s is not None:
                s.close()
        if self.out is not None:
            self.out.close(0)
