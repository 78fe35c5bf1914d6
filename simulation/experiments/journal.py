"""Keeping a batch's results: the output paths checked before the first run, one invocation per work folder,
and the journal of finished runs that the final JSON and report are built from and that ``--resume`` goes on
from.

**Outputs.** :func:`check_output_file` and :func:`check_output_dir` try what writing will need, before any run
starts: they create the folder and a probe file in it, then remove the probe. A path that cannot be written
is an :class:`OutputError`, one line naming the option and the path.

**The work folder** is held by one invocation at a time (:class:`WorkLock`: ``fcntl.flock`` on ``lintas.lock``
in it, non-blocking; the file holds the holder's pid and is left in place, since removing a lock file races
with the next taker). A second invocation on the same folder is refused at once, naming the folder and the pid.
The kernel drops the lock when its process ends, however it ends.

**The journal**, ``WORK/journal.jsonl``, one JSON object a line, each written, flushed and fsync'd as it comes:

    {"journal": "lintas-runs", "version": 1, "request": {...}, "started": "2026-12-08T10:00:00", "pid": 4242}
    {"run": {...the run's record, as the runner returned it...}}
    {"run": {...}}

The first line says what was asked (:func:`request_identity`: the scenario and a hash of its files, the
policies, every option that changes a run's figures, SUMO's version); then one line per finished run, in the
order they finished. A run killed half-way writes nothing; a line cut short by a crash is ignored when read.
``--resume`` reads the journal, refuses one from another request (saying what differs), and runs only the
(policy, seed) pairs it does not hold; ``--seeds`` may differ, so a resume with more seeds runs only the new
ones. A start without ``--resume`` begins a new journal.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["JOURNAL", "LOCK", "Journal", "JournalError", "OutputError", "WorkLock", "check_output_dir",
           "check_output_file", "request_identity"]

JOURNAL = "journal.jsonl"
LOCK = "lintas.lock"
KIND = "lintas-runs"
VERSION = 1


class OutputError(ValueError):
    """An output path that cannot be written, or a work folder another invocation holds (one line naming the
    option and the path)."""


class JournalError(ValueError):
    """A journal that cannot be resumed (missing, unreadable, or from another request), or cannot be written."""


def _why(exc: OSError) -> str:
    what = exc.strerror or type(exc).__name__
    return f"{what}: {exc.filename}" if exc.filename else what


def _probe(option: str, shown: Path, folder: Path) -> None:
    """Create ``folder`` (and its parents), write a probe file in it and remove it."""
    up = folder
    while not up.exists() and up != up.parent:
        up = up.parent
    if up.exists() and not up.is_dir():
        raise OutputError(f"{option} {shown}: {up} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{option} {shown}: cannot create the folder {folder} ({_why(exc)})") from None
    try:
        fd, name = tempfile.mkstemp(prefix=".lintas-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputError(f"{option} {shown}: cannot write in {folder} ({exc.strerror or type(exc).__name__})") \
            from None


def check_output_file(option: str, path: Path) -> None:
    """A file to be written once the runs are done: its folder is created now and a probe written in it; an
    existing file is opened for appending (never truncated) to show it can be replaced."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder; name a file")
    _probe(option, path, path.parent)
    if path.exists():
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise OutputError(f"{option} {path}: cannot write there ({_why(exc)})") from None


