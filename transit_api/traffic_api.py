"""The traffic routes of the API: ``/traffic/segments``, ``/traffic/segments/{id}`` and ``/traffic/signs``, from a
:class:`~transit_api.traffic.TrafficService` (the detectors on the bus) and the incident store.

``create_app(..., traffic=service)`` mounts :func:`traffic_router`; without a service the routes answer 503 with
the reason (the API was started without ``--network`` and ``--bus``)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from transit_api.incidents import IncidentStore
from transit_api.traffic import SegmentState, TrafficService, signs

__all__ = ["traffic_router"]

Level = Literal["free", "slow", "congested", "blocked", "unknown"]
MAX_LIMIT = 1000

_SEGMENT = {"segment_id": "A2_A1.L", "name": "Jalan Raya Bunda", "cross_street": "Jalan Cempaka",
            "label": "Jl. Raya Bunda (Jl. Cempaka)", "junction": "A1", "edges": ["A2_A1", "A2_A1.L"],
            "length_m": 374.4, "free_flow_s": 22.5, "travel_time_s": 71.3, "delay_s": 48.8, "level": "slow",
            "vehicles": 6.4, "outflow_vph": 612.0, "lanes_watched": 3, "lanes_blocked": ["A2_A1.L_1"],
            "updated": "2026-03-02T07:12:35+07:00"}
_SEGMENT_PAGE = {"total": 48, "limit": 1, "offset": 0, "updated": "2026-03-02T07:12:35+07:00",
                 "detector_time_s": 755.0, "window_s": 180,
                 "feed": {"batches": 756, "batches_dropped": 1, "last_drop": "detectors batch from 'cam-7': field "
                          "`occupancy` has 3 values for 4 detectors", "frames_dropped": 2, "readings_unknown": 0,
                          "incident_writes_failed": 0, "error": None}, "items": [_SEGMENT]}
_SIGN = {"segment_id": "A2_A1.L", "text": "Jl. Raya Bunda (Jl. Cempaka): 1 lajur tertutup, +1 menit",
         "kind": "incident", "incident_id": 7, "level": "slow", "delay_min": 1}
_JAM = {"segment_id": "N1_A1", "text": "Jl. Cempaka (Jl. Raya Bunda) macet, +6 menit", "kind": "jam",
        "incident_id": None, "level": "congested", "delay_min": 6}
_SIGN_PAGE = {"total": 2, "limit": 100, "offset": 0, "updated": "2026-03-02T07:12:35+07:00", "items": [_SIGN, _JAM]}
_NO_TRAFFIC = {"detail": "this server has no traffic information: start it with --network FILE and --bus ENDPOINT"}


def _ex(example: dict) -> dict:
    return {"content": {"application/json": {"example": example}}}


def _err(description: str, detail: str) -> dict:
    return {"description": description, **_ex({"detail": detail})}


_UNAVAILABLE = {503: _err("started without --network and --bus", _NO_TRAFFIC["detail"])}
_BAD_PARAM = {422: {"description": "a bad parameter, named in `loc`", **_ex(
    {"detail": [{"type": "less_than_equal", "loc": ["query", "limit"], "msg": "Input should be less than or equal "
                 "to 1000", "input": "5000", "ctx": {"le": 1000}}]})}}


class SegmentOut(BaseModel):
    segment_id: str = Field(description="the approach's last edge (the signalised junction's incoming edge)",
                            examples=["A2_A1.L"])
    name: str = Field(description="the road's name from the net ('' when it has none)", examples=["Jalan Raya Bunda"])
    cross_street: str = Field(description="a road meeting it at its end", examples=["Jalan Cempaka"])
    label: str = Field(description="what a sign calls it (the edge id when the net gives no name)",
                       examples=["Jl. Raya Bunda (Jl. Cempaka)"])
    junction: str = Field(examples=["A1"])
    edges: list[str] = Field(description="its edges, upstream first", examples=[["A2_A1", "A2_A1.L"]])
    length_m: float
    free_flow_s: float = Field(description="its length at the speed limit")
    travel_time_s: float | None = Field(description="estimated over the last window: vehicles in the detector zones / "
                                        "vehicles leaving over the stop lines (Little's law), plus the rest at the "
                                        "speed limit; null when vehicles stood and none left, or too little data")
    delay_s: float | None = Field(description="travel time minus free-flow time")
    level: Level = Field(description="free: delay up to 35 s (HCM LOS A-C); slow: up to 80 s (D-E); congested: "
                         "more (F), or no outflow; blocked: every watched lane blocked, or a full zone and no outflow; "
                         "unknown: no detectors or under 180 s of their data")
    vehicles: float = Field(description="mean vehicles in its detector zones over the window")
    outflow_vph: float = Field(description="vehicles per hour over its stop lines over the window")
    lanes_watched: int = Field(description="lanes with a stop-line loop and a lane-area zone")
    lanes_blocked: list[str] = Field(description="lanes with an open blocked-lane incident (detected)")
    updated: datetime | None = Field(description="the detector time of the window's end")


class FeedOut(BaseModel):
    """What the API heard of the bus: nothing here is dropped silently."""
    batches: int = Field(description="detector batches taken")
    batches_dropped: int = Field(description="batches dropped: malformed, another network's detector table, or "
                                 "older than the tick being filled")
    last_drop: str = Field(description="why the last one was dropped ('' when none was)")
    frames_dropped: int = Field(description="bus frames that did not decode (engine.protocol), dropped")
    readings_unknown: int = Field(description="readings of detectors this network does not have")
    incident_writes_failed: int = Field(description="detected incidents the store refused (the API's log says why)")
    error: str | None = Field(description="the last error taking a message, if any (the API's log has the rest)")


class SegmentPage(BaseModel):
    total: int
    limit: int
    offset: int
    updated: datetime | None = Field(description="the detector time these figures are for (null: no data yet)")
    detector_time_s: float | None = Field(description="the same, on the detector clock (simulation or Unix s)")
    window_s: int
    feed: FeedOut
    items: list[SegmentOut]


class SignOut(BaseModel):
    segment_id: str
    text: str = Field(description="for a variable-message sign, in Indonesian",
                      examples=["Jl. Raya Bunda (Jl. Cempaka) macet, +6 menit"])
    kind: Literal["incident", "jam"] = Field(description="an active incident on the segment, or a congested or "
                                             "blocked segment")
    incident_id: int | None
    level: Level
    delay_min: int | None = Field(description="the segment's delay, minutes rounded up")


class SignPage(BaseModel):
    total: int
    limit: int
    offset: int
    updated: datetime | None
    items: list[SignOut]


def traffic_router(service: TrafficService | None, store: IncidentStore | None, tz: tzinfo) -> APIRouter:
    router = APIRouter(prefix="/traffic", tags=["traffic"])

    def need() -> TrafficService:
        if service is None:
            raise HTTPException(503, detail=_NO_TRAFFIC["detail"])
        return service

    def local(t: datetime | None) -> datetime | None:
        return None if t is None else t.astimezone(tz)

    def seg_out(s: SegmentState, updated: datetime | None) -> SegmentOut:
        g = s.segment
        return SegmentOut(segment_id=g.id, name=g.name, cross_street=g.cross, label=g.label, junction=g.junction,
                          edges=list(g.edges), length_m=round(g.length_m, 1), free_flow_s=round(g.free_time_s, 1),
                          travel_time_s=s.travel_time_s, delay_s=s.delay_s, level=s.level, vehicles=s.vehicles,
                          outflow_vph=s.outflow_vph, lanes_watched=s.lanes_watched, lanes_blocked=list(s.lanes_blocked),
                          updated=updated)

    @router.get("/segments", responses={200: _ex(_SEGMENT_PAGE), **_BAD_PARAM, **_UNAVAILABLE})
    def segments(limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 100,
                 offset: Annotated[int, Query(ge=0, description="items to skip")] = 0,
                 level: Annotated[Level | None, Query(description="only segments at this level")] = None
                 ) -> SegmentPage:
        """Every road segment (an approach to a signalised junction) with its travel time and congestion level,
        recomputed every few seconds of detector time from the detectors on the bus."""
        svc = need()
        with svc.lock:
            snap = svc.snapshot
        updated = local(snap.at)
        states = [s for s in snap.states if level is None or s.level == level]
        if not snap.states:  # no data yet: the segments, unknown
            states = [SegmentState(g, "unknown", None, None, 0.0, 0.0, (), 0, float("nan"), 0.0)
                      for g in svc.layout.segments if level in (None, "unknown")]
        page = states[offset:offset + limit]
        f = svc.feed
        feed = FeedOut(batches=f.batches, batches_dropped=f.dropped_batches, last_drop=f.last_drop,
                       frames_dropped=svc.dropped, readings_unknown=f.readings_unknown,
                       incident_writes_failed=svc.detector.writes_failed if svc.detector is not None else 0,
                       error=svc.error)
        return SegmentPage(total=len(states), limit=limit, offset=offset, updated=updated,
                           detector_time_s=snap.time, window_s=180, feed=feed,
                           items=[seg_out(s, updated) for s in page])

    @router.get("/segments/{segment_id}", responses={
        200: _ex(_SEGMENT), 404: _err("no such segment", "no road segment 'X1_X2' (segments are the approaches "
                                      "to signalised junctions: GET /traffic/segments)"), **_BAD_PARAM, **_UNAVAILABLE})
    def segment(segment_id: str) -> SegmentOut:
        """One road segment."""
        svc = need()
        with svc.lock:
            snap = svc.snapshot
        i = svc.layout.segment_index.get(segment_id)
        if i is None:
            raise HTTPException(404, detail=f"no road segment {segment_id!r} (segments are the approaches to "
                                "signalised junctions: GET /traffic/segments)")
        if not snap.states:
            g = svc.layout.segments[i]
            return seg_out(SegmentState(g, "unknown", None, None, 0.0, 0.0, (), 0, float("nan"), 0.0), None)
        return seg_out(snap.states[i], local(snap.at))

    @router.get("/signs", responses={200: _ex(_SIGN_PAGE), **_BAD_PARAM, **_UNAVAILABLE})
    def sign_texts(limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 100,
                   offset: Annotated[int, Query(ge=0, description="items to skip")] = 0) -> SignPage:
        """Short texts for variable-message signs: one per active incident on a road segment (detected or entered
        by an operator; active at the detector time), then one per congested or blocked segment."""
        svc = need()
        with svc.lock:
            snap = svc.snapshot
        active = []
        if store is not None and snap.at is not None:
            offset_ = 0
            while True:
                total, got = store.list(active=True, at=snap.at, limit=500, offset=offset_)
                active += got
                offset_ += len(got)
                if offset_ >= total or not got:
                    break
        found = signs(snap.states, active, svc.layout.lane_index, svc.layout) if snap.states else []
        page = found[offset:offset + limit]
        return SignPage(total=len(found), limit=limit, offset=offset, updated=local(snap.at),
                        items=[SignOut(segment_id=s.segment, text=s.text, kind=s.kind, incident_id=s.incident_id,
                                       level=s.level, delay_min=s.delay_min) for s in page])

    return router
