"""ZeroMQ transports for Lintas: the telemetry bus (PUB -> XSUB|XPUB forwarder -> SUB) and the
engine -> controller command channel (ROUTER, addressed by junction id <- DEALER).

One code path serves ``inproc://`` (one process, fastest), ``ipc://`` and ``tcp://``: only the
endpoint strings differ (see :func:`endpoints`). Sockets never raise on bad input: a frame that does
not decode into a known message is dropped and counted in ``stats.dropped``.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import msgspec
import zmq

from engine.protocol import messages as m
from engine.protocol.security import check_bind, watch_socket

TRANSPORTS = ("inproc", "ipc", "tcp")
IPC_PREFIX = "lintas-"  # the folder of an ipc:// endpoint set: <tmp>/lintas-<pid of its maker>-<random>
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)


class TransportError(ValueError):
    """Bad transport name or endpoint."""


_BIND_REASONS = {  # errno -> what an operator should read
    errno.EADDRINUSE: "address already in use (another process holds it, or another option of this command)",
    errno.EADDRNOTAVAIL: "no such address on this host",
    errno.EACCES: "permission denied",
    errno.EINVAL: "invalid endpoint (expected tcp://HOST:PORT, ipc://PATH or inproc://NAME)",
    errno.EPROTONOSUPPORT: "unknown transport (tcp, ipc or inproc)",
    errno.ENODEV: "no such interface or host",
    errno.ENOENT: "no such folder",
}


class EndpointError(TransportError):
    """A socket could not bind or connect an endpoint; ``endpoint`` names it (a command names its option)."""

    def __init__(self, action: str, endpoint: str, exc: zmq.ZMQError) -> None:
        self.endpoint = endpoint
        self.action = action
        super().__init__(f"cannot {action} {endpoint}: {_BIND_REASONS.get(exc.errno, exc.strerror)}")


def _attach(sock: zmq.Socket, endpoint: str, *, bind: bool) -> None:
    """Bind or connect ``sock``; a failure is an :class:`EndpointError` that names the endpoint, and closes it."""
    try:
        (sock.bind if bind else sock.connect)(endpoint)
    except zmq.ZMQError as exc:
        sock.close(0)
        raise EndpointError("bind" if bind else "connect", endpoint, exc) from None


@dataclass(frozen=True)
class Endpoints:
    """Where the pieces meet. Publishers connect to ``bus_in`` (the forwarder's XSUB), subscribers to
    ``bus_out`` (its XPUB); the engine binds ``commands`` (ROUTER) and controllers connect to it."""

    bus_in: str
    bus_out: str
    commands: str

    def as_dict(self) -> dict[str, str]:
        return {"bus_in": self.bus_in, "bus_out": self.bus_out, "commands": self.commands}


def _free_tcp_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def endpoints(transport: str, *, host: str = "127.0.0.1", name: str | None = None) -> Endpoints:
    """Fresh endpoints for one city on ``transport`` (inproc, ipc or tcp)."""
    name = name or uuid.uuid4().hex[:10]
    if transport == "inproc":
        return Endpoints(f"inproc://lintas-{name}-in", f"inproc://lintas-{name}-out", f"inproc://lintas-{name}-cmd")
    if transport == "ipc":
        d = tempfile.mkdtemp(prefix=f"{IPC_PREFIX}{os.getpid()}-")  # the pid: ipc_sweep_stale knows it is dead
        return Endpoints(f"ipc://{d}/bus-in", f"ipc://{d}/bus-out", f"ipc://{d}/cmd")
    if transport == "tcp":
        return Endpoints(*(f"tcp://{host}:{_free_tcp_port(host)}" for _ in range(3)))
    raise TransportError(f"unknown transport '{transport}' (choose one of: {', '.join(TRANSPORTS)})")


@dataclass
class Stats:
    """Counters a socket wrapper keeps (exported by the metrics endpoint)."""

    sent: int = 0
    received: int = 0
    dropped: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped += 1
        self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + 1


def safe_decode(data: bytes, stats: Stats) -> m.Message | None:
    """Decode one payload frame; count and drop anything malformed or unknown."""
    try:
        msg = m.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        stats.drop(type(exc).__name__)
        return None
    except Exception as exc:  # noqa: BLE001 - a malformed frame must never raise through a loop
        stats.drop(type(exc).__name__)
        return None
    if msg.v > m.SCHEMA_VERSION:
        stats.drop("version")
        return None
    stats.received += 1
    return msg


def _receive(sock: zmq.Socket, n_frames: int, stats: Stats) -> Iterator[tuple[list[bytes], m.Message]]:
    """Every message waiting on ``sock`` now (non-blocking) as (frames, decoded last frame); frames of
    the wrong count or that do not decode are counted in ``stats`` and skipped."""
    while True:
        if not sock.getsockopt(_EVENTS) & _POLLIN:  # cheaper than raising zmq.Again
            return
        try:
            frames = sock.recv_multipart(_NOBLOCK)
        except zmq.Again:
            return
        if len(frames) != n_frames:
            stats.drop("frames")
            continue
        msg = safe_decode(frames[-1], stats)
        if msg is not None:
            yield frames, msg


# -- forwarder -------------------------------------------------------------------------------------
class Forwarder:
    """XSUB/XPUB forwarder (``lintas bus``). ``start()`` runs it in a daemon thread (zmq.proxy runs
    in C, without the GIL); ``run()`` in the foreground. ``stop()`` ends it cleanly."""

    def __init__(self, ep: Endpoints, ctx: zmq.Context | None = None, security=None) -> None:
        self.ep = ep
        self.ctx = ctx or zmq.Context.instance()
        self.security = security
        self._check_binds()
        self._ctrl_addr = f"inproc://lintas-fwd-ctrl-{uuid.uuid4().hex[:8]}"
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: Exception | None = None

    def _check_binds(self) -> None:
        """Refuse a network bind without security (engine.protocol.security.check_bind)."""
        check_bind(self.ep.bus_in, self.security)
        check_bind(self.ep.bus_out, self.security)

    def _serve(self, on_ready: Callable[[], object] | None = None) -> None:
        xsub = self.ctx.socket(zmq.XSUB)
        xpub = self.ctx.socket(zmq.XPUB)
        ctrl = self.ctx.socket(zmq.PAIR)
        for s in (xsub, xpub):
            s.setsockopt(zmq.LINGER, 0)
            if self.security is not None:
                try:
                    self.security.server(s, role="bus")
                except Exception as exc:  # noqa: BLE001 - kept, and raised by start() in the caller's thread
                    for x in (xsub, xpub, ctrl):
                        x.close(0)
                    self._error = exc
                    self._ready.set()
                    return
        xpub.setsockopt(zmq.SNDHWM, 100000)
        xsub.setsockopt(zmq.RCVHWM, 100000)
        watch_socket(xsub, "bus")
        watch_socket(xpub, "bus")
        try:
            _attach(xsub, self.ep.bus_in, bind=True)
            _attach(xpub, self.ep.bus_out, bind=True)
        except EndpointError as exc:  # kept, and raised by start() or run() in the caller's thread
            for x in (xsub, xpub, ctrl):
                x.close(0)
            self._error = exc
            self._ready.set()
            return
        ctrl.bind(self._ctrl_addr)
        self._ready.set()
        if on_ready is not None:
            on_ready()
        try:
            zmq.proxy_steerable(xsub, xpub, None, ctrl)
        except zmq.ContextTerminated:
            pass
        finally:
            for s in (xsub, xpub, ctrl):
                s.close(0)

    def start(self) -> Forwarder:
        self._check_binds()
        self._thread = threading.Thread(target=self._serve, name="lintas-bus", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if self._error is not None:
            self._thread.join(5)
            self._thread = None
            raise self._error
        return self

    def run(self, on_ready: Callable[[], object] | None = None) -> None:
        """Serve in the foreground; ``on_ready()`` once both endpoints are bound. Raises what stopped it from
        serving (a SecurityError, an EndpointError)."""
        self._check_binds()
        self._serve(on_ready)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._thread is None:
            return
        c = self.ctx.socket(zmq.PAIR)
        c.setsockopt(zmq.LINGER, 0)
        c.connect(self._ctrl_addr)
        c.send(b"TERMINATE")
        self._thread.join(5)
        c.close(0)
        self._thread = None


# -- pub/sub -----------------------------------------------------------------------------------------
class Publisher:
    """Publishes typed messages on the bus: frame 1 topic, frame 2 MessagePack payload."""

    def __init__(self, ctx: zmq.Context, ep: Endpoints, security=None) -> None:
        self.sock = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 100000)
        if security is not None:
            security.client(self.sock, server="bus")
        watch_socket(self.sock, "bus")
        _attach(self.sock, ep.bus_in, bind=False)
        self.stats = Stats()

    def publish(self, topic: bytes, msg: m.Message) -> None:
        self.sock.send_multipart((topic, m.encode(msg)), copy=False)
        self.stats.sent += 1

    def publish_raw(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def close(self) -> None:
        self.sock.close(0)


class Subscriber:
    """Receives typed messages from the bus for the given topics (prefix match)."""

    def __init__(self, ctx: zmq.Context, ep: Endpoints, topics: Iterable[bytes], security=None) -> None:
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 100000)
        if security is not None:
            security.client(self.sock, server="bus")
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t)
        watch_socket(self.sock, "bus")
        _attach(self.sock, ep.bus_out, bind=False)
        self.stats = Stats()

    def drain(self) -> Iterator[tuple[bytes, m.Message]]:
        """Every message waiting now (non-blocking); malformed ones are counted and skipped."""
        for frames, msg in _receive(self.sock, 2, self.stats):
            yield frames[0], msg

    def close(self) -> None:
        self.sock.close(0)


# -- command channel -------------------------------------------------------------------------------
class CommandServer:
    """Engine side of the command channel: a ROUTER that addresses controllers by junction id (the
    DEALER's routing id). Receives controller states and heartbeats."""

    def __init__(self, ctx: zmq.Context, ep: Endpoints, security=None) -> None:
        check_bind(ep.commands, security)
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.setsockopt(zmq.SNDHWM, 10000)
        if security is not None:
            try:
                security.server(self.sock, role="engine")
            except Exception:
                self.sock.close(0)
                raise
        watch_socket(self.sock, "engine")
        _attach(self.sock, ep.commands, bind=True)
        self.stats = Stats()

    def send(self, junction: str, msg: m.Message) -> bool:
        """Send to one controller; False (counted) when it is not connected."""
        try:
            self.sock.send_multipart((junction.encode(), m.encode(msg)), _NOBLOCK)
        except zmq.ZMQError:
            self.stats.drop("unroutable")
            return False
        self.stats.sent += 1
        return True

    def drain(self) -> Iterator[tuple[str, m.Message]]:
        for frames, msg in _receive(self.sock, 2, self.stats):
            yield frames[0].decode(errors="replace"), msg

    def close(self) -> None:
        self.sock.close(0)


class CommandClient:
    """Controller side of the command channel: a DEALER whose routing id is the junction id."""

    def __init__(self, ctx: zmq.Context, ep: Endpoints, junction: str, security=None) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTING_ID, junction.encode())
        self.sock.setsockopt(zmq.SNDHWM, 1000)
        # a restarted engine must not receive a backlog of old states
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        if security is not None:
            security.client(self.sock, server="engine")
        watch_socket(self.sock, "engine")
        _attach(self.sock, ep.commands, bind=False)
        self.stats = Stats()

    def send(self, msg: m.Message) -> None:
        try:
            self.sock.send(m.encode(msg), _NOBLOCK)
            self.stats.sent += 1
        except zmq.Again:
            self.stats.drop("engine-unreachable")

    def drain(self) -> Iterator[m.Message]:
        for _frames, msg in _receive(self.sock, 1, self.stats):
            yield msg

    def close(self) -> None:
        self.sock.close(0)


def ipc_cleanup(ep: Endpoints) -> None:
    """Remove the socket files of an ipc:// endpoint set, and the folder :func:`endpoints` made for them."""
    folders = set()
    for addr in ep.as_dict().values():
        if addr.startswith("ipc://"):
            path = addr[len("ipc://"):]
            try:
                os.unlink(path)
            except OSError:
                pass
            folders.add(os.path.dirname(path))
    for d in folders:
        if os.path.basename(d).startswith(IPC_PREFIX):
            try:
                os.rmdir(d)  # only when empty: never someone else's files
            except OSError:
                pass


def ipc_sweep_stale(tmp: str | None = None, min_age_s: float = 2.0, legacy_age_s: float = 3600.0) -> list[str]:
    """Remove the ipc folders (``<tmp>/lintas-<pid>-*``, ours) that a process killed outright left behind: its
    pid is gone, nothing listens on its sockets, it holds nothing but sockets and nothing changed in it for
    ``min_age_s``. A folder named without a pid (``lintas-*``, by versions before 2026-12) needs
    ``legacy_age_s`` instead of a dead pid. Returns the folders removed."""
    import re
    import socket
    import stat
    import time

    tmp = tmp or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(tmp)
    except OSError:
        return removed
    for name in names:
        mt = re.fullmatch(re.escape(IPC_PREFIX) + r"(?:(\d+)-)?\w+", name)
        d = os.path.join(tmp, name)
        try:
            st = os.lstat(d)
            if not mt or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                continue
            pid = mt.group(1)
            if (time.time() - st.st_mtime < (min_age_s if pid else legacy_age_s)
                    or (pid and _pid_alive(int(pid)))):
                continue
            files = [os.path.join(d, f) for f in os.listdir(d)]
            if not all(stat.S_ISSOCK(os.lstat(f).st_mode) for f in files):
                continue
            live = False
            for f in files:  # a pid of another pid namespace may look dead here: a listener says otherwise
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    try:
                        probe.connect(f)
                        live = True
                    except OSError:
                        pass
            if live:
                continue
            for f in files:
                os.unlink(f)
            os.rmdir(d)
            removed.append(d)
        except OSError:
            continue
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
