"""Run metrics for SUMO signal-control experiments (the RESCO delay metric and friends).

The benchmark metric (RESCO, Ault & Sharon 2021) as used throughout Lintas:

    delay per vehicle = tripinfo ``timeLoss`` + ``departDelay``

for every vehicle of the route files that is scheduled to depart inside the simulated window
``[begin, end)``.  Vehicles still driving at ``end`` are included through
``--tripinfo-output.write-unfinished``; a vehicle that was never inserted (insertion backlog at the
end of the run, or not even loaded) is charged ``end - scheduled depart``.  The mean is taken over
*all* scheduled vehicles, so congestion that blocks the entries cannot look like success.

How SUMO 1.28 writes those cases (checked by running it):

* a vehicle still driving at the end (``--tripinfo-output.write-unfinished``) gets a normal
  ``<tripinfo>`` with ``arrival="-1.00"``, ``arrivalLane=""``, ``arrivalPos="-1.00"``,
  ``duration = end - depart``, its ``timeLoss`` / ``waitingTime`` so far, and mostly
  ``vaporized="end"`` (some entries have ``vaporized=""``, so ``arrival < 0`` is the marker used);
* a vehicle that was scheduled but never inserted is *not* written by ``write-unfinished``.  With the
  extra option ``--tripinfo-output.write-undeparted`` it is written with ``depart="-1"``,
  ``arrival="-1.00"``, ``duration="0.00"``, ``timeLoss="0.00"`` and ``departDelay = end - scheduled
  depart``; vehicles scheduled after the last simulated step (``end - step``) are never loaded and
  never appear at all.  :func:`compute_metrics` therefore charges every scheduled vehicle without a
  departed tripinfo entry ``end - scheduled`` itself, whichever of the two options was used.

``scheduled_departures`` expands the route files the way SUMO loads them (vehicles, trips and
deterministic flows; see its docstring), so the set of vehicles the mean runs over does not depend
on what the simulation happened to insert.

Bicycles are vehicles (``vClass="bicycle"``, a ``<tripinfo>`` like a car's) and stay in ``delay_s``, as in
RESCO, whose figures average every ``<tripinfo>`` of the file whatever its class (its maps have no bicycles
and no persons, so this changes nothing there). Beside it, where the scenario has them:

* ``bike_delay_s``: the same RESCO delay over the scheduled vehicles of a bicycle type only (which types are
  bicycles: :func:`bicycle_demand`, from the scenario's ``<vType vClass=...>``; a vehicle that departed is
  judged by the ``vType`` its tripinfo names), ``bicycles`` how many;
* ``ped_delay_s``: per person, the sum of the ``timeLoss`` of its ``<walk>`` stages, mean over the persons
  with a walk (``persons``). SUMO 1.28's walk ``timeLoss`` is ``duration - routeLength / maxSpeed``
  (checked on every walk of a run: within 1.5 s, whatever the ``waitingTime``), so it already holds the time
  spent waiting at crossings, as a vehicle's timeLoss holds its time standing at red; adding ``waitingTime``
  would count the wait twice. A walk still going at the end has ``arrival="-1"``, ``routeLength="-1"`` and
  ``timeLoss="0.00"`` (SUMO computes it on arrival only): it is charged its ``waitingTime`` so far, a lower
  bound, and the person counts in ``persons_unfinished``. Stages not begun at the end are not written;
* ``ped_wait_max_s``: the longest ``waitingTime`` of any one walk (finished or not). It is the walk's total
  standing time, over every crossing on its way, so the longest wait at any single crossing is at most this.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulation.sumo.files import open_xml
from simulation.sumo.outputs import read_statistics
from simulation.sumo.scenario import parse_sumo_time

__all__ = [
    "DELAY_BIN_S",
    "Bicycles",
    "RunMetrics",
    "bicycle_demand",
    "compute_metrics",
    "scheduled_departures",
]

#: Width of the ``delay_by_arrival`` bins (5 minutes).
DELAY_BIN_S = 300.0

# SUMO's default flow end when neither `end` nor `number` is given (24 h).
_DEFAULT_FLOW_END = 86400.0


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _ms(t: float) -> int:
    """SUMO keeps time as integer milliseconds (TIME2STEPS rounds to the nearest)."""
    return math.floor(t * 1000.0 + 0.5)


def _route_file_list(route_files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(route_files, (str, os.PathLike)):
        text = os.fspath(route_files)
        # a sumocfg-style comma separated list is accepted too
        return [Path(p.strip()) for p in text.split(",") if p.strip()]
    return [Path(p) for p in route_files]


# --------------------------------------------------------------------------------------------
# scheduled departures
# --------------------------------------------------------------------------------------------

_VEHICLE_TAGS = {"vehicle", "trip"}
_NONNUMERIC_DEPART = {"triggered", "containerTriggered", "split"}


def _is_random_flow(attrs: Mapping[str, str]) -> bool:
    """A flow whose departures SUMO draws at run time: ``probability=`` or a random ``period="exp(...)"``."""
    if "probability" in attrs:
        return True
    period = attrs.get("period", "").strip()
    if not period:
        return False
    try:
        parse_sumo_time(period)
    except ValueError:
        return True
    return False


def random_demand(route_files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> bool:
    """True when a route file has a random flow (its vehicles are known only once SUMO has generated them)."""
    for path in _route_file_list(route_files):
        with open_xml(path) as fh:
            for _event, elem in ET.iterparse(fh, events=("start",)):
                if elem.tag == "flow" and _is_random_flow(elem.attrib):
                    return True
    return False


def _flow_departures(attrs: Mapping[str, str], begin: float, end: float) -> list[float]:
    """Departure times of one deterministic ``<flow>``, reproducing SUMO's expansion.

    SUMO (checked against 1.28): ``begin`` defaults to the simulation begin, ``end`` to 24 h; with
    ``period`` / ``vehsPerHour`` (``perHour``) the vehicles depart at ``begin + i * period`` while
    that is ``< end`` and ``i < number``; with ``number`` and ``end`` only, the period is
    ``(end - begin) / number`` (integer milliseconds, truncated).  ``number`` with a period and no
    ``end`` gives exactly ``number`` vehicles.
    """
    fid = attrs.get("id", "?")
    if "probability" in attrs:
        raise ValueError(
            f"flow {fid!r} uses probability={attrs['probability']!r}: its departures are random, "
            "so the scheduled vehicles cannot be known before the run. Convert it to period/number "
            "(or expand it with a fixed seed) before using the RESCO metric."
        )
    f_begin = parse_sumo_time(attrs["begin"]) if "begin" in attrs else begin
    f_end = parse_sumo_time(attrs["end"]) if "end" in attrs else None
    number = int(attrs["number"]) if "number" in attrs else None

    offset_ms: int | None = None
    if "period" in attrs:
        period = attrs["period"].strip()
        try:
            offset_ms = _ms(parse_sumo_time(period))
        except ValueError:
            raise ValueError(
                f"flow {fid!r} uses period={period!r} (random headways): its departures are not "
                "known before the run"
            ) from None
    else:
        for key in ("vehsPerHour", "perHour"):
            if key in attrs:
                offset_ms = _ms(3600.0 / float(attrs[key]))
                break

    b_ms = _ms(f_begin)
    if offset_ms is None:
        if number is None or f_end is None:
            raise ValueError(f"flow {fid!r}: needs period, vehsPerHour, perHour or number with end")
        if number <= 0:
            return []
        offset_ms = (_ms(f_end) - b_ms) // number
        e_ms = _ms(f_end)
    else:
        if number is not None and f_end is None:
            e_ms = None  # exactly `number` vehicles
        else:
            e_ms = _ms(f_end if f_end is not None else max(_DEFAULT_FLOW_END, end))
    if offset_ms <= 0:
        raise ValueError(f"flow {fid!r}: non-positive period")

    out: list[float] = []
    i = 0
    limit_ms = _ms(end)
    while True:
        if number is not None and i >= number:
            break
        t_ms = b_ms + i * offset_ms
        if e_ms is not None and t_ms >= e_ms:
            break
        if t_ms >= limit_ms:  # nothing later can fall into the window
            break
        out.append(t_ms / 1000.0)
        i += 1
    return out


def scheduled_departures(
    route_files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    begin: float,
    end: float,
    *,
    drop_unsorted: bool = True,
    random_flows: bool = False,
) -> dict[str, float]:
    """Vehicle id -> scheduled depart (s) for every vehicle of ``route_files`` departing in [begin, end).

    Covers ``<vehicle>``, ``<trip>`` and ``<flow>`` elements.  Flows are expanded deterministically as
    SUMO does (ids ``"<flowid>.<N>"``, N from 0 at the flow's first vehicle at or after ``begin``;
    see :func:`_flow_departures`); a flow with
    ``probability=...`` or a random ``period="exp(...)"`` raises :class:`ValueError` because its
    vehicles are only known after the run.  Non-numeric departs (``triggered``,
    ``containerTriggered``, ``split``) are skipped; ``depart="begin"`` means ``begin``.  Vehicles
    before ``begin`` (cologne3's route file has them) are excluded, as SUMO drops them at load.

    ``drop_unsorted`` mirrors SUMO's default incremental route loading (``--route-steps`` > 0):
    inside one file, an element whose depart precedes the latest depart loaded so far is ignored
    (SUMO warns "Route file should be sorted by departure time, ignoring ..."). Pass ``False`` for
    runs with ``--route-steps -1``.

    ``random_flows``: leave random flows out instead of raising; their vehicles are then taken from the run's
    own tripinfo (``compute_metrics(..., unscheduled=True)`` with ``--tripinfo-output.write-undeparted``).
    """
    out: dict[str, float] = {}
    for path in _route_file_list(route_files):
        last_depart = -math.inf
        with open_xml(path) as fh:
            for event, elem in ET.iterparse(fh, events=("start", "end")):
                tag = elem.tag
                if event == "end":
                    # keep memory flat: drop finished top-level demand elements
                    if tag in _VEHICLE_TAGS or tag in ("flow", "route", "person", "personFlow",
                                                       "container", "containerFlow", "vType"):
                        elem.clear()
                    continue
                if tag in _VEHICLE_TAGS:
                    raw = elem.attrib.get("depart")
                    if raw is None or raw in _NONNUMERIC_DEPART:
                        continue
                    depart = begin if raw == "begin" else parse_sumo_time(raw)
                    if drop_unsorted:
                        if depart < last_depart:
                            continue
                        if not elem.attrib.get("line"):
                            last_depart = depart
                    if begin <= depart < end:
                        out[elem.attrib["id"]] = depart
                elif tag == "flow":
                    attrs = elem.attrib
                    f_begin = parse_sumo_time(attrs["begin"]) if "begin" in attrs else begin
                    if drop_unsorted:
                        if f_begin < last_depart:
                            continue
                        if not attrs.get("line"):
                            last_depart = f_begin
                    if f_begin >= end:
                        continue
                    fid = attrs["id"]
                    if random_flows and _is_random_flow(attrs):
                        continue
                    # SUMO numbers a flow's vehicles from its first one at or after `begin`
                    # (vehicles of a flow that began earlier are skipped, not numbered)
                    inside = [t for t in _flow_departures(attrs, begin, end) if t >= begin]
                    for n, t in enumerate(inside):
                        out[f"{fid}.{n}"] = t
    return out


# --------------------------------------------------------------------------------------------
# bicycles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bicycles:
    """Which vehicles of a scenario are bicycles (``vClass="bicycle"``), from :func:`bicycle_demand`."""

    types: frozenset[str] = frozenset({"DEFAULT_BIKETYPE"})  # vType ids (and distributions of them only)
    vehicles: frozenset[str] = frozenset()  # ids of the route files' vehicles and trips of such a type
    flows: frozenset[str] = frozenset()  # ids of flows of such a type (their vehicles are "<flow>.<n>")

    def of(self, vid: str, vtype: str | None = None) -> bool:
        """True for a bicycle: by the ``vType`` its tripinfo names when given, else by the route files."""
        if vtype:
            return vtype in self.types
        return vid in self.vehicles or vid.rpartition(".")[0] in self.flows


def bicycle_demand(route_files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                   additional_files: Iterable[str | os.PathLike[str]] = ()) -> Bicycles:
    """The bicycle types of the scenario (``<vType vClass="bicycle">`` in its route and additional files, SUMO's
    ``DEFAULT_BIKETYPE`` unless redefined, and each ``<vTypeDistribution>`` whose every member is one) and the
    vehicles, trips and flows of the route files that are of one."""
    classes: dict[str, str] = {"DEFAULT_BIKETYPE": "bicycle"}
    dists: dict[str, list[str]] = {}
    typed: dict[str, str] = {}  # vehicle / trip id -> type
    flow_typed: dict[str, str] = {}  # flow id -> type
    for path in [*_route_file_list(route_files), *(Path(p) for p in additional_files)]:
        open_dists: list[str] = []
        with open_xml(path) as fh:
            for event, elem in ET.iterparse(fh, events=("start", "end")):
                tag, attrs = elem.tag, elem.attrib
                if tag == "vTypeDistribution":
                    if event == "start":
                        did = attrs.get("id", "")
                        open_dists.append(did)
                        dists.setdefault(did, []).extend(attrs.get("vTypes", "").replace(",", " ").split())
                    else:
                        open_dists.pop()
                        elem.clear()
                    continue
                if event == "end":
                    if tag in _VEHICLE_TAGS or tag in ("flow", "person", "personFlow", "route"):
                        elem.clear()
                    continue
                if tag == "vType" and "id" in attrs:
                    classes[attrs["id"]] = attrs.get("vClass", "passenger")
                    if open_dists:
                        dists[open_dists[-1]].append(attrs["id"])
                elif tag in _VEHICLE_TAGS and "id" in attrs:
                    typed[attrs["id"]] = attrs.get("type", "DEFAULT_VEHTYPE")
                elif tag == "flow" and "id" in attrs:
                    flow_typed[attrs["id"]] = attrs.get("type", "DEFAULT_VEHTYPE")
    types = {t for t, c in classes.items() if c == "bicycle"}
    types |= {d for d, members in dists.items() if members and all(m in types for m in members)}
    return Bicycles(types=frozenset(types), vehicles=frozenset(v for v, t in typed.items() if t in types),
                    flows=frozenset(f for f, t in flow_typed.items() if t in types))


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


@dataclass
class RunMetrics:
    """Metrics of one simulation run.  Times in seconds, counts in vehicles.

    ``delay_s`` is the RESCO delay (see module docstring).  ``queue_veh`` is NaN when no queue
    samples were given.  ``delay_by_arrival`` holds (bin start, mean delay of the vehicles whose
    trip ended in that bin) for 5-minute bins from ``begin``; vehicles still running or never
    inserted end at ``end`` and fall in the last bin; empty bins are left out.
    """

    delay_s: float
    trip_duration_s: float
    waiting_s: float
    queue_veh: float
    throughput_veh: int
    teleports: int
    collisions: int
    vehicles: int
    delay_by_arrival: list[tuple[float, float]] = field(default_factory=list)
    queue_by_junction: dict[str, float] = field(default_factory=dict)
    # components and diagnostics
    time_loss_s: float = math.nan  # mean timeLoss over departed scheduled vehicles
    depart_delay_s: float = math.nan  # mean departDelay over departed scheduled vehicles
    delay_p95_s: float = math.nan
    delay_max_s: float = math.nan
    stops_per_veh: float = math.nan  # mean tripinfo waitingCount (times a vehicle stopped) over departed vehicles
    inserted: int = 0  # scheduled vehicles that departed
    unfinished: int = 0  # departed, still driving at the end
    never_inserted: int = 0  # scheduled, charged end - scheduled depart
    unscheduled_ignored: int = 0  # tripinfo entries not in `scheduled` (ignored)
    emergency_stops: int = 0
    emergency_braking: int = 0
    vehicles_by_arrival: list[tuple[float, int]] = field(default_factory=list)
    queue_over_time: list[tuple[float, float]] = field(default_factory=list)
    # pedestrians and bicycles (module docstring); NaN where the run had none
    persons: int = 0  # persons with a walk stage
    persons_unfinished: int = 0  # of them, still walking at the end (charged their waiting so far)
    ped_delay_s: float = math.nan  # mean over persons of their walks' timeLoss (waiting at crossings included)
    ped_wait_max_s: float = math.nan  # longest waitingTime of one walk
    bicycles: int = 0  # scheduled vehicles of a bicycle type (they are in `vehicles` and `delay_s` too)
    bike_delay_s: float = math.nan  # RESCO delay of the bicycles

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (NaN -> None, tuples -> lists); the keys ``write_report`` reads."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = _nan_to_none(v)
            elif isinstance(v, list):
                d[k] = [[_nan_to_none(x) for x in item] for item in v]
        return d


def _iter_tripinfos(tripinfo_xml: str | os.PathLike[str],
                    walks: list[list[dict[str, str]]] | None = None) -> Iterable[dict[str, str]]:
    """The ``<tripinfo>`` attributes; with ``walks``, each ``<personinfo>``'s ``<walk>`` stages are appended to it
    (one list per person, in the file's order)."""
    with open_xml(tripinfo_xml) as fh:
        for _event, elem in ET.iterparse(fh, events=("end",)):
            if elem.tag == "tripinfo":
                yield dict(elem.attrib)
                elem.clear()
            elif elem.tag == "personinfo" or elem.tag == "containerinfo":
                if walks is not None and elem.tag == "personinfo":
                    walks.append([dict(w.attrib) for w in elem.findall("walk")])
                elem.clear()


def _walk_figures(persons: Sequence[Sequence[Mapping[str, str]]]) -> dict[str, Any]:
    """``persons``, ``persons_unfinished``, ``ped_delay_s`` and ``ped_wait_max_s`` of the persons' walks (module
    docstring); the two figures are NaN when no person walked."""
    delays: list[float] = []
    wait_max = math.nan
    unfinished = 0
    for stages in persons:
        if not stages:
            continue
        loss, going = 0.0, False
        for w in stages:
            wait = float(w.get("waitingTime", "0"))
            if float(w.get("arrival", "-1")) >= 0:
                loss += float(w.get("timeLoss", "0"))
            else:  # still walking: SUMO writes timeLoss 0 until arrival; the waiting so far is certain
                loss += wait
                going = True
            wait_max = wait if math.isnan(wait_max) else max(wait_max, wait)
        delays.append(loss)
        unfinished += going
    return {"persons": len(delays), "persons_unfinished": unfinished,
            "ped_delay_s": sum(delays) / len(delays) if delays else math.nan, "ped_wait_max_s": wait_max}


def _unscheduled_departures(tripinfo_xml: str | os.PathLike[str], scheduled: Mapping[str, float],
                            end: float) -> dict[str, float]:
    """Scheduled departs of the tripinfo entries not in ``scheduled`` (vehicles of random flows)."""
    out: dict[str, float] = {}
    for ti in _iter_tripinfos(tripinfo_xml):
        vid = ti.get("id", "")
        if vid in scheduled:
            continue
        dep = float(ti.get("depart", "-1"))
        dd = float(ti.get("departDelay", "0"))
        out[vid] = dep - dd if dep >= 0 else end - dd
    return out


def compute_metrics(
    tripinfo_xml: str | os.PathLike[str],
    statistics_xml: str | os.PathLike[str] | None,
    scheduled: Mapping[str, float],
    end: float,
    queue_samples: np.ndarray | None = None,
    *,
    junction_ids: Sequence[str] | None = None,
    begin: float | None = None,
    bin_s: float = DELAY_BIN_S,
    sample_times: Sequence[float] | np.ndarray | None = None,
    unscheduled: bool = False,
    bicycles: Bicycles | None = None,
) -> RunMetrics:
    """The RESCO metric and companions for one run.

    tripinfo_xml: SUMO ``--tripinfo-output`` written with ``--tripinfo-output.write-unfinished``.
    statistics_xml: SUMO ``--statistic-output`` (teleports, collisions); ``None`` gives zeros.
    scheduled: :func:`scheduled_departures` of the run's route files and window.
    end: the simulation end (s).
    queue_samples: halting vehicles on the approaches of each signalised junction, shape
        ``[steps, junctions]`` (a 1-D array is one junction).  ``queue_veh`` is the mean over steps
        of the mean over junctions; ``queue_by_junction`` the mean over steps per junction, keyed by
        ``junction_ids`` (default ``"0"``, ``"1"``, ...).
    begin: start of the ``delay_by_arrival`` bins (default: earliest scheduled depart, floored to
        a multiple of ``bin_s``).
    sample_times: simulation time of each queue sample (for ``queue_over_time``, binned like the
        delay); default ``begin + step index``.

    Delay per vehicle = ``timeLoss + departDelay`` for each scheduled vehicle with a departed
    tripinfo entry (arrived or unfinished); ``end - scheduled depart`` for a scheduled vehicle
    without one (never inserted).  Tripinfo entries of vehicles not in ``scheduled`` are ignored.
    ``trip_duration_s`` is the mean ``duration`` of arrived vehicles, ``waiting_s`` the mean
    ``waitingTime`` of departed ones, ``stops_per_veh`` their mean ``waitingCount`` (the number of times a
    vehicle came to a halt), ``throughput_veh`` the number that arrived.

    ``unscheduled``: the demand has random flows, so ``scheduled`` lacks their vehicles; every tripinfo entry of
    a vehicle not in it counts too, scheduled at ``depart - departDelay`` (SUMO writes the ones it generated
    but never inserted when run with ``--tripinfo-output.write-undeparted``: depart -1, departDelay = end -
    scheduled depart).

    ``bicycles``: which vehicles are bicycles (:func:`bicycle_demand`; default: SUMO's ``DEFAULT_BIKETYPE``
    only), for ``bicycles`` and ``bike_delay_s``; the persons' walks give ``persons``, ``persons_unfinished``,
    ``ped_delay_s`` and ``ped_wait_max_s`` (module docstring).
    """
    if unscheduled:
        scheduled = {**scheduled, **_unscheduled_departures(tripinfo_xml, scheduled, end)}
    ids = list(scheduled)
    n = len(ids)
    index = {vid: i for i, vid in enumerate(ids)}
    sched = np.fromiter((scheduled[v] for v in ids), dtype=float, count=n)

    delay = end - sched  # default charge: never inserted
    t_end = np.full(n, float(end))  # time the vehicle's trip ended (arrival or end)
    departed = np.zeros(n, dtype=bool)
    arrived = np.zeros(n, dtype=bool)
    duration = np.full(n, np.nan)
    waiting = np.full(n, np.nan)
    stops = np.full(n, np.nan)
    time_loss = np.full(n, np.nan)
    depart_delay = np.full(n, np.nan)
    unscheduled = 0
    bikes = bicycles if bicycles is not None else Bicycles()
    bike = np.fromiter((bikes.of(v) for v in ids), dtype=bool, count=n)  # by the route files; tripinfo below
    walks: list[list[dict[str, str]]] = []

    for ti in _iter_tripinfos(tripinfo_xml, walks):
        i = index.get(ti.get("id", ""))
        if i is None:
            unscheduled += 1
            continue
        if ti.get("vType"):
            bike[i] = bikes.of(ti["id"], ti["vType"])
        dep = float(ti.get("depart", "-1"))
        if dep < 0:  # --tripinfo-output.write-undeparted entry: never inserted
            continue
        departed[i] = True
        tl = float(ti.get("timeLoss", "0"))
        dd = float(ti.get("departDelay", "0"))
        time_loss[i] = tl
        depart_delay[i] = dd
        delay[i] = tl + dd
        waiting[i] = float(ti.get("waitingTime", "0"))
        stops[i] = float(ti.get("waitingCount", "0"))
        arr = float(ti.get("arrival", "-1"))
        if arr >= 0:
            arrived[i] = True
            duration[i] = float(ti.get("duration", "nan"))
            t_end[i] = arr

    def mean(a: np.ndarray) -> float:
        a = a[~np.isnan(a)]
        return float(a.mean()) if a.size else math.nan

    # delay by arrival bins
    if begin is None:
        begin = math.floor(float(sched.min()) / bin_s) * bin_s if n else 0.0
    nbins = max(1, math.ceil((end - begin) / bin_s))
    delay_by_arrival: list[tuple[float, float]] = []
    vehicles_by_arrival: list[tuple[float, int]] = []
    if n:
        b = np.clip(np.floor((t_end - begin) / bin_s).astype(int), 0, nbins - 1)
        counts = np.bincount(b, minlength=nbins)
        sums = np.bincount(b, weights=delay, minlength=nbins)
        for k in range(nbins):
            if counts[k]:
                t0 = float(begin + k * bin_s)
                delay_by_arrival.append((t0, float(sums[k] / counts[k])))
                vehicles_by_arrival.append((t0, int(counts[k])))

    # queues
    queue_veh = math.nan
    queue_by_junction: dict[str, float] = {}
    queue_over_time: list[tuple[float, float]] = []
    if queue_samples is not None:
        q = np.asarray(queue_samples, dtype=float)
        if q.ndim == 1:
            q = q[:, None]
        if q.ndim != 2:
            raise ValueError(f"queue_samples must be [steps, junctions], got shape {q.shape}")
        if q.shape[0] and q.shape[1]:
            per_step = q.mean(axis=1)
            queue_veh = float(per_step.mean())
            names = list(junction_ids) if junction_ids is not None else [str(j) for j in range(q.shape[1])]
            if len(names) != q.shape[1]:
                raise ValueError(f"{len(names)} junction ids for {q.shape[1]} queue columns")
            queue_by_junction = {name: float(v) for name, v in zip(names, q.mean(axis=0))}
            times = (np.asarray(sample_times, dtype=float) if sample_times is not None
                     else begin + np.arange(q.shape[0], dtype=float))
            qb = np.clip(np.floor((times - begin) / bin_s).astype(int), 0, nbins - 1)
            qc = np.bincount(qb, minlength=nbins)
            qs = np.bincount(qb, weights=per_step, minlength=nbins)
            queue_over_time = [(float(begin + k * bin_s), float(qs[k] / qc[k]))
                               for k in range(nbins) if qc[k]]

    stats = read_statistics(statistics_xml) if statistics_xml is not None else {}

    return RunMetrics(
        delay_s=float(delay.mean()) if n else math.nan,
        trip_duration_s=mean(duration),
        waiting_s=mean(waiting),
        stops_per_veh=mean(stops),
        queue_veh=queue_veh,
        throughput_veh=int(arrived.sum()),
        teleports=int(stats.get("teleports", 0)),
        collisions=int(stats.get("collisions", 0)),
        vehicles=n,
        delay_by_arrival=delay_by_arrival,
        queue_by_junction=queue_by_junction,
        time_loss_s=mean(time_loss),
        depart_delay_s=mean(depart_delay),
        delay_p95_s=float(np.percentile(delay, 95)) if n else math.nan,
        delay_max_s=float(delay.max()) if n else math.nan,
        inserted=int(departed.sum()),
        unfinished=int((departed & ~arrived).sum()),
        never_inserted=int((~departed).sum()),
        unscheduled_ignored=unscheduled,
        emergency_stops=int(stats.get("emergency_stops", 0)),
        emergency_braking=int(stats.get("emergency_braking", 0)),
        vehicles_by_arrival=vehicles_by_arrival,
        queue_over_time=queue_over_time,
        bicycles=int(bike.sum()),
        bike_delay_s=float(delay[bike].mean()) if bike.any() else math.nan,
        **_walk_figures(walks),
    )


def co2_total_kg(tripinfo_xml: str | os.PathLike[str]) -> float | None:
    """Total CO2 of all vehicles in kg, from the ``<emissions CO2_abs=(mg)>`` children SUMO writes into
    tripinfo with ``--device.emissions.probability 1``; None when the run had no emission device."""
    total, seen = 0.0, False
    with open_xml(tripinfo_xml) as fh:
        for _event, elem in ET.iterparse(fh, events=("end",)):
            if elem.tag == "emissions":
                v = elem.get("CO2_abs")
                if v is not None:
                    total += float(v)
                    seen = True
            elif elem.tag == "tripinfo":
                elem.clear()
    return total / 1e6 if seen else None
