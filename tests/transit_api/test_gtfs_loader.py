"""The GTFS loader: the demo feed loads (folder and zip); broken feeds are rejected with errors naming file, line
and field; times past 24:00:00, frequencies and calendar exceptions give the right arrivals."""

from __future__ import annotations

import shutil
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest

from transit_api.gtfs import GtfsError, GtfsIssue, load_feed, parse_time

DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "bunda_kota" / "gtfs"
MONDAY = date(2026, 3, 2)


@pytest.fixture
def feed_dir(tmp_path: Path) -> Path:
    out = tmp_path / "feed"
    shutil.copytree(DEMO, out)
    return out


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def write(path: Path, rows: list[str]) -> None:
    path.write_text("\n".join(rows) + "\n")


def issues_of(path: Path) -> list[GtfsIssue]:
    with pytest.raises(GtfsError) as info:
        load_feed(path)
    return info.value.issues


def test_demo_feed_loads_from_folder_and_zip(tmp_path: Path) -> None:
    feed = load_feed(DEMO)
    assert (len(feed.stops), len(feed.routes), len(feed.trips)) == (18, 2, 17)
    assert feed.timezone.key == "Asia/Pontianak"
    assert set(feed.frequencies) == {"K2S", "K2N"}
    assert [st.stop_id for st in feed.stop_times["bus_K1E_01"]] == [f"K1E_{k}" for k in range(1, 6)]
    zipped = tmp_path / "feed.zip"
    with zipfile.ZipFile(zipped, "w") as z:  # a zip of the folder (the files under one directory)
        for p in sorted(DEMO.iterdir()):
            z.write(p, f"bunda_kota/{p.name}")
    zfeed = load_feed(zipped)
    assert zfeed.stops == feed.stops and zfeed.stop_times == feed.stop_times and zfeed.frequencies == feed.frequencies


def test_times_past_midnight_are_valid_and_belong_to_the_service_day() -> None:
    assert parse_time("25:10:00") == 25 * 3600 + 600
    assert parse_time("7:03:40") == 7 * 3600 + 220
    for bad in ("25:61:00", "07:00:60", "7:0:00", "07:00", "-1:00:00", "ab:cd:ef", ""):
        with pytest.raises(ValueError, match="bad time"):
            parse_time(bad)


def test_trip_past_midnight_is_found_the_next_morning(feed_dir: Path) -> None:
    st = feed_dir / "stop_times.txt"
    rows = lines(st)
    # move bus_K1E_08 (07:57:20 .. 08:01:40) by 17 h: 24:57:20 .. 25:01:40 of the service day
    shifted = []
    for row in rows:
        if row.startswith("bus_K1E_08,"):
            trip, arr, dep, stop, seq = row.split(",")
            arr = f"{parse_time(arr) // 3600 + 17}:{arr[-5:]}"
            dep = f"{parse_time(dep) // 3600 + 17}:{dep[-5:]}"
            row = ",".join((trip, arr, dep, stop, seq))
        shifted.append(row)
    write(st, shifted)
    feed = load_feed(feed_dir)
    tuesday_0050 = datetime(2026, 3, 3, 0, 50, tzinfo=feed.timezone)
    first = feed.arrivals("K1E_2", tuesday_0050, limit=1)[0]
    assert first.trip_id == "bus_K1E_08"
    assert first.service_date == MONDAY  # Monday's service, running after midnight
    assert first.arrival == datetime(2026, 3, 3, 0, 58, 10, tzinfo=feed.timezone)


def test_arrivals_timetabled_and_on_headways() -> None:
    feed = load_feed(DEMO)
    at = datetime(2026, 3, 2, 7, 20, tzinfo=feed.timezone)
    k1 = feed.arrivals("K1E_2", at, limit=2)
    # bus_K1E_04 departs the terminus at 1500 s and reaches K1E_2 at 1570 s = 07:26:10
    assert [(a.trip_id, a.arrival.time().isoformat(), a.headway) for a in k1] == [
        ("bus_K1E_04", "07:26:10", None), ("bus_K1E_05", "07:34:10", None)]
    k2 = feed.arrivals("K2S_2", at, limit=3)  # every 720 s from 07:04:20 (first bus at K2S_2)
    assert [(a.trip_id, a.arrival.time().isoformat(), a.headway) for a in k2] == [
        ("K2S", "07:28:20", 720), ("K2S", "07:40:20", 720), ("K2S", "07:52:20", 720)]
    # after the last bus of the day: the next morning's first
    late = feed.arrivals("K2S_2", datetime(2026, 3, 2, 9, 0, tzinfo=feed.timezone), limit=1)[0]
    assert (late.service_date, late.arrival.time().isoformat()) == (date(2026, 3, 3), "07:04:20")
    assert feed.arrivals("NO_SUCH_STOP", at) == []


