"""The demo city's shipped GTFS feed: regenerated it equals the shipped files, it agrees with the SUMO scenario
(every bus stop, every bus's times), and it passes a GTFS validator from PyPI (gtfs-guru, MobilityData's rules)
with no errors and no warnings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gtfs_guru
import pytest
import sumo  # noqa: F401  (the eclipse-sumo wheel sets SUMO_HOME)
import sumolib

from scenarios.bunda_kota import gtfs as demo
from transit_api.gtfs import load_feed

SCENARIO = demo.HERE


def test_regenerated_feed_equals_the_shipped_one(tmp_path: Path) -> None:
    out = demo.write_feed(tmp_path / "gtfs")
    shipped = {p.name: p.read_text() for p in demo.GTFS_DIR.iterdir()}
    fresh = {p.name: p.read_text() for p in out.iterdir()}
    assert sorted(fresh) == sorted(shipped)
    for name in fresh:
        assert fresh[name] == shipped[name], f"{name} differs: run python -m scenarios.bunda_kota.gtfs"


def test_every_sumo_bus_stop_is_a_gtfs_stop_near_its_lane() -> None:
    feed = load_feed(demo.GTFS_DIR)
    net = sumolib.net.readNet(str(demo.NET_FILE), withInternal=False)
    sumo_stops = list(sumolib.xml.parse(str(demo.STOPS_FILE), "busStop"))
    assert {s.id for s in sumo_stops} == set(feed.stops)
    lat0, lon0 = feed.stops["K1E_1"].lat, feed.stops["K1E_1"].lon
    x0, y0 = sumolib.geomhelper.positionAtShapeOffset(net.getLane("A0_A1_0").getShape(), 146.7)
    for s in sumo_stops:
        g = feed.stops[s.id]
        assert g.name == s.attr_name
        # the stops keep their distances: metres in SUMO = metres on the ground (local projection)
        mid = (float(s.startPos) + float(s.endPos)) / 2
        x, y = sumolib.geomhelper.positionAtShapeOffset(net.getLane(s.lane).getShape(), mid)
        north = (g.lat - lat0) * 111_320
        east = (g.lon - lon0) * 111_320 * 0.99999986  # cos(0.03°)
        assert abs(north - (y - y0)) < 0.5 and abs(east - (x - x0)) < 0.5, s.id


def _gtfs_calls(feed, trip_id: str, start: int | None = None) -> list[tuple[str, int, int]]:
    """(stop, arrival, departure) of a trip in seconds of the service day; a frequency template's calls shifted
    to the start ``start`` (its first stop's departure)."""
    times = feed.stop_times[trip_id]
    shift = 0 if start is None else start - times[0].departure
    return [(st.stop_id, st.arrival + shift, st.departure + shift) for st in times]


def test_stop_times_equal_the_sumo_buses_and_the_timetable() -> None:
    feed = load_feed(demo.GTFS_DIR)
    timetable = json.loads(demo.TIMETABLE_FILE.read_text())
    arrival_of = {(t["vehicle"], c["stop"]): c["arrival"]
                  for line in timetable["lines"] for d in line["directions"] for t in d["trips"] for c in t["stops"]}
    # the buses SUMO runs: <vehicle line=...> with <stop busStop until=...>
    buses = {}
    for v in sumolib.xml.parse(str(SCENARIO / "bunda_kota.rou.xml"), "vehicle"):
        if v.hasAttribute("line"):
            buses[v.id] = (v.line, [(s.busStop, int(float(s.until))) for s in v.stop])
    assert len(buses) == 25
    k2_starts: dict[str, list[int]] = {"K2S": [], "K2N": []}
    for vid, (line, calls) in sorted(buses.items()):
        want = [(stop, demo.SIM_ZERO + arrival_of[vid, stop], demo.SIM_ZERO + until) for stop, until in calls]
        if line == "K1":  # timetabled: one GTFS trip per SUMO bus
            assert _gtfs_calls(feed, vid) == want, vid
            assert feed.trips[vid].route_id == "K1"
        else:  # headways: the bus is one start of its direction's frequency
            template = vid[4:7]
            k2_starts[template].append(want[0][2])
            assert _gtfs_calls(feed, template, want[0][2]) == want, vid
    for template, starts in k2_starts.items():
        (fr,) = feed.frequencies[template]
        assert not fr.exact_times and fr.headway == 720
        assert list(range(fr.start, fr.end, fr.headway)) == starts, template


def test_validator_passes_the_shipped_feed() -> None:
    result = gtfs_guru.validate(str(demo.GTFS_DIR), country_code="ID", date="2026-03-02")
    assert [(e.code, e.message) for e in result.errors()] == []
    assert [(w.code, w.message) for w in result.warnings()] == []
    assert result.is_valid


@pytest.mark.parametrize(("name", "old", "new"), [
    ("stop_times.txt", "K1E_3,3", "NOWHERE,3"),
    ("stops.txt", "-0.030072,109.327725", "-91.0,109.327725"),
])
def test_validator_catches_a_broken_copy(tmp_path: Path, name: str, old: str, new: str) -> None:
    """The validator is really looking: a broken copy of the feed has errors."""
    broken = tmp_path / "gtfs"
    shutil.copytree(demo.GTFS_DIR, broken)
    text = (broken / name).read_text()
    assert old in text
    (broken / name).write_text(text.replace(old, new, 1))
    assert gtfs_guru.validate(str(broken), country_code="ID", date="2026-03-02").error_count > 0
