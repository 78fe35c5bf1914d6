"""GTFS-Realtime feeds (gtfs-realtime-bindings): TripUpdates and VehiclePositions from the live state, Alerts
from the incident store.

Following MobilityData's GTFS-Realtime best practices: a header with ``gtfs_realtime_version`` 2.0,
``incrementality`` FULL_DATASET and a ``timestamp`` (now, never in the future; every entity's timestamp is
at most the header's); trips and stops that exist in the static feed; stop_time_updates in stop_sequence
order, each with ``stop_sequence`` and ``stop_id``; no prediction in the past (the stop a bus is standing at
gives only its predicted departure, the stops behind it nothing); a frequency-based trip (exact_times 0)
carries ``start_time`` and ``start_date`` and absolute times only (no delay, which has no schedule to refer
to); each arrival carries its uncertainty (s).
"""

from __future__ import annotations

import math
from datetime import datetime

from google.protobuf import json_format
from google.transit import gtfs_realtime_pb2 as rt

from transit_api.incidents import Incident, IncidentStore
from transit_api.realtime import Realtime

VERSION = "2.0"


def _header(msg: rt.FeedMessage, timestamp: int) -> None:
    msg.header.gtfs_realtime_version = VERSION
    msg.header.incrementality = rt.FeedHeader.FULL_DATASET
    msg.header.timestamp = timestamp


def _trip(desc: rt.TripDescriptor, run) -> None:
    desc.trip_id = run.trip_id
    desc.route_id = run.route_id
    if run.direction_id is not None:
        desc.direction_id = run.direction_id
    desc.start_date = run.service_date.strftime("%Y%m%d")
    desc.start_time = run.start_time
    desc.schedule_relationship = rt.TripDescriptor.SCHEDULED


def _unix(live: Realtime, t: float) -> int:
    return math.floor(live.clock.dt(t).timestamp())


def trip_updates(live: Realtime) -> rt.FeedMessage:
    msg = rt.FeedMessage()
    with live.lock:
        now_t = live.now_t()
        now = _unix(live, now_t)
        _header(msg, now)
        for key in sorted(live.predictions):
            preds = live.predictions[key]
            v = live.tracker.vehicles.get(key)
            run = preds[0].run if preds else None
            if run is None:
                continue
            ent = msg.entity.add()
            ent.id = f"tu-{key}"
            tu = ent.trip_update
            _trip(tu.trip, run)
            if v is not None:
                tu.vehicle.id = v.id
                tu.timestamp = min(now, _unix(live, v.time))
            else:  # a trip not started yet: predicted from the learned history
                tu.timestamp = now
            frequency = run.headway is not None
            for p in sorted(preds, key=lambda p: p.stop_sequence):
                stu = tu.stop_time_update.add()
                stu.stop_sequence = p.stop_sequence
                stu.stop_id = p.stop_id
                stu.schedule_relationship = rt.TripUpdate.StopTimeUpdate.SCHEDULED
                at_it = v is not None and v.pos.at_stop and p.index == v.next_index
                if not at_it:
                    stu.arrival.time = max(now, _unix(live, p.arrival))
                    stu.arrival.uncertainty = round(p.uncertainty)
                    if not frequency:
                        stu.arrival.delay = round(p.arrival - p.scheduled)
                stu.departure.time = max(now, _unix(live, p.departure))
                stu.departure.uncertainty = round(p.uncertainty)
    return msg


def vehicle_positions(live: Realtime) -> rt.FeedMessage:
    msg = rt.FeedMessage()
    with live.lock:
        now = _unix(live, live.now_t())
        _header(msg, now)
        for v in sorted(live.tracker.vehicles.values(), key=lambda v: v.id):
            ent = msg.entity.add()
            ent.id = f"vp-{v.id}"
            vp = ent.vehicle
            if v.run is not None:
                _trip(vp.trip, v.run)
            vp.vehicle.id = v.id
            if v.lat is not None and v.lon is not None:
                vp.position.latitude = v.lat
                vp.position.longitude = v.lon
                vp.position.speed = max(0.0, v.pos.speed)
                vp.position.odometer = v.pos.odometer
            if v.run is not None and v.next_index is not None:
                c = v.run.calls[v.next_index]
                vp.current_stop_sequence = c.seq
                vp.stop_id = c.stop_id
                vp.current_status = (rt.VehiclePosition.STOPPED_AT if v.pos.at_stop
                                     else rt.VehiclePosition.IN_TRANSIT_TO)
            vp.timestamp = min(now, _unix(live, v.time))
    return msg


def alerts(store: IncidentStore | None, now: datetime, agency_id: str, known_stops: set[str]) -> rt.FeedMessage:
    """The incidents active at ``now`` (and those that start later) as Alerts; an incident without a stop is
    informed to the agency (GTFS-Realtime has no entity for a road edge or lane: they are in the text)."""
    msg = rt.FeedMessage()
    _header(msg, int(now.timestamp()))
    if store is None:
        return msg
    items: list[Incident] = []
    offset = 0
    while True:
        total, page = store.list(active=None, at=now, limit=500, offset=offset)
        items += page
        offset += len(page)
        if not page or offset >= total:
            break
    for inc in items:
        if inc.end is not None and inc.end <= now:
            continue
        ent = msg.entity.add()
        ent.id = f"incident-{inc.id}"
        al = ent.alert
        per = al.active_period.add()
        per.start = int(inc.start.timestamp())
        if inc.end is not None:
            per.end = int(inc.end.timestamp())
        stops = [s for s in inc.stop_ids if s in known_stops]
        for s in stops:
            al.informed_entity.add().stop_id = s
        if not stops:
            al.informed_entity.add().agency_id = agency_id
        al.cause = rt.Alert.Cause.Value(inc.cause.value)
        al.effect = rt.Alert.Effect.Value(inc.effect.value)
        al.severity_level = rt.Alert.SeverityLevel.Value(inc.severity.value)
        where = ", ".join([*inc.edges, *inc.lanes])
        head = inc.description.split("\n", 1)[0][:120] or inc.effect.value.replace("_", " ").lower()
        al.header_text.translation.add(text=head, language="id")
        al.description_text.translation.add(text=inc.description + (f" ({where})" if where else ""), language="id")
    return msg


def to_json(msg: rt.FeedMessage) -> dict:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)
