"""Every message on the Lintas bus and command channel, as typed, versioned msgspec structs.

Wire format: MessagePack maps (field name -> value), one message per ZeroMQ frame. Every struct
carries ``v`` (schema version) and is tagged with ``t`` (its type name), so a peer written in another
language decodes a frame by reading ``t`` first. ``docs/protocol.md`` documents topics, frames, fields
and units; ``tests/engine/test_protocol_doc.py`` keeps the two in step.

Units: time in seconds (simulation or wall clock, as the clock given to the component says),
occupancy as a fraction 0..1, lengths in metres, speeds in m/s.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import NamedTuple

import msgspec
import numpy as np

SCHEMA_VERSION = 1

# Bus topics (pub/sub, first frame). Telemetry only; commands travel on ROUTER/DEALER.
TOPIC_DETECTORS = b"det"
TOPIC_STATE = b"state"
TOPIC_TICK = b"tick"
TOPIC_FAULT = b"fault"
TOPIC_HEARTBEAT = b"hb"
TOPIC_REFUSAL = b"refusal"
TOPIC_PLAN = b"plan"
TOPIC_VEHICLES = b"veh"  # transit vehicles' positions (VehicleBatch)



class Interval(StrEnum):
    """What a junction shows: a green phase, the yellow or all-red after one, or all red after a fault."""

    GREEN = "green"
    YELLOW = "yellow"
    ALLRED = "allred"
    FAILSAFE = "failsafe"


class Mode(StrEnum):
    """Who drives a junction: the engine's commands, the controller's local plan, nobody (a latched fault:
    all red), or nobody yet."""

    ENGINE = "engine"
    LOCAL = "local"
    FAILSAFE = "failsafe"
    STARTING = "starting"


class Action(StrEnum):
    """What a :class:`PhaseCommand` asks: keep the current green, or end it and go to ``phase``."""

    HOLD = "hold"
    ADVANCE = "advance"


class TickPhase(StrEnum):
    """The runner's lockstep clock: waiting for every component, one simulation step, the end."""

    SYNC = "sync"
    RUN = "run"
    STOP = "stop"


class ResetResult(StrEnum):
    """What came of an operator's reset request (:class:`ResetReply`)."""

    OK = "ok"
    UNKNOWN_JUNCTION = "unknown-junction"
    NOT_FAULTED = "not-faulted"
    OFFLINE = "offline"
    NOT_CONFIRMED = "not-confirmed"
    BAD_REQUEST = "bad-request"


#: the value sets a peer must accept, by enum (docs/protocol.md lists the same)
ENUMS: tuple[type[StrEnum], ...] = (Interval, Mode, Action, TickPhase, ResetResult)


class _Msg(msgspec.Struct, tag_field="t", forbid_unknown_fields=False, frozen=True):
    """Base: ``t`` tags the type, ``v`` the schema version."""

    v: int = SCHEMA_VERSION


class DetectorReading(msgspec.Struct, frozen=True, array_like=False):
    """One detector over the last interval.

    count: vehicles that crossed an induction loop (E1) during the interval, or vehicles present in a
    lane-area / camera zone (E2) at the end of it. occupancy: fraction of the interval (E1) or of the
    zone length (E2) covered by vehicles, 0..1. halting: vehicles standing (< 0.1 m/s) in the zone
    (E2/camera only; 0 for loops)."""

    detector: str
    count: int
    occupancy: float
    halting: int = 0


class DetectorBatch(_Msg, tag="detectors"):
    """All readings of one source (the SUMO field, a loop cabinet, a camera) for the interval ending
    at ``time``. Topic ``det``.

    The readings travel as columns (one array per quantity, little-endian): which detectors, either
    ``detectors`` (their ids) or ``index`` (int32 positions in the network's detector table, whose
    :func:`detector_layout` digest is ``layout``), then ``count`` (int32), ``occupancy`` (float64) and
    ``halting`` (int32, or empty: none). ``readings`` (one map per detector) is the older form, still
    accepted; a batch carries one form or the other. :func:`detector_batch` builds one, :func:`batch_columns` reads one
    (it checks the lengths), :func:`batch_readings` gives the readings one by one."""

    source: str = ""
    time: float = 0.0
    interval: float = 1.0
    readings: list[DetectorReading] = []
    layout: str = ""
    detectors: list[str] = []
    index: bytes = b""
    count: bytes = b""
    occupancy: bytes = b""
    halting: bytes = b""


