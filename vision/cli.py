"""Vision's commands: ``lintas vision count`` (a recorded video, counted offline), ``lintas camera`` (a camera
worker on the bus), ``lintas vision render`` (a synthetic data set) and ``lintas vision train`` (the detector).

Only typer is imported here; each command imports what it runs (OpenCV, onnxruntime), so listing the commands
loads neither.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from engine.protocol.service import CommandError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Vision: vehicle detection, tracking and counting from cameras.")

ConfigOpt = Annotated[Path, typer.Option("--config", help="The camera's TOML file (docs/vision.md)")]
ModelOpt = Annotated[Path | None, typer.Option("--model", help="Detector model (.onnx or .pt; default: the "
                                                              "config's model, else the shipped one)")]
NetworkOpt = Annotated[Path | None, typer.Option("--network", help="The engine's compiled network (lintas compile "
                                                                   "writes network.json): lanes are checked "
                                                                   "against it (replaces the config's network)")]


def _config(config: Path, source: str | None, network: Path | None):
    from vision.camera import CameraConfigError, load_config

    try:
        return load_config(config, source=source, network=network)
    except CameraConfigError as exc:
        raise CommandError(str(exc)) from None


def _detector(cfg, model: Path | None):
    """The detector of ``--model``, else the config's ``model``, else the shipped one."""
    from vision.detect import DetectorError, load_detector

    path = model if model is not None else cfg.model
    try:
        return load_detector(path)
    except DetectorError as exc:
        raise CommandError(f"{'--model' if model is not None else f'{cfg.path}: model'}: {exc}") from None


@app.command(help="Count a recorded video offline: per line, direction and class, with the zones' mean and peak "
             "occupancy, frames and frames per second. Example: lintas vision count --config cam.toml --source "
             "clip.mp4 --json out/counts.json")
