"""Training the detector: Ultralytics YOLO built from its yaml (no weights downloaded), on the CPU, from the
synthetic camera's renders, reproducible from a seed.

Nothing is fetched at run time: :func:`offline_env` sets ``YOLO_OFFLINE``, points ``YOLO_CONFIG_DIR`` at a folder of
ours (Ultralytics would otherwise write its settings under ``~/.config``) and places matplotlib's DejaVu Sans there
as the ``Arial.ttf`` Ultralytics looks for (it would otherwise try to download it); plots stay off.

torch and Ultralytics are the training install (several GB), separate from the ``[vision]`` install that runs a
model: :func:`require_training` names it when it is missing.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path

TORCH_PIN = "torch==2.14.1 torchvision==0.29.1"
TRAINING_INSTALL = f"pip install {TORCH_PIN} && pip install 'lintas[vision-train]'"


class TrainingInstallMissing(RuntimeError):
    """torch or Ultralytics is not installed."""


def require_training(what: str = "lintas vision train") -> None:
    """Raise :class:`TrainingInstallMissing` naming the install when torch or Ultralytics cannot be imported."""
    import importlib.util

    missing = []
    for m in ("torch", "torchvision", "ultralytics"):
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):  # a module blocked or half-installed
            found = False
        if not found:
            missing.append(m)
    if missing:
        raise TrainingInstallMissing(f"{what} needs the training install ({', '.join(missing)} missing): "
                                     f"{TRAINING_INSTALL} (torch first: pip would otherwise pick another build)")


def offline_env(config_dir: Path) -> Path:
    """Keep Ultralytics offline and out of the home folder; call before importing it. Returns the config folder."""
    config_dir = Path(config_dir)
    (config_dir / "Ultralytics").mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ.setdefault("YOLO_VERBOSE", "False")
    font = config_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        try:
            import matplotlib

            src = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
            if src.exists():
                shutil.copyfile(src, font)
        except ImportError:  # no font: plots stay off, which is all that needs one
            pass
    return config_dir


def train(data_yaml: Path, out: Path, epochs: int, imgsz: int = 320, seed: int = 0, model: str = "yolov8n.yaml",
          batch: int = 16, threads: int | None = None, patience: int = 100, onnx_opset: int = 17,
          verbose: bool = False, hours: float | None = None) -> dict:
    """Train, export and validate: writes ``out/best.pt``, ``out/best.onnx`` (fixed ``imgsz``, no NMS) and
    ``out/metrics.json``; returns the metrics. ``hours`` bounds the training's wall time instead of ``epochs``
    (Ultralytics fits the number of epochs, and the learning-rate schedule, to it after the first epoch)."""
    require_training()
    if not str(model).endswith((".yaml", ".yml")):
        raise ValueError(f"--model must be a model yaml (e.g. yolov8n.yaml): a .pt name would be downloaded, got "
                         f"{model!r}")
    if epochs < 1 or imgsz < 32 or imgsz % 32:
        raise ValueError(f"--epochs must be >= 1 and --imgsz a multiple of 32 (>= 32), got {epochs}, {imgsz}")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    offline_env(out / ".ultralytics")
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import torch_utils

    # one thread unless asked: on a loaded machine two OpenMP threads wait on each other at every barrier (measured
    # 111 s per batch with two against 7 s with one, on the shared 2-core VM)
    n = threads or 1
    torch.set_num_threads(n)
    torch_utils.NUM_THREADS = n
    t0 = time.time()
    yolo = YOLO(model)
    yolo.train(data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch, device="cpu", workers=0, seed=seed,
               deterministic=True, project=str(out), name="run", exist_ok=True, plots=False, verbose=verbose,
               amp=False, pretrained=False, patience=patience, val=True, cache=False,
               **({"time": hours} if hours else {}))
    train_s = time.time() - t0
    epochs_run = _epochs_run(out / "run" / "results.csv")
    run = out / "run" / "weights"
    best = run / "best.pt" if (run / "best.pt").exists() else run / "last.pt"
    if not best.exists():
        raise RuntimeError(f"training wrote no weights under {run}")
    shutil.copyfile(best, out / "best.pt")
    model_best = YOLO(str(out / "best.pt"))
    onnx = Path(model_best.export(format="onnx", imgsz=imgsz, opset=onnx_opset, dynamic=False, nms=False,
                                  simplify=True, device="cpu"))
    if onnx.resolve() != (out / "best.onnx"):
        shutil.move(str(onnx), out / "best.onnx")
    compact_onnx(out / "best.onnx")
    val = YOLO(str(out / "best.pt")).val(data=str(data_yaml), imgsz=imgsz, batch=batch, device="cpu", workers=0,
                                          plots=False, verbose=False, project=str(out), name="val", exist_ok=True)
    names = val.names if hasattr(val, "names") else {}
    per_class = {}
    try:
        for i, c in enumerate(val.box.ap_class_index):
            per_class[str(names.get(int(c), c))] = round(float(val.box.ap50[i]), 4)
    except (AttributeError, IndexError, TypeError):
        per_class = {}
    import ultralytics

    metrics = {
        "model": model, "epochs": epochs_run or epochs, "hours": hours, "imgsz": imgsz, "seed": seed, "batch": batch,
        "data": str(Path(data_yaml).resolve()), "val_map50": round(float(val.box.map50), 4),
        "val_map50_95": round(float(val.box.map), 4), "val_map50_per_class": per_class,
        "train_seconds": round(train_s, 1), "torch": torch.__version__, "ultralytics": ultralytics.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
        "best_pt_bytes": (out / "best.pt").stat().st_size, "onnx_bytes": (out / "best.onnx").stat().st_size,
        "onnx_opset": onnx_opset,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def compact_onnx(path: Path) -> None:
    """Store an ONNX model's float weights as float16, each read through a Cast back to float32: half the file, the
    same graph and inputs. The weights are those of Ultralytics' ``.pt``, which it saves in float16 already; onnxruntime
    folds the casts when it loads the model, so inference runs in float32 as before."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    keep, casts = [], []
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and np.prod(init.dims) >= 16:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                          name=init.name + "_cast"))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _epochs_run(results_csv: Path) -> int | None:
    """How many epochs the run finished (rows of Ultralytics' results.csv)."""
    try:
        rows = [ln for ln in results_csv.read_text().splitlines()[1:] if ln.strip()]
    except OSError:
        return None
    return len(rows) or None
