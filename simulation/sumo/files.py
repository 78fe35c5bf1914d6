"""Opening SUMO's files: the one place that knows a file may be gzipped (nets, routes, additional files and
outputs are often published as ``.xml.gz``)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import IO

__all__ = ["open_xml"]

_GZIP_MAGIC = b"\x1f\x8b"


def open_xml(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a SUMO XML file for reading bytes, gzipped or not (told by its first bytes, not its name)."""
    p = Path(path)
    with open(p, "rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(p, "rb")
    return open(p, "rb")
