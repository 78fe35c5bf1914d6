"""Time-of-day local plans: what a controller runs when the engine is silent, by time of day.

Without a plan file the local plan is the net's own program (its green durations, in its ring
order). A plan file (TOML) replaces the green durations in time-of-day windows, per junction or for
all junctions; the order of the phases, the transitions and every safety limit stay those of the
controller's timer (min green, yellow, all-red, max green, conflict monitor)::

    start_of_day = "06:00"      # time of day at controller clock 0 (default "00:00")

    [[window]]                  # for every junction that has no windows of its own
    name = "morning-peak"
    from = "06:30"
    to = "09:00"
    greens = { 0 = 40, 4 = 30 } # phase index of the net's program -> green seconds

    [[junction.A1.window]]      # A1's own windows replace the common ones
    name = "night"
    from = "22:00"
    to = "05:30"                # a window may run past midnight
    greens = { 0 = 15, 2 = 8, 4 = 15 }

Time of day = (controller clock + ``start_of_day``) mod 24 h. In a SUMO run the clock is simulation
time, so ``start_of_day`` is the time of day at simulation time 0; in the field (``--clock wall``) the
clock is Unix time (UTC), so ``start_of_day`` is the local UTC offset (``"07:00"`` for WIB).

Phases are numbered as in the net's program (SUMO's phase index, yellows included, as netedit shows
them); only green phases may be named. Phases a window does not name, and times outside every
window, keep the net's durations. Loading refuses, with the file and the key: a phase that does not
exist or is not green, a green below the phase's minimum green or above its maximum, two program
phases showing the same green with different durations, overlapping windows, bad times and unknown
keys (and, for a whole network, windows for a junction it does not have).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from controllers.timing import TimingConfig
from engine.protocol.junction import JunctionSpec

DAY = 86400.0
_TOP_KEYS = {"start_of_day", "window", "junction"}
_WINDOW_KEYS = {"name", "from", "to", "greens"}


class PlanError(ValueError):
    """A plan file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Window:
    key: str  # where it is in the file, e.g. "junction.A1.window[0]"
    name: str
    start: float  # s of the day, inclusive
    end: float  # s of the day, exclusive; end < start: runs past midnight
    greens: dict[int, float]  # program phase index -> green seconds

    def covers(self, tod: float) -> bool:
        if self.start < self.end:
            return self.start <= tod < self.end
        return tod >= self.start or tod < self.end


@dataclass(frozen=True)
class JunctionPlan:
    """One junction's resolved plan: green seconds per green phase for each window."""

    junction: str
    start_of_day: float
    windows: tuple[tuple[Window, tuple[float, ...]], ...]
    default: tuple[float, ...]  # the net's green durations

    def at(self, t: float) -> tuple[str, tuple[float, ...]]:
        """(window name, green seconds per green phase) in force at controller clock ``t``;
        ("net", the net's durations) outside every window."""
        tod = (t + self.start_of_day) % DAY
        for w, greens in self.windows:
            if w.covers(tod):
                return w.name, greens
        return "net", self.default


@dataclass(frozen=True)
class PlanFile:
    path: Path
    start_of_day: float
    common: tuple[Window, ...]
    junctions: dict[str, tuple[Window, ...]]

    def _err(self, key: str, msg: str) -> PlanError:
        return PlanError(f"{self.path}: {key}: {msg}")

    def for_junction(self, spec: JunctionSpec, timing: TimingConfig | None = None) -> JunctionPlan:
        """The plan of ``spec``'s junction, checked against its phases and limits (PlanError)."""
        timing = timing or TimingConfig()
        windows = self.junctions.get(spec.id, self.common)
        default = tuple(float(g) for g in spec.fixed_green)
        if windows and not spec.program_greens:
            raise self._err(windows[0].key, f"the junction spec of {spec.id} has no map of the net's program "
                            f"phases (compiled by an older Lintas): recompile it with lintas compile")
        n_prog = len(spec.program_greens)
        green_idx = [i for i, k in enumerate(spec.program_greens) if k >= 0]
        mins = [max(timing.min_green, x) for x in spec.min_green]
        if timing.max_green is not None:
            maxs = [max(timing.max_green, g) for g in mins]
        else:
            maxs = [max(a, b) for a, b in zip(spec.max_green, mins, strict=True)]
        out = []
        for w in windows:
            greens = list(default)
            given: dict[int, tuple[int, float]] = {}
            for i, g in sorted(w.greens.items()):
                key = f"{w.key}.greens.{i}"
                if not 0 <= i < n_prog:
                    raise self._err(key, f"phase {i} does not exist: the net's program of {spec.id} has {n_prog} "
                                    f"phases (0-{n_prog - 1}); green ones: {_list(green_idx)}")
                k = spec.program_greens[i]
                if k < 0:
                    raise self._err(key, f"phase {i} of {spec.id} is not a green phase (a yellow or all-red phase "
                                    f"of the net's program); green ones: {_list(green_idx)}")
                if g < mins[k] - 1e-9:
                    raise self._err(key, f"green {g:g} s of phase {i} at {spec.id} is below its minimum green "
                                    f"{mins[k]:g} s (the controller would run {mins[k]:g} s)")
                if g > maxs[k] + 1e-9:
                    raise self._err(key, f"green {g:g} s of phase {i} at {spec.id} is above its maximum green "
                                    f"{maxs[k]:g} s (the controller would end it at {maxs[k]:g} s)")
                if k in given and given[k][1] != g:
                    raise self._err(key, f"phase {i} shows the same green as phase {given[k][0]} at {spec.id}, "
                                    f"which is given {given[k][1]:g} s: give both the same")
                given[k] = (i, g)
                greens[k] = float(g)
            out.append((w, tuple(greens)))
        return JunctionPlan(spec.id, self.start_of_day, tuple(out), default)

    def check_network(self, specs: Iterable[JunctionSpec],
                      timing: TimingConfig | None = None) -> dict[str, JunctionPlan]:
        """Every junction's plan; also refuses windows for a junction the network does not have."""
        specs = list(specs)
        ids = {s.id for s in specs}
        for jid in self.junctions:
            if jid not in ids:
                sample = ", ".join(sorted(ids)[:8]) + (", ..." if len(ids) > 8 else "")
                raise self._err(f"junction.{jid}", f"no traffic light {jid!r} in the network (it has: {sample})")
        return {s.id: self.for_junction(s, timing) for s in specs}