def count(
    config: ConfigOpt,
    source: Annotated[str | None, typer.Option("--source", help="Video file or image folder (replaces the "
                                                                "config's source)")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the counts as JSON")] = None,
    model: ModelOpt = None,
    network: NetworkOpt = None,
    max_frames: Annotated[int | None, typer.Option("--max-frames", min=1, help="Stop after this many "
                                                                               "frames")] = None,
) -> None:
    from vision.camera import CameraConfigError
    from vision.offline import count_video
    from vision.sources import SourceError

    cfg = _config(config, source, network)
    if json_file is not None:
        try:
            json_file.parent.mkdir(parents=True, exist_ok=True)
            json_file.touch()
        except OSError as exc:
            raise CommandError(f"--json: cannot write {json_file}: {exc.strerror or exc}") from None
    det = _detector(cfg, model)
    try:
        result = count_video(cfg, det, max_frames=max_frames)
    except (SourceError, CameraConfigError) as exc:
        raise CommandError(str(exc)) from None
    for lid, dirs in result["lines"].items():
        parts = [f"{d} {sum(c.values())} ({', '.join(f'{k} {v}' for k, v in sorted(c.items())) or '-'})"
                 for d, c in dirs.items()]
        typer.echo(f"{lid}: {'; '.join(parts)}")
    for zid, z in result["zones"].items():
        typer.echo(f"{zid}: mean {z['mean']:.2f} vehicles, peak {z['peak']}, mean halting {z['mean_halting']:.2f}")
    typer.echo(f"{result['frames']} frames in {result['wall_s']:.1f} s: {result['fps']:.1f} frames per second")
    if json_file is not None:
        json_file.write_text(json.dumps(result, indent=2) + "\n")


@app.command(hidden=True, help="Run a camera worker: counts vehicles from a video, an image folder or an RTSP/HTTP "
             "stream and publishes its zones' readings on the bus. The readings are those of the lanes' camera "
             "detectors, at the config's rate; its health goes out as fault messages. Example: "
             "lintas camera --config cam.toml --bus-in tcp://127.0.0.1:5555")
def camera(
    config: ConfigOpt,
    bus_in: Annotated[str, typer.Option(help="The bus's input (the forwarder's XSUB)")] = "tcp://127.0.0.1:5555",
    source: Annotated[str | None, typer.Option("--source", help="Replaces the config's source")] = None,
    model: ModelOpt = None,
    network: NetworkOpt = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="Key directory (lintas keys DIR): uses the pair "
                                                             "named after the camera's id, else 'field'")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Start a video file or folder again at its end")] = False,
    realtime: Annotated[bool, typer.Option(help="Play a video file or folder at its own frame rate (as a camera "
                                                "would deliver it); --no-realtime: as fast as it counts")] = True,
    stats: Annotated[Path | None, typer.Option("--stats", help="When the worker ends, write its health counters "
                                                               "(JSON) to this file")] = None,
) -> None:
    import signal

    import zmq

    from engine.protocol import bus as b
    from engine.protocol.security import SecurityError, secret_file
    from engine.protocol.service import check_endpoints, endpoint_error, load_security
    from vision.camera import CameraConfigError, CameraWorker
    from vision.sources import SourceError

    cfg = _config(config, source, network)
    check_endpoints({"--bus-in": bus_in})
    det = _detector(cfg, model)
    ctx = zmq.Context.instance()
    sec = None
    if keys is not None:
        try:
            me = cfg.id if secret_file(keys, cfg.id).is_file() else "field"
        except SecurityError as exc:
            raise CommandError(str(exc)) from None
        sec = load_security(keys, me, ctx)
    try:
        pub = b.Publisher(ctx, b.Endpoints(bus_in, "", ""), security=sec)
    except b.EndpointError as exc:
        raise endpoint_error(exc, {"--bus-in": bus_in}) from None
    except SecurityError as exc:
        raise CommandError(str(exc)) from None
    def banner() -> None:
        typer.echo(f"camera {cfg.id}: {cfg.source} -> {bus_in}, {len(cfg.published)} zone(s) published as "
                   f"{', '.join(cfg.published.values()) or '-'}, {len(cfg.lines)} line(s)")

    worker = CameraWorker(cfg, det, pub.publish, realtime=realtime, loop=loop, on_open=banner)
    stopping: list[int] = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        health = worker.run(stop=lambda: bool(stopping))
    except (SourceError, CameraConfigError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        pub.close()
        if sec is not None:
            sec.close()
        if stats is not None:
            try:
                stats.write_text(json.dumps(worker.health.as_dict(), indent=2) + "\n")
            except OSError as exc:
                print(f"lintas camera: --stats: cannot write {stats}: {exc.strerror or exc}", file=sys.stderr)
    typer.echo(f"camera {cfg.id}: {health.state}: {health.frames} frames, {health.batches} batches, "
               f"{health.crossings} crossings, {health.late} late, {health.lost} lost, {health.faults} faults")
    for lid, dirs in worker.pipeline.counter.totals().items() if worker.pipeline is not None else ():
        typer.echo(f"  {lid}: " + "; ".join(f"{d} {sum(c.values())}" for d, c in dirs.items()))


def _size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise CommandError(f"--size must be WIDTHxHEIGHT in pixels (e.g. 480x320), got {value!r}") from None
    if w < 32 or h < 32 or w > 4096 or h > 4096:
        raise CommandError(f"--size must be between 32x32 and 4096x4096, got {value!r}")
    return w, h


def _progress(split: str, done: int, total: int) -> None:
    if done == total or done % 50 == 0:
        typer.echo(f"  rendered {split} {done}/{total}", err=True)


@app.command("render", help="Render a synthetic YOLO data set from SUMO clips (motorcycle-heavy junction approaches, "
             "randomised cameras, light, weather and sensor). Example: lintas vision render --out out/data "
             "--images 200 --seed 1")
def render(
    out: Annotated[Path, typer.Option(help="Folder for images/, labels/ and data.yaml")],
    images: Annotated[int, typer.Option(min=1, help="Training frames")] = 200,
    val_images: Annotated[int | None, typer.Option(min=1, help="Validation frames, from unseen seeds "
                                                                "(default: 20 % of --images)")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice")] = 0,
    frames_per_clip: Annotated[int, typer.Option(min=1, help="Frames taken from each clip")] = 12,
    size: Annotated[str | None, typer.Option(help="Image size WIDTHxHEIGHT (default: varied per clip)")] = None,
) -> None:
    from vision.dataset import render_dataset

    data = render_dataset(out, images, seed, val_images, frames_per_clip, _size(size), _progress)
    typer.echo(f"wrote {data}")


@app.command("train", help="Train the YOLO detector on the CPU from renders of the synthetic camera (built from "
             "the model's yaml, nothing downloaded); writes best.pt, best.onnx (fixed size, no NMS) and "
             "metrics.json. Example: lintas vision train --images 600 --epochs 40 --imgsz 320 --out out/model "
             "--seed 17")
def train(
    out: Annotated[Path, typer.Option(help="Output folder")],
    images: Annotated[int, typer.Option(min=1, help="Training frames to render (ignored with --data)")] = 600,
    val_images: Annotated[int | None, typer.Option(min=1, help="Validation frames (unseen seeds)")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 40,
    imgsz: Annotated[int, typer.Option(min=32, help="Training and export size (a multiple of 32)")] = 320,
    seed: Annotated[int, typer.Option(help="Seed of the renders and the training")] = 0,
    model: Annotated[str, typer.Option(help="Ultralytics model yaml (never a .pt name: that would download)")] =
        "yolov8n.yaml",
    batch: Annotated[int, typer.Option(min=1)] = 16,
    data: Annotated[Path | None, typer.Option(help="An existing data.yaml (skips rendering)")] = None,
    frames_per_clip: Annotated[int, typer.Option(min=1)] = 12,
    size: Annotated[str | None, typer.Option(help="Rendered image size WIDTHxHEIGHT (default: varied)")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch threads (default 1; 2 on an idle 2-core "
                                                               "machine)")] = None,
    hours: Annotated[float | None, typer.Option(min=0.01, help="Train for this wall time instead of --epochs "
                                                               "(the schedule is fitted to it)")] = None,
) -> None:
    from vision.train import TrainingInstallMissing, require_training
    from vision.train import train as run_train

    try:
        require_training()
    except TrainingInstallMissing as exc:
        raise CommandError(str(exc)) from None
    if imgsz % 32:
        raise CommandError(f"--imgsz must be a multiple of 32, got {imgsz}")
    if not model.endswith((".yaml", ".yml")):
        raise CommandError(f"--model must be a model yaml such as yolov8n.yaml (a .pt name would be downloaded), "
                           f"got {model!r}")
    if data is None:
        from vision.dataset import render_dataset

        data = render_dataset(out / "data", images, seed, val_images, frames_per_clip, _size(size), _progress)
        typer.echo(f"rendered {data}", err=True)
    elif not data.is_file():
        raise CommandError(f"--data: no such file {data}")
    metrics = run_train(data, out, epochs, imgsz, seed, model, batch, threads, hours=hours,
                        verbose=bool(os.environ.get("LINTAS_TRAIN_VERBOSE")))
    typer.echo(json.dumps(metrics, indent=2))
    typer.echo(f"wrote {out / 'best.pt'}, {out / 'best.onnx'}, {out / 'metrics.json'}")
