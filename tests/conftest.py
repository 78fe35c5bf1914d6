from pathlib import Path

import pytest

from simulation.experiments.catalog import RESCO_DIR


@pytest.fixture(scope="session")
def resco_dir() -> Path:
    """The RESCO scenarios (../shared/scenarios/resco next to the repo root), or skip."""
    if not RESCO_DIR.is_dir():
        pytest.skip(f"RESCO scenarios not found at {RESCO_DIR}")
    return RESCO_DIR
