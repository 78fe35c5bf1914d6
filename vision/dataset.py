"""Synthetic data sets in YOLO's layout, rendered from SUMO clips (:mod:`vision.render`).

``render_dataset(out, images, seed)`` writes ``images/{train,val}/*.png``, ``labels/{train,val}/*.txt`` and
``data.yaml``. Every clip (a fresh junction, demand, camera and style) gives a handful of frames a few seconds of
simulated time apart. The validation split is drawn from its own seeds (no clip, camera or style of the training
split), and :func:`render_split` with another ``split`` name gives further held-out sets (the benchmark's).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from vision.render import CLASSES, Backdrop, Style, render_frame
from vision.render.sumo import SumoClip, random_camera, temp_junction

SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "bench": 3}


def clip_seed(seed: int, split: str, k: int) -> int:
    """The seed of clip ``k`` of a split: independent streams per (seed, split)."""
    sid = SPLIT_IDS.get(split)
    if sid is None:
        raise ValueError(f"split must be one of {', '.join(SPLIT_IDS)}, got {split!r}")
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, sid, k]).generate_state(1)[0])


def clip_frames(cseed: int, frames: int, every: float = 2.5, size: tuple[int, int] | None = None):
    """Render ``frames`` frames of one random clip: yields (image, labels text, Frame)."""
    rng = np.random.default_rng(cseed)
    lanes = int(rng.choice([1, 2, 3], p=[0.2, 0.5, 0.3]))
    lane_width = float(rng.uniform(2.8, 3.6))
    vph = float(rng.uniform(500, 3000))
    mc = float(rng.uniform(0.4, 0.8))
    rest = 1 - mc
    mix = {"motorcycle": mc, "car": rest * rng.uniform(0.6, 0.8), "bus": rest * rng.uniform(0.05, 0.15),
           "truck": rest * rng.uniform(0.1, 0.25)}
    tmp, junction = temp_junction(cseed, lanes=lanes, lane_width=lane_width, veh_per_hour=vph, mix=mix)
    with tmp, SumoClip(junction, cseed, step_length=0.5) as clip:
        scene = clip.scene()
        camera = random_camera(rng, lanes, lane_width, size)
        style = Style.sample(cseed)
        backdrop = Backdrop(scene, camera, style)
        start = float(rng.uniform(40, 120))
        for n, (_, vehicles) in enumerate(clip.frames(start, every, frames)):
            frame = render_frame(vehicles, camera, cseed * 1000 + n, backdrop=backdrop)
            yield frame.image, frame.yolo_text(), frame


def render_split(out: Path, split: str, images: int, seed: int, frames_per_clip: int = 12,
                 size: tuple[int, int] | None = None, progress: Callable[[int, int], None] | None = None) -> int:
    """Write ``images`` frames of ``split`` under ``out/images/split`` and ``out/labels/split``; returns the number
    of labelled vehicles."""
    img_dir, lab_dir = Path(out) / "images" / split, Path(out) / "labels" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.mkdir(parents=True, exist_ok=True)
    done, boxes, k = 0, 0, 0
    while done < images:
        n = min(frames_per_clip, images - done)
        for image, text, _ in clip_frames(clip_seed(seed, split, k), n, size=size):
            name = f"{split}_{k:04d}_{done:05d}"
            if not cv2.imwrite(str(img_dir / f"{name}.png"), image):
                raise OSError(f"could not write {img_dir / name}.png")
            (lab_dir / f"{name}.txt").write_text(text)
            boxes += text.count("\n")
            done += 1
            if progress:
                progress(done, images)
        k += 1
    return boxes


def render_dataset(out: Path, images: int, seed: int, val_images: int | None = None, frames_per_clip: int = 12,
                   size: tuple[int, int] | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> Path:
    """A YOLO data set of ``images`` training frames and ``val_images`` (default 20 %, at least 2) validation frames
    from unseen seeds; returns the path of its ``data.yaml``."""
    if images < 1:
        raise ValueError(f"--images must be at least 1, got {images}")
    out = Path(out)
    val_images = max(2, images // 5) if val_images is None else val_images
    stats = {}
    for split, n in (("train", images), ("val", val_images)):
        cb = (lambda d, t, s=split: progress(s, d, t)) if progress else None
        stats[split] = {"images": n, "boxes": render_split(out, split, n, seed, frames_per_clip, size, cb)}
    data = out / "data.yaml"
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(CLASSES))
    data.write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    (out / "dataset.json").write_text(json.dumps({"seed": seed, "frames_per_clip": frames_per_clip,
                                                  "classes": list(CLASSES), **stats}, indent=2) + "\n")
    return data
