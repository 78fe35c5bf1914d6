"""The OpenAPI examples of the timetable's responses (transit_api/examples.py) are what the API answers on the demo
city's feed: each example is compared with the real answer (lists trimmed as the example trims them)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from scenarios.bunda_kota import gtfs as demo
from transit_api.app import create_app
from transit_api.gtfs import load_feed


@pytest.fixture(scope="module")
def client_and_doc():
    app = create_app(load_feed(demo.GTFS_DIR))
    return TestClient(app), app.openapi()


def no_nulls(v):
    """FastAPI leaves null values out of the OpenAPI document (its examples too): compare without them."""
    if isinstance(v, dict):
        return {k: no_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [no_nulls(x) for x in v]
    return v


def example(doc: dict, path: str, code: int) -> dict:
    return doc["paths"][path]["get"]["responses"][str(code)]["content"]["application/json"]["example"]


@pytest.mark.parametrize(("path", "url", "code"), [
    ("/health", "/health", 200),
    ("/stops", "/stops?limit=2", 200),
    ("/stops", "/stops?limit=0", 422),
    ("/stops/{stop_id}", "/stops/K1E_2", 200),
    ("/stops/{stop_id}", "/stops/X9", 404),
    ("/stops/{stop_id}/arrivals", "/stops/K1E_2/arrivals?at=2026-03-02T07:20:00&limit=2", 200),
    ("/stops/{stop_id}/arrivals", "/stops/X9/arrivals", 404),
    ("/stops/{stop_id}/arrivals", "/stops/K1E_2/arrivals?at=bad", 422),
    ("/routes", "/routes?limit=1", 200),
    ("/routes/{route_id}", "/routes/X9", 404),
])
def test_an_example_is_the_real_answer(client_and_doc, path, url, code) -> None:
    client, doc = client_and_doc
    got = client.get(url)
    assert got.status_code == code
    assert no_nulls(got.json()) == example(doc, path, code)


def test_the_route_example_is_the_real_route_trimmed_to_one_direction(client_and_doc) -> None:
    client, doc = client_and_doc
    real = client.get("/routes/K2").json()
    ex = example(doc, "/routes/{route_id}", 200)
    assert no_nulls({**real, "directions": real["directions"][:1]}) == ex
