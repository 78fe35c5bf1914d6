"""A ByteTrack-style multi-object tracker in NumPy alone (no torch, no lap, no scipy): it runs beside the ONNX
detector on a roadside box.

As ByteTrack (Zhang et al., 2022) does: a constant-velocity Kalman filter per track on (centre x, centre y, aspect,
height); each frame the detections are split by score; the confident ones are matched first to every live or lost
track by IoU with its predicted box, the weak ones (a vehicle half hidden behind a bus) then only to tracks still
unmatched, so an occluded vehicle keeps its id instead of being dropped; a confident detection left over starts a
new track, which is *confirmed* once it has been matched in ``min_hits`` frames in a row (one that is not dies at
its first miss); a confirmed track that is missed is *lost*, kept ``buffer_s`` seconds while its filter predicts
where it went, and found again by the same id.

Three changes from the paper, for traffic: matching is greedy by IoU (largest first; the scenes are a few dozen
boxes, and it needs nothing beyond NumPy); a detection of another class than the track's counts half its IoU, so a
motorcycle squeezing past a car does not take over the car's id when the car's own detection is missed, while a
box that flickers between car and truck still matches; and a confirmed track left unmatched by IoU may take a
confident detection of its class whose centre lies within ``near`` of its box height from its prediction (a small,
fast, weaving motorcycle whose predicted box no longer overlaps its detection).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from vision.count import TrackFrame


@dataclass(frozen=True)
class TrackerConfig:
    high: float = 0.5  # detections at least this confident are matched first and may start tracks
    low: float = 0.1  # detections below this are ignored
    new_track: float = 0.6  # a new track needs a detection at least this confident
    match_iou: float = 0.2  # least IoU for a match in the first round (ByteTrack's match_thresh 0.8 = 1 - 0.2)
    low_iou: float = 0.5  # least IoU for the weak detections' round
    new_iou: float = 0.3  # least IoU for matching unconfirmed tracks
    min_hits: int = 2  # frames in a row before a new track is confirmed
    buffer_s: float = 3.0  # how long a lost track is kept (ByteTrack: 30 frames at 30 fps = 1 s; traffic stops)
    class_penalty: float = 0.5  # IoU factor for a detection of another class than the track's
    near: float = 0.8  # a lost track takes a same-class detection whose centre is this close (track box heights)


# -- Kalman filter on (cx, cy, a, h) with constant velocity, as ByteTrack/DeepSORT -------------------------------------
_W_POS, _W_VEL = 1.0 / 20, 1.0 / 160


def _xyah(box: np.ndarray) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] + w / 2, box[1] + h / 2, w / max(h, 1e-6), h])


def _xyxy(m: np.ndarray) -> np.ndarray:
    cx, cy, a, h = m[:4]
    w = a * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


class _Kalman:
    F = np.eye(8)
    F[:4, 4:] = np.eye(4)
    H = np.eye(4, 8)

    def __init__(self, box: np.ndarray) -> None:
        z = _xyah(box)
        self.x = np.r_[z, np.zeros(4)]
        h = z[3]
        std = np.array([2 * _W_POS * h, 2 * _W_POS * h, 1e-2, 2 * _W_POS * h,
                        10 * _W_VEL * h, 10 * _W_VEL * h, 1e-5, 10 * _W_VEL * h])
        self.P = np.diag(std**2)

    def predict(self, steps: float = 1.0) -> None:
        h = self.x[3]
        q = np.array([_W_POS * h, _W_POS * h, 1e-2, _W_POS * h, _W_VEL * h, _W_VEL * h, 1e-5, _W_VEL * h]) ** 2
        F = np.eye(8)
        F[:4, 4:] = np.eye(4) * steps
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + np.diag(q * max(steps, 1.0))

    def update(self, box: np.ndarray) -> None:
        z = _xyah(box)
        h = self.x[3]
        R = np.diag(np.array([_W_POS * h, _W_POS * h, 1e-1, _W_POS * h]) ** 2)
        S = self.H @ self.P @ self.H.T + R
        K = np.linalg.solve(S, (self.P @ self.H.T).T).T
        self.x = self.x + K @ (z - self.H @ self.x)
        self.P = (np.eye(8) - K @ self.H) @ self.P

    @property
    def box(self) -> np.ndarray:
        return _xyxy(self.x)


class _Track:
    __slots__ = ("box", "cls", "confirmed", "hits", "id", "kf", "last_t", "votes")

    def __init__(self, tid: int, box: np.ndarray, cls: int, t: float) -> None:
        self.id, self.kf, self.box = tid, _Kalman(box), box
        self.votes = Counter({cls: 1})
        self.cls, self.hits, self.confirmed, self.last_t = cls, 1, False, t

    def matched(self, box: np.ndarray, cls: int, t: float, min_hits: int) -> None:
        self.kf.update(box)
        self.box = box
        self.votes[cls] += 1
        self.cls = self.votes.most_common(1)[0][0]
        self.hits += 1
        self.last_t = t
        if self.hits >= min_hits:
            self.confirmed = True


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box of ``a`` [n, 4] with every one of ``b`` [m, 4]."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def greedy_match(score: np.ndarray, least: float) -> list[tuple[int, int]]:
    """Pairs (row, col), each row and column at most once, largest score first, none below ``least``."""
    if score.size == 0:
        return []
    order = np.argsort(-score, axis=None, kind="stable")
    rows, cols = np.unravel_index(order, score.shape)
    used_r, used_c, pairs = set(), set(), []
    for r, c in zip(rows.tolist(), cols.tolist()):
        if score[r, c] < least:
            break
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs


class ByteTracker:
    """``update(t, boxes, cls, scores) -> TrackFrame`` once per frame (``t`` in seconds; frames may be skipped)."""

    def __init__(self, cfg: TrackerConfig | None = None, fps: float = 10.0) -> None:
        self.cfg = cfg or TrackerConfig()
        self.fps = float(fps)
        self.tracks: list[_Track] = []
        self.next_id = 1
        self._t: float | None = None

    def _score(self, tracks: list[_Track], boxes: np.ndarray, cls: np.ndarray) -> np.ndarray:
        if not tracks or len(boxes) == 0:
            return np.zeros((len(tracks), len(boxes)))
        iou = iou_matrix(np.array([t.kf.box for t in tracks]), boxes)
        same = np.array([t.cls for t in tracks])[:, None] == cls[None, :]
        return np.where(same, iou, iou * self.cfg.class_penalty)

    def _near(self, tracks: list[_Track], boxes: np.ndarray, cls: np.ndarray) -> np.ndarray:
        """1 - centre distance / track box height, same class only (else 0)."""
        if not tracks or len(boxes) == 0:
            return np.zeros((len(tracks), len(boxes)))
        pred = np.array([t.kf.box for t in tracks])
        cp = (pred[:, :2] + pred[:, 2:]) / 2
        cd = (boxes[:, :2] + boxes[:, 2:]) / 2
        dist = np.hypot(*(cp[:, None, :] - cd[None, :, :]).transpose(2, 0, 1))
        h = np.maximum(pred[:, 3] - pred[:, 1], 1.0)[:, None]
        same = np.array([t.cls for t in tracks])[:, None] == cls[None, :]
        return np.where(same, 1.0 - dist / h, 0.0)

    def update(self, t: float, boxes, cls, scores) -> TrackFrame:
        cfg = self.cfg
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        cls = np.asarray(cls, dtype=np.int64).reshape(-1)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        prev = t if self._t is None else self._t
        steps = 1.0 if self._t is None else max((t - self._t) * self.fps, 1e-3)
        self._t = t
        for tr in self.tracks:
            tr.kf.predict(steps)
        high = np.flatnonzero(scores >= cfg.high)
        low = np.flatnonzero((scores >= cfg.low) & (scores < cfg.high))
        seen: list[_Track] = []

        # 1. confident detections against every confirmed track, live or lost
        pool = [tr for tr in self.tracks if tr.confirmed]
        left_high = list(high)
        matched_tracks: set[int] = set()
        for r, c in greedy_match(self._score(pool, boxes[high], cls[high]), cfg.match_iou):
            d = int(high[c])
            pool[r].matched(boxes[d], int(cls[d]), t, cfg.min_hits)
            seen.append(pool[r])
            matched_tracks.add(id(pool[r]))
            left_high.remove(d)
        # 1b. confident detections left against confirmed tracks still unmatched, of the same class, by the distance
        # of their centres (in the track's box heights): a small fast box (a weaving motorcycle) whose prediction
        # no longer overlaps its detection
        pool = [tr for tr in self.tracks if tr.confirmed and id(tr) not in matched_tracks]
        rest = np.array(left_high, dtype=np.int64)
        for r, c in greedy_match(self._near(pool, boxes[rest], cls[rest]), 1.0 - cfg.near):
            d = int(rest[c])
            pool[r].matched(boxes[d], int(cls[d]), t, cfg.min_hits)
            seen.append(pool[r])
            matched_tracks.add(id(pool[r]))
            left_high.remove(d)
        # 2. weak detections against the confirmed tracks still unmatched that were seen last frame
        pool = [tr for tr in self.tracks if tr.confirmed and id(tr) not in matched_tracks and tr.last_t >= prev]
        for r, c in greedy_match(self._score(pool, boxes[low], cls[low]), cfg.low_iou):
            d = int(low[c])
            pool[r].matched(boxes[d], int(cls[d]), t, cfg.min_hits)
            seen.append(pool[r])
            matched_tracks.add(id(pool[r]))
        # 3. the confident detections left against the unconfirmed tracks; an unconfirmed track not matched dies
        pool = [tr for tr in self.tracks if not tr.confirmed]
        rest = np.array(left_high, dtype=np.int64)
        for r, c in greedy_match(self._score(pool, boxes[rest], cls[rest]), cfg.new_iou):
            d = int(rest[c])
            pool[r].matched(boxes[d], int(cls[d]), t, cfg.min_hits)
            seen.append(pool[r])
            matched_tracks.add(id(pool[r]))
            left_high.remove(d)
        # 4. new tracks from confident detections matched by nobody
        born = []
        for d in left_high:
            if scores[d] >= cfg.new_track:
                tr = _Track(self.next_id, boxes[d], int(cls[d]), t)
                self.next_id += 1
                if cfg.min_hits <= 1:
                    tr.confirmed = True
                born.append(tr)
        # 5. forget unconfirmed tracks missed once, and lost tracks past the buffer
        self.tracks = [tr for tr in self.tracks
                       if id(tr) in matched_tracks or (tr.confirmed and t - tr.last_t <= cfg.buffer_s)] + born
        out = [*seen, *born]
        return TrackFrame(np.array([tr.id for tr in out], dtype=np.int64),
                          np.array([tr.box for tr in out], dtype=np.float64).reshape(-1, 4),
                          np.array([tr.cls for tr in out], dtype=np.int64),
                          np.array([tr.confirmed for tr in out], dtype=bool))
