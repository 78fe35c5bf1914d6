"""``lintas bench vision``: the detector on held-out renders, its speed on one core for both backends, and counting
against SUMO's ground truth.

- mAP50 (COCO's 101-point interpolation, IoU 0.5, mean over the classes present) on frames rendered from the
  ``bench`` split's seeds: clips, cameras and styles the training never saw (training and validation drew theirs
  from the ``train`` and ``val`` streams);
- milliseconds per frame at the model's size (320 px), one thread, batch 1, pre- and post-processing included, for the
  ONNX path (onnxruntime) and the .pt path (Ultralytics) on the same frames in the same run; and with tracking and
  counting (vision.track, vision.count) added;
- count error on rendered SUMO clips (day and night): a line across the approach, vehicles counted by detector ->
  tracker -> counter, against the renderer's own truth of which vehicle crossed it.

Writes ``benchmarks/results/vision.json`` with the machine's description.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.runs import machine
from vision.track import iou_matrix

RESULTS = Path(__file__).resolve().parent / "results"


# -- mAP -------------------------------------------------------------------------------------------------------------
def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """COCO's 101-point interpolated AP of one class."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    return float(np.mean(np.interp(x, mrec, mpre)))


def map50(preds: list[tuple[np.ndarray, np.ndarray, np.ndarray]], truths: list[tuple[np.ndarray, np.ndarray]],
          n_classes: int) -> tuple[float, dict[int, float]]:
    """mAP at IoU 0.5 over images: ``preds`` (boxes, classes, scores) and ``truths`` (boxes, classes) per image."""
    per_class = {}
    for c in range(n_classes):
        scores, tp = [], []
        n_gt = 0
        for (pb, pc, ps), (tb, tc) in zip(preds, truths):
            gt = tb[tc == c]
            n_gt += len(gt)
            m = pc == c
            b, s = pb[m], ps[m]
            order = np.argsort(-s)
            b, s = b[order], s[order]
            used = np.zeros(len(gt), bool)
            iou = iou_matrix(b, gt) if len(gt) and len(b) else np.zeros((len(b), 0))
            for i in range(len(b)):
                hit = False
                if iou.shape[1]:
                    cand = np.where(~used, iou[i], -1.0)
                    j = int(cand.argmax())
                    if cand[j] >= 0.5:
                        used[j] = hit = True
                scores.append(float(s[i]))
                tp.append(hit)
        if n_gt == 0:
            continue
        order = np.argsort(-np.asarray(scores)) if scores else np.zeros(0, int)
        tps = np.asarray(tp, dtype=np.float64)[order]
        ctp, cfp = np.cumsum(tps), np.cumsum(1 - tps)
        recall = ctp / n_gt
        precision = ctp / np.maximum(ctp + cfp, 1e-9)
        per_class[c] = average_precision(recall, precision) if len(tps) else 0.0
    return (float(np.mean(list(per_class.values()))) if per_class else 0.0), per_class


def held_out(images: int, seed: int, frames_per_clip: int = 6):
    """Frames and their truth from the ``bench`` split (seeds unseen in training)."""
    from vision.dataset import clip_frames, clip_seed
    from vision.render import CLASSES

    frames = []
    k = 0
    while len(frames) < images:
        n = min(frames_per_clip, images - len(frames))
        for image, _, frame in clip_frames(clip_seed(seed, "bench", k), n):
            lab = [o for o in frame.objects if o.labelled]
            frames.append((image, np.array([o.box for o in lab], np.float64).reshape(-1, 4),
                           np.array([CLASSES.index(o.cls) for o in lab], np.int64)))
        k += 1
    return frames


def _timed(detector, images: list[np.ndarray]) -> tuple[list, float]:
    out, ms = [], []
    detector.detect(images[0])  # warm-up
    for img in images:
        t = time.perf_counter()
        d = detector.detect(img)
        ms.append((time.perf_counter() - t) * 1000)
        out.append((d.boxes, d.classes, d.scores))
    return out, statistics.median(ms)


