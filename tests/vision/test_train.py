"""The training path end to end on a tiny data set (a few renders, one epoch, 64 px), and the command's bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from simulation.experiments.catalog import REPO
from vision.render import CLASSES

pytest.importorskip("ultralytics", reason="the training install (./lintas test installs it)")


def test_render_and_train_end_to_end(tmp_path):
    """Render a tiny data set from SUMO clips, train one epoch on the CPU, export ONNX, write the metrics; the
    exported model loads in the torch-free backend with the renderer's classes and gives boxes in the frame."""
    from vision.dataset import render_dataset
    from vision.detect import OnnxDetector
    from vision.train import train

    data = render_dataset(tmp_path / "data", 4, seed=3, val_images=2, frames_per_clip=2, size=(128, 96))
    labels = sorted((tmp_path / "data" / "labels" / "train").glob("*.txt"))
    assert len(labels) == 4 and len(list((tmp_path / "data" / "images" / "val").glob("*.png"))) == 2
    rows = [ln.split() for f in labels for ln in f.read_text().splitlines()]
    assert rows and all(len(r) == 5 and 0 <= int(r[0]) < len(CLASSES) for r in rows)
    assert "names:" in data.read_text() and "motorcycle" in data.read_text()
    out = tmp_path / "model"
    metrics = train(data, out, epochs=1, imgsz=64, seed=3, batch=4)
    assert (out / "best.pt").stat().st_size > 100_000 and (out / "best.onnx").stat().st_size > 100_000
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics and 0.0 <= saved["val_map50"] <= 1.0 and saved["epochs"] == 1
    det = OnnxDetector(out / "best.onnx", conf=0.0001)
    assert det.imgsz == 64 and [det.names[i] for i in range(len(CLASSES))] == list(CLASSES)
    frame = np.full((96, 128, 3), 90, np.uint8)
    d = det.detect(frame)
    assert np.all(d.boxes[:, [0, 2]] <= 128) and np.all(d.boxes[:, [1, 3]] <= 96)
    # nothing was written to the home folder's Ultralytics settings
    assert (out / ".ultralytics" / "Ultralytics").is_dir()


def _lintas(*args: str, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    code = (f"import sys\nfor n in {list(blocked)!r}:\n    sys.modules[n] = None\n"
            f"sys.argv = ['lintas', *{list(args)!r}]\nimport cli\ncli.main()\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=env)


def test_train_without_the_training_install_names_it(tmp_path):
    r = _lintas("vision", "train", "--out", str(tmp_path), "--images", "1", "--epochs", "1",
                blocked=("torch", "ultralytics"))
    assert r.returncode == 2, r.stderr
    assert "training install" in r.stderr and "torch==2.14.1" in r.stderr and "vision-train" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_train_refuses_a_pt_model_name_and_a_bad_size(tmp_path):
    r = _lintas("vision", "train", "--out", str(tmp_path), "--model", "yolov8n.pt")
    assert r.returncode == 2 and "--model" in r.stderr and "yaml" in r.stderr, r.stderr
    r = _lintas("vision", "train", "--out", str(tmp_path), "--imgsz", "100")
    assert r.returncode == 2 and "--imgsz" in r.stderr, r.stderr
    r = _lintas("vision", "render", "--out", str(tmp_path), "--size", "big")
    assert r.returncode == 2 and "--size" in r.stderr, r.stderr