def test_calendar_dates_remove_a_day(feed_dir: Path) -> None:
    write(feed_dir / "calendar_dates.txt", ["service_id,date,exception_type", "HARIAN,20260302,2"])
    feed = load_feed(feed_dir)
    first = feed.arrivals("K1E_2", datetime(2026, 3, 2, 6, 0), limit=1)[0]
    assert first.service_date == date(2026, 3, 3)
    # outside calendar.txt's dates (it ends 2030-12-31): nothing
    assert feed.arrivals("K1E_2", datetime(2031, 1, 1, 6, 0)) == []


@pytest.mark.parametrize(("mutate", "expected"), [
    pytest.param(lambda d: (d / "stops.txt").unlink(), GtfsIssue("stops.txt", None, None, "required file is missing"),
                 id="missing-file"),
    pytest.param(lambda d: (d / "calendar.txt").unlink(),
                 GtfsIssue("calendar.txt", None, None, "required file is missing"), id="no-calendar"),
])
def test_missing_files_are_named(feed_dir: Path, mutate, expected: GtfsIssue) -> None:
    mutate(feed_dir)
    assert expected in issues_of(feed_dir)


def _edit(feed_dir: Path, name: str, line: int, column: str, value: str) -> None:
    """Set one field of one line (1: the header) of a feed file."""
    rows = lines(feed_dir / name)
    header = rows[0].split(",")
    cells = rows[line - 1].split(",")
    cells[header.index(column)] = value
    rows[line - 1] = ",".join(cells)
    write(feed_dir / name, rows)


@pytest.mark.parametrize(("name", "line", "column", "value", "message"), [
    ("stop_times.txt", 3, "arrival_time", "25:61:00", "bad time '25:61:00'"),
    ("stop_times.txt", 4, "stop_id", "NOWHERE", "unknown stop_id 'NOWHERE'"),
    ("stop_times.txt", 5, "trip_id", "GHOST", "unknown trip_id 'GHOST'"),
    ("trips.txt", 2, "route_id", "K9", "unknown route_id 'K9'"),
    ("trips.txt", 2, "service_id", "LIBUR", "unknown service_id 'LIBUR'"),
    ("trips.txt", 3, "shape_id", "NOSHAPE", "unknown shape_id 'NOSHAPE'"),
    ("frequencies.txt", 2, "trip_id", "GHOST", "unknown trip_id 'GHOST'"),
    ("frequencies.txt", 2, "headway_secs", "0", "bad value '0'"),
    ("frequencies.txt", 3, "end_time", "07:00:00", "is not after start_time"),
    ("stops.txt", 2, "stop_lat", "91.5", "bad value '91.5'"),
    ("stops.txt", 3, "stop_id", "K1E_1", "duplicate stop_id 'K1E_1'"),
    ("routes.txt", 2, "route_type", "bus", "bad value 'bus'"),
    ("routes.txt", 3, "agency_id", "XX", "unknown agency_id 'XX'"),
    ("calendar.txt", 2, "start_date", "20260230", "no such day"),
    ("calendar.txt", 2, "monday", "yes", "bad value 'yes'"),
    ("agency.txt", 2, "agency_timezone", "Asia/Atlantis", "unknown time zone 'Asia/Atlantis'"),
    # stop_sequence must increase along a trip: a repeated one, and times that go backwards
    ("stop_times.txt", 3, "stop_sequence", "1", "has stop_sequence 1 twice"),
    ("stop_times.txt", 4, "arrival_time", "07:01:00", "goes back in time"),
])
def test_bad_values_are_named_by_file_line_and_field(feed_dir: Path, name: str, line: int, column: str, value: str,
                                                      message: str) -> None:
    _edit(feed_dir, name, line, column, value)
    found = [i for i in issues_of(feed_dir) if (i.file, i.line, i.field) == (name, line, column)]
    assert found, f"no issue for {name} line {line} {column}"
    assert message in found[0].message, found[0]


def test_missing_column_is_named(feed_dir: Path) -> None:
    rows = [",".join(r.split(",")[:-1]) for r in lines(feed_dir / "stop_times.txt")]  # drop stop_sequence
    write(feed_dir / "stop_times.txt", rows)
    assert GtfsIssue("stop_times.txt", 1, "stop_sequence", "required column is missing") in issues_of(feed_dir)


def test_error_message_lists_each_problem_on_its_own_line(feed_dir: Path) -> None:
    _edit(feed_dir, "stop_times.txt", 3, "arrival_time", "25:61:00")
    _edit(feed_dir, "trips.txt", 2, "route_id", "K9")
    with pytest.raises(GtfsError) as info:
        load_feed(feed_dir)
    text = str(info.value)
    assert text.startswith(f"GTFS feed {feed_dir}: ")
    assert "\n  stop_times.txt line 3, field arrival_time: bad time '25:61:00'" in text
    assert "\n  trips.txt line 2, field route_id: unknown route_id 'K9' (not in routes.txt)" in text


def test_not_a_feed(tmp_path: Path) -> None:
    assert issues_of(tmp_path / "nope") == [GtfsIssue(str(tmp_path / "nope"), None, None, "no such file")]
    junk = tmp_path / "junk.zip"
    junk.write_text("not a zip")
    assert issues_of(junk)[0].message == "not a folder or a zip file"
