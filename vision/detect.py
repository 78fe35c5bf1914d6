"""Detectors: one interface, two backends.

``load_detector(path)`` gives a :class:`Detector` whose ``detect(frame)`` returns :class:`Detections` (xyxy boxes in
the frame's pixels, class ids, scores):

- ``.onnx`` through onnxruntime, with our own letterbox, decoding and ``cv2.dnn.NMSBoxesBatched``: NumPy, OpenCV and
  onnxruntime only (the ``[vision]`` install; this module never imports torch on that path);
- ``.pt`` through Ultralytics (the training install), kept offline.

Both read the class names from the model file. A missing or unreadable model is a :class:`DetectorError` naming the
file; a frame that is not an HxWx3 uint8 image is a ``ValueError``.
"""

from __future__ import annotations

import ast
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

#: the shipped model (trained by ``lintas vision train``; see vision/models/MODEL_CARD.md)
MODELS = Path(__file__).resolve().parent / "models"
SHIPPED_ONNX = MODELS / "lintas-yolov8n-320.onnx"
SHIPPED_PT = MODELS / "lintas-yolov8n-320.pt"


class DetectorError(RuntimeError):
    """A model file that is missing or cannot be loaded (the message names the file)."""


ModelError = DetectorError


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # [n, 4] float32, xyxy in the frame's pixels
    classes: np.ndarray  # [n] int64
    scores: np.ndarray  # [n] float32

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self):
        """``boxes, classes, scores = detections``."""
        return iter((self.boxes, self.classes, self.scores))

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))


class Detector(Protocol):
    names: dict[int, str]  # class id -> name, from the model file
    imgsz: int

    def detect(self, frame: np.ndarray) -> Detections: ...


def check_frame(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", type(frame).__name__)
        raise ValueError(f"detect: a frame must be an HxWx3 uint8 BGR image, got shape {shape} of {dtype}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise ValueError(f"detect: frame too small ({frame.shape[1]}x{frame.shape[0]} px)")
    return frame


def letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping the aspect ratio and pad to ``size`` x ``size`` with grey (114), centred, as Ultralytics does;
    returns (image, scale, (pad x, pad y))."""
    h, w = frame.shape[:2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    dw, dh = (size - nw) / 2, (size - nh) / 2
    img = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else frame
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return img, r, (left, top)


def decode(out: np.ndarray, conf: float, iou: float, scale: float, pad: tuple[float, float],
           frame_shape: tuple[int, int], max_det: int = 300) -> Detections:
    """Raw YOLOv8 output [1, 4 + classes, anchors] (cx, cy, w, h in letterboxed pixels, then class scores) ->
    detections in the frame's pixels, after class-wise non-maximum suppression."""
    p = out[0] if out.ndim == 3 else out
    scores_all = p[4:]
    cls = scores_all.argmax(axis=0)
    score = scores_all[cls, np.arange(p.shape[1])]
    keep = score > conf
    if not keep.any():
        return Detections.empty()
    cx, cy, bw, bh = p[0, keep], p[1, keep], p[2, keep], p[3, keep]
    cls, score = cls[keep], score[keep]
    xywh = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1)
    idx = cv2.dnn.NMSBoxesBatched(xywh.tolist(), score.tolist(), cls.tolist(), conf, iou)
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        return Detections.empty()
    idx = idx[np.argsort(-score[idx], kind="stable")][:max_det]
    b = xywh[idx]
    boxes = np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1)
    boxes[:, [0, 2]] -= pad[0]
    boxes[:, [1, 3]] -= pad[1]
    boxes /= scale
    h, w = frame_shape
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    return Detections(boxes.astype(np.float32), cls[idx].astype(np.int64), score[idx].astype(np.float32))


