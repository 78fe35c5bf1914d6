"""An independent check of the signal states SUMO actually showed.

``check_tls_states(states_xml, network_or_scenario)`` reads SUMO's ``SaveTLSStates`` output (an
additional file ``<additional><timedEvent type="SaveTLSStates" dest="FILE"/></additional>``; SUMO
1.28 writes one ``<tlsState time= id= programID= phase= state=/>`` per traffic light and step) or
``SaveTLSSwitchStates`` output (same elements, only when a state changes), rebuilds per traffic light
the sequence of states shown and counts, per link of the junction spec:

- ``conflict_green``: steps in which two links that conflict are both green;
- ``conflict_green_yellow``: steps in which two conflicting links are both active (green or yellow)
  and at least one of them is yellow;
- ``short_yellow``: yellow runs that end before ``yellow_min`` seconds;
- ``green_to_red``: a link that goes from green straight to a non-green, non-yellow letter;
- ``short_green``: green runs (G/g, across phases that keep the link green) that end before
  ``min_green`` seconds;
- ``yellow_to_green``: a link that goes from yellow back to green;
- ``malformed``: records whose state does not fit the junction (length, unknown letters).

Two links conflict in a state by the compatibility rule of the junction spec (``engine/protocol/
junction.py``, docs/safety.md): both active, ``conflicts[a][b] == '1'``, and neither gives way to the
other (a gives way to b when it shows a minor letter ``g y o`` and ``yields[a][b] == '1'``). A yellow
that goes to green between two consecutive states the net's own program shows one after the other
(``net_yellow_to_green``) is neither a yellow back to green nor a short yellow: it is no clearance.

Letters (SUMO's): green ``G g``; yellow ``y Y``; stop ``r s u`` (``s`` = stop, then go; ``u`` =
red+yellow before green: both make vehicles stop, so a green that ends in one of them ended without
yellow); off ``o O`` (signal dark: vehicles drive on the junction's right of way without stopping,
so for conflicts they count as green, and a green that ends in them ended without yellow).
Runs that start with the first record of a traffic light may be partial and are not judged; runs
still open at the end of the record are not judged either.

Units: conflict classes count steps (a state shown for 5 s counts 5 at ``step=1``); the transition
classes count state changes (one per class and change, whatever the number of links; the example
lists the links).

This module shares no code with the controller's timer (controllers/timing.py) or its conflict
monitor (controllers/monitor.py). ``read_statistics`` reads SUMO's ``--statistic-output`` for
collisions and teleports; collisions make a report fail, teleports are reported only.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.network import Network
from engine.protocol.junction import JunctionSpec
from simulation.sumo import outputs
from simulation.sumo.files import open_xml

__all__ = [
    "CLASSES",
    "TlsCheckError",
    "TlsCheckReport",
    "check_tls_states",
    "class_labels",
    "load_junctions",
    "read_collisions",
    "read_statistics",
    "read_tls_states",
]

GREEN = frozenset("Gg")
YELLOW = frozenset("yY")
STOP = frozenset("rsu")
OFF = frozenset("oO")
KNOWN = GREEN | YELLOW | STOP | OFF
CONFLICT_GO = GREEN | OFF  # letters on which a vehicle may enter without stopping
MINOR = frozenset("gyo")  # a link showing one of these gives way to the links it yields to
_EPS = 1e-6

CLASSES = (
    "conflict_green",
    "conflict_green_yellow",
    "short_yellow",
    "green_to_red",
    "short_green",
    "yellow_to_green",
    "malformed",
)


def class_labels(yellow_min: float = 3.0, min_green: float = 5.0) -> dict[str, str]:
    """One-line labels of the violation classes."""
    return {
        "conflict_green": "conflicting greens",
        "conflict_green_yellow": "conflicting green+yellow",
        "short_yellow": f"yellows shorter than {yellow_min:g} s",
        "green_to_red": "green to red without yellow",
        "short_green": f"greens shorter than {min_green:g} s",
        "yellow_to_green": "yellow back to green",
        "malformed": "malformed states",
    }


class TlsCheckError(Exception):
    """A states file, statistics file or network that cannot be read (one-line message)."""


# ------------------------------------------------------------------------------------------------
# inputs
def read_tls_states(states_xml: str | Path) -> dict[str, list[tuple[float, str]]]:
    """``{tls id: [(time, state), ...]}`` in file order from a SaveTLSStates/SaveTLSSwitchStates file.

    Other attributes (programID, phase, detectors, conditions) are ignored: the checker judges the
    letters shown, not the program that produced them."""
    p = Path(states_xml)
    if not p.is_file():
        raise TlsCheckError(f"{p}: states file does not exist")
    out: dict[str, list[tuple[float, str]]] = {}
    root_tag: str | None = None
    try:
        with open_xml(p) as fh:
            for ev, el in ET.iterparse(fh, events=("start", "end")):
                if ev == "start":
                    if root_tag is None:
                        root_tag = el.tag
                    continue
                if el.tag == "tlsState":
                    tid, t, st = el.get("id"), el.get("time"), el.get("state")
                    if tid is None or t is None or st is None:
                        raise TlsCheckError(f"{p}: tlsState without id, time or state")
                    try:
                        tf = float(t)
                    except ValueError:
                        raise TlsCheckError(f"{p}: tlsState time '{t}' is not a number") from None
                    if not math.isfinite(tf):
                        raise TlsCheckError(f"{p}: tlsState time '{t}' is not finite")
                    out.setdefault(tid, []).append((tf, st))
                    el.clear()
    except ET.ParseError as exc:
        raise TlsCheckError(f"{p}: not a valid XML file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise TlsCheckError(f"{p}: cannot read ({exc})") from None
    if root_tag != "tlsStates" and not out:
        raise TlsCheckError(f"{p}: not a SUMO tlsStates file (root element <{root_tag}>)")
    if not out:
        raise TlsCheckError(f"{p}: no tlsState records")
    return out


def read_statistics(statistics_xml: str | Path) -> dict[str, int]:
    """Collisions, emergency stops and teleports from SUMO's ``--statistic-output`` (as counts)."""
    try:
        stats = outputs.read_statistics(statistics_xml)
    except outputs.SumoOutputError as exc:
        raise TlsCheckError(str(exc)) from None
    keys = ("collisions", "emergency_stops", "emergency_braking", "teleports", "teleports_jam", "teleports_yield",
            "teleports_wrong_lane")
    return {k: int(stats[k]) for k in keys}


