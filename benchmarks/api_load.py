"""``lintas bench api``: requests per second and latency of ``GET /stops/{id}/arrivals`` on one uvicorn worker.

The server is ``lintas api --gtfs FEED`` in a process of its own (one uvicorn worker, as deployed). The load
generator is another process (``python -m benchmarks.api_load client ...``): asyncio over raw sockets, HTTP/1.1
keep-alive connections, one request in flight per connection, every response read whole and its status checked.

Open loop (the default, ``--rate R``): request k is *due* at ``k / R`` seconds, spread round-robin over the
connections; its latency runs from when it was due, not from when it was sent, so a server that falls behind is
charged the waiting too (no coordinated omission). ``--rate 0`` is closed loop: every connection sends its next
request as soon as the last answer came (the most the server does, at whatever latency). The stops asked about
cycle through every stop of the feed, at a time in its service (``--at``), so every answer carries arrivals.

The target (issue 18): at least 2,000 requests per second with p99 at most 20 ms. Written to
``benchmarks/results/api_load.json`` with the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from benchmarks.runs import machine

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RPS = 2000.0
TARGET_P99_MS = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lintas_command() -> list[str]:
    """How to start ``lintas`` from this Python: the script beside the interpreter, else the one on PATH."""
    beside = Path(sys.executable).with_name("lintas")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("lintas")
    if found is None:
        raise RuntimeError("cannot find the lintas command (neither beside this Python nor on PATH)")
    return [found]


# --- the load generator (its own process)
async def _connection(host: str, port: int, paths: list[str], first: int, step: int, rate: float, t0: float,
                      stop_at: float, warm_until: float, lat: list[float], errors: dict[str, int],
                      last: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    sent = 0
    k = first
    loop = asyncio.get_running_loop()
    try:
        while True:
            due = t0 + k / rate if rate > 0 else loop.time()
            if due >= stop_at:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            path = paths[k % len(paths)]
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            done = loop.time()
            if due >= warm_until:
                lat.append(done - due)
                last[0] = max(last[0], done)
                if status != 200:
                    errors[str(status)] = errors.get(str(status), 0) + 1
            sent += 1
            k += step
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
    finally:
        writer.close()
    return sent


async def _load(host: str, port: int, paths: list[str], rate: float, connections: int, duration: float,
                warmup: float) -> dict:
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    warm_until = t0 + warmup
    stop_at = warm_until + duration
    lat: list[float] = []
    errors: dict[str, int] = {}
    last = [warm_until]  # when the last measured answer came
    tasks = [_connection(host, port, paths, i, connections, rate, t0, stop_at, warm_until, lat, errors, last)
             for i in range(connections)]
    await asyncio.gather(*tasks)
    lat.sort()
    n = len(lat)

    def q(p: float) -> float | None:
        return round(lat[min(n - 1, int(p * n))] * 1000.0, 3) if n else None

    # the rate answered: the requests due in the measured span over the time until the last of them was answered
    # (a server that falls behind answers them later, so fewer a second)
    span = max(duration, last[0] - warm_until)
    return {"requests": n, "rps": round(n / span, 1), "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99),
            "max_ms": round(lat[-1] * 1000.0, 3) if n else None, "errors": sum(errors.values()),
            "error_kinds": errors}


def client_main(argv: list[str]) -> None:
    cfg = json.loads(argv[0])
    res = asyncio.run(_load(cfg["host"], cfg["port"], cfg["paths"], cfg["rate"], cfg["connections"],
                            cfg["duration"], cfg["warmup"]))
    print(json.dumps(res))


# --- the benchmark
def _wait_up(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lintas api exited with code {proc.returncode} before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"lintas api did not answer on port {port} within {timeout:g} s")


def run(gtfs: Path, *, rates: list[float], connections: int = 32, duration: float = 10.0, warmup: float = 2.0,
        at: str = "2026-03-02T07:20:00", limit: int = 10, out: Path | None = RESULTS, say=print) -> dict:
    """Start the server, run the load at each rate (0: closed loop) against it, one after the other; the document
    written to ``out/api_load.json`` (None: not written)."""
    from transit_api.gtfs import load_feed

    feed = load_feed(gtfs)
    stops = sorted(feed.stops)
    paths = [f"/stops/{quote(s, safe='')}/arrivals?at={quote(at)}&limit={limit}" for s in stops]
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the server's stderr for as long as it runs, closed below
    server = subprocess.Popen([*lintas_command(), "api", "--gtfs", str(gtfs), "--port", str(port)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    runs = []
    try:
        try:
            _wait_up(port, server)
        except RuntimeError as exc:
            log.seek(0)
            raise RuntimeError(f"{exc}: {log.read().decode(errors='replace').strip()[-2000:]}") from None
        for rate in rates:
            cfg = {"host": "127.0.0.1", "port": port, "paths": paths, "rate": rate, "connections": connections,
                   "duration": duration, "warmup": warmup}
            got = subprocess.run([sys.executable, "-m", "benchmarks.api_load", "client", json.dumps(cfg)],
                                 capture_output=True, text=True, timeout=duration + warmup + 60)
            if got.returncode != 0:
                raise RuntimeError(f"the load generator failed (exit {got.returncode}): {got.stderr.strip()[-2000:]}")
            res = json.loads(got.stdout)
            res.update(mode="closed loop" if rate <= 0 else "open loop", target_rate=rate)
            res["meets_target"] = bool(res["rps"] >= TARGET_RPS and res["p99_ms"] is not None
                                       and res["p99_ms"] <= TARGET_P99_MS and res["errors"] == 0)
            runs.append(res)
            say(line(res))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    doc = {"benchmark": "api_load", "endpoint": "GET /stops/{id}/arrivals", "feed": str(gtfs), "stops": len(stops),
           "at": at, "limit": limit, "server": "lintas api: uvicorn, one worker, its own process",
           "client": "python -m benchmarks.api_load client: asyncio raw sockets, HTTP/1.1 keep-alive, its own process",
           "connections": connections, "duration_s": duration, "warmup_s": warmup,
           "target": {"rps": TARGET_RPS, "p99_ms": TARGET_P99_MS}, "machine": machine(),
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": runs}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".api_load.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(out / "api_load.json")
    return doc


def line(res: dict) -> str:
    rate = "closed loop" if res["target_rate"] <= 0 else f"offered {res['target_rate']:.0f}/s"
    return (f"{rate:>16}: {res['rps']:8.1f} req/s ({res['rps'] / TARGET_RPS:.2f} x target), p50 {res['p50_ms']} ms, "
            f"p99 {res['p99_ms']} ms ({(res['p99_ms'] or 0) / TARGET_P99_MS:.2f} x limit), max {res['max_ms']} ms, "
            f"errors {res['errors']}  {'MEETS' if res['meets_target'] else 'misses'} the target")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "client":
        client_main(sys.argv[2:])
    else:
        raise SystemExit("usage: python -m benchmarks.api_load client CONFIG_JSON (lintas bench api runs it)")
