"""Counting a recorded video offline (``lintas vision count``): every frame through the camera's pipeline, as fast as
it goes, and the counts as a plain dict (the JSON the command writes)."""

from __future__ import annotations

import time

from vision.camera import CameraConfig, Pipeline
from vision.sources import open_source


def count_video(cfg: CameraConfig, detector, *, max_frames: int | None = None) -> dict:
    """Per line, direction and class the crossings; per zone the mean and peak of vehicles in it and of those
    standing; frames, the video's frame rate and the frames per second counted (detection, tracking and counting,
    decoding included)."""
    src = open_source(cfg.source, base=cfg.base, fps=cfg.fps)
    pipe = Pipeline(cfg, detector, fps=src.fps)
    sums = {z.id: [0, 0, 0, 0.0] for z in cfg.zones}  # sum of counts, peak, sum of halting, sum of occupancy
    t0 = time.perf_counter()
    try:
        while max_frames is None or pipe.frames < max_frames:
            frame = src.read()
            if frame is None:
                break
            pipe.process(frame, str(cfg.source))
            for z in pipe.counter.zones_now():
                s = sums[z.zone]
                s[0] += z.count
                s[1] = max(s[1], z.count)
                s[2] += z.halting
                s[3] += z.occupancy
    finally:
        src.close()
    wall = time.perf_counter() - t0
    n = max(pipe.frames, 1)
    return {
        "config": str(cfg.path),
        "source": str(cfg.source),
        "camera": cfg.id,
        "frames": pipe.frames,
        "video_fps": src.fps,
        "wall_s": round(wall, 3),
        "fps": round(pipe.frames / wall, 2) if wall > 0 else None,
        "lines": pipe.counter.totals(),
        "crossings": [{"line": c.line, "track": c.track, "class": c.cls, "direction": c.direction,
                       "time": round(c.time, 3)} for c in pipe.counter.crossings],
        "zones": {zid: {"mean": s[0] / n, "peak": s[1], "mean_halting": s[2] / n, "mean_occupancy": s[3] / n,
                        "detector": cfg.published.get(zid)} for zid, s in sums.items()},
        "unconfirmed_dropped": pipe.counter.dropped_unconfirmed,
    }