def read_collisions(collisions_xml: str | Path, limit: int = 20) -> list[dict[str, Any]]:
    """The first ``limit`` entries of SUMO's ``--collision-output`` (time, type, lane, vehicles)."""
    p = Path(collisions_xml)
    if not p.is_file():
        raise TlsCheckError(f"{p}: collision file does not exist")
    out: list[dict[str, Any]] = []
    try:
        for _ev, el in ET.iterparse(p, events=("end",)):
            if el.tag == "collision" and len(out) < limit:
                out.append(dict(el.attrib))
    except ET.ParseError as exc:
        raise TlsCheckError(f"{p}: not a valid XML file ({exc})") from None
    return out


def load_junctions(network_or_scenario: Any) -> list[JunctionSpec]:
    """Junction specs from a :class:`Network`, JunctionSpec(s), a Scenario, a scenario folder or
    ``.sumocfg``, a ``.net.xml`` or a ``network.json`` written by ``lintas compile``."""
    if isinstance(network_or_scenario, Network):
        return list(network_or_scenario.junctions)
    if isinstance(network_or_scenario, JunctionSpec):
        return [network_or_scenario]
    if isinstance(network_or_scenario, (list, tuple)) and all(isinstance(j, JunctionSpec) for j in network_or_scenario):
        return list(network_or_scenario)
    from simulation.sumo.scenario import Scenario, ScenarioError

    if isinstance(network_or_scenario, (str, Path)) and str(network_or_scenario).endswith(".json"):
        import msgspec

        p = Path(network_or_scenario)
        try:
            raw = msgspec.json.decode(p.read_bytes())
            if isinstance(raw, dict) and "junctions" in raw:
                return list(Network.from_json(p).junctions)
            return [msgspec.convert(raw, JunctionSpec)]  # one junction spec (lintas compile: junctions/ID.json)
        except Exception as exc:  # noqa: BLE001 - any decode problem is one line for the user
            raise TlsCheckError(f"{p}: not a lintas network.json or junction spec ({exc})") from None
    if isinstance(network_or_scenario, (str, Path, Scenario)):
        import warnings

        from simulation.sumo.netcompile import compile_network

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return list(compile_network(network_or_scenario).junctions)
        except ScenarioError as exc:
            raise TlsCheckError(str(exc)) from None
    raise TlsCheckError(f"cannot take junction specs from {type(network_or_scenario).__name__}")