# -- counting on a rendered clip ---------------------------------------------------------------------------------------
def count_clip(detector, seed: int, seconds: float, fps: float, time_of_day: str, vph: float = 1800.0) -> dict:
    """Detector -> tracker -> counter on a SUMO clip of the approach, against the renderer's truth."""
    import dataclasses

    from vision.count import CameraCounter, Line
    from vision.render import Backdrop, Style, look_at, render_frame
    from vision.render.sumo import SumoClip, temp_junction
    from vision.render.truth import LineTruth
    from vision.track import ByteTracker

    lanes, width = 2, 3.2
    tmp, junction = temp_junction(seed, lanes=lanes, lane_width=width, veh_per_hour=vph)
    cam = look_at((-30.0, -lanes * width / 2), 22.0, 9.0, 0.0, 60.0, 480, 320, 0.0, -4.0)
    style = dataclasses.replace(Style.sample(seed, time_of_day), occluders=0)
    # a line across the inbound lanes, 30 m before the stop line (in the image: the camera's view of it)
    (a, b), _ = cam.project(np.array([[-30.0, -lanes * width - 0.5, 0.0], [-30.0, 0.2, 0.0]]))
    names = ["car", "bus", "truck", "motorcycle"]
    counter = CameraCounter([], [Line("L", a, b)], names, anchor="bottom")
    tracker = ByteTracker(fps=fps)
    truth = LineTruth({"L": [tuple(a), tuple(b)]}, anchor="ground")
    ms_det, ms_count, n = [], [], 0
    with tmp, SumoClip(junction, seed, step_length=1.0 / fps) as clip:
        backdrop = Backdrop(clip.scene(), cam, style)
        for t, vs in clip.frames(60.0, 1.0 / fps, round(seconds * fps)):
            frame = render_frame(vs, cam, seed * 100_000 + n, backdrop=backdrop)
            truth.step(frame.objects)
            t0 = time.perf_counter()
            d = detector.detect(frame.image)
            t1 = time.perf_counter()
            counter.update(t, tracker.update(t, d.boxes, d.classes, d.scores))
            t2 = time.perf_counter()
            ms_det.append((t1 - t0) * 1000)
            ms_count.append((t2 - t1) * 1000)
            n += 1
    counted = sum(sum(v.values()) for v in counter.totals()["L"].values())
    true = sum(truth.counts.values())
    by_class_true: dict[str, int] = {}
    for (_, _, cls), k in truth.counts.items():
        by_class_true[cls] = by_class_true.get(cls, 0) + k
    by_class_counted: dict[str, int] = {}
    for d in counter.totals()["L"].values():
        for cls, k in d.items():
            by_class_counted[cls] = by_class_counted.get(cls, 0) + k
    return {"time": time_of_day, "seconds": seconds, "fps": fps, "frames": n, "veh_per_hour_per_arm": vph,
            "true": true, "counted": counted, "error": abs(counted - true) / max(true, 1),
            "true_by_class": by_class_true, "counted_by_class": by_class_counted,
            "ms_detect_median": statistics.median(ms_det), "ms_track_count_median": statistics.median(ms_count)}


def run(onnx: Path, pt: Path | None, images: int = 120, seed: int = 2026, clip_seconds: float = 120.0,
        fps: float = 5.0, out: Path = RESULTS) -> dict:
    from vision.detect import OnnxDetector, UltralyticsDetector
    from vision.render import CLASSES

    frames = held_out(images, seed)
    imgs = [f[0] for f in frames]
    truths = [(f[1], f[2]) for f in frames]
    backends = {"onnx": lambda conf, iou: OnnxDetector(onnx, conf, iou, threads=1)}
    if pt is not None:
        backends["pt"] = lambda conf, iou: UltralyticsDetector(pt, conf, iou, threads=1)
    doc: dict = {"machine": machine(), "held_out": {"images": len(imgs), "seed": seed, "split": "bench",
                                                    "boxes": int(sum(len(t[1]) for t in truths))},
                 "models": {"onnx": str(onnx), "pt": str(pt) if pt else None}, "backends": {}}
    for name, make in backends.items():
        preds, _ = _timed(make(0.001, 0.7), imgs)  # evaluation settings (as Ultralytics' val)
        m, per = map50(preds, truths, len(CLASSES))
        _, ms = _timed(make(0.25, 0.45), imgs)  # deployment settings, timed
        doc["backends"][name] = {"map50": m, "map50_per_class": {CLASSES[c]: v for c, v in per.items()},
                                 "ms_per_frame_median": ms, "fps_detector": 1000.0 / ms}
    try:
        import vision.count
        import vision.track  # noqa: F401
    except ImportError:
        doc["counting"] = None
    else:
        det = backends["onnx"](0.25, 0.45)
        clips = [count_clip(det, seed + i, clip_seconds, fps, tod) for i, tod in enumerate(("day", "night"))]
        doc["counting"] = clips
        track_ms = statistics.median(c["ms_track_count_median"] for c in clips)
        for b in doc["backends"].values():
            b["fps_with_tracking_counting"] = 1000.0 / (b["ms_per_frame_median"] + track_ms)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vision.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def print_table(doc: dict) -> None:
    print(f"held-out renders: {doc['held_out']['images']} frames, {doc['held_out']['boxes']} vehicles "
          f"(split 'bench', seed {doc['held_out']['seed']}; unseen in training)")
    print(f"{'backend':8} {'mAP50':>6} {'ms/frame':>9} {'fps det':>8} {'fps +track+count':>17}")
    for name, b in doc["backends"].items():
        tc = b.get("fps_with_tracking_counting")
        print(f"{name:8} {b['map50']:6.3f} {b['ms_per_frame_median']:9.1f} {b['fps_detector']:8.1f} "
              f"{(f'{tc:.1f}' if tc else '-'):>17}")
    if "pt" in doc["backends"]:
        ratio = doc["backends"]["pt"]["ms_per_frame_median"] / doc["backends"]["onnx"]["ms_per_frame_median"]
        print(f"the ONNX path is {ratio:.2f}x as fast as the .pt path")
    for c in doc.get("counting") or []:
        print(f"count ({c['time']}, {c['seconds']:.0f} s at {c['fps']:.0f} fps): true {c['true']}, counted "
              f"{c['counted']}, error {100 * c['error']:.1f} % (by class true {c['true_by_class']}, counted "
              f"{c['counted_by_class']})")
    print(f"machine: {doc['machine']}")
