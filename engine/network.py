"""The engine's picture of a city: flat NumPy arrays compiled from a SUMO net (or any other source).

Nothing in here knows SUMO. ``simulation/sumo/netcompile.py`` fills these structures from a net with
sumolib; a deployment can load them from the JSON that ``Network.to_json`` writes.

Indexing conventions (all int32/float64 arrays, CSR where one thing maps to many):
- junction j in [0, n_junctions); ``junctions[j]`` is its :class:`JunctionSpec`.
- incoming controlled lane l in [0, n_lanes): lanes that feed at least one signalised link.
- movement m in [0, n_movements): one signalised link that vehicles use (incoming lane -> outgoing
  lane); pedestrian crossings are links of the junction's signal string but not movements.
- green phase p in [0, n_phases): the green phases of every junction, junction by junction;
  ``jn_phase_ptr[j]:jn_phase_ptr[j+1]`` are junction j's, in the order of the net's program.
- detector d in [0, n_detectors).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import msgspec
import numpy as np

from engine.protocol.junction import JunctionSpec

DET_STOPLINE = 0  # induction loop (E1) at the stop line
DET_ADVANCE = 1  # induction loop (E1) upstream of the stop line
DET_AREA = 2  # lane-area detector (E2) or camera counting zone over the approach
DET_KIND_NAMES = ("stopline", "advance", "area")


@dataclass
class Network:
    """Flat arrays over all junctions. See the module docstring for the indexing conventions."""

    name: str
    junctions: list[JunctionSpec]
    # incoming controlled lanes
    lane_ids: list[str]
    lane_junction: np.ndarray  # int32 [n_lanes]
    lane_length: np.ndarray  # float64 [n_lanes], metres, incl. upstream lanes counted with it
    lane_speed: np.ndarray  # float64 [n_lanes], m/s
    # movements
    mov_junction: np.ndarray  # int32 [n_mov]
    mov_link: np.ndarray  # int32 [n_mov], link index in the junction's signal string
    mov_in_lane: np.ndarray  # int32 [n_mov] -> lane index
    mov_out_lane: np.ndarray  # int32 [n_mov] -> lane index of the downstream junction, or -1
    mov_out_lane_id: list[str]
    # green phases (CSR per junction, then CSR phase -> movements served)
    jn_phase_ptr: np.ndarray  # int32 [n_j + 1]
    phase_mov_ptr: np.ndarray  # int32 [n_phases + 1]
    phase_mov_idx: np.ndarray  # int32 [nnz], movement indices green (G or g) in the phase
    phase_min: np.ndarray  # float64 [n_phases]
    phase_max: np.ndarray  # float64 [n_phases]
    phase_fixed: np.ndarray  # float64 [n_phases], the net's green duration
    phase_next: np.ndarray  # int32 [n_phases], global index of the net's next green phase
    phase_yellow: np.ndarray  # float64 [n_phases] yellow after this phase
    phase_allred: np.ndarray  # float64 [n_phases] all-red after this phase's yellow
    # detectors
    det_ids: list[str]
    det_lane: np.ndarray  # int32 [n_det] -> lane index
    det_kind: np.ndarray  # int8 [n_det] DET_STOPLINE / DET_ADVANCE / DET_AREA
    det_pos: np.ndarray  # float64 [n_det] distance of the detector (its upstream end for E2) from the stop line, m
    det_length: np.ndarray  # float64 [n_det] zone length (E2), 0 for loops
    junction_index: dict[str, int] = field(default_factory=dict)
    det_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.junction_index = {j.id: i for i, j in enumerate(self.junctions)}
        self.det_index = {d: i for i, d in enumerate(self.det_ids)}

    @property
    def n_junctions(self) -> int:
        return len(self.junctions)

    @property
    def n_lanes(self) -> int:
        return len(self.lane_ids)

    @property
    def n_movements(self) -> int:
        return int(self.mov_junction.shape[0])

    @property
    def n_phases(self) -> int:
        return int(self.phase_min.shape[0])

    @property
    def n_detectors(self) -> int:
        return len(self.det_ids)

    def phases_of(self, j: int) -> range:
        return range(int(self.jn_phase_ptr[j]), int(self.jn_phase_ptr[j + 1]))

    # -- serialisation -------------------------------------------------------------------------
    def to_json(self, path: Path) -> None:
        data = {}
        for k, v in self.__dict__.items():
            if k in ("junction_index", "det_index"):
                continue
            if isinstance(v, np.ndarray):
                data[k] = {"dtype": str(v.dtype), "data": v.tolist()}
            elif k == "junctions":
                data[k] = [msgspec.to_builtins(j) for j in v]
            else:
                data[k] = v
        Path(path).write_bytes(msgspec.json.encode(data))

    @classmethod
    def from_json(cls, path: Path) -> Network:
        """The network ``to_json`` wrote (``lintas compile`` writes ``network.json``); :class:`NetworkError`
        naming the file when it cannot be read or is not such a network."""
        p = Path(path)
        try:
            raw = msgspec.json.decode(p.read_bytes())
        except OSError as exc:
            raise NetworkError(f"{p}: cannot read ({exc.strerror or exc})") from None
        except msgspec.DecodeError as exc:
            raise NetworkError(f"{p}: not JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise NetworkError(f"{p}: not a Lintas network (expected a JSON object)")
        missing = sorted(set(NETWORK_FIELDS) - set(raw))
        if missing:
            raise NetworkError(f"{p}: not a Lintas network (missing {', '.join(missing)})")
        kw = {}
        try:
            for k in NETWORK_FIELDS:
                v = raw[k]
                if isinstance(v, dict) and "dtype" in v:
                    kw[k] = np.asarray(v["data"], dtype=v["dtype"])
                elif k == "junctions":
                    kw[k] = [msgspec.convert(j, JunctionSpec) for j in v]
                else:
                    kw[k] = v
        except (msgspec.ValidationError, TypeError, ValueError, KeyError) as exc:
            raise NetworkError(f"{p}: field '{k}' is not valid ({exc})") from None
        return cls(**kw)


class NetworkError(ValueError):
    """A network file that cannot be used (one line naming the file and what is wrong)."""


#: the fields of a network file (everything but the derived indexes)
NETWORK_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Network)
                                        if f.name not in ("junction_index", "det_index"))
