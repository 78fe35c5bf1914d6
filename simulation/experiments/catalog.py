"""Where the scenarios are: the demo city Lintas ships (``scenarios/bunda_kota``) and the real-city RESCO maps.

The RESCO scenarios (Cologne, Ingolstadt, grid4x4; Ault & Sharon, NeurIPS 2021) are not shipped: tests and
benchmarks read them from ``../shared/scenarios/resco`` next to the repository when it is there; a user's
machine does without them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO", "REPO", "RESCO_DIR", "RESCO_MAPS", "resco_maps"]

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scenarios" / "bunda_kota"
RESCO_DIR = REPO.parent / "shared" / "scenarios" / "resco"
RESCO_MAPS = ("cologne1", "cologne3", "ingolstadt1", "ingolstadt7", "grid4x4")


def resco_maps() -> list[Path]:
    """The RESCO scenarios present on this machine (none on a user's machine without ../shared)."""
    return [RESCO_DIR / name for name in RESCO_MAPS if (RESCO_DIR / name).is_dir()]