class ControllerState(_Msg, tag="state"):
    """What a junction controller shows, published every tick on topic ``state`` and sent to the
    engine over the command channel (it doubles as the controller's heartbeat there).

    phase: index of the green phase being served, or being left during yellow/all-red. target: the
    phase the controller is moving to (== phase while green). signal: the SUMO-style state string
    shown on the heads (one character per link: G g y r o O). since: seconds in the current interval.
    last_seq: sequence number of the last command accepted (-1 if none)."""

    junction: str = ""
    time: float = 0.0
    phase: int = 0
    target: int = 0
    interval: Interval = Interval.GREEN
    since: float = 0.0
    mode: Mode = Mode.STARTING
    signal: str = ""
    last_seq: int = -1
    accepted: int = 0
    refused: int = 0


class PhaseCommand(_Msg, tag="command"):
    """Engine -> controller. action ``hold`` keeps the current green (if allowed); ``advance`` ends
    it (after its minimum) and moves to green phase ``phase`` through yellow and all-red.
    seq: strictly increasing per junction. issued_at: engine clock when issued (s)."""

    junction: str = ""
    action: Action = Action.HOLD
    phase: int = -1
    seq: int = 0
    issued_at: float = 0.0


class Heartbeat(_Msg, tag="heartbeat"):
    """Liveness from ``sender`` (engine or controller id) at ``time``; on the command channel and
    on topic ``hb``. ``seq`` counts heartbeats of that sender."""

    sender: str = ""
    time: float = 0.0
    seq: int = 0


class ClockTick(_Msg, tag="tick"):
    """Lockstep clock from the simulation runner, topic ``tick``. ``phase`` is ``sync`` while the
    runner waits for every component to answer, ``run`` for a simulation step, ``stop`` at the end."""

    time: float = 0.0
    step: int = 0
    phase: TickPhase = TickPhase.RUN


class FaultKind(StrEnum):
    """The ``kind`` of the :class:`Fault` messages Lintas itself publishes. The field is a free string, so
    a newer component may publish kinds an older one does not know; a reader must accept any."""

    CONFLICT_MONITOR = "conflict-monitor"  # a controller latched a fault: all red until reset
    RESET = "reset"  # a controller's latched fault was cleared by an authenticated reset
    JUNCTION_ONLINE = "junction-online"  # the engine hears a junction's controller (again)
    JUNCTION_OFFLINE = "junction-offline"  # the engine has heard nothing from a junction for its offline time
    OPERATOR_RESET = "operator-reset"  # the engine answered an operator's reset request
    CLOCK_SKEW = "clock-skew"  # the engine measured a junction's clock offset above its skew limit
    FEED_LOST = "feed-lost"  # the engine has had no detector reading for its feed-alarm time
    FEED_RESTORED = "feed-restored"  # detector readings reach the engine again after a feed-lost alarm
    CAMERA_LATE = "camera-late"  # a camera worker processes most frames later than the next is due (it skips some)
    CAMERA_LOST = "camera-lost"  # a camera worker lost its stream (or cannot open it); it reconnects with backoff
    CAMERA_DEAD = "camera-dead"  # a camera worker has had no frame for its dead-after time
    CAMERA_RESTORED = "camera-restored"  # a camera worker has frames again after camera-lost or camera-dead


class Fault(_Msg, tag="fault"):
    """A latched fault or an alarm, topic ``fault``."""

    source: str = ""
    time: float = 0.0
    kind: str = ""
    detail: str = ""


class FaultReset(_Msg, tag="reset"):
    """Engine -> controller on the command channel (CURVE-authenticated: only the engine's key reaches
    a controller): clear a latched fault. ``seq`` follows the junction's command sequence; ``operator``
    names who asked, for the log."""

    junction: str = ""
    seq: int = 0
    issued_at: float = 0.0
    operator: str = ""


class ResetRequest(_Msg, tag="reset-request"):
    """Operator -> engine on the operator endpoint (CURVE, only keys in ``operators/``): ask the engine
    to send a :class:`FaultReset` to ``junction``. ``operator`` names who asks (for the log)."""

    junction: str = ""
    operator: str = ""


class ResetReply(_Msg, tag="reset-reply"):
    """Engine -> operator: what came of a :class:`ResetRequest`. ``result`` is ``ok`` (the controller
    reported its fault cleared) or why not; ``detail`` says it in words."""

    junction: str = ""
    result: ResetResult = ResetResult.OK
    detail: str = ""


class Refusal(_Msg, tag="refusal"):
    """A command a controller refused, with the reason, topic ``refusal``."""

    junction: str = ""
    time: float = 0.0
    seq: int = -1
    reason: str = ""


