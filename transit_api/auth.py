"""Who may write: bearer tokens kept only as hashes, and a rate limit per token.

A token is a random secret (``python -c "import secrets; print(secrets.token_urlsafe(32))"``); the API's config
keeps its SHA-256 (``lintas api --hash-token`` prints it). A plain SHA-256 is enough here, where a password would
need a slow hash: a token of 32 random bytes cannot be guessed from its hash however fast the hash is, and tokens
shorter than :data:`MIN_TOKEN_LENGTH` are refused by the helper. A presented token is hashed and compared with
every configured hash in constant time. Nothing here logs or keeps a token; what may be logged is
:func:`fingerprint`, the first 8 hex digits of its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MIN_TOKEN_LENGTH", "RateLimiter", "TokenEntry", "Tokens", "fingerprint", "hash_token", "token_problem"]

MIN_TOKEN_LENGTH = 16


def hash_token(token: str) -> str:
    """The SHA-256 of the token (UTF-8), 64 lowercase hex digits: what the config keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def fingerprint(token_hash: str) -> str:
    """A short name for a hash, fit for a log line (8 hex digits)."""
    return token_hash[:8]


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be one (None: it can)."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"a token needs at least {MIN_TOKEN_LENGTH} characters (got {len(token)}); make one with: python -c " \
               "\"import secrets; print(secrets.token_urlsafe(32))\""
    if any(c.isspace() or not c.isprintable() for c in token):
        return "a token cannot hold spaces or control characters (it travels in an HTTP header)"
    if not token.isascii():
        return "a token must be ASCII (it travels in an HTTP header)"
    return None


@dataclass(frozen=True)
class TokenEntry:
    name: str
    sha256: str
    rate: float  # writes per second, refilled continuously
    burst: int  # writes allowed at once


class Tokens:
    """The configured tokens: :meth:`identify` turns a presented token into its entry, or None."""

    def __init__(self, entries: list[TokenEntry]) -> None:
        self.entries = list(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def identify(self, presented: str) -> TokenEntry | None:
        digest = hash_token(presented)
        found = None
        for e in self.entries:  # every entry compared, in constant time, whichever matches
            if hmac.compare_digest(digest, e.sha256):
                found = e
        return found


class RateLimiter:
    """A token bucket per name: ``rate`` writes per second on average, ``burst`` at once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # name: (level, when)

    def take(self, name: str, rate: float, burst: int) -> float:
        """Take one write for ``name``: 0.0 if allowed, else the seconds until one is."""
        now = self._clock()
        with self._lock:
            level, when = self._buckets.get(name, (float(burst), now))
            level = min(float(burst), level + (now - when) * rate)
            if level >= 1.0:
                self._buckets[name] = (level - 1.0, now)
                return 0.0
            self._buckets[name] = (level, now)
            return (1.0 - level) / rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """The Retry-After header for a wait: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(wait)))
