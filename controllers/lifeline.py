"""A controller process started by another one (the simulation runner) ends with it, and says what it counted.

``--parent-pid PID`` ties the process's life to the one that started it: on Linux a parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills this process the moment its parent dies, even by
SIGKILL); elsewhere, or when PID is not the direct parent, a daemon thread that checks every half second.
A parent that died before the tie was made is noticed at once (the process is then an orphan). The kernel
sends the signal when the *thread* that started the process ends: start it from a thread that outlives it
(the simulation runner starts its controllers from its main thread). The runner ties itself to the batch
that started it the same way, with SIGTERM, so that it can stop its controllers and remove its sockets.

``--stats FILE`` writes the controller's counters as JSON when the process ends (STOP, Ctrl-C, SIGTERM or an
error): what the runner of a simulation reports for controllers in other processes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controllers.controller import Controller

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_S = 0.5


class ParentGone(RuntimeError):
    """The process that started this one has already ended."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prctl_pdeathsig(sig: int) -> bool:
    """Ask the kernel for ``sig`` when the parent dies; False where that cannot be had (not Linux, no libc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(pid: int, sig: int = signal.SIGKILL) -> str:
    """Send this process ``sig`` when process ``pid`` ends; returns how (``"pdeathsig"`` or ``"watch"``).
    :class:`ParentGone` when ``pid`` is already gone (the process was orphaned before it could be tied)."""
    if os.getppid() == pid and _prctl_pdeathsig(sig):
        if os.getppid() != pid:  # the parent died between the fork and the prctl: no signal will come
            raise ParentGone(f"the process that started this one (pid {pid}) has ended")
        return "pdeathsig"
    if not _alive(pid):
        raise ParentGone(f"the process that started this one (pid {pid}) has ended")

    def watch() -> None:
        while _alive(pid):
            time.sleep(POLL_S)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="lintas-parent-watch", daemon=True).start()
    return "watch"


def counters_record(ctrl: Controller) -> dict:
    """What a controller counted, as the runner reports it (the same figures as its Prometheus metrics)."""
    c = ctrl.counters
    return {
        "junction": ctrl.id,
        "accepted": c.accepted,
        "refused": c.refused,
        "refusals": dict(sorted(c.refusals.items())),
        "fallbacks": c.fallbacks,
        "faults": c.faults,
        "heartbeat_gaps": c.heartbeat_gaps,
        "messages_dropped": ctrl.cmd.stats.dropped + ctrl.sub.stats.dropped,
        "ticks": ctrl.ticks_done,
        "mode": str(ctrl.mode),
        "time": ctrl.now,
    }


def write_stats(ctrl: Controller, path: Path) -> None:
    """``counters_record`` as JSON in ``path``, whole or not at all (written beside it, then renamed)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(counters_record(ctrl), indent=1) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_stats(path: Path) -> dict | None:
    """A stats file's record, or None when there is none (the process never wrote it) or it is unreadable."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None
