"""Every policy a run can use, in one list: SUMO's own control (the baselines, run by SUMO) and Lintas'
policies (the engine's registry, run through the closed loop)."""

from __future__ import annotations

from engine.policies import POLICIES, get_policy
from simulation.sumo.baselines import BASELINES

__all__ = ["ALL_POLICIES", "COMPARISON", "LINTAS_POLICIES", "SUMO_POLICIES", "is_lintas"]

SUMO_POLICIES: tuple[str, ...] = tuple(BASELINES)
LINTAS_POLICIES: tuple[str, ...] = POLICIES
ALL_POLICIES: tuple[str, ...] = SUMO_POLICIES + LINTAS_POLICIES
#: what a comparison runs (the demo, the quality bench): every policy but those that exist only to prove the
#: controllers safe (``random``: it proposes anything, anytime)
COMPARISON: tuple[str, ...] = SUMO_POLICIES + tuple(p for p in POLICIES if get_policy(p).respects_limits)


def is_lintas(policy: str) -> bool:
    """True for a policy the Lintas engine runs, False for one SUMO runs itself."""
    return policy in LINTAS_POLICIES