class Plan(_Msg, tag="plan"):
    """A junction's planned schedule and predicted outflow, from the engine every tick, topic ``plan``.
    Neighbouring junctions (in this engine or another) predict their arrivals from it.

    phase: green phase now served. green_end: predicted end of that green (s, same clock as ``time``).
    next_phase: phase predicted to follow (-1: none yet). lanes / flows: downstream lane ids and the
    predicted flow into each (veh/s) while the green lasts."""

    junction: str = ""
    time: float = 0.0
    phase: int = 0
    green_end: float = 0.0
    next_phase: int = -1
    lanes: list[str] = []
    flows: list[float] = []


class PlanBatch(_Msg, tag="plans"):
    """Every plan one engine made at one tick, as one frame on topic ``plan`` (the engine publishes this, not one
    :class:`Plan` per junction: one message per hop). A reader takes each of ``plans`` as it would a ``Plan``."""

    source: str = ""
    time: float = 0.0
    plans: list[Plan] = []


class VehiclePosition(msgspec.Struct, frozen=True):
    """One transit vehicle (a bus) as its tracker sees it at the batch's ``time``.

    vehicle: the vehicle's id. line: the line it serves (the GTFS route_id or route_short_name). trip: the
    GTFS trip it runs when the source knows it ('' if not). start: when it began that trip (s, the batch's
    clock). x, y: position (m, the network's coordinates); lat, lon: degrees when the source knows them (NaN
    if not). odometer: metres driven since the start of its trip. speed: m/s. next_stop: id of the next stop it
    calls at ('' when none is left; the stop it stands at while ``at_stop``). stop_dist: metres along its route
    to that stop. at_stop: standing at ``next_stop`` (dwelling). next_tls / tls_link / tls_dist: the next
    signalised junction on its way ('' when none), the index of the link it will take there (a letter of that
    junction's ``state.signal``) and the metres to its stop line."""

    vehicle: str
    line: str = ""
    trip: str = ""
    start: float = 0.0
    x: float = 0.0
    y: float = 0.0
    lat: float = float("nan")
    lon: float = float("nan")
    odometer: float = 0.0
    speed: float = 0.0
    next_stop: str = ""
    stop_dist: float = 0.0
    at_stop: bool = False
    next_tls: str = ""
    tls_link: int = -1
    tls_dist: float = 0.0


class VehicleBatch(_Msg, tag="vehicles"):
    """Every transit vehicle one source tracks, at ``time`` (its clock), topic ``veh``. A vehicle missing from
    the next batch of the same source has ended its trip (or left the source's view)."""

    source: str = ""
    time: float = 0.0
    vehicles: list[VehiclePosition] = []


Message = (DetectorBatch | ControllerState | PhaseCommand | Heartbeat | ClockTick | Fault | Refusal | Plan | FaultReset
           | ResetRequest | ResetReply | VehicleBatch | PlanBatch)