# ------------------------------------------------------------------------------------------------
# report
@dataclass
class TlsCheckReport:
    """What ``check_tls_states`` found. ``counts``/``per_tls`` by class (see :data:`CLASSES`);
    ``examples[cls]``: the first few occurrences as dicts (time, tls, links, states, ...)."""

    states_file: str
    yellow_min: float
    min_green: float
    step: float
    mode: str = ""  # "every-step" | "on-change" (records only at switches, or gaps)
    begin: float = math.nan
    end: float = math.nan
    records: int = 0
    tls_checked: list[str] = field(default_factory=list)
    tls_not_in_network: list[str] = field(default_factory=list)  # in the file, no spec: not checked
    tls_not_in_file: list[str] = field(default_factory=list)  # in the network, no record
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    per_tls: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {c: [] for c in CLASSES})
    letters: dict[str, int] = field(default_factory=dict)  # step counts of each letter, all links
    shortest_green: float | None = None  # shortest judged green run that ended (s)
    shortest_yellow: float | None = None  # shortest judged yellow run that ended (s)
    judged_greens: int = 0  # link green runs that ended and were judged
    judged_yellows: int = 0
    statistics: dict[str, int] | None = None
    statistics_file: str | None = None
    collisions_detail: list[dict[str, Any]] = field(default_factory=list)
    max_examples: int = 5

    @property
    def violations(self) -> int:
        return sum(self.counts.values())

    @property
    def collisions(self) -> int | None:
        return None if self.statistics is None else self.statistics["collisions"]

    @property
    def teleports(self) -> int | None:
        return None if self.statistics is None else self.statistics["teleports"]

    @property
    def ok(self) -> bool:
        """No violation of any class, at least one traffic light checked, and no collision (when a
        statistics file was given). Teleports do not count."""
        return self.violations == 0 and bool(self.tls_checked) and not (self.collisions or 0)

    def _add(self, cls: str, tls: str, n: int, example: dict[str, Any]) -> None:
        self.counts[cls] += n
        pt = self.per_tls.setdefault(tls, dict.fromkeys(CLASSES, 0))
        pt[cls] += n
        if len(self.examples[cls]) < self.max_examples:
            self.examples[cls].append({"tls": tls, **example})

    def summary_lines(self, examples: int = 3) -> list[str]:
        labels = class_labels(self.yellow_min, self.min_green)
        span = f"{self.begin:g}-{self.end:g} s" if self.records else "empty"
        head = (f"states: {self.states_file} ({len(self.tls_checked)} traffic lights checked, {span}, "
                f"{self.records} records, {self.mode})")
        lines = [head]
        if self.tls_not_in_network:
            lines.append(f"not in the network (not checked): {', '.join(self.tls_not_in_network[:10])}")
        if self.tls_not_in_file:
            lines.append(f"no record in the file: {', '.join(self.tls_not_in_file[:10])}")
        for c in CLASSES:
            if c == "malformed" and not self.counts[c]:
                continue
            lines.append(f"{labels[c]}: {self.counts[c]}")
            for ex in self.examples[c][:examples]:
                lines.append(f"  {_fmt_example(ex)}")
        def short(x: float | None) -> str:
            return "-" if x is None else f"{x:g} s"

        lines.append(f"link greens judged: {self.judged_greens} (shortest {short(self.shortest_green)}), "
                     f"yellows: {self.judged_yellows} (shortest {short(self.shortest_yellow)})")
        if self.statistics is not None:
            s = self.statistics
            lines.append(f"collisions: {s['collisions']}")
            for c in self.collisions_detail[:examples]:
                lines.append("  " + " ".join(f"{k}={v}" for k, v in c.items()))
            lines.append(f"teleports: {s['teleports']} (jam {s['teleports_jam']}, yield {s['teleports_yield']}, "
                         f"wrong lane {s['teleports_wrong_lane']}; reported, not counted)")
            lines.append(f"emergency stops: {s['emergency_stops']}, emergency braking: {s['emergency_braking']} "
                         "(reported, not counted)")
        lines.append("OK" if self.ok else "VIOLATIONS")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "states_file": self.states_file,
            "ok": self.ok,
            "violations": self.violations,
            "yellow_min": self.yellow_min,
            "min_green": self.min_green,
            "step": self.step,
            "mode": self.mode,
            "begin": self.begin,
            "end": self.end,
            "records": self.records,
            "tls_checked": self.tls_checked,
            "tls_not_in_network": self.tls_not_in_network,
            "tls_not_in_file": self.tls_not_in_file,
            "counts": self.counts,
            "per_tls": self.per_tls,
            "examples": self.examples,
            "letters": self.letters,
            "judged_greens": self.judged_greens,
            "shortest_green": self.shortest_green,
            "judged_yellows": self.judged_yellows,
            "shortest_yellow": self.shortest_yellow,
            "statistics_file": self.statistics_file,
            "statistics": self.statistics,
            "collisions_detail": self.collisions_detail,
        }


