"""simulation.proofs.training: the training zoo, written by SUMO's own tools (real SUMO, no mocks).

Every family at the near level: the same seed writes the same bytes, another seed other demand, and each
scenario loads with the number of lights its family has. The isolated junction at every level: its demand
alternates between the axes every 5 minutes, and ``over`` asks more in its first 15 minutes than ``near``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from simulation.proofs import training
from simulation.proofs.training import AXES, BLOCK_S, FAMILIES, block_axis
from simulation.sumo.scenario import load_scenario


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def near(tmp_path_factory) -> list[training.TrainingScenario]:
    return training.generate_training(tmp_path_factory.mktemp("near"), seed=1, levels=["near"])


@pytest.fixture(scope="module")
def isolated(tmp_path_factory) -> dict[str, training.TrainingScenario]:
    scs = training.generate_training(tmp_path_factory.mktemp("isolated"), seed=1, families=["isolated"])
    return {sc.level: sc for sc in scs}


def _departures(sc: training.TrainingScenario) -> list[ET.Element]:
    scn = load_scenario(sc.path)
    (rf,) = scn.route_files
    return [el for el in ET.parse(rf).getroot() if el.tag in ("trip", "vehicle")]


def test_same_seed_same_bytes_and_each_scenario_loads(tmp_path, near):
    assert [sc.family for sc in near] == [f.name for f in FAMILIES]
    a = _files(near[0].folder.parent)
    assert len(a) == 3 * len(FAMILIES)  # net, routes, .sumocfg
    # again, for one family of each way of writing: netgenerate with turn lanes, a seeded random net, netconvert
    # with weighted sources and sinks, per-block trips merged into one file
    again = ["grid3_protected", "random", "arterial", "isolated"]
    training.generate_training(tmp_path / "again", seed=1, families=again, levels=["near"])
    b = _files(tmp_path / "again")
    assert sorted(b) == sorted(k for k in a if k.split("-")[0] in again)
    assert [k for k in b if a[k] != b[k]] == []
    for name, data in a.items():  # no timestamp, no path of the machine that wrote it
        assert b"generated on" not in data and str(near[0].folder.parent).encode() not in data, name
    for sc, fam in zip(near, FAMILIES, strict=True):
        scn = load_scenario(sc.path)
        assert (scn.name, scn.begin, scn.end) == (f"{fam.name}-near", 0.0, training.END_S)
        if fam.tls is None:  # a random net: its lights are drawn with it
            assert sc.tls >= 2, sc
        else:
            assert sc.tls == fam.tls, sc
        assert sc.vehicles > 0.8 * fam.near_vph * training.DEMAND_END_S / 3600, sc
    (other,) = training.generate_training(tmp_path / "seed2", seed=2, families=["random"], levels=["near"])
    assert (other.folder / "near.rou.xml").read_bytes() != a["random-near/near.rou.xml"]
    assert (other.folder / "net.net.xml").read_bytes() != a["random-near/net.net.xml"]


def test_the_isolated_junction_alternates_between_its_axes(isolated):
    for level, sc in isolated.items():
        per = Counter()
        for trip in _departures(sc):
            axis = next(ax for ax, edges in AXES.items() if trip.get("from") in edges)
            per[(int(float(trip.get("depart")) // BLOCK_S), axis)] += 1
        for block in range(training.BLOCKS):
            heavy = block_axis(block)
            other = "EW" if heavy == "NS" else "NS"
            assert per[(block, heavy)] > 2 * per[(block, other)], (level, block, per)


def test_over_asks_more_than_near_for_15_minutes_then_falls(isolated):
    def count(sc, lo, hi):
        return sum(1 for t in _departures(sc) if lo <= float(t.get("depart")) < hi)

    near, over, light = isolated["near"], isolated["over"], isolated["light"]
    assert count(over, 0, 900) > 1.3 * count(near, 0, 900)
    assert count(over, 900, 1200) < 0.7 * count(near, 900, 1200)
    assert count(near, 0, 1200) > 1.7 * count(light, 0, 1200)
    assert max(float(t.get("depart")) for t in _departures(over)) < training.DEMAND_END_S