def _list(xs: list[int]) -> str:
    return ", ".join(str(x) for x in xs) or "none"


def load_plan(path: str | Path) -> PlanFile:
    """Read and check a plan file (its own structure; the phases are checked by ``for_junction``)."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except OSError as exc:
        raise PlanError(f"{p}: cannot read the plan file: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{p}: not valid TOML: {exc}") from None

    def err(key: str, msg: str) -> PlanError:
        return PlanError(f"{p}: {key}: {msg}")

    for k in raw:
        if k not in _TOP_KEYS:
            raise err(k, f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
    start = _time(raw.get("start_of_day", 0), "start_of_day", err, allow_any=True)
    common = _windows(raw.get("window", []), "window", err)
    junctions: dict[str, tuple[Window, ...]] = {}
    jt = raw.get("junction", {})
    if not isinstance(jt, dict):
        raise err("junction", "expected a table of junctions ([[junction.ID.window]])")
    for jid, body in jt.items():
        if not isinstance(body, dict) or set(body) - {"window"}:
            extra = sorted(set(body) - {"window"}) if isinstance(body, dict) else []
            raise err(f"junction.{jid}" + (f".{extra[0]}" if extra else ""),
                      "a junction holds only its windows ([[junction.ID.window]])")
        junctions[jid] = _windows(body.get("window", []), f"junction.{jid}.window", err)
    return PlanFile(p, start, common, junctions)


def _windows(items, key: str, err) -> tuple[Window, ...]:
    if not isinstance(items, list):
        raise err(key, "expected an array of tables ([[window]])")
    out: list[Window] = []
    for n, w in enumerate(items):
        wk = f"{key}[{n}]"
        if not isinstance(w, dict):
            raise err(wk, "expected a table with from, to and greens")
        for k in w:
            if k not in _WINDOW_KEYS:
                raise err(f"{wk}.{k}", f"unknown key (known: {', '.join(sorted(_WINDOW_KEYS))})")
        for k in ("from", "to", "greens"):
            if k not in w:
                raise err(f"{wk}.{k}", "missing")
        a = _time(w["from"], f"{wk}.from", err)
        b = _time(w["to"], f"{wk}.to", err)
        if a == b:
            raise err(f"{wk}.to", "an empty window (from == to); the whole day is from = \"00:00\", to = \"24:00\"")
        name = w.get("name", f"window {n}")
        if not isinstance(name, str) or not name.strip():
            raise err(f"{wk}.name", "expected a non-empty string")
        if not isinstance(w["greens"], dict) or not w["greens"]:
            raise err(f"{wk}.greens", "expected a table of phase index = green seconds, e.g. { 0 = 30, 2 = 20 }")
        greens: dict[int, float] = {}
        for pk, g in w["greens"].items():
            gk = f"{wk}.greens.{pk}"
            if not (isinstance(pk, str) and pk.isdigit()):
                raise err(gk, "a phase is named by its index in the net's program (0, 1, ...)")
            if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g <= 0:
                raise err(gk, f"expected a positive number of seconds, got {g!r}")
            greens[int(pk)] = float(g)
        win = Window(wk, name.strip(), a, b, greens)
        for other in out:
            if _overlap(win, other):
                raise err(wk, f"overlaps {other.key} ({other.name})")
        out.append(win)
    return tuple(out)


def _segments(w: Window) -> list[tuple[float, float]]:
    return [(w.start, w.end)] if w.start < w.end else [(w.start, DAY), (0.0, w.end)]


def _overlap(a: Window, b: Window) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in _segments(a) for s2, e2 in _segments(b))


def _time(v, key: str, err, *, allow_any: bool = False) -> float:
    """Seconds of the day from "HH:MM", "HH:MM:SS" or a number of seconds."""
    if isinstance(v, bool):
        raise err(key, f"expected a time such as \"07:30\", got {v!r}")
    if isinstance(v, (int, float)):
        if not math.isfinite(v) or (not allow_any and not 0 <= v <= DAY):
            raise err(key, f"expected seconds within a day (0-86400), got {v!r}")
        return float(v) % DAY if allow_any else float(v)
    if isinstance(v, str):
        parts = v.strip().split(":")
        if 2 <= len(parts) <= 3 and all(x.isdigit() for x in parts):
            h, m, s = (int(x) for x in [*parts, "0"][:3])
            if m < 60 and s < 60 and (h < 24 or (h, m, s) == (24, 0, 0)):
                return float(h * 3600 + m * 60 + s)
    raise err(key, f"expected a time such as \"07:30\" or \"07:30:15\", got {v!r}")


__all__ = ["JunctionPlan", "PlanError", "PlanFile", "Window", "load_plan"]
