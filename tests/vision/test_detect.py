"""The detectors: the shipped model finds rendered vehicles, its two backends (onnxruntime, Ultralytics) agree, the
ONNX path imports no torch, and a missing or corrupt model file or a bad frame is a named error."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from simulation.experiments.catalog import REPO
from vision.detect import SHIPPED_ONNX, SHIPPED_PT, DetectorError, OnnxDetector, load_detector
from vision.render import CLASSES, Style, Vehicle, look_at, render_frame, straight_scene
from vision.track import iou_matrix

CAM = look_at((-22.0, 0.0), 22.0, 8.0, 0.0, 55.0, 480, 320)


def _frames(n: int = 3):
    """Rendered frames (unseen seeds: the training used the dataset's own streams) with their truth."""
    out = []
    for k in range(n):
        rng = np.random.default_rng(1000 + k)
        vs = []
        for i in range(7):
            cls = ["motorcycle", "motorcycle", "motorcycle", "car", "car", "truck", "bus"][i]
            length, width = {"motorcycle": (2.0, 0.8), "car": (4.5, 1.8), "truck": (8.0, 2.4),
                             "bus": (11.0, 2.5)}[cls]
            lane = int(rng.integers(-2, 2))
            x = -45.0 + i * 7.5 + rng.uniform(-1, 1)
            vs.append(Vehicle(f"v{i}", cls, x, (lane + 0.5) * 3.2, 0.0 if lane < 0 else 180.0, length, width))
        out.append(render_frame(vs, CAM, 777 + k, scene=straight_scene(), style=Style.sample(880 + k, "day")))
    return out


def test_the_shipped_model_is_small_and_finds_rendered_vehicles():
    assert SHIPPED_ONNX.is_file() and SHIPPED_PT.is_file()
    assert SHIPPED_ONNX.stat().st_size + SHIPPED_PT.stat().st_size <= 20 * 2**20
    # the shipped model is weak (validation mAP50 0.05 after 16 epochs on the shared VM, MODEL_CARD.md): it finds
    # near vehicles at low confidence; an untrained or broken model finds none
    det = OnnxDetector(SHIPPED_ONNX, conf=0.05)
    assert [det.names[i] for i in range(len(CLASSES))] == list(CLASSES) and det.imgsz == 320
    found = total = 0
    for frame in _frames():
        truth = [o for o in frame.objects if o.labelled and (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) > 150]
        d = det.detect(frame.image)
        total += len(truth)
        if not truth or not len(d):
            continue
        iou = iou_matrix(np.array([o.box for o in truth]), d.boxes)
        found += int((iou.max(axis=1) >= 0.5).sum())
    assert total >= 10
    assert found >= 0.5 * total, (found, total)  # measured 10 of 15


def test_both_backends_give_the_same_boxes():
    pytest.importorskip("ultralytics", reason="the training install (./lintas test installs it)")
    onnx = load_detector(SHIPPED_ONNX, conf=0.1)
    pt = load_detector(SHIPPED_PT, conf=0.1)
    assert pt.names == onnx.names
    matched = n = 0
    for frame in _frames():
        a, b = onnx.detect(frame.image), pt.detect(frame.image)
        assert abs(len(a) - len(b)) <= max(2, len(b) // 5), (len(a), len(b))
        confident = a.scores > 0.15
        if not confident.any():
            continue
        iou = iou_matrix(a.boxes[confident], b.boxes) if len(b) else np.zeros((confident.sum(), 1))
        best = iou.argmax(axis=1)
        n += int(confident.sum())
        for i, j in enumerate(best):
            if iou[i, j] > 0.85 and b.classes[j] == a.classes[confident][i]:
                matched += 1
    assert n >= 3 and matched >= 0.8 * n, (matched, n)


def test_the_onnx_path_imports_no_torch():
    code = ("import sys, numpy as np\n"
            "from vision.detect import load_detector\n"
            "from vision.render import render_frame, look_at, Vehicle\n"
            "cam = look_at((-20.0, 0.0), 20.0, 8.0, 0.0, 55.0, 320, 224)\n"
            "f = render_frame([Vehicle('a', 'car', -20.0, -1.6, 0.0, 4.5, 1.8)], cam, 1)\n"
            "d = load_detector(conf=0.01).detect(f.image)\n"
            "print(len(d), 'torch' in sys.modules, 'ultralytics' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    n, torch, ultra = r.stdout.split()
    assert torch == "False" and ultra == "False", r.stdout
    assert int(n) >= 1


def test_a_missing_or_corrupt_model_is_named(tmp_path):
    with pytest.raises(DetectorError, match=r"not found: .*nope\.onnx"):
        load_detector(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 400)
    with pytest.raises(DetectorError, match=r"bad\.onnx"):
        load_detector(bad)
    pointer = tmp_path / "lfs.onnx"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    with pytest.raises(DetectorError, match="too small"):
        load_detector(pointer)
    with pytest.raises(ValueError, match="backend"):
        load_detector(SHIPPED_ONNX, backend="tflite")


def test_a_corrupt_pt_model_is_named(tmp_path):
    pytest.importorskip("ultralytics", reason="the training install (./lintas test installs it)")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not a torch file" * 100)
    with pytest.raises(DetectorError, match=r"bad\.pt"):
        load_detector(bad)


def test_a_bad_frame_is_named():
    det = load_detector(SHIPPED_ONNX)
    for frame in (np.zeros((100, 100), np.uint8), np.zeros((100, 100, 3), np.float32), "frame.png",
                  np.zeros((4, 4, 3), np.uint8)):
        with pytest.raises(ValueError, match="frame"):
            det.detect(frame)
