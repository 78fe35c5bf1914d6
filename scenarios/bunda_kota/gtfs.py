"""The demo city's static GTFS feed, generated from its SUMO bus lines, stops and timetable.

Run from the repository root::

    python -m scenarios.bunda_kota.gtfs             # (re)write scenarios/bunda_kota/gtfs/*.txt
    python -m scenarios.bunda_kota.gtfs --out DIR   # ... somewhere else

What it reads: the bus stops of ``bunda_kota.stops.add.xml`` (SUMO's busStop elements), the lines, routes and
trips of ``bunda_kota.timetable.json`` (written by generate.py beside the routes file, whose bus vehicles carry
the same times as ``until``), and the lane shapes of ``bunda_kota.net.xml``. The output is deterministic.

Choices (docs/transit.md says more):

* **Time.** The SUMO scenario is one morning peak, simulated from 0 to 3600 s. Simulation second 0 is
  07:00:00 of the service day, every day of the calendar (2026-01-01 to 2030-12-31, service ``HARIAN``).
  A stop's arrival_time is the timetable's ``arrival``; its departure_time is SUMO's ``until``.
* **Place.** The net has no geo-projection (``projParameter="!"``: sumolib's ``convertXY2LonLat`` refuses).
  Bunda Kota is made up; we put its junction A1 (the plain network's origin) at :data:`ORIGIN_LAT`,
  :data:`ORIGIN_LON`, by the equator in West Kalimantan (time zone ``Asia/Pontianak``, UTC+7), and map metres
  east and north to degrees with a local equirectangular projection (under 1 m off over the 2 km city).
* **Timetable and headways.** Line K1 is timetabled: one GTFS trip per SUMO bus, ``trip_id`` = the SUMO
  vehicle id. Line K2 runs on headways: one template trip per direction (``K2S``, ``K2N``, times of its first
  bus) and a ``frequencies.txt`` row with ``exact_times=0``, headway 720 s, whose starts are exactly the SUMO
  buses' departures from the first stop (``bus_K2S_01`` .. ``_05``).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import math
from pathlib import Path

from transit_api.gtfs import format_time

HERE = Path(__file__).resolve().parent
GTFS_DIR = HERE / "gtfs"
STOPS_FILE = HERE / "bunda_kota.stops.add.xml"
TIMETABLE_FILE = HERE / "bunda_kota.timetable.json"
NET_FILE = HERE / "bunda_kota.net.xml"

#: where junction A1 (the plain network's origin, before netconvert's offset) lies
ORIGIN_LAT = -0.0300
ORIGIN_LON = 109.3300
TIMEZONE = "Asia/Pontianak"
#: simulation second 0, in seconds of the service day (07:00:00)
SIM_ZERO = 7 * 3600
SERVICE_ID = "HARIAN"
START_DATE, END_DATE = "20260101", "20301231"
#: lines served on headways (frequencies.txt, exact_times=0); the others are timetabled
HEADWAY_LINES = ("K2",)
AGENCY = {"agency_id": "BK", "agency_name": "Bus Kota Bunda Kota", "agency_url": "https://example.org/bunda-kota",
          "agency_timezone": TIMEZONE, "agency_lang": "id"}
_EARTH_M_PER_DEG = 111_320.0


def lat_lon(x: float, y: float, offset: tuple[float, float]) -> tuple[float, float]:
    """(lat, lon) of SUMO net coordinates (metres; ``offset`` is the net's netOffset)."""
    east, north = x - offset[0], y - offset[1]
    lat = ORIGIN_LAT + north / _EARTH_M_PER_DEG
    lon = ORIGIN_LON + east / (_EARTH_M_PER_DEG * math.cos(math.radians(ORIGIN_LAT)))
    return round(lat, 6), round(lon, 6)


def _hex(sumo_color: str) -> str:
    return "".join(f"{round(float(c) * 255):02X}" for c in sumo_color.split(","))


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def build_feed(stops_file: Path = STOPS_FILE, timetable_file: Path = TIMETABLE_FILE,
               net_file: Path = NET_FILE) -> dict[str, str]:
    """The feed's files (name -> text) from the SUMO files."""
    import sumo  # noqa: F401  (the eclipse-sumo wheel sets SUMO_HOME)
    import sumolib
    from sumolib.geomhelper import positionAtShapeOffset

    net = sumolib.net.readNet(str(net_file), withInternal=False)
    if net.hasGeoProj():
        raise RuntimeError(f"{net_file} has a geo-projection now: use net.convertXY2LonLat instead of the fixed "
                           "origin (scenarios/bunda_kota/gtfs.py)")
    offset = tuple(net.getLocationOffset())
    timetable = json.loads(timetable_file.read_text())

    stop_rows, stop_names = [], {}
    for bs in sumolib.xml.parse(str(stops_file), "busStop"):
        lane = net.getLane(bs.lane)
        x, y = positionAtShapeOffset(lane.getShape(), (float(bs.startPos) + float(bs.endPos)) / 2)
        lat, lon = lat_lon(x, y, offset)
        stop_rows.append([bs.id, bs.id, bs.attr_name, lat, lon, 0])
        stop_names[bs.id] = bs.attr_name  # sumolib renames the attribute "name"

    route_rows, trip_rows, time_rows, freq_rows, shape_rows = [], [], [], [], []
    for line in timetable["lines"]:
        lid = line["id"]
        short, _, long = line["name"].partition(" - ")
        route_rows.append([lid, AGENCY["agency_id"], lid, long or short, line["name"], 3, _hex(line["color"]),
                           "000000"])
        for direction_id, direction in enumerate(line["directions"]):
            shape_id = f"{lid}{direction['id']}"
            points: list[tuple[float, float]] = []
            for edge in direction["route"]:
                for pt in net.getEdge(edge).getLane(0).getShape():
                    if not points or math.dist(points[-1], pt) > 0.01:
                        points.append(pt)
            dist = 0.0
            for k, pt in enumerate(points):
                if k:
                    dist += math.dist(points[k - 1], pt)
                shape_rows.append([shape_id, *lat_lon(*pt, offset), k + 1, f"{dist:.1f}"])
            headsign = stop_names[direction["stops"][-1]]
            trips = direction["trips"]
            if lid in HEADWAY_LINES:
                headways = {b["depart"] - a["depart"] for a, b in itertools.pairwise(trips)}
                if len(headways) != 1:
                    raise RuntimeError(f"line {lid} {direction['id']}: departures are not evenly spaced "
                                       f"({sorted(headways)}); it cannot be written as one frequencies.txt row")
                headway = headways.pop()
                templates = [(shape_id, trips[0])]
                first = SIM_ZERO + trips[0]["stops"][0]["until"]
                freq_rows.append([shape_id, format_time(first), format_time(first + len(trips) * headway), headway,
                                  0])
            else:
                templates = [(trip["vehicle"], trip) for trip in trips]
            for trip_id, trip in templates:
                trip_rows.append([lid, SERVICE_ID, trip_id, headsign, direction_id, shape_id])
                for seq, call in enumerate(trip["stops"], start=1):
                    time_rows.append([trip_id, format_time(SIM_ZERO + call["arrival"]),
                                      format_time(SIM_ZERO + call["until"]), call["stop"], seq])

    return {
        "agency.txt": _csv(list(AGENCY), [list(AGENCY.values())]),
        "stops.txt": _csv(["stop_id", "stop_code", "stop_name", "stop_lat", "stop_lon", "location_type"],
                          stop_rows),
        "routes.txt": _csv(["route_id", "agency_id", "route_short_name", "route_long_name", "route_desc",
                            "route_type", "route_color", "route_text_color"], route_rows),
        "trips.txt": _csv(["route_id", "service_id", "trip_id", "trip_headsign", "direction_id", "shape_id"],
                          trip_rows),
        "stop_times.txt": _csv(["trip_id", "arrival_time", "departure_time", "stop_id", "stop_sequence"],
                               time_rows),
        "calendar.txt": _csv(["service_id", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                              "sunday", "start_date", "end_date"], [[SERVICE_ID, 1, 1, 1, 1, 1, 1, 1, START_DATE,
                                                                    END_DATE]]),
        "frequencies.txt": _csv(["trip_id", "start_time", "end_time", "headway_secs", "exact_times"], freq_rows),
        "shapes.txt": _csv(["shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence",
                            "shape_dist_traveled"], shape_rows),
        "feed_info.txt": _csv(["feed_publisher_name", "feed_publisher_url", "feed_lang", "feed_start_date",
                               "feed_end_date", "feed_version", "feed_contact_url"],
                              [["Lintas (generated from the Bunda Kota SUMO scenario)", AGENCY["agency_url"], "id",
                                START_DATE, END_DATE, "bunda_kota-1", AGENCY["agency_url"]]]),
    }


def write_feed(out_dir: Path = GTFS_DIR) -> Path:
    """Write the feed's files into ``out_dir`` (created) and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in build_feed().items():
        (out_dir / name).write_text(text, encoding="utf-8")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=GTFS_DIR, help="folder to write (default: %(default)s)")
    args = ap.parse_args(argv)
    print(f"wrote {write_feed(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
