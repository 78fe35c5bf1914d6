"""OpenAPI examples of the timetable's responses (``/health``, ``/stops``, ``/stops/{id}``, ``/stops/{id}/arrivals``,
``/routes``, ``/routes/{id}``): real answers of ``lintas api --gtfs scenarios/bunda_kota/gtfs`` (the demo city's feed),
trimmed to two items where a list is long (FastAPI leaves their null values out of the OpenAPI document).
``app.py`` passes them as each route's ``responses``; tests/transit_api/test_openapi_examples.py compares them with the
real answers."""

from __future__ import annotations

__all__ = ["ARRIVALS", "HEALTH", "ROUTE", "ROUTES", "STOP", "STOPS"]


def _ok(example: dict) -> dict:
    return {"content": {"application/json": {"example": example}}}


def _error(description: str, detail) -> dict:
    return {"description": description, "content": {"application/json": {"example": {"detail": detail}}}}


def _bad(param: str, kind: str, msg: str, given: str, ctx: dict | None = None) -> dict:
    item = {"type": kind, "loc": ["query", param], "msg": msg, "input": given}
    if ctx is not None:
        item["ctx"] = ctx
    return {422: _error(f"a bad parameter, named in `loc` (here `{param}`)", [item])}


_PAGE_422 = _bad("limit", "greater_than_equal", "Input should be greater than or equal to 1", "0", {"ge": 1})
_NO_STOP = {404: _error("no such stop", "no stop with stop_id 'X9' in the feed")}
_NO_ROUTE = {404: _error("no such route", "no route with route_id 'X9' in the feed")}
# a path id is any string, so these routes give no 422 of their own: FastAPI lists it for every route with
# parameters; the example shows the form (that of GET /stops?limit=0)
_PATH_422 = {422: _error("the form of a validation error (this route's id takes any string)",
                         _PAGE_422[422]["content"]["application/json"]["example"]["detail"])}

_K1E_1 = {"stop_id": "K1E_1", "name": "Terminal Barat", "code": "K1E_1", "lat": -0.030072, "lon": 109.327725,
          "location_type": 0, "parent_station": "", "routes": ["K1"]}
_K1E_2 = {"stop_id": "K1E_2", "name": "Pasar Lama", "code": "K1E_2", "lat": -0.030072, "lon": 109.331354,
          "location_type": 0, "parent_station": "", "routes": ["K1"]}
_K1 = {"route_id": "K1", "agency_id": "BK", "short_name": "K1", "long_name": "Jalan Raya Bunda", "route_type": 3,
       "color": "FF8C00", "text_color": "000000", "desc": "Koridor 1 - Jalan Raya Bunda"}
_ARRIVAL = {"trip_id": "bus_K1E_04", "route_id": "K1", "route_short_name": "K1", "headsign": "Balai Kota",
            "stop_sequence": 2, "service_date": "2026-03-02", "scheduled_arrival": "2026-03-02T07:26:10+07:00",
            "scheduled_departure": "2026-03-02T07:26:30+07:00", "predicted_arrival": "2026-03-02T07:26:10+07:00",
            "delay_s": 0.0, "uncertainty_s": None, "source": "schedule", "vehicle_id": None, "headway_s": None,
            "last_stop": False}

HEALTH = {200: _ok({"status": "ok", "timezone": "Asia/Pontianak", "stops": 18, "routes": 2, "trips": 17})}
STOPS = {200: _ok({"total": 18, "limit": 2, "offset": 0, "items": [_K1E_1, _K1E_2]}), **_PAGE_422}
STOP = {200: _ok(_K1E_2), **_NO_STOP, **_PATH_422}
ARRIVALS = {200: _ok({"stop_id": "K1E_2", "at": "2026-03-02T07:20:00+07:00", "timezone": "Asia/Pontianak",
                      "arrivals": [_ARRIVAL, {**_ARRIVAL, "trip_id": "bus_K1E_05",
                                              "scheduled_arrival": "2026-03-02T07:34:10+07:00",
                                              "scheduled_departure": "2026-03-02T07:34:30+07:00",
                                              "predicted_arrival": "2026-03-02T07:34:10+07:00"}]}),
            **_NO_STOP,
            **_bad("at", "datetime_from_date_parsing", "Input should be a valid datetime or date, input is too short",
                   "bad", {"error": "input is too short"})}
ROUTES = {200: _ok({"total": 2, "limit": 1, "offset": 0, "items": [_K1]}), **_PAGE_422}
ROUTE = {200: _ok({"route_id": "K2", "agency_id": "BK", "short_name": "K2", "long_name": "Jalan Merdeka",
                   "route_type": 3, "color": "00994C", "text_color": "000000", "desc": "Koridor 2 - Jalan Merdeka",
                   "directions": [{"direction_id": 0, "headsign": "Kampus Selatan",
                                   "stops": ["K2S_1", "K2S_2", "K2S_3", "K2S_4"], "trips": 1,
                                   "frequencies": [{"trip_id": "K2S", "start_time": "07:03:40",
                                                    "end_time": "08:03:40", "headway_s": 720,
                                                    "exact_times": False}]}]}),
         **_NO_ROUTE, **{422: _PATH_422[422]}}
