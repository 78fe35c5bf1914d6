"""The SUMO scenarios Lintas ships (``bunda_kota``, the demo city) and where the real-city ones are found.

The RESCO scenarios (Cologne, Ingolstadt, grid4x4; Ault & Sharon, NeurIPS 2021) are not shipped: tests and
benchmarks read them from ``../shared/scenarios/resco`` next to the repository when it is there.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO", "RESCO_DIR", "RESCO_MAPS", "resco_maps"]

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "scenarios" / "bunda_kota"
RESCO_DIR = REPO.parent / "shared" / "scenarios" / "resco"
RESCO_MAPS = ("cologne1", "cologne3", "ingolstadt1", "ingolstadt7", "grid4x4")


def resco_maps() -> list[Path]:
    """The RESCO scenarios present on this machine (none on a user's machine without ../shared)."""
    return [RESCO_DIR / name for name in RESCO_MAPS if (RESCO_DIR / name).is_dir()]
