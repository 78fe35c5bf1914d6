"""The engine's operator endpoint: a person asks the engine to clear a junction's latched fault.

A latched conflict-monitor fault is cleared only by a :class:`~engine.protocol.messages.FaultReset` on the
CURVE-authenticated command channel, which only the engine can send (``Engine.reset``). This module
lets an operator ask for one:

    lintas reset A1 --operator budi --keys /etc/lintas/keys    # -> ResetRequest -> engine
                                                              # <- ResetReply (ok, or why not)

The engine binds a ROUTER (``OperatorServer``) that serves with the engine's key pair in its own ZAP
domain (``OPERATOR_DOMAIN``), whose allow-list is ``DIR/operators/`` only: a controller, field or bus
key, or any key not in that folder, fails the CURVE handshake and never delivers a request. Without
keys the endpoint may be ``ipc://`` or ``inproc://`` only (file permissions / one process); ``tcp://``,
even on loopback, is refused, because any local user could reach it.

Frames: a REQ client sends ``[payload]`` (the ROUTER sees ``[id, "", payload]``), a DEALER ``[payload]``
or ``["", payload]``; the reply goes back with the same envelope. A payload that does not decode into
a ``reset-request`` is counted in ``stats`` and answered ``bad-request``; frames without a payload
are dropped and counted. Nothing an operator sends can stop the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import zmq

from engine.protocol import bus
from engine.protocol import messages as m
from engine.protocol.security import OPERATOR_DOMAIN, SecurityError

log = logging.getLogger("lintas.operator")

DEFAULT_OPERATOR_ENDPOINT = "tcp://127.0.0.1:5558"
KEYLESS_SCHEMES = ("ipc", "inproc")
_NOBLOCK = int(zmq.NOBLOCK)


class OperatorError(RuntimeError):
    """The operator's request got no answer (engine not reachable, key not accepted, timeout)."""


def check_operator_bind(endpoint: str, security) -> None:
    """An operator endpoint without keys is refused on anything but ipc:// and inproc://."""
    if security is not None:
        return
    scheme = endpoint.partition("://")[0].lower()
    if scheme not in KEYLESS_SCHEMES:
        raise SecurityError(f"refusing to serve operator resets on {endpoint} without keys: pass --keys DIR "
                            f"(operator keys go to DIR/operators/: lintas keys DIR --operator NAME)")


@dataclass(frozen=True)
class Request:
    """One request from the operator socket: ``msg`` is None when the payload did not decode."""

    envelope: tuple[bytes, ...]
    key: str  # the authenticated key's name (ZAP User-Id), '' without CURVE
    msg: m.ResetRequest | None
    error: str = ""


class OperatorServer:
    """Engine side: a ROUTER on the operator endpoint (CURVE, ``operators/`` allow-list)."""

    def __init__(self, ctx: zmq.Context, endpoint: str, security=None) -> None:
        check_operator_bind(endpoint, security)
        self.endpoint = endpoint
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        try:
            if security is not None:
                security.server(self.sock, role="engine", domain=OPERATOR_DOMAIN)
            self.sock.bind(endpoint)
        except Exception:
            self.sock.close(0)
            raise
        self.stats = bus.Stats()

    def drain(self) -> Iterator[Request]:
        """Every request waiting now (non-blocking); frames without a payload are counted and dropped."""
        while True:
            if not self.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                return
            try:
                frames = self.sock.recv_multipart(_NOBLOCK, copy=False)
            except zmq.Again:
                return
            # [id, payload] (DEALER) or [id, "", payload] (REQ, or a DEALER that mimics one)
            if len(frames) not in (2, 3) or (len(frames) == 3 and frames[1].bytes != b""):
                self.stats.drop("frames")
                continue
            envelope = tuple(f.bytes for f in frames[:-1])
            key = _user_id(frames[-1])
            msg = bus.safe_decode(frames[-1].bytes, self.stats)
            if msg is None:
                yield Request(envelope, key, None, "the payload is not a MessagePack map the protocol knows")
            elif not isinstance(msg, m.ResetRequest):
                self.stats.drop("unexpected-type")
                yield Request(envelope, key, None, f"expected a 'reset-request', got a '{type(msg).__name__}'")
            else:
                yield Request(envelope, key, msg)

    def reply(self, req: Request, msg: m.ResetReply) -> bool:
        """Answer ``req``; False (counted) when the requester has gone."""
        try:
            self.sock.send_multipart([*req.envelope, m.encode(msg)], _NOBLOCK)
        except zmq.ZMQError:
            self.stats.drop("requester-gone")
            return False
        self.stats.sent += 1
        return True

    def close(self) -> None:
        self.sock.close(0)


def _user_id(frame: zmq.Frame) -> str:
    try:
        uid = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError):
        return ""
    return uid if isinstance(uid, str) else ""


def request_reset(endpoint: str, junction: str, operator: str, *, security=None, ctx: zmq.Context | None = None,
                  timeout: float = 10.0) -> m.ResetReply:
    """Ask the engine at ``endpoint`` to reset ``junction``'s fault; returns its reply. Raises
    :class:`OperatorError` when no reply comes within ``timeout`` seconds. With ``security`` (a
    :class:`~engine.protocol.security.Security` loaded for an operator key) the socket is a CURVE client of
    the engine's key."""
    ctx = ctx or zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if security is not None:
            security.client(sock, server="engine")
        sock.connect(endpoint)
        sock.send(m.encode(m.ResetRequest(junction=junction, operator=operator)))
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise OperatorError(f"no reply from the engine at {endpoint} within {timeout:g} s (is the engine "
                                f"serving operators there, and is your key in its operators/ folder?)")
        data = sock.recv()
    finally:
        sock.close(0)
    stats = bus.Stats()
    msg = bus.safe_decode(data, stats)
    if not isinstance(msg, m.ResetReply):
        raise OperatorError(f"the peer at {endpoint} did not answer with a reset-reply")
    return msg


__all__ = [
    "DEFAULT_OPERATOR_ENDPOINT",
    "OperatorError",
    "OperatorServer",
    "Request",
    "check_operator_bind",
    "request_reset",
]
