"""The static layout fusion compiles once from a :class:`~engine.network.Network`: which detector serves each
lane, distances, capacities, travel times, profile bins, and which lanes and movements each green phase serves.
Nothing in it changes while the engine runs (its arrays are read-only)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from engine.fusion.config import FusionConfig
from engine.fusion.kernels import green_sets_kernel
from engine.network import DET_ADVANCE, DET_AREA, DET_STOPLINE, Network


def first_by_kind(network: Network, kind: int) -> np.ndarray:
    """Per lane, the detector of this kind (Lintas' own ``lintas_*`` first), or -1."""
    out = np.full(network.n_lanes, -1, dtype=np.int64)
    own = np.zeros(network.n_lanes, dtype=np.bool_)
    for d, (did, lane, k) in enumerate(zip(network.det_ids, network.det_lane, network.det_kind)):
        if int(k) != kind:
            continue
        mine = did.startswith("lintas_")
        if out[lane] < 0 or (mine and not own[lane]):
            out[lane] = d
            own[lane] = mine
    return out


@dataclass(frozen=True, eq=False)
class FusionLayout:
    """Everything fusion derives from the network and ``FusionConfig`` alone. Units: m, s, vehicles.

    Lanes are the network's incoming controlled lanes; an *approach* is a lane's edge (the upstream
    junctions' departures are tracked per approach, since vehicles change lanes on the way); a *movement
    group* is the lanes of one approach served by the same green phases (a lane that cannot see its queue
    borrows its group's)."""

    horizon: int  # H: profile bins of 1 s
    # -- per lane [n_lanes]
    sl: np.ndarray  # int64: the lane's stop-line loop (detector index), or -1
    adv: np.ndarray  # int64: its advance loop, or -1
    cam: np.ndarray  # int64: its camera zone, or -1
    lane_idx: np.ndarray  # int64: 0..n_lanes-1
    speed: np.ndarray  # m/s: free-flow approach speed (speed limit >= 1 m/s, times free_speed_factor)
    lane_len: np.ndarray  # m: approach length (>= 1)
    adv_pos: np.ndarray  # m: advance loop's distance from the stop line (0 without one)
    cam_len: np.ndarray  # m: camera zone's reach from the stop line (0 without one)
    det_range: np.ndarray  # m: the detection range, max(adv_pos, cam_len)
    capacity: np.ndarray  # veh: standing vehicles the lane holds (>= 1)
    sec_cap: np.ndarray  # veh: standing vehicles between advance loop and stop line (>= 1)
    sec_full: np.ndarray  # veh: sec_cap + 1, the section full (one more on the stop-line loop)
    cam_cap: np.ndarray  # veh: standing vehicles the camera zone holds (>= 1)
    beyond_cap: np.ndarray  # veh: storage beyond the detection range
    up_cap: np.ndarray  # veh: storage upstream of the advance loop
    adv_eta: np.ndarray  # s: free-flow travel time advance loop -> stop line
    det_eta: np.ndarray  # s: free-flow travel time through the detection range
    adv_k: np.ndarray  # int64: profile bin an advance-loop crossing arrives in, round(adv_eta) - 1, in 0..H-1
    adv_bin: np.ndarray  # int64: ceil(adv_eta), bins within the advance loop's reach
    det_bin: np.ndarray  # int64: ceil(det_eta), bins within the detection range
    det_nbins: np.ndarray  # int64: det_bin clipped to 1..H, the bins moving vehicles are spread over
    edge: np.ndarray  # int64: the lane's movement group
    n_edges: int  # number of movement groups
    app: np.ndarray  # int64: the lane's approach
    app_lanes: np.ndarray  # float64 [n_apps]: lanes per approach
    ever_prot: np.ndarray  # bool: some green phase protects the lane ('G')
    bins: np.ndarray  # int64 [1, H]: 0..H-1, the profile's bin index
    # -- per detector [n_detectors]
    det_lane: np.ndarray  # int64: the detector's lane
    det_kind: np.ndarray  # the detector's kind (DET_STOPLINE, DET_ADVANCE, DET_AREA)
    det_kind_i: np.ndarray  # int64: the same (what the kernels index with)
    kind_sel: tuple[np.ndarray, np.ndarray, np.ndarray]  # bool per kind (indexed by DET_*): det_kind == kind
    is_loop: np.ndarray  # bool: stop-line or advance loop
    storage: np.ndarray  # veh: vehicles stored upstream of the detector's lane's range (legitimately unseen)
    # -- per green phase, CSR (ph_ptr[p]:ph_ptr[p+1] are phase p's entries: one per movement green in it)
    ph_ptr: np.ndarray  # int64 [n_phases + 1]
    ph_mov: np.ndarray  # int64 [nnz]: the movement green in the phase
    ph_lane: np.ndarray  # int64 [nnz]: its incoming lane (the phase serves it)
    ph_prot: np.ndarray  # bool [nnz]: served protected ('G', not yielding 'g')
    # -- per movement [n_mov]
    mov_in: np.ndarray  # int64: incoming lane
    mov_out: np.ndarray  # int64: downstream controlled lane, or -1
    mov_j: np.ndarray  # int64: junction
    mov_app: np.ndarray  # int64: approach of the downstream lane, or -1
    mov_eta: np.ndarray  # s: free-flow travel time to the downstream lane's stop line
    # -- sizes
    n_junctions: int  # junctions (one green phase each reported, ``set_signal``)
    n_up: int  # bins of the en-route table: the longest travel time + 2

    @property
    def n_lanes(self) -> int:
        return int(self.lane_idx.shape[0])

    @property
    def n_apps(self) -> int:
        return int(self.app_lanes.shape[0])

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            for a in v if isinstance(v, tuple) else (v,):
                if isinstance(a, np.ndarray):
                    a.flags.writeable = False

    @classmethod
    def compile(cls, network: Network, cfg: FusionConfig) -> FusionLayout:
        """The layout of ``network`` under ``cfg``."""
        c = cfg
        n_d, n_l = network.n_detectors, network.n_lanes
        sl = first_by_kind(network, DET_STOPLINE)
        adv = first_by_kind(network, DET_ADVANCE)
        cam = first_by_kind(network, DET_AREA)
        speed = np.maximum(np.asarray(network.lane_speed, dtype=np.float64), 1.0) * c.free_speed_factor
        pos = np.asarray(network.det_pos, dtype=np.float64)
        dlen = np.asarray(network.det_length, dtype=np.float64)
        adv_pos = np.where(adv >= 0, pos[np.maximum(adv, 0)] if n_d else 0.0, 0.0)
        cam_len = np.where(cam >= 0, np.maximum(pos[np.maximum(cam, 0)], dlen[np.maximum(cam, 0)]) if n_d else 0.0, 0.0)
        lane_len = np.maximum(np.asarray(network.lane_length, dtype=np.float64), 1.0)
        adv_eta = adv_pos / speed
        det_range = np.maximum(adv_pos, cam_len)
        det_eta = det_range / speed
        det_lane = np.array(network.det_lane, dtype=np.int64)
        det_kind = np.array(network.det_kind)
        sec_cap = np.maximum(adv_pos / c.jam_spacing, 1.0)
        served, ph_ptr, ph_mov, ph_lane, ph_prot = _phases(network)
        # movement groups: lanes of the same approach (edge) served by the same phases
        edges = [(lid.rsplit("_", 1)[0], tuple(sorted(served.get(i, ())))) for i, lid in enumerate(network.lane_ids)]
        eidx = {e: i for i, e in enumerate(dict.fromkeys(edges))}
        apps = [e for e, _phases in edges]
        aidx = {e: i for i, e in enumerate(dict.fromkeys(apps))}
        app = np.asarray([aidx[e] for e in apps], dtype=np.int64)
        det_bin = np.ceil(det_eta).astype(np.int64)
        mov_out = np.array(network.mov_out_lane, dtype=np.int64)
        o = np.maximum(mov_out, 0)
        mov_eta = lane_len[o] / speed[o] if n_l else np.zeros(network.n_movements)
        return cls(
            horizon=c.horizon, sl=sl, adv=adv, cam=cam, lane_idx=np.arange(n_l), speed=speed, lane_len=lane_len,
            adv_pos=adv_pos, cam_len=cam_len, det_range=det_range,
            capacity=np.maximum(lane_len / c.jam_spacing, 1.0), sec_cap=sec_cap, sec_full=sec_cap + 1.0,
            cam_cap=np.maximum(cam_len / c.jam_spacing, 1.0),
            beyond_cap=np.maximum(lane_len - np.maximum(det_range, 0.0), 0.0) / c.jam_spacing,
            up_cap=np.maximum(lane_len - adv_pos, 0.0) / c.jam_spacing,
            adv_eta=adv_eta, det_eta=det_eta,
            adv_k=np.clip(np.round(adv_eta).astype(np.int64) - 1, 0, c.horizon - 1),
            adv_bin=np.ceil(adv_eta).astype(np.int64), det_bin=det_bin, det_nbins=np.clip(det_bin, 1, c.horizon),
            edge=np.asarray([eidx[e] for e in edges], dtype=np.int64), n_edges=len(eidx), app=app,
            app_lanes=np.bincount(app, minlength=len(aidx)).astype(np.float64),
            ever_prot=np.bincount(ph_lane[ph_prot], minlength=n_l) > 0, bins=np.arange(c.horizon)[None, :],
            det_lane=det_lane, det_kind=det_kind, det_kind_i=det_kind.astype(np.int64),
            kind_sel=(det_kind == DET_STOPLINE, det_kind == DET_ADVANCE, det_kind == DET_AREA),
            is_loop=np.isin(det_kind, (DET_STOPLINE, DET_ADVANCE)),
            # vehicles a sensor may legitimately miss while the others count them: those stored upstream of it
            storage=(det_range / c.jam_spacing)[det_lane] if n_d else np.zeros(0),
            ph_ptr=ph_ptr, ph_mov=ph_mov, ph_lane=ph_lane, ph_prot=ph_prot,
            mov_in=np.array(network.mov_in_lane, dtype=np.int64), mov_out=mov_out,
            mov_j=np.array(network.mov_junction, dtype=np.int64),
            mov_app=np.where(mov_out >= 0, app[o] if n_l else 0, -1), mov_eta=mov_eta,
            n_junctions=len(network.jn_phase_ptr) - 1,
            n_up=int(np.ceil(max(mov_eta.max(initial=0.0), det_eta.max(initial=0.0)))) + 2,
        )


def _phases(network: Network) -> tuple[dict[int, set[int]], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The green phases serving each lane; per phase (CSR, one entry per movement green in it) the movement,
    its incoming lane, and whether the phase serves it protected ('G', not yielding 'g': where the queue model
    of a lane without sensors drains; a lane that no phase protects drains on any green). Sparse: a city of
    10,000 junctions has 20,000 phases and 80,000 lanes (a dense phase x lane table would take 1.6 GB)."""
    ptr = np.asarray(network.phase_mov_ptr, dtype=np.int64)
    idx = np.asarray(network.phase_mov_idx, dtype=np.int64)
    mov_in = np.asarray(network.mov_in_lane, dtype=np.int64)
    n_p = len(ptr) - 1
    ph_lane = mov_in[idx] if idx.size else np.zeros(0, dtype=np.int64)
    ph_prot = np.zeros(idx.shape[0], dtype=np.bool_)
    served: dict[int, set[int]] = {}
    jptr = np.asarray(network.jn_phase_ptr)
    for p in range(n_p):
        for k in range(int(ptr[p]), int(ptr[p + 1])):
            mv = int(idx[k])
            served.setdefault(int(mov_in[mv]), set()).add(p)
            j = int(network.mov_junction[mv])
            if j < len(network.junctions):
                state = network.junctions[j].green_states[p - int(jptr[j])]
                ph_prot[k] = state[int(network.mov_link[mv])] == "G"
    return served, ptr, idx, ph_lane, ph_prot


def green_sets(layout: FusionLayout, gp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lanes the green phases ``gp`` serve, those they serve protected, and their green movements (the
    Numba kernel; :func:`green_sets_reference` builds the dense phase tables and takes ``any``)."""
    return green_sets_kernel(gp.astype(np.int64), layout.ph_ptr, layout.ph_mov, layout.ph_lane, layout.ph_prot,
                             layout.n_lanes, layout.mov_in.shape[0])


def green_sets_reference(layout: FusionLayout, gp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`green_sets` with NumPy: dense [n_phases, n_lanes] / [n_phases, n_mov] tables (small nets only)."""
    n_p, n_l, n_mov = layout.ph_ptr.shape[0] - 1, layout.n_lanes, layout.mov_in.shape[0]
    rows = np.repeat(np.arange(n_p), np.diff(layout.ph_ptr))
    lanes = np.zeros((n_p, n_l), dtype=np.bool_)
    prot = np.zeros((n_p, n_l), dtype=np.bool_)
    movs = np.zeros((n_p, n_mov), dtype=np.bool_)
    lanes[rows, layout.ph_lane] = True
    prot[rows[layout.ph_prot], layout.ph_lane[layout.ph_prot]] = True
    movs[rows, layout.ph_mov] = True
    if not gp.size:
        return np.zeros(n_l, dtype=np.bool_), np.zeros(n_l, dtype=np.bool_), np.zeros(n_mov, dtype=np.bool_)
    return lanes[gp].any(axis=0), prot[gp].any(axis=0), movs[gp].any(axis=0)
