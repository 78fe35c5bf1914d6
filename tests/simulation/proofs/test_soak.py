"""A short soak (the full one is ``lintas soak --sequences 100000``)."""


from simulation.experiments.catalog import DEMO
from simulation.proofs.soak import soak, soak_junctions


def test_short_soak_is_safe_and_exercises_every_path():
    junctions = soak_junctions([DEMO])
    res = soak(junctions, 3000, seed=7)
    assert res.sequences == 3000
    assert res.violations == 0 and res.faults_latched == 0, res.violation_lines
    # the words really reached the controller's validation: plenty accepted, refused and dropped
    assert res.accepted > 500 and res.refused > 500 and res.dropped > 200
