"""The junction spec: everything a controller needs to time one signalised junction safely.

It is part of the wire protocol: the engine compiles it (``lintas compile`` writes one JSON file per
junction), a roadside controller loads it, and the engine and the controller agree on phase numbers
through it (``phase`` in every message is an index into ``green_states``). JSON field names are the
attribute names below.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec
import numpy as np

from engine.protocol.security import safe_name


class JunctionSpec(msgspec.Struct, frozen=True):
    """Everything a controller needs to time one signalised junction safely (JSON-serialisable, so
    a roadside controller process can load it from a file).

    green_states[k]: the signal string of green phase k (SUMO letters, one per link).
    net_next[k]: the green phase the net's program serves after k (ring order).
    fixed_green[k]: the net program's duration of green phase k (s).
    min_green[k] / max_green[k]: bounds the controller enforces (s).
    yellow[k]: yellow after green phase k (s, >= 3 s), from the net where its yellow is longer.
    allred[k]: all-red after that yellow (s), from the net or configured.
    net_transitions[k]: the net's own intermediate states (state, duration) between k and net_next[k].
    conflicts: n_links strings of '0'/'1'; conflicts[a][b] == '1' when links a and b are foes (their paths
    cross or merge) that no state of the net's own program shows active (green or yellow) together.
    yields: n_links strings of '0'/'1'; yields[a][b] == '1' when link a, showing a minor letter (``g``,
    ``y``, ``o``), waits for link b's vehicles (the junction's right of way: SUMO's response matrix). Empty
    in specs compiled before it existed: then no link yields.
    net_yellow_to_green: the consecutive states (before, after) of the net's own program in which a link
    goes straight from yellow to green (empty when it never does).
    link_in_lane / link_out_lane / link_via: lane ids per link ('' where none, e.g. crossings).
    start_phase: green phase the junction starts in; start_offset: seconds already spent in it.
    program_greens[i]: for phase i of the net's program (SUMO's phase index, yellows included), the
    green phase it shows (or is a slice of: consecutive program phases with the same green links are one
    green phase), or -1 for a yellow / all-red phase (empty in specs compiled before it existed).

    The compatibility rule (the conflict monitor and tlscheck both judge by it; docs/safety.md):
    links a and b may be active (``G g y Y o O``) in the same state unless ``conflicts[a][b] == '1'`` and
    neither gives way to the other; a gives way to b when it shows a minor letter (``g y o``) and
    ``yields[a][b] == '1'``. A link going from yellow (``y Y``) straight to green (``G g``) between two
    consecutive states is a violation unless the two states are a pair of ``net_yellow_to_green``.
    """

    id: str
    n_links: int
    green_states: list[str]
    net_next: list[int]
    fixed_green: list[float]
    min_green: list[float]
    max_green: list[float]
    yellow: list[float]
    allred: list[float]
    net_transitions: list[list[tuple[str, float]]]
    conflicts: list[str]
    link_in_lane: list[str]
    link_out_lane: list[str]
    link_via: list[str]
    start_phase: int = 0
    start_offset: float = 0.0
    program_greens: list[int] = []
    yields: list[str] = []
    net_yellow_to_green: list[tuple[str, str]] = []

    @property
    def n_phases(self) -> int:
        return len(self.green_states)

    def conflict_matrix(self) -> np.ndarray:
        return np.array([[c == "1" for c in row] for row in self.conflicts], dtype=np.bool_).reshape(
            self.n_links, self.n_links
        )

    def yield_matrix(self) -> np.ndarray:
        """``yields`` as booleans (all False where the spec has none)."""
        if not self.yields:
            return np.zeros((self.n_links, self.n_links), dtype=np.bool_)
        return np.array([[c == "1" for c in row] for row in self.yields], dtype=np.bool_).reshape(
            self.n_links, self.n_links
        )


class SpecError(ValueError):
    """A junction spec file that cannot be used (one line naming the file)."""


def spec_file(folder: Path, junction_id: str) -> Path:
    """Where ``lintas compile`` puts a junction's spec: ``folder/<id as a safe file name>.json``."""
    return Path(folder) / f"{safe_name(junction_id)}.json"


def write_specs(specs: Iterable[JunctionSpec], folder: Path) -> dict[str, Path]:
    """Write one JSON file per junction into ``folder`` (created); returns junction id -> file."""
    out: dict[str, Path] = {}
    Path(folder).mkdir(parents=True, exist_ok=True)
    for spec in specs:
        p = spec_file(folder, spec.id)
        p.write_bytes(msgspec.json.encode(spec))
        out[spec.id] = p
    return out


def read_spec(path: Path) -> JunctionSpec:
    """A junction spec from its JSON file; :class:`SpecError` naming the file when it is not one."""
    try:
        return msgspec.json.decode(Path(path).read_bytes(), type=JunctionSpec)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SpecError(f"{path}: not a junction spec: {exc}") from None