MESSAGE_TYPES: tuple[type, ...] = (
    DetectorBatch,
    ControllerState,
    PhaseCommand,
    Heartbeat,
    ClockTick,
    Fault,
    Refusal,
    Plan,
    FaultReset,
    ResetRequest,
    ResetReply,
    VehicleBatch,
    PlanBatch,
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(msg: Message) -> bytes:
    return _encoder.encode(msg)


def decode(data: bytes) -> Message:
    """Decode and validate one frame; raises ``msgspec.DecodeError``/``ValidationError`` on bad input."""
    msg = _decoder.decode(data)
    return msg


# -- detector batches as columns ---------------------------------------------------------------------------------
_I32, _F64 = np.dtype("<i4"), np.dtype("<f8")


def detector_layout(det_ids) -> str:
    """The digest of a detector table (ids in order): what ``DetectorBatch.layout`` names, so that an engine
    takes ``index`` columns only against the table they were made for."""
    return hashlib.sha1("\n".join(det_ids).encode()).hexdigest()[:16]


class BatchColumns(NamedTuple):
    """A batch's readings as arrays [n]: ``detectors`` (ids) or ``index`` (positions in the table of digest
    ``layout``), whichever the batch carries (the other is None); ``count``, ``occupancy``, ``halting``."""

    detectors: list[str] | None
    index: np.ndarray | None
    layout: str
    count: np.ndarray
    occupancy: np.ndarray
    halting: np.ndarray


def detector_batch(source: str, time: float, count, occupancy, halting=None, *, index=None, layout: str = "",
                   detectors: list[str] | None = None, interval: float = 1.0) -> DetectorBatch:
    """A columnar batch: ``index`` (with ``layout``) or ``detectors`` names the columns; arrays of any numeric
    type (converted to the wire's int32 / float64)."""
    if (index is None) == (detectors is None):
        raise ValueError("detector_batch: give either index (with layout) or detectors")
    n = len(detectors) if detectors is not None else len(index)
    cols = {"count": np.asarray(count, _I32), "occupancy": np.asarray(occupancy, _F64),
            "halting": np.asarray(halting, _I32) if halting is not None else np.zeros(0, _I32)}
    for name, a in cols.items():
        if a.shape != (n,) and not (name == "halting" and a.size == 0):
            raise ValueError(f"detector_batch: {name} has {a.size} values for {n} detectors")
    return DetectorBatch(source=source, time=float(time), interval=float(interval), layout=layout,
                         detectors=list(detectors) if detectors is not None else [],
                         index=np.asarray(index, _I32).tobytes() if index is not None else b"",
                         count=cols["count"].tobytes(), occupancy=cols["occupancy"].tobytes(),
                         halting=cols["halting"].tobytes())


def batch_columns(batch: DetectorBatch) -> BatchColumns:
    """The batch's columns as NumPy arrays (read-only views of the frame, no copy). Raises ``ValueError``
    naming the field when the lengths disagree (a malformed batch: the engine drops and counts it). A batch
    in the older ``readings`` form gives its readings as columns by id."""
    columnar = bool(batch.count or batch.index or batch.detectors or batch.occupancy)
    if batch.readings and columnar:
        raise ValueError(f"detectors batch from {batch.source!r}: both `readings` and columns")
    if not columnar:
        rs = batch.readings
        return BatchColumns([r.detector for r in rs], None, batch.layout, np.array([r.count for r in rs], _I32),
                            np.array([r.occupancy for r in rs], _F64), np.array([r.halting for r in rs], _I32))
    for name, width in (("index", 4), ("count", 4), ("occupancy", 8), ("halting", 4)):
        if len(getattr(batch, name)) % width:
            raise ValueError(f"detectors batch from {batch.source!r}: field `{name}` is not a whole number of "
                             f"{width}-byte values")
    count = np.frombuffer(batch.count, _I32)
    n = count.shape[0]
    if batch.index and batch.detectors:
        raise ValueError(f"detectors batch from {batch.source!r}: both `index` and `detectors` name the columns")
    index = np.frombuffer(batch.index, _I32) if batch.index or not batch.detectors else None
    names = len(batch.detectors) if index is None else index.shape[0]
    if names != n:
        raise ValueError(f"detectors batch from {batch.source!r}: {names} detectors but {n} counts")
    occ = np.frombuffer(batch.occupancy, _F64)
    if occ.shape[0] != n:
        raise ValueError(f"detectors batch from {batch.source!r}: field `occupancy` has {occ.shape[0]} values "
                         f"for {n} detectors")
    halt = np.frombuffer(batch.halting, _I32) if batch.halting else np.zeros(n, _I32)
    if halt.shape[0] != n:
        raise ValueError(f"detectors batch from {batch.source!r}: field `halting` has {halt.shape[0]} values "
                         f"for {n} detectors")
    if index is not None and n and not batch.layout:
        raise ValueError(f"detectors batch from {batch.source!r}: `index` without `layout`")
    return BatchColumns(list(batch.detectors) if index is None else None, index, batch.layout, count, occ, halt)


def batch_readings(batch: DetectorBatch, det_ids=None) -> list[DetectorReading]:
    """The batch's readings one by one, in either form (``det_ids``: the detector table that ``index`` columns
    refer to; required for them). Raises ``ValueError`` on a malformed batch or an index outside the table."""
    cols = batch_columns(batch)
    if batch.readings:
        return list(batch.readings)
    if cols.index is not None:
        if det_ids is None:
            raise ValueError("batch_readings: this batch names its detectors by index; pass the detector table")
        if cols.layout != detector_layout(det_ids):
            raise ValueError(f"detectors batch from {batch.source!r}: layout {cols.layout} is not this table's")
        if cols.index.size and (cols.index.min() < 0 or cols.index.max() >= len(det_ids)):
            raise ValueError(f"detectors batch from {batch.source!r}: an index lies outside the table")
        names = [det_ids[i] for i in cols.index.tolist()]
    else:
        names = cols.detectors
    return [DetectorReading(d, c, o, h) for d, c, o, h in
            zip(names, cols.count.tolist(), cols.occupancy.tolist(), cols.halting.tolist())]
