"""The SUMO installation Lintas runs: its binaries and its version (eclipse-sumo from PyPI)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["sumo_binary", "sumo_version"]


def sumo_binary(name: str = "sumo") -> str:
    """Path of a SUMO binary (``sumo``, ``sumo-gui``, ``netgenerate``, ...) of the installed eclipse-sumo."""
    import sumo  # noqa: F401  (sets SUMO_HOME)
    import sumolib

    return sumolib.checkBinary(name)


def sumo_version() -> str:
    """The installed eclipse-sumo's version, or ``unknown``."""
    try:
        return version("eclipse-sumo")
    except PackageNotFoundError:
        return "unknown"
