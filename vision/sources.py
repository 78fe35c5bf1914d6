"""Where a camera's frames come from: a video file, a folder of images, an RTSP or HTTP stream (all through OpenCV),
or frames handed over by a program (the simulation's renderer).

Every source gives ``read() -> Frame | None`` (None: no frame now: the end of a file, or a stream that failed), its
``fps`` (frames per second it delivers, or None where unknown), whether it is ``live`` (a stream: a failure is lost
contact, to reconnect; a file: a failure is its end or a defect, said by name) and ``close()``.

Bad input is a :class:`SourceError` that names the file or address: a missing or unreadable video or folder, a file
OpenCV cannot decode, an image that does not decode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


class SourceError(ValueError):
    """A source that cannot give frames (the message names it)."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # H x W x 3, BGR (OpenCV's order)
    time: float  # s: the source's time of the frame (a file's: index / fps; a stream's: when it was read)
    index: int


def _cv2():
    try:
        import cv2
    except ModuleNotFoundError as exc:
        raise SourceError("reading frames needs OpenCV: pip install 'lintas[vision]' (opencv is missing)") from exc
    return cv2


def is_stream(spec: str) -> bool:
    return spec.lower().startswith(STREAM_SCHEMES)


class VideoFile:
    live = False

    def __init__(self, path: Path) -> None:
        cv2 = _cv2()
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise SourceError(f"{self.path}: not a video OpenCV can read (corrupt, or an unknown format)")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else None
        self.index = 0
        first = self._read()
        if first is None:
            self.cap.release()
            raise SourceError(f"{self.path}: no frame decodes (corrupt, or empty)")
        self._first: Frame | None = first

    def _read(self) -> Frame | None:
        ok, img = self.cap.read()
        if not ok or img is None:
            return None
        f = Frame(img, self.index / (self.fps or 1.0), self.index)
        self.index += 1
        return f

    def read(self) -> Frame | None:
        if self._first is not None:
            f, self._first = self._first, None
            return f
        return self._read()

    def close(self) -> None:
        self.cap.release()


class ImageFolder:
    """The images of a folder in name order, at ``fps`` frames per second (default 10)."""

    live = False

    def __init__(self, path: Path, fps: float | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: no such folder")
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"{self.path}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        self.fps = fps or 10.0
        self.index = 0

    def read(self) -> Frame | None:
        if self.index >= len(self.files):
            return None
        cv2 = _cv2()
        p = self.files[self.index]
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(f"{p}: not an image OpenCV can read (corrupt?)")
        f = Frame(img, self.index / self.fps, self.index)
        self.index += 1
        return f

    def close(self) -> None:
        pass


class Stream:
    """A live stream (RTSP, HTTP, ...) through OpenCV's FFmpeg backend. Opening it may fail (the camera is away):
    :class:`SourceError`. A thread reads frames as they come and keeps only the latest, so a worker slower than the
    camera counts current frames (never a backlog); the frames it never took are counted in ``dropped``. ``read()``
    waits up to ``read_timeout_s`` for a new frame and returns None when none came or the stream failed (contact
    lost: close it and open a new one)."""

    live = True

    def __init__(self, url: str, *, open_timeout_s: float = 5.0, read_timeout_s: float = 5.0,
                 now: Callable[[], float] = time.time) -> None:
        import threading

        cv2 = _cv2()
        self.url = url
        self.now = now
        self.read_timeout_s = read_timeout_s
        params = []
        timeouts = (("CAP_PROP_OPEN_TIMEOUT_MSEC", open_timeout_s), ("CAP_PROP_READ_TIMEOUT_MSEC", read_timeout_s))
        for name, sec in timeouts:
            if hasattr(cv2, name):
                params += [getattr(cv2, name), int(sec * 1000)]
        self.cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params) if params else cv2.VideoCapture(url)
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceError(f"{url}: cannot open the stream")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else None
        self.index = 0
        self.dropped = 0
        self._latest: Frame | None = None
        self._failed = False
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pull, name=f"lintas-stream-{url}", daemon=True)
        self._thread.start()

    def _pull(self) -> None:
        while not self._closing:
            ok, img = self.cap.read()
            with self._cond:
                if not ok or img is None:
                    self._failed = True
                    self._cond.notify_all()
                    return
                if self._latest is not None:
                    self.dropped += 1
                self._latest = Frame(img, self.now(), self.index)
                self.index += 1
                self._cond.notify_all()

    def read(self) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None or self._failed, timeout=self.read_timeout_s)
            f, self._latest = self._latest, None
            return f

    def close(self) -> None:
        self._closing = True
        self._thread.join(self.read_timeout_s + 1.0)
        self.cap.release()


class Handed:
    """Frames a program hands over (``put``), read in order: the simulation's renderer. Not live: it ends when the
    program says so (``end``)."""

    live = False

    def __init__(self, fps: float | None = None) -> None:
        self.fps = fps
        self._frames: list[Frame] = []
        self.index = 0
        self.ended = False

    def put(self, image: np.ndarray, t: float) -> None:
        self._frames.append(Frame(image, t, self.index))
        self.index += 1

    def end(self) -> None:
        self.ended = True

    def read(self) -> Frame | None:
        return self._frames.pop(0) if self._frames else None

    def close(self) -> None:
        self._frames.clear()


def open_source(spec: str | Path, *, base: Path | None = None, fps: float | None = None):
    """The source a config's ``source`` (or ``--source``) names: a stream address, an image folder or a video file
    (relative paths from ``base``, the config's folder)."""
    s = str(spec)
    if is_stream(s):
        return Stream(s)
    p = Path(s).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    if p.is_dir():
        return ImageFolder(p, fps)
    return VideoFile(p)