def _fmt_example(ex: dict[str, Any]) -> str:
    parts = [f"t={ex['time']:g}", f"tls={ex['tls']}"]
    if "pairs" in ex:
        parts.append("pairs=" + ",".join(f"{a}-{b}" for a, b in ex["pairs"]))
    else:
        parts.append("links=" + ",".join(str(i) for i in ex["links"]))
    if "run_s" in ex:
        parts.append("run=" + ",".join(f"{x:g}" for x in ex["run_s"]) + " s")
    if "steps" in ex:
        parts.append(f"for {ex['steps']} steps")
    parts.append(" -> ".join(ex["states"]))
    if "why" in ex:
        parts.append(ex["why"])
    return " ".join(parts)


# ------------------------------------------------------------------------------------------------
# the check
def _kind(c: str) -> str:
    if c in GREEN:
        return "g"
    if c in YELLOW:
        return "y"
    if c in OFF:
        return "o"
    return "r"  # r s u (and anything unknown, reported as malformed)


class _Conflicts:
    def __init__(self, spec: JunctionSpec) -> None:
        self.conf = spec.conflict_matrix()
        self.yields = spec.yield_matrix()
        self.cache: dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}

    def __call__(self, state: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(green-green pairs, green/yellow pairs with a yellow) among links that conflict in ``state``."""
        got = self.cache.get(state)
        if got is None:
            go = np.fromiter((c in CONFLICT_GO for c in state), dtype=np.bool_, count=len(state))
            yel = np.fromiter((c in YELLOW for c in state), dtype=np.bool_, count=len(state))
            minor = np.fromiter((c in MINOR for c in state), dtype=np.bool_, count=len(state))
            act = go | yel
            gives_way = minor[:, None] & self.yields  # [a, b]: a gives way to b in this state
            conf = self.conf & ~gives_way & ~gives_way.T
            gg = np.argwhere(np.triu(conf & np.outer(go, go), 1))
            gy = np.argwhere(np.triu(conf & np.outer(act, act) & ~np.outer(go, go), 1))
            got = ([(int(a), int(b)) for a, b in gg], [(int(a), int(b)) for a, b in gy])
            if len(self.cache) > 8192:
                self.cache.clear()
            self.cache[state] = got
        return got


def _check_one(rep: TlsCheckReport, spec: JunctionSpec, recs: Sequence[tuple[float, str]], end: float) -> None:
    tid = spec.id
    n = spec.n_links
    yellow_min, min_green, step = rep.yellow_min, rep.min_green, rep.step
    rep.per_tls.setdefault(tid, dict.fromkeys(CLASSES, 0))
    # intervals: (start, end, state) with consecutive equal states merged; a later record at the
    # same time replaces an earlier one
    times: list[float] = []
    states: list[str] = []
    for t, s in recs:
        if times and t <= times[-1] + _EPS:
            if t < times[-1] - _EPS:
                raise TlsCheckError(f"{rep.states_file}: records of {tid} go back in time at t={t:g}")
            states[-1] = s
            continue
        times.append(t)
        states.append(s)
    # the bad ones are reported and left out
    good_t: list[float] = []
    good_s: list[str] = []
    for t, s in zip(times, states):
        if len(s) != n or any(c not in KNOWN for c in s):
            why = f"length {len(s)} != {n} links" if len(s) != n else \
                f"unknown letters {''.join(sorted({c for c in s if c not in KNOWN}))!r}"
            rep._add("malformed", tid, 1, {"time": t, "links": [], "states": [s], "why": why})
            continue
        good_t.append(t)
        good_s.append(s)
    if not good_t:
        return
    first = good_t[0]
    conflicts = _Conflicts(spec)
    net_y2g = {(a, b) for a, b in spec.net_yellow_to_green}
    run_kind = [_kind(c) for c in good_s[0]]
    run_start = [first] * n
    letters = rep.letters
    k = 0
    while k < len(good_t):
        t0, s = good_t[k], good_s[k]
        j = k + 1
        while j < len(good_t) and good_s[j] == s:
            j += 1
        t1 = good_t[j] if j < len(good_t) else max(end, t0 + step)
        steps = max(1, round((t1 - t0) / step))
        for c in s:
            letters[c] = letters.get(c, 0) + steps
        gg, gy = conflicts(s)
        if gg:
            rep._add("conflict_green", tid, steps, {"time": t0, "pairs": gg[:6], "steps": steps, "states": [s]})
        if gy:
            rep._add("conflict_green_yellow", tid, steps, {"time": t0, "pairs": gy[:6], "steps": steps, "states": [s]})
        if j >= len(good_t):
            break
        t_new, s_new = good_t[j], good_s[j]
        net_pair = (s, s_new) in net_y2g  # the net's own program goes from yellow to green here
        g2r: list[int] = []
        g2r_run: list[float] = []
        sg: list[int] = []
        sg_run: list[float] = []
        sy: list[int] = []
        sy_run: list[float] = []
        y2g: list[int] = []
        for i in range(n):
            old, new = run_kind[i], _kind(s_new[i])
            if old == new:
                continue
            run = t_new - run_start[i]
            judged = run_start[i] > first + _EPS  # the first run may be partial
            if old == "g":
                if new != "y":
                    g2r.append(i)
                    g2r_run.append(run)
                if judged:
                    rep.judged_greens += 1
                    if rep.shortest_green is None or run < rep.shortest_green:
                        rep.shortest_green = run
                if judged and run + _EPS < min_green:
                    sg.append(i)
                    sg_run.append(run)
            elif old == "y" and net_pair and new == "g":
                pass  # no clearance: neither a short yellow nor a yellow back to green
            elif old == "y":
                if judged:
                    rep.judged_yellows += 1
                    if rep.shortest_yellow is None or run < rep.shortest_yellow:
                        rep.shortest_yellow = run
                if judged and run + _EPS < yellow_min:
                    sy.append(i)
                    sy_run.append(run)
                if new == "g":
                    y2g.append(i)
            run_kind[i] = new
            run_start[i] = t_new
        pair = [s, s_new]
        if g2r:
            rep._add("green_to_red", tid, 1, {"time": t_new, "links": g2r, "run_s": g2r_run, "states": pair})
        if sg:
            rep._add("short_green", tid, 1, {"time": t_new, "links": sg, "run_s": sg_run, "states": pair})
        if sy:
            rep._add("short_yellow", tid, 1, {"time": t_new, "links": sy, "run_s": sy_run, "states": pair})
        if y2g:
            rep._add("yellow_to_green", tid, 1, {"time": t_new, "links": y2g, "states": pair})
        k = j


def check_tls_states(
    states_xml: str | Path,
    network_or_scenario: Any,
    *,
    yellow_min: float = 3.0,
    min_green: float = 5.0,
    step: float = 1.0,
    statistics_xml: str | Path | None = None,
    collisions_xml: str | Path | None = None,
    max_examples: int = 5,
) -> TlsCheckReport:
    """Check the states SUMO showed (``states_xml``) against the junction specs of
    ``network_or_scenario`` (see :func:`load_junctions`). Raises :class:`TlsCheckError` when a file
    cannot be read or no traffic light of the file is in the network."""
    if not (step > 0):
        raise TlsCheckError(f"step must be > 0 (got {step})")
    records = read_tls_states(states_xml)
    specs = {j.id: j for j in load_junctions(network_or_scenario)}
    rep = TlsCheckReport(str(states_xml), yellow_min, min_green, step, max_examples=max_examples)
    all_times = [t for recs in records.values() for t, _ in recs]
    rep.begin = min(all_times)
    rep.end = max(all_times) + step
    rep.records = len(all_times)
    rep.tls_not_in_network = sorted(set(records) - set(specs))
    rep.tls_not_in_file = sorted(set(specs) - set(records))
    rep.tls_checked = sorted(set(records) & set(specs))
    if not rep.tls_checked:
        raise TlsCheckError(f"{states_xml}: none of its traffic lights ({', '.join(sorted(records)[:5])}) "
                            "is in the network")
    every = True
    for tid in rep.tls_checked:
        ts = sorted({t for t, _ in records[tid]})
        gaps = np.diff(np.asarray(ts))
        if gaps.size and (np.abs(gaps - step) > 1e-3).any():
            every = False
        if ts[0] > rep.begin + 1e-3 or ts[-1] + step < rep.end - 1e-3:
            every = False
    rep.mode = "every-step" if every else "on-change"
    for tid in rep.tls_checked:
        _check_one(rep, specs[tid], records[tid], rep.end)
    if statistics_xml is not None:
        rep.statistics = read_statistics(statistics_xml)
        rep.statistics_file = str(statistics_xml)
    if collisions_xml is not None:
        rep.collisions_detail = read_collisions(collisions_xml)
    return rep



def check_sequence(spec: JunctionSpec, records: Sequence[tuple[float, str]], *, end: float, yellow_min: float = 3.0,
                   min_green: float = 5.0, step: float = 1.0) -> TlsCheckReport:
    """Check one junction's shown states, given as (time, state) records (e.g. from a head driver),
    with the same rules as :func:`check_tls_states`."""
    rep = TlsCheckReport(f"<{spec.id}>", yellow_min, min_green, step, mode="every-step")
    if records:
        rep.begin, rep.end, rep.records = records[0][0], end, len(records)
        rep.tls_checked = [spec.id]
        _check_one(rep, spec, records, end)
    return rep