def _check_file(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DetectorError(f"model file not found: {path}")
    if path.stat().st_size < 1024:
        raise DetectorError(f"model file {path} is too small ({path.stat().st_size} bytes) to be a model: corrupt or a "
                         "Git LFS pointer")
    return path


class OnnxDetector:
    """An exported YOLO model (fixed size, no NMS inside) through onnxruntime on the CPU."""

    def __init__(self, path: Path, conf: float = 0.25, iou: float = 0.45, threads: int | None = 1):
        import onnxruntime as ort

        self.path = _check_file(path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own several kinds; all mean "unreadable")
            raise DetectorError(f"cannot load the ONNX model {self.path}: {str(exc).splitlines()[0][:300]}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        if len(shape) != 4 or not isinstance(shape[2], int) or shape[2] != shape[3]:
            raise DetectorError(f"ONNX model {self.path}: expected a fixed square input [1, 3, S, S], got {shape}")
        self.imgsz = int(shape[2])
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.names = {int(k): str(v) for k, v in ast.literal_eval(meta.get("names", "{}")).items()}
        except (ValueError, SyntaxError):
            self.names = {}
        nc = self.session.get_outputs()[0].shape[1]
        if isinstance(nc, int) and not self.names:
            self.names = {i: str(i) for i in range(nc - 4)}
        self.conf, self.iou = conf, iou

    @property
    def class_names(self) -> list[str]:
        return [self.names[i] for i in sorted(self.names)]

    def detect(self, frame: np.ndarray) -> Detections:
        frame = check_frame(frame)
        img, scale, pad = letterbox(frame, self.imgsz)
        blob = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0
        out = self.session.run(None, {self.input_name: blob})[0]
        return decode(out, self.conf, self.iou, scale, pad, frame.shape[:2])


class UltralyticsDetector:
    """A ``.pt`` model through Ultralytics (needs the training install), offline."""

    def __init__(self, path: Path, conf: float = 0.25, iou: float = 0.45, threads: int | None = 1,
                 imgsz: int | None = None):
        from vision.train import TrainingInstallMissing, offline_env, require_training

        self.path = _check_file(path)
        try:
            require_training("the .pt detector")
        except TrainingInstallMissing as exc:
            raise DetectorError(str(exc)) from None
        offline_env(Path(os.environ.get("YOLO_CONFIG_DIR") or Path(tempfile.gettempdir()) / "lintas-ultralytics"))
        import torch
        from ultralytics import YOLO

        if threads:
            torch.set_num_threads(threads)
        try:
            self.model = YOLO(str(self.path), task="detect")
        except Exception as exc:  # noqa: BLE001  (torch.load raises many kinds for a bad file)
            raise DetectorError(f"cannot load the model {self.path}: {str(exc).splitlines()[0][:300]}") from None
        self.names = {int(k): str(v) for k, v in self.model.names.items()}
        args = getattr(self.model.model, "args", {}) or {}
        self.imgsz = int(imgsz or args.get("imgsz", 320) or 320)
        self.conf, self.iou, self.threads = conf, iou, threads

    @property
    def class_names(self) -> list[str]:
        return [self.names[i] for i in sorted(self.names)]

    def detect(self, frame: np.ndarray) -> Detections:
        frame = check_frame(frame)
        r = self.model.predict(frame, imgsz=self.imgsz, conf=self.conf, iou=self.iou, device="cpu", verbose=False)[0]
        b = r.boxes
        if b is None or len(b) == 0:
            return Detections.empty()
        return Detections(b.xyxy.numpy().astype(np.float32), b.cls.numpy().astype(np.int64),
                          b.conf.numpy().astype(np.float32))


def load_detector(path: Path | str | None = None, backend: str = "auto", conf: float = 0.25, iou: float = 0.45,
                  threads: int | None = 1) -> Detector:
    """The detector for a model file (default: the shipped ONNX model). ``backend``: ``onnx``, ``pt`` or ``auto``
    (by the file's suffix)."""
    path = Path(path) if path is not None else SHIPPED_ONNX
    if backend == "auto":
        backend = "pt" if path.suffix == ".pt" else "onnx"
    if backend == "onnx":
        return OnnxDetector(path, conf, iou, threads)
    if backend == "pt":
        return UltralyticsDetector(path, conf, iou, threads)
    raise ValueError(f"backend must be onnx, pt or auto, got {backend!r}")