def check_output_dir(option: str, path: Path) -> None:
    """A folder to be written into: created now, a probe written in it and removed."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: is a file, not a folder")
    _probe(option, path, path)


class WorkLock:
    """The work folder for this invocation alone: an exclusive, non-blocking ``flock`` on ``folder/lintas.lock``,
    held from ``__enter__`` to ``__exit__`` (or to the process's end). ``option`` names the folder in messages."""

    def __init__(self, folder: Path, option: str = "--work-dir") -> None:
        self.folder = Path(folder)
        self.option = option
        self._fh = None

    def __enter__(self) -> WorkLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or :class:`OutputError` naming the folder and the holder's pid."""
        path = self.folder / LOCK
        try:
            fh = open(path, "a+")  # noqa: SIM115 - held open until release(): the lock lives with it
        except OSError as exc:
            raise OutputError(f"{self.option} {self.folder}: cannot write there ({_why(exc)})") from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise OutputError(f"{self.option} {self.folder}: another lintas (pid {holder}) is writing into this "
                              f"folder; wait for it to end, or choose another {self.option}") from None
        except OSError as exc:
            fh.close()
            raise OutputError(f"{self.option} {self.folder}: cannot lock the folder ({_why(exc)})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def _hash_files(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p).encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def request_identity(scenario, policies: Sequence[str], *, transport: str, controllers: str,
                     sumo_args: Sequence[str], end: float | None, traci: bool, gui: bool,
                     params: dict[str, float], fail_detectors: float, dead: str | None, local_plan: Path | None,
                     save_tls_states: bool, sumo_version: str, cameras: Sequence[str] = ()) -> dict[str, Any]:
    """What a run's figures depend on, as plain JSON values: a journal answers one such request. ``scenario``
    is a loaded :class:`~simulation.sumo.scenario.Scenario` (its files are hashed: an edited route file is
    another request)."""
    files = [scenario.sumocfg, scenario.net_file, *scenario.route_files, *scenario.additional_files]
    return {
        "scenario": str(scenario.sumocfg),
        "scenario_files": _hash_files(files),
        "policies": list(policies),
        "params": {k: params[k] for k in sorted(params)},
        "end": end,
        "transport": transport,
        "controllers": controllers,
        "sumo_args": list(sumo_args),
        "traci": bool(traci or gui),
        "gui": bool(gui),
        "fail_detectors": fail_detectors,
        "dead": dead,
        "local_plan": None if local_plan is None else str(local_plan),
        "local_plan_file": None if local_plan is None else _hash_files([local_plan]),
        "save_tls_states": bool(save_tls_states),
        "sumo_version": sumo_version,
        # only when given: a journal written before --cameras existed answers the same request without them
        **({"cameras": list(cameras)} if cameras else {}),
    }


def _fsync_dir(folder: Path) -> None:
    """The folder's entries on disk too (a new file's name survives a power cut)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _plain(o: Any) -> Any:
    """JSON for what json does not know: NumPy scalars and arrays, paths."""
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."


class Journal:
    """The journal of one request in a work folder (see the module's docstring). Use :meth:`start` or
    :meth:`resume`; :meth:`append` each finished run; :meth:`runs` reads back what the file holds."""

    def __init__(self, path: Path, request: dict[str, Any]) -> None:
        self.path = Path(path)
        self.request = request

    @classmethod
    def start(cls, folder: Path, request: dict[str, Any]) -> Journal:
        """A new journal in ``folder`` (one already there is replaced)."""
        j = cls(Path(folder) / JOURNAL, request)
        head = {"journal": KIND, "version": VERSION, "request": request,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid()}
        tmp = j.path.with_name(j.path.name + ".new")
        try:
            with open(tmp, "w") as fh:
                fh.write(json.dumps(head, default=_plain) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(j.path)
            _fsync_dir(j.path.parent)
        except OSError as exc:
            raise JournalError(f"{j.path}: cannot write the journal ({_why(exc)})") from None
        return j

    @classmethod
    def resume(cls, folder: Path, request: dict[str, Any]) -> Journal:
        """The journal in ``folder``, checked to answer ``request`` (:class:`JournalError` saying what differs)."""
        path = Path(folder) / JOURNAL
        if not path.is_file():
            raise JournalError(f"--resume: no journal in {folder} ({JOURNAL}): nothing to resume; run without "
                               f"--resume")
        head = cls._head(path)
        if head.get("journal") != KIND or head.get("version") != VERSION:
            raise JournalError(f"--resume: {path} is not a journal this Lintas can read (kind "
                               f"{head.get('journal')!r}, version {head.get('version')!r})")
        theirs = head.get("request") or {}
        diff = [f"{k}: {_short(theirs.get(k))} there, {_short(request.get(k))} now"
                for k in sorted(set(theirs) | set(request)) if theirs.get(k) != request.get(k)]
        if diff:
            raise JournalError(f"--resume: {path} holds the runs of another request ({'; '.join(diff)}); run the "
                               f"same command, or start afresh without --resume")
        return cls(path, request)

    @staticmethod
    def _head(path: Path) -> dict:
        try:
            with open(path) as fh:
                return json.loads(fh.readline())
        except (OSError, ValueError) as exc:
            raise JournalError(f"--resume: {path}: unreadable journal ({exc})") from None

    def append(self, record: dict) -> None:
        """One finished run, on disk (flushed and fsync'd) before this returns."""
        line = json.dumps({"run": record}, default=_plain) + "\n"
        try:
            with open(self.path, "a+b") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() > 0:  # a line cut short by a crash must not swallow this one
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        fh.write(b"\n")
                fh.write(line.encode())
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot write the journal ({_why(exc)})") from None

    def runs(self) -> dict[tuple[str, int], dict]:
        """The finished runs the file holds, by (policy, seed) (a later line for the same pair wins)."""
        out: dict[tuple[str, int], dict] = {}
        with open(self.path) as fh:
            fh.readline()  # the request
            for line in fh:
                try:
                    rec = json.loads(line)["run"]
                    out[(str(rec["policy"]), int(rec["seed"]))] = rec
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash (the run is run again on --resume)
        return out

    def ordered(self, policies: Sequence[str], seeds: int) -> list[dict]:
        """The runs of ``policies`` x seeds 1..``seeds`` the file holds, in that order."""
        have = self.runs()
        return [have[(p, s)] for p in policies for s in range(1, seeds + 1) if (p, s) in have]
