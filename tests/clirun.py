"""Run the ``lintas`` command tree as a user does: a fresh process (``python -m cli``), from the repository."""

from __future__ import annotations

import subprocess
import sys

from simulation.experiments.catalog import REPO


def lintas(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """``lintas ARGS`` in a new process; returns the completed process (text output captured)."""
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, **kw)


def lintas_argv(*args: str) -> list[str]:
    """The argv of ``lintas ARGS``, for a test that starts it with Popen."""
    return [sys.executable, "-m", "cli", *args]
