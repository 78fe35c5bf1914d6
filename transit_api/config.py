"""The API's config file (TOML, ``lintas api --config FILE``): write tokens (hashed), rate limits, CORS origins.

::

    [cors]
    origins = ["https://peta.bundakota.example"]   # browsers' origins allowed to call the API ("*": any)

    [rate_limit]                 # writes (POST, PATCH) per token
    per_second = 10.0            # refilled continuously
    burst = 20                   # allowed at once

    [[tokens]]
    name = "dishub-desk"         # who: shown in the incidents it writes and in the logs
    sha256 = "<64 hex digits>"   # echo -n TOKEN | lintas api --hash-token
    # per_second = 1.0, burst = 5: this token's own limits (else [rate_limit]'s)

Every key is checked: an unknown key, a wrong type or value raises :class:`ConfigError` naming the file and the
key (``tokens[1].sha256``), so a typo never silently drops a setting.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transit_api.auth import TokenEntry, Tokens

__all__ = ["ApiConfig", "ConfigError", "load_config"]

DEFAULT_RATE = 10.0
DEFAULT_BURST = 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


class ConfigError(Exception):
    def __init__(self, path: Path, key: str | None, message: str) -> None:
        where = f"{path}" if key is None else f"{path}: key '{key}'"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.key = key


@dataclass(frozen=True)
class ApiConfig:
    tokens: Tokens = field(default_factory=lambda: Tokens([]))
    cors_origins: tuple[str, ...] = ()
    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST


def _keys(path: Path, table: dict[str, Any], prefix: str, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(path, f"{prefix}{key}", f"unknown key (known here: {', '.join(sorted(allowed))})")


def _rate(path: Path, table: dict[str, Any], prefix: str, rate: float, burst: int) -> tuple[float, int]:
    if "per_second" in table:
        rate = table["per_second"]
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < float("inf"):
            raise ConfigError(path, f"{prefix}per_second", f"must be a number above 0, got {rate!r}")
        rate = float(rate)
    if "burst" in table:
        burst = table["burst"]
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigError(path, f"{prefix}burst", f"must be a whole number, 1 or more, got {burst!r}")
    return rate, burst


def load_config(path: Path) -> ApiConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML: {exc}") from None
    _keys(path, doc, "", {"cors", "rate_limit", "tokens"})

    origins: tuple[str, ...] = ()
    cors = doc.get("cors", {})
    if not isinstance(cors, dict):
        raise ConfigError(path, "cors", "must be a table ([cors])")
    _keys(path, cors, "cors.", {"origins"})
    if "origins" in cors:
        if not isinstance(cors["origins"], list):
            raise ConfigError(path, "cors.origins", f"must be a list of origins, got {cors['origins']!r}")
        for i, o in enumerate(cors["origins"]):
            if not isinstance(o, str) or not (o == "*" or _ORIGIN.fullmatch(o)):
                raise ConfigError(path, f"cors.origins[{i}]", f"must be '*' or scheme://host[:port] (no path), "
                                  f"got {o!r}")
        origins = tuple(cors["origins"])

    limits = doc.get("rate_limit", {})
    if not isinstance(limits, dict):
        raise ConfigError(path, "rate_limit", "must be a table ([rate_limit])")
    _keys(path, limits, "rate_limit.", {"per_second", "burst"})
    rate, burst = _rate(path, limits, "rate_limit.", DEFAULT_RATE, DEFAULT_BURST)

    tokens = doc.get("tokens", [])
    if not isinstance(tokens, list):
        raise ConfigError(path, "tokens", "must be an array of tables ([[tokens]])")
    entries: list[TokenEntry] = []
    for i, t in enumerate(tokens):
        key = f"tokens[{i}]"
        if not isinstance(t, dict):
            raise ConfigError(path, key, "must be a table ([[tokens]])")
        _keys(path, t, f"{key}.", {"name", "sha256", "per_second", "burst"})
        for required in ("name", "sha256"):
            if required not in t:
                raise ConfigError(path, f"{key}.{required}", "missing")
        name, digest = t["name"], t["sha256"]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(path, f"{key}.name", f"must be 1-64 of A-Z a-z 0-9 . _ @ -, got {name!r}")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise ConfigError(path, f"{key}.sha256", "must be 64 lowercase hex digits, the SHA-256 of the token "
                              "(echo -n TOKEN | lintas api --hash-token), never the token itself")
        for j, other in enumerate(entries):
            if other.name == name:
                raise ConfigError(path, f"{key}.name", f"{name!r} is already tokens[{j}]'s name")
            if other.sha256 == digest:
                raise ConfigError(path, f"{key}.sha256", f"the same hash as tokens[{j}] ({other.name!r})")
        r, b = _rate(path, t, f"{key}.", rate, burst)
        entries.append(TokenEntry(name=name, sha256=digest, rate=r, burst=b))
    return ApiConfig(tokens=Tokens(entries), cors_origins=origins, rate=rate, burst=burst)
