"""Runs on a Dask cluster (``--executor dask --scheduler tcp://HOST:8786``): the same runs as the local pool, the
same journal and resume, the same reporting of a failed run, on as many machines as the cluster has.

Each run is a Dask task; the task starts a fresh Python process on its worker (``python -m
simulation.experiments.cluster SPEC OUT``: libsumo keeps state between runs in one process, so a worker never
runs two in itself) and hands back the run's record, or the run's error, which the caller reports as the local
pool does (``on_error``: "run POLICY seed N failed: ..."), never swallowed. Records come back to the machine
that asked, which keeps the journal (``WORK/journal.jsonl``) as each run finishes: ``--resume`` works as with
the local pool.

What a cluster needs: Lintas with its ``[sim]`` install (SUMO) on every worker, and the scenario and the work
folder at the same paths on every machine (a shared filesystem, e.g. NFS), since a run reads the scenario and
writes its outputs there. A worker counts as one run at a time per thread: start workers with
``--nthreads 1`` (or as many as the machine has cores) and ``--nworkers``; see docs/deployment.md.

Stopping: Ctrl-C or SIGTERM on the asking machine cancels the runs not started and sets a Dask ``Event`` that
every running task watches (every 0.2 s): it kills its run's process group, so nothing of the sweep outlives it
on any worker.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["EXECUTORS", "ClusterError", "check_executor", "check_scheduler", "connect", "run_on_cluster"]

EXECUTORS = ("local", "dask")
CONNECT_TIMEOUT_S = 10.0


class ClusterError(ValueError):
    """A cluster that cannot be used (one line naming the option)."""


def check_scheduler(executor: str, scheduler: str | None) -> None:
    """The options alone, before anything connects: ``--executor`` known, ``--scheduler`` given with dask and
    only with it, and shaped ``tcp://HOST:PORT`` (or ``tls://``, ``inproc://`` as Dask knows them)."""
    if executor not in EXECUTORS:
        raise ClusterError(f"--executor: unknown executor '{executor}' (choose from: {', '.join(EXECUTORS)})")
    if executor == "local":
        if scheduler:
            raise ClusterError("--scheduler is for --executor dask (the local pool needs no scheduler)")
        return
    if not scheduler:
        raise ClusterError("--executor dask needs --scheduler tcp://HOST:8786 (the Dask scheduler's address)")
    scheme, sep, rest = scheduler.partition("://")
    if not sep or scheme not in ("tcp", "tls", "inproc", "ucx", "ws", "wss") or not rest:
        raise ClusterError(f"--scheduler {scheduler}: expected tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786)")
    if scheme in ("tcp", "tls"):
        port = rest.rsplit(":", 1)[-1] if ":" in rest else ""
        if not (port.isdigit() and 0 < int(port) < 65536):
            raise ClusterError(f"--scheduler {scheduler}: the port must be 1-65535 (Dask's default is 8786)")


def connect(scheduler: str, timeout: float = CONNECT_TIMEOUT_S):
    """A Dask client of the scheduler at ``scheduler``, with at least one worker; :class:`ClusterError` naming
    the option otherwise (dask.distributed missing, the scheduler unreachable, no worker)."""
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError("--executor dask needs dask.distributed, part of the [sim] install "
                           "(pip install 'lintas[sim]')") from None
    try:
        client = Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        client.close()
        raise ClusterError(f"--scheduler {scheduler}: the scheduler has no worker (waited {timeout:g} s); start "
                           f"some with: dask worker {scheduler} --nthreads 1") from None
    return client


def check_executor(executor: str, scheduler: str | None) -> None:
    """Everything about ``--executor``/``--scheduler`` before the first run: the options, then (with dask) that the
    scheduler answers and has a worker. :class:`ClusterError` naming the option otherwise."""
    check_scheduler(executor, scheduler)
    if executor == "dask":
        connect(scheduler or "").close()


