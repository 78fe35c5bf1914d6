"""ZeroMQ CURVE security for Lintas: encryption and authentication of the bus and the command channel.

Keys live in one directory (``lintas keys DIR`` creates it)::

    DIR/                     mode 0700
      engine.key             public key of the engine  (0644)
      engine.key_secret      its secret key            (0600)
      bus.key, bus.key_secret, field.key, ... one pair per name
      allowed/               the allow-list: public keys the engine and the bus accept
        engine.key, bus.key, field.key, ...
      operators/             the operator allow-list: keys the engine's operator endpoint accepts
        operator.key, ...

Roles. The forwarder (``lintas bus``) serves both bus sockets with the ``bus`` key pair; the engine's
command ROUTER serves with the ``engine`` key pair. Every connecting socket (publishers, subscribers,
controllers' DEALERs) uses its process's own pair and names the server it connects to, so it talks
only to the holder of that server's secret key (a rogue server is refused by the CURVE handshake).
The servers run a ZAP handler (one :class:`zmq.auth.thread.ThreadAuthenticator` per context) that
accepts exactly the public keys in ``DIR/allowed/``; a connection without keys, or with a key not in
the list, never delivers a message. Remove a file from ``allowed/`` to revoke a key
(:meth:`Security.reload` or a restart picks it up). The engine's operator endpoint (fault resets,
``engine/operator.py``) authenticates in its own ZAP domain against ``DIR/operators/`` only.

No key is ever logged, printed, put in a ``repr`` or in an exception message: errors name files only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import queue
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Self

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger("lintas.security")

ZAP_DOMAIN = "lintas"
OPERATOR_DOMAIN = "lintas-operator"
ALLOWED_DIR = "allowed"
OPERATORS_DIR = "operators"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
DEFAULT_NAMES = ("engine", "bus", "field", "operator")
DEFAULT_OPERATORS = ("operator",)  # a pair of one of these names also goes to operators/ when created
SERVER_ROLES = ("bus", "engine")
LOCAL_SCHEMES = ("inproc", "ipc")


class SecurityError(ValueError):
    """Missing, unreadable or unsafe key files, or an unsafe configuration (e.g. an open tcp bind)."""


# -- names and files -------------------------------------------------------------------------------
def safe_name(name: str) -> str:
    """``name`` as a safe file stem: letters, digits, ``-_.`` kept, anything else becomes ``_``; no
    leading dot (no hidden files, no ``..``). The same rule ``lintas compile`` uses for junction files."""
    s = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in str(name))
    s = s.lstrip(".")
    if not s:
        raise SecurityError(f"invalid key name {name!r}: use letters, digits, '-', '_' or '.'")
    return s


def public_file(directory: str | os.PathLike, name: str) -> Path:
    return Path(directory) / f"{safe_name(name)}{PUBLIC_SUFFIX}"


def secret_file(directory: str | os.PathLike, name: str) -> Path:
    return Path(directory) / f"{safe_name(name)}{SECRET_SUFFIX}"


def create_keys(directory: str | os.PathLike, names: Iterable[str] = DEFAULT_NAMES, *, force: bool = False,
                operators: Iterable[str] = ()) -> list[Path]:
    """Create a CURVE key pair ``<name>.key`` / ``<name>.key_secret`` for each name in ``directory``
    (mode 0700; secret files 0600, public ones 0644) and put each new public key in ``allowed/``.

    ``operators`` are more names, whose public keys also go to ``operators/`` (the allow-list of the
    engine's operator endpoint), also when their pair already exists; a new pair named ``operator``
    goes there too. Existing complete pairs are kept (idempotent) unless ``force``; half a pair is an
    error. Returns the public key files, one per distinct (sanitised) name, in order. Secret files are
    written in a private temporary folder and moved into place, so they are never readable by others."""
    d = Path(directory)
    ops = [safe_name(n) for n in operators]
    try:
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        allowed = d / ALLOWED_DIR
        allowed.mkdir(exist_ok=True)
        os.chmod(allowed, 0o755)
        operators_dir = d / OPERATORS_DIR
        operators_dir.mkdir(exist_ok=True)
        os.chmod(operators_dir, 0o755)
    except OSError as exc:
        raise SecurityError(f"cannot create key directory {d}: {exc.strerror or exc}") from None
    out: list[Path] = []
    for raw in [*names, *ops]:
        name = safe_name(raw)
        pub, sec = public_file(d, name), secret_file(d, name)
        if pub in out:
            continue
        out.append(pub)
        if not force and (pub.exists() or sec.exists()):
            if not (pub.exists() and sec.exists()):
                have, missing = (pub, sec) if pub.exists() else (sec, pub)
                raise SecurityError(f"incomplete key pair: {have} exists but {missing} is missing "
                                    f"(remove it, or recreate the pair with --force)")
            _chmod(sec, 0o600)
            if name in ops:
                _copy_public(pub, operators_dir)
            continue
        tmp = Path(tempfile.mkdtemp(prefix=".lintas-keys-", dir=d))  # 0700
        try:
            tpub, tsec = (Path(p) for p in zmq.auth.create_certificates(tmp, name))
            os.chmod(tsec, 0o600)
            os.chmod(tpub, 0o644)
            os.replace(tsec, sec)
            os.replace(tpub, pub)
            _copy_public(pub, allowed)
            if name in ops or name in DEFAULT_OPERATORS:
                _copy_public(pub, operators_dir)
        except OSError as exc:
            raise SecurityError(f"cannot write key pair {pub}: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("created key pair %s", name)
    return out


def _copy_public(pub: Path, folder: Path) -> None:
    shutil.copyfile(pub, folder / pub.name)
    os.chmod(folder / pub.name, 0o644)


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError:
        pass


def _load(path: Path, *, secret: bool) -> tuple[bytes, bytes | None]:
    """(public, secret) z85 keys from a certificate file; SecurityError naming the file, never a key."""
    if not path.is_file():
        stem = path.name[: -len(SECRET_SUFFIX if secret else PUBLIC_SUFFIX)]
        raise SecurityError(f"key file {path} is missing (lintas keys {path.parent} --name {stem} creates it)")
    if secret and os.name == "posix":
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise SecurityError(f"key file {path} is unreadable: {exc.strerror or exc}") from None
        if mode & 0o077:
            raise SecurityError(f"secret key file {path} is readable by others (mode {stat.filemode(mode)}): "
                                f"chmod 600 {path}")
    try:
        public, sec = zmq.auth.load_certificate(path)
    except (OSError, ValueError, UnicodeError):
        raise SecurityError(f"key file {path} is unreadable or not a CURVE certificate") from None
    ok = _valid_key(public) and (not secret or (sec is not None and _valid_key(sec)))
    if not ok:
        raise SecurityError(f"key file {path} does not hold a valid CURVE {'key pair' if secret else 'public key'}")
    return public, sec


def fingerprint(key: bytes | str) -> str:
    """A public key's fingerprint: the first 16 hex digits of the SHA-256 of its 32 bytes. It names a key in
    logs without showing it (a server logs a refused key's; a client logs its own next to its name).
    ``key``: the 32 raw bytes or the 40 z85 characters of a key file."""
    raw = key.encode("ascii") if isinstance(key, str) else bytes(key)
    if len(raw) == 40:
        raw = z85.decode(raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def key_fingerprint(path: str | os.PathLike) -> str:
    """The fingerprint of the public key in a key file (``NAME.key`` or ``NAME.key_secret``)."""
    public, _ = _load(Path(path), secret=False)
    return fingerprint(public)


def _valid_key(k: bytes | None) -> bool:
    if k is None or len(k) != 40:
        return False
    try:
        return len(z85.decode(k)) == 32
    except Exception:  # noqa: BLE001 - anything that is not z85
        return False


# -- logs without keys -----------------------------------------------------------------------------
_REDACTED = "<key>"


def _redact(value):
    """Replace anything that looks like a key (32 raw bytes, 40 z85 characters) inside log arguments."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) == 32 or (len(value) == 40 and _valid_key(bytes(value))):
            return _REDACTED
        return value
    if isinstance(value, str):
        return _REDACTED if len(value) == 40 and _valid_key(value.encode("ascii", "replace")) else value
    if isinstance(value, (list, tuple)):
        return type(value)(_redact(v) for v in value)
    return value


class _RedactingLog:
    """What zmq.auth's Authenticator logs through: its messages carry client keys; this drops them."""

    def __init__(self, logger: logging.Logger, secrets: _Keyring) -> None:
        self._log = logger
        self._keys = secrets

    def _emit(self, level: int, msg, *args, **kwargs) -> None:
        if not self._log.isEnabledFor(level):
            return
        try:
            text = str(msg) % tuple(_redact(a) for a in args) if args else str(msg)
        except Exception:  # noqa: BLE001 - a bad format string must not break authentication
            text = str(msg)
        self._log.log(level, "%s", self._keys.scrub(text))

    def debug(self, msg, *args, **kwargs) -> None:
        self._emit(logging.DEBUG, msg, *args)

    def info(self, msg, *args, **kwargs) -> None:
        self._emit(logging.INFO, msg, *args)

    def warning(self, msg, *args, **kwargs) -> None:
        self._emit(logging.WARNING, msg, *args)

    def error(self, msg, *args, **kwargs) -> None:
        self._emit(logging.ERROR, msg, *args)

    def exception(self, msg, *args, **kwargs) -> None:
        self._emit(logging.ERROR, msg, *args)


class _Keyring:
    """Every key string this process knows, so that a formatted log line can be scrubbed of them."""

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *keys: bytes | None) -> None:
        with self._lock:
            for k in keys:
                if k:
                    self._keys.add(k.decode("ascii", "replace"))
                    self._keys.add(repr(k))
                    self._keys.add(repr(z85.decode(k)))

    def scrub(self, text: str) -> str:
        with self._lock:
            keys = list(self._keys)
        for k in keys:
            if k in text:
                text = text.replace(k, _REDACTED)
        return text

    def __repr__(self) -> str:
        return f"<keyring of {len(self._keys)} entries>"


_KEYRING = _Keyring()


# -- the ZAP handler, one per context --------------------------------------------------------------
LOG_EVERY = 60.0  # s: a refusal (per key) or a handshake failure (per endpoint) is logged at most once this often


def _printable(raw: bytes) -> str:
    """A peer's routing id for a log line: its text when printable, else its hex."""
    text = raw.decode("ascii", "replace")
    return text if text.isprintable() and "\ufffd" not in text else raw.hex()


class _Authenticator(ThreadAuthenticator):
    """Accepts the public keys in ``allowed`` for the Lintas ZAP domain; the ZMQ ``User-Id`` of a peer
    is its key's name (the file stem in ``allowed/``), not its key. Counts every refused key by reason in
    ``refused`` and logs it (its fingerprint, never the key) at most once per key per ``log_every`` s."""

    def __init__(self, ctx: zmq.Context, allowed: Path) -> None:
        super().__init__(ctx, log=_RedactingLog(logging.getLogger("lintas.security.zap"), _KEYRING))
        self.allowed_dir = allowed
        self.operators_dir = allowed.parent / OPERATORS_DIR
        self.names: dict[bytes, str] = {}
        self.users = 0
        self.refused: Counter[str] = Counter()  # refused CURVE keys, by reason (unknown-key, not-operator)
        self.log_every = LOG_EVERY
        self._logged: dict[str, float] = {}  # fingerprint -> when its refusal was last logged (monotonic)
        self._peer = ("", "")  # address and routing id of the connection being authenticated
        self.serving: set[str] = set()  # the roles whose server sockets ask this handler (for the log)

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        self._peer = (msg[3].decode("utf-8", "replace") if len(msg) > 3 else "",
                      _printable(msg[4]) if len(msg) > 4 else "")
        await super().handle_zap_message(msg)

    async def _authenticate_curve(self, domain: str, client_key: bytes) -> tuple[bool, bytes]:
        allowed, reason = await super()._authenticate_curve(domain, client_key)
        if not allowed:
            self._refuse(domain, client_key)
        return allowed, reason

    def _refuse(self, domain: str, client_key: bytes) -> None:
        fp = fingerprint(client_key)
        name = self.names.get(z85.encode(client_key))  # a key of the other list (a controller's, an operator's)
        operators = domain == OPERATOR_DOMAIN
        reason = "not-operator" if operators and name else "unknown-key"
        self.refused[reason] += 1
        now = time.monotonic()
        if now - self._logged.get(fp, -self.log_every) < self.log_every:
            return
        if len(self._logged) > 1000:  # a flood of keys: forget those logged long ago
            self._logged = {k: v for k, v in self._logged.items() if now - v < self.log_every}
        self._logged[fp] = now
        address, rid = self._peer
        who = f"from {address or 'an unknown address'}" + (f" (routing id {rid!r})" if rid else "")
        folder = self.operators_dir if operators else self.allowed_dir
        known = f" (it is {name}'s key, from {self.allowed_dir if operators else self.operators_dir})" if name else ""
        at = "the engine's operator endpoint" if operators else " and ".join(
            f"the {r}" for r in sorted(self.serving - {"operator"})) or "this process"
        log.warning("refused CURVE key %s %s at %s: not in %s/%s; to accept it, copy its .key file there and "
                    "restart (the refused process logs its key's name next to this fingerprint)", fp, who, at,
                    folder, known)

    @staticmethod
    def _read(folder: Path) -> dict[bytes, str]:
        names: dict[bytes, str] = {}
        if folder.is_dir():
            for f in sorted(folder.glob(f"*{PUBLIC_SUFFIX}")):
                public, _ = _load(f, secret=False)
                names[public] = f.name[: -len(PUBLIC_SUFFIX)]
        return names

    def load_allowed(self) -> int:
        names = self._read(self.allowed_dir)
        operators = self._read(self.operators_dir)  # missing folder: no operator is accepted
        _KEYRING.add(*names, *operators)
        self.names = {**names, **operators}
        self.certs[ZAP_DOMAIN] = dict.fromkeys(names, True)
        self.certs[OPERATOR_DOMAIN] = dict.fromkeys(operators, True)
        self.allow_any = False
        return len(names)

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.names.get(z85.encode(client_public_key), "unknown")


_AUTH: dict[int, tuple[zmq.Context, _Authenticator]] = {}
_AUTH_LOCK = threading.Lock()


def _authenticator(ctx: zmq.Context) -> _Authenticator | None:
    entry = _AUTH.get(id(ctx))
    if entry is None or entry[0] is not ctx or ctx.closed or not entry[1].is_alive():
        return None
    return entry[1]


# -- per-process security --------------------------------------------------------------------------
class Security:
    """The keys of one process (``me``) and the ZAP handler of its context.

    ``server(sock, role)`` makes ``sock`` a CURVE server with the ``role`` key pair (``bus`` for the
    forwarder, ``engine`` for the command ROUTER) under the ZAP allow-list; ``client(sock, server)``
    makes it a CURVE client with this process's own pair that accepts only the given server's key.
    Build one with :meth:`load`; call :meth:`close` before destroying the context."""

    def __init__(self, directory: Path, me: str, ctx: zmq.Context, public: bytes, secret: bytes) -> None:
        self.directory = Path(directory)
        self.me = safe_name(me)
        self.ctx = ctx
        self.__public = public
        self.__secret = secret
        self.__servers: dict[str, tuple[bytes, bytes]] = {self.me: (public, secret)}
        self.__peers: dict[str, bytes] = {}
        self._auth: _Authenticator | None = None
        self._closed = False

    # construction ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | os.PathLike, me: str, ctx: zmq.Context | None = None) -> Security:
        """Load ``<me>.key_secret`` from ``directory`` and, when ``directory/allowed/`` exists, start
        the context's ZAP handler (once per context) on that allow-list. Peers' public keys are read
        when first needed. Raises :class:`SecurityError` naming the file that is missing or bad."""
        d = Path(directory)
        if not d.is_dir():
            raise SecurityError(f"key directory {d} does not exist (lintas keys {d} creates it)")
        ctx = ctx if ctx is not None else zmq.Context.instance()
        public, secret = _load(secret_file(d, me), secret=True)
        assert secret is not None
        _KEYRING.add(public, secret)
        self = cls(d, me, ctx, public, secret)
        if (d / ALLOWED_DIR).is_dir():
            self._start_auth()
        log.info("security: %s keys loaded from %s", self.me, d)
        return self

    def _start_auth(self) -> None:
        allowed = (self.directory / ALLOWED_DIR).resolve()
        with _AUTH_LOCK:
            auth = _authenticator(self.ctx)
            if auth is None:
                auth = _Authenticator(self.ctx, allowed)
                n = auth.load_allowed()
                try:
                    auth.start()
                except zmq.ZMQError as exc:  # another ZAP handler already bound in this context
                    raise SecurityError(f"cannot start the ZAP handler: {exc}") from None
                _AUTH[id(self.ctx)] = (self.ctx, auth)
                log.info("security: ZAP allow-list %s: %d keys", allowed, n)
            elif auth.allowed_dir != allowed:
                raise SecurityError(f"this context already authenticates against {auth.allowed_dir}, "
                                    f"not {allowed}: use one key directory per context")
            auth.users += 1
            self._auth = auth

    def check_serving(self, role: str | None = None) -> None:
        """Refuse to start a server (``role``: the bus, the engine) whose key directory cannot tell who may
        connect: no ``allowed/`` folder (it could accept nobody's key, or, misconfigured, anybody's), or one
        that holds no public key (every client would be refused). :class:`SecurityError` names the folder."""
        role = role or self.me
        allowed = self.directory / ALLOWED_DIR
        if not allowed.is_dir():
            raise SecurityError(f"{allowed}/ is missing: the {role} cannot serve with --keys {self.directory} "
                                f"without the allow-list of the public keys it accepts (lintas keys "
                                f"{self.directory} creates it and copies every public key it makes into it)")
        if not any(allowed.glob(f"*{PUBLIC_SUFFIX}")):
            raise SecurityError(f"{allowed}/ holds no public key (*{PUBLIC_SUFFIX}): the {role} would refuse every "
                                f"client; copy the clients' .key files there (lintas keys {self.directory} --name "
                                f"NAME creates a pair and lists it)")

    def fingerprint(self) -> str:
        """This process's public key's fingerprint (:func:`fingerprint`)."""
        return fingerprint(self.__public)

    def refused(self) -> Counter[str]:
        """Clients' CURVE keys the ZAP handler of this context refused, by reason (``unknown-key``: not in
        ``allowed/``; ``not-operator``: a known key that is not in ``operators/``, at the operator endpoint)."""
        return Counter(dict(self._auth.refused)) if self._auth is not None else Counter()

    def reload(self) -> int:
        """Re-read the allow-list (after adding or removing a public key); returns how many keys."""
        if self._auth is None:
            raise SecurityError(f"no allow-list: {self.directory / ALLOWED_DIR} did not exist at load")
        return self._auth.load_allowed()

    # sockets --------------------------------------------------------------------------------------
    def _server_pair(self, role: str) -> tuple[bytes, bytes]:
        role = safe_name(role)
        pair = self.__servers.get(role)
        if pair is None:  # this process serves another role too (e.g. forwarder and engine in one)
            public, secret = _load(secret_file(self.directory, role), secret=True)
            assert secret is not None
            _KEYRING.add(public, secret)
            pair = self.__servers[role] = (public, secret)
        return pair

    def _peer(self, name: str) -> bytes:
        name = safe_name(name)
        key = self.__peers.get(name)
        if key is None:
            key, _ = _load(public_file(self.directory, name), secret=False)
            _KEYRING.add(key)
            self.__peers[name] = key
        return key

    def server(self, sock: zmq.Socket, role: str | None = None, domain: str = ZAP_DOMAIN) -> None:
        """Make ``sock`` (before it binds) a CURVE server with the ``role`` key pair (default: own),
        accepting only allow-listed clients: ``allowed/`` for the default domain, ``operators/`` for
        ``OPERATOR_DOMAIN``."""
        self._check_open()
        if self._auth is None or _authenticator(sock.context) is not self._auth:
            raise SecurityError(f"cannot serve as {role or self.me}: no ZAP allow-list running in this socket's "
                                f"context "
                                f"({self.directory / ALLOWED_DIR} missing, or the socket is from another context "
                                f"than the one given to Security.load); it would accept any key")
        public, secret = self._server_pair(role or self.me)
        self._auth.serving.add("operator" if domain == OPERATOR_DOMAIN else safe_name(role or self.me))
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.zap_domain = domain.encode()
        sock.curve_server = True

    def client(self, sock: zmq.Socket, server: str | None = None) -> None:
        """Make ``sock`` (before it connects) a CURVE client with this process's own pair that talks
        only to ``server`` (``bus`` or ``engine``, or any name with a public key in the directory)."""
        self._check_open()
        if not server:
            raise SecurityError(f"client(): name the server the socket connects to ({' or '.join(SERVER_ROLES)})")
        sock.curve_serverkey = self._peer(server)
        sock.curve_secretkey = self.__secret
        sock.curve_publickey = self.__public

    # misc -----------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise SecurityError("Security object is closed")

    def close(self) -> None:
        """Stop the context's ZAP handler when its last user closes. Call before ``ctx.destroy()``."""
        if self._closed:
            return
        self._closed = True
        auth, self._auth = self._auth, None
        if auth is None:
            return
        with _AUTH_LOCK:
            auth.users -= 1
            if auth.users <= 0:
                entry = _AUTH.get(id(self.ctx))
                if entry is not None and entry[1] is auth:
                    del _AUTH[id(self.ctx)]
                if not self.ctx.closed:
                    auth.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Security(me={self.me!r}, directory={str(self.directory)!r}, zap={self._auth is not None})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("Security objects hold secret keys and cannot be pickled; load them in each process")


# -- handshake failures, seen by socket monitors ----------------------------------------------------
_SERVER_TYPES = (zmq.ROUTER, zmq.XPUB, zmq.XSUB, zmq.REP)  # the sockets Lintas binds; the others connect
_MISMATCH = zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
_DECRYPT = (zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC, zmq.PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE)


class HandshakeWatch:
    """The handshake failures of one process's sockets, from ZMQ socket monitors read in a thread of its own
    (so it also watches the bus, whose forwarder runs in C). :func:`watch_socket` (``engine/protocol/bus.py``
    calls it for every socket, before it binds or connects) adds a socket when its context has a watch;
    :func:`watch_handshakes` starts one for a context (a command does, before it makes its sockets).

    A server side failure is counted in ``refused`` by reason (``no-curve``: a client without CURVE keys at a
    CURVE server; ``curve-client``: a client with keys at a server without; ``bad-handshake``: a client whose
    handshake does not decrypt, holding another server's public key; ``incomplete``: a connection closed during
    the handshake; ``protocol``: any other), refused keys are the ZAP handler's (``Security.refused``). A
    client side failure is counted in ``failed`` by (server, reason): ``refused`` (the server's ZAP handler
    refused this process's key), ``mechanism`` (one side has CURVE keys, the other not), ``closed`` (the server
    closed the connection during the handshake), ``protocol``. Each is logged (``lintas.security``, warning:
    what failed, where, and what to check) at most once per endpoint and reason per ``log_every`` s."""

    EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
              | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_MONITOR_STOPPED)

    def __init__(self, ctx: zmq.Context, *, me: str = "", key: str = "", log_every: float = LOG_EVERY) -> None:
        self.ctx = ctx
        self.me = me  # this process's key pair name, for the log ("" without keys)
        self.key = key  # its fingerprint
        self.log_every = log_every
        self.refused: Counter[str] = Counter()
        self.failed: Counter[tuple[str, str]] = Counter()
        self._logged: dict[tuple, float] = {}
        self._watched: set[int] = set()
        self._pending: queue.SimpleQueue[tuple[str, dict]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lintas-handshakes", daemon=True)
        self._thread.start()

    def add(self, sock: zmq.Socket, peer: str) -> None:
        """Watch ``sock`` (from the thread that owns it, before it binds or connects, so that no failure is
        missed: a client refused once does not try again). ``peer``: the server it talks to, or the role it
        serves (``bus``, ``engine``, ``operator``)."""
        if id(sock) in self._watched or self._stop.is_set():
            return
        self._watched.add(id(sock))
        addr = f"inproc://lintas-handshakes-{uuid.uuid4().hex}"
        sock.monitor(addr, self.EVENTS)
        info = {"peer": peer, "server": sock.socket_type in _SERVER_TYPES,
                "curve": sock.getsockopt(zmq.MECHANISM) == zmq.CURVE}
        self._pending.put((addr, info))

    def close(self) -> None:
        """Stop the thread and close its monitor sockets (before the context is destroyed)."""
        self._stop.set()
        self._thread.join(5)
        with _WATCH_LOCK:
            entry = _WATCHES.get(id(self.ctx))
            if entry is not None and entry[1] is self:
                del _WATCHES[id(self.ctx)]

    # the thread ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        poller = zmq.Poller()
        pairs: dict[zmq.Socket, dict] = {}
        try:
            while not self._stop.is_set():
                while True:
                    try:
                        addr, info = self._pending.get_nowait()
                    except queue.Empty:
                        break
                    pair = self.ctx.socket(zmq.PAIR)
                    pair.setsockopt(zmq.LINGER, 0)
                    pair.connect(addr)
                    poller.register(pair, zmq.POLLIN)
                    pairs[pair] = info
                for pair, _ in poller.poll(100):
                    try:
                        ev = recv_monitor_message(pair, zmq.NOBLOCK)
                    except zmq.Again:
                        continue
                    if ev["event"] == zmq.EVENT_MONITOR_STOPPED:  # its socket closed
                        poller.unregister(pair)
                        pair.close(0)
                        pairs.pop(pair, None)
                        continue
                    self._event(pairs[pair], ev)
        except zmq.ContextTerminated:
            pass
        finally:
            for pair in pairs:
                pair.close(0)

    def _event(self, info: dict, ev: dict) -> None:
        kind, value = ev["event"], ev["value"]
        endpoint = ev["endpoint"].decode("utf-8", "replace") if isinstance(ev["endpoint"], bytes) else ev["endpoint"]
        peer, curve = info["peer"], info["curve"]
        if info["server"]:
            if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                return  # a refused key: counted and logged by the ZAP handler, with its fingerprint
            if kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                reason, why = "incomplete", (f"a client left during the handshake at the {peer} on {endpoint}" + (
                    " (a client without CURVE keys does when it notices first; or a port probe)" if curve else ""))
            elif value == _MISMATCH and curve:
                reason, why = "no-curve", (f"refused a client without CURVE keys at the {peer} on {endpoint}: it "
                                           f"must run with --keys DIR (its key pair, its public key in allowed/ "
                                           f"here)")
            elif value == _MISMATCH:
                reason, why = "curve-client", (f"a client with CURVE keys tried the {peer} on {endpoint}, which runs "
                                               f"without --keys: start both with keys, or both without")
            elif value in _DECRYPT:
                reason, why = "bad-handshake", (f"refused a client at the {peer} on {endpoint} whose handshake does "
                                                f"not decrypt: its {peer}.key is not this {peer}'s public key")
            else:
                reason, why = "protocol", f"refused a client at the {peer} on {endpoint}: protocol error {value:#x}"
            self.refused[reason] += 1
        else:
            me = f" ({self.me}, key {self.key})" if self.me else ""
            if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                reason, why = "refused", (f"handshake refused by the {peer} at {endpoint}: it does not accept this "
                                          f"process's key{me}; its host's allowed/ must hold that .key file "
                                          f"(status {value})")
            elif value == _MISMATCH and kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                reason, why = "mechanism", (f"handshake refused by the {peer} at {endpoint}: "
                                            + (f"this process has CURVE keys{me} and the {peer} runs without: start "
                                               f"it with --keys, or this process without" if curve else
                                               f"the {peer} requires CURVE keys: pass --keys DIR"))
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                reason, why = "closed", (f"handshake with the {peer} at {endpoint} failed: it closed the "
                                         f"connection; "
                                         + (f"is {peer}.key in this process's key directory the {peer}'s public "
                                            f"key?" if curve else f"if the {peer} runs with --keys, pass --keys DIR "
                                            f"here too"))
            else:
                reason, why = "protocol", f"handshake with the {peer} at {endpoint} failed: protocol error {value:#x}"
            self.failed[(peer, reason)] += 1
        if not why:
            return
        now = time.monotonic()
        key = (info["server"], reason, endpoint)
        if now - self._logged.get(key, -self.log_every) >= self.log_every:
            self._logged[key] = now
            log.warning("%s", why)


_WATCHES: dict[int, tuple[zmq.Context, HandshakeWatch]] = {}
_WATCH_LOCK = threading.Lock()


def watch_handshakes(ctx: zmq.Context, security: Security | None = None, *,
                     log_every: float = LOG_EVERY) -> HandshakeWatch:
    """The context's :class:`HandshakeWatch`, started on first use: every socket of ``ctx`` that
    ``engine/protocol/bus.py`` makes from now on is watched. ``security``: this process's keys (their name
    and fingerprint go into the client-side log lines). :meth:`HandshakeWatch.close` it before the context
    is destroyed."""
    with _WATCH_LOCK:
        entry = _WATCHES.get(id(ctx))
        if entry is not None and entry[0] is ctx and not entry[1]._stop.is_set():
            return entry[1]
        w = HandshakeWatch(ctx, me=security.me if security is not None else "",
                           key=security.fingerprint() if security is not None else "", log_every=log_every)
        _WATCHES[id(ctx)] = (ctx, w)
        return w


def handshake_watch(ctx: zmq.Context) -> HandshakeWatch | None:
    """The context's running :class:`HandshakeWatch`, or None."""
    entry = _WATCHES.get(id(ctx))
    if entry is None or entry[0] is not ctx or entry[1]._stop.is_set():
        return None
    return entry[1]


def watch_socket(sock: zmq.Socket, peer: str) -> None:
    """Watch ``sock``'s handshakes when its context has a :class:`HandshakeWatch` (else nothing)."""
    w = handshake_watch(sock.context)
    if w is not None:
        w.add(sock, peer)


# -- binding checks --------------------------------------------------------------------------------
def is_loopback_host(host: str) -> bool:
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False  # '*', an interface name or a host name: may face the network


def check_bind(endpoint: str, security) -> None:
    """Refuse to bind a network endpoint (tcp:// and the like on anything but loopback, including
    ``*`` and ``0.0.0.0``) without security. inproc:// and ipc:// are always allowed."""
    if security is not None or not endpoint:
        return
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return  # not an endpoint zmq could bind; let zmq report it
    if scheme.lower() in LOCAL_SCHEMES:
        return
    rest = rest.rsplit(";", 1)[-1]  # source;destination forms name the destination last
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    if is_loopback_host(host):
        return
    raise SecurityError(f"refusing to bind {endpoint} without keys: pass --keys DIR "
                        f"(lintas keys DIR creates them)")


__all__ = [
    "DEFAULT_NAMES",
    "DEFAULT_OPERATORS",
    "OPERATOR_DOMAIN",
    "HandshakeWatch",
    "Security",
    "SecurityError",
    "check_bind",
    "create_keys",
    "fingerprint",
    "handshake_watch",
    "is_loopback_host",
    "key_fingerprint",
    "public_file",
    "safe_name",
    "secret_file",
    "watch_handshakes",
    "watch_socket",
]