# -- on the worker ---------------------------------------------------------------------------------------------
def _remote_run(spec, stop_name: str) -> dict:
    """A Dask task: run ``spec`` in a fresh process on this worker; its record, or :class:`RunError`."""
    from distributed import Event

    from simulation.experiments.runner import RunError

    stop = Event(stop_name)
    with tempfile.TemporaryDirectory(prefix="lintas-dask-") as d:
        spec_file, out_file, log = Path(d) / "spec.pkl", Path(d) / "out.pkl", Path(d) / "stderr.txt"
        spec_file.write_bytes(pickle.dumps(spec))
        with open(log, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "simulation.experiments.cluster", str(spec_file),
                                     str(out_file)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
            try:
                while proc.poll() is None:
                    with contextlib.suppress(Exception):  # the event lives on the scheduler: never fail a run on it
                        if stop.is_set():
                            _kill_group(proc)
                            raise RunError("stopped: the sweep was interrupted")
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(0.2)
            finally:
                if proc.poll() is None:
                    _kill_group(proc)
        if out_file.is_file():
            out = pickle.loads(out_file.read_bytes())
            if "error" in out:
                raise RunError(out["error"])
            return out["record"]
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise RunError(f"the run's process on worker {os.uname().nodename} ended with exit code {proc.returncode} "
                       f"without a result{': ' + ' | '.join(tail) if tail else ''}")


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(5)


def _main(spec_file: str, out_file: str) -> int:
    """``python -m simulation.experiments.cluster SPEC OUT``: one run, its record (or error) pickled to OUT."""
    if sys.platform.startswith("linux"):  # die with the task's process (the Dask worker), even on kill -9
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    from simulation.experiments.runner import RunError, run_one

    spec = pickle.loads(Path(spec_file).read_bytes())
    try:
        out = {"record": run_one(spec)}
    except RunError as exc:
        out = {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - whatever it was, the asking machine must hear it
        out = {"error": f"{type(exc).__name__}: {exc}"}
    tmp = Path(out_file).with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(out))
    tmp.replace(out_file)
    return 0


# -- on the asking machine -------------------------------------------------------------------------------------
def run_on_cluster(specs: list, scheduler: str, *, label, on_error, on_done, stop, quiet: bool = False,
                   client=None) -> tuple[list[dict | None], bool]:
    """Every spec as a task on the cluster; the records in the order of ``specs`` (None where a run failed or never
    ran) and whether a stop (``stop.signum``) cut the sweep short. ``on_error(spec, message)`` and ``on_done(spec,
    record)`` as in :func:`simulation.experiments.batch.run_specs`."""
    from distributed import Event
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    records: list[dict | None] = [None] * len(specs)
    own = client is None
    client = client or connect(scheduler)
    stop_name = f"lintas-stop-{uuid.uuid4().hex[:12]}"
    event = Event(stop_name, client=client)
    try:
        futs = {}
        for i, sp in enumerate(specs):
            f = client.submit(_remote_run, sp, stop_name, key=f"lintas-{label(sp)}-{uuid.uuid4().hex[:8]}",
                              pure=False, retries=0)
            futs[f] = i
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), disable=quiet, transient=False) as prog:
            overall = prog.add_task(f"{len(specs)} runs on {scheduler}", total=len(specs))
            pending = set(futs)
            while pending and stop.signum is None:
                for f in [f for f in pending if f.done()]:
                    pending.discard(f)
                    _take(f, futs[f], specs, records, on_error, on_done, stop)
                    prog.advance(overall)
                if pending and stop.signum is None:
                    time.sleep(0.1)
            if stop.signum is not None:
                with contextlib.suppress(Exception):
                    event.set()  # the running tasks kill their runs
                for f, i in futs.items():
                    if f.status == "finished" and records[i] is None:
                        _take(f, i, specs, records, on_error, on_done, stop)
                client.cancel([f for f in futs if f.status == "pending"], force=True)
    finally:
        with contextlib.suppress(Exception):
            event.clear()
        if own:
            with contextlib.suppress(Exception):
                client.close()
    return records, stop.signum is not None


def _take(f, i: int, specs, records, on_error, on_done, stop) -> None:
    sp = specs[i]
    try:
        rec = f.result()
    except Exception as exc:  # noqa: BLE001 - report the run, keep the others
        if stop.signum is None and on_error is not None:
            on_error(sp, f"run {sp.policy} seed {sp.seed} failed: {exc}")
        return
    records[i] = rec
    if on_done is not None:
        on_done(sp, rec)


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:3]))
