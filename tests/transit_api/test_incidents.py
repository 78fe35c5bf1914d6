"""Incidents (issue 18, section 4, operators' side): the SQLite store on a real file (WAL, committed before it
answers, a writer killed with SIGKILL loses nothing), the config file and its hashed tokens, and `lintas api` as a
real uvicorn server on a free port: POST/PATCH with a bearer token (201, 401 without the token in the logs, 422
naming the field, 409 on a stale version, 429 with Retry-After), GET list and one (404 with a reason), CORS,
/metrics, kill -9 right after a 201 and a restart, a bad config refused with exit 2."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scenarios.bunda_kota import gtfs as demo
from transit_api.auth import RateLimiter
from transit_api.config import ConfigError, load_config
from transit_api.incidents import (
    Cause,
    Effect,
    IncidentInvalid,
    IncidentNotFound,
    IncidentStore,
    Severity,
    Source,
    StoreError,
    VersionConflict,
)

LINTAS = Path(sys.executable).with_name("lintas")
DESK = "desk-token-0123456789abcdefghijklmnop"  # the operators' desk: the config's default rate (200 at once)
SHIFT = "shift-token-0123456789abcdefghijklmno"  # a second operator
FLOOD = "flood-token-0123456789abcdefghijklmno"  # its own small rate, 3 at once, 1 per 5 s: the rate test's alone
T0 = datetime(2040, 1, 1, 8, 0, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------- the store, on a real SQLite file

def new(store: IncidentStore, **kw):
    args = {"source": Source.OPERATOR, "reported_by": "desk", "severity": Severity.WARNING,
            "effect": Effect.SIGNIFICANT_DELAYS, "edges": ["A1_A2"], "start": T0}
    return store.create(**{**args, **kw})


def test_the_file_is_wal_and_synced_at_every_commit(tmp_path: Path) -> None:
    with IncidentStore(tmp_path / "i.db") as store:
        new(store)
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        other = sqlite3.connect(tmp_path / "i.db")
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # kept in the file itself
        assert other.execute("SELECT count(*) FROM incidents").fetchone()[0] == 1  # committed: another reader sees it
        other.close()


def test_create_get_list_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    with IncidentStore(path) as store:
        a = new(store, end=T0 + timedelta(hours=1), lat=-0.03, lon=109.33, cause=Cause.ACCIDENT,
                description="Tabrakan", lanes=["A1_A2_0"])
        b = new(store, start=T0 + timedelta(minutes=30), stop_ids=["K1E_2"], edges=[])
        c = new(store, start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=2), source=Source.DETECTOR)
        assert (a.id, b.id, c.id) == (1, 2, 3)
        assert (a.version, a.reported_by, a.updated_by, a.source, c.source) == (1, "desk", "desk", Source.OPERATOR,
                                                                              Source.DETECTOR)
        assert (a.lat, a.lon, a.lanes, a.edges, a.cause, a.end) == (-0.03, 109.33, ("A1_A2_0",), ("A1_A2",),
                                                                    Cause.ACCIDENT, T0 + timedelta(hours=1))
        assert store.get(2) == b and store.get(4) is None
        at = T0 + timedelta(minutes=45)
        assert [i.id for i in store.list(active=True, at=at)[1]] == [1, 2]
        assert [i.id for i in store.list(active=False, at=at)[1]] == [3]
        # the end is not part of the period: at 09:00, a has ended and c has begun
        assert [i.id for i in store.list(active=True, at=T0 + timedelta(hours=1))[1]] == [2, 3]
        assert store.count_active(T0 + timedelta(hours=1)) == 2
        assert store.list(limit=2, offset=1) == (3, [b, c])
    with IncidentStore(path) as again:
        assert again.list() == (3, [a, b, c])


def test_update_increments_the_version_and_refuses_a_stale_one(tmp_path: Path) -> None:
    with IncidentStore(tmp_path / "i.db") as store:
        a = new(store)
        b = store.update(a.id, {"end": T0 + timedelta(hours=1), "severity": Severity.SEVERE}, version=1,
                         updated_by="shift-2")
        assert (b.version, b.severity, b.end) == (2, Severity.SEVERE, T0 + timedelta(hours=1))
        assert (b.updated_by, b.reported_by) == ("shift-2", "desk")
        assert b.updated >= b.created and store.get(a.id) == b
        with pytest.raises(VersionConflict, match="is at version 2, not 1"):
            store.update(a.id, {"description": "x"}, version=1, updated_by="desk")
        with pytest.raises(IncidentNotFound):
            store.update(99, {"description": "x"}, version=1, updated_by="desk")
        with pytest.raises(IncidentInvalid) as err:  # the merged incident breaks a rule: nothing written
            store.update(a.id, {"start": T0 + timedelta(hours=2)}, version=2, updated_by="desk")
        assert err.value.field == "end"
        assert store.get(a.id) == b
        c = store.update(a.id, {"end": None}, version=2, updated_by="desk")  # reopened
        assert (c.end, c.version) == (None, 3)


@pytest.mark.parametrize(("kw", "field"), [
    ({"edges": []}, "location"),
    ({"lat": -0.03}, "lon"),
    ({"lon": 109.3}, "lat"),
    ({"lat": 91.0, "lon": 0.0}, "lat"),
    ({"end": T0}, "end"),
    ({"end": T0 - timedelta(seconds=1)}, "end"),
    ({"start": datetime(2040, 1, 1, 8)}, "start"),  # no time zone
    ({"lanes": ["A1_A2 0"]}, "lanes"),
    ({"severity": "SEVERE"}, "severity"),  # a string, not the enum
])
def test_the_rules_name_the_field(tmp_path: Path, kw: dict, field: str) -> None:
    with IncidentStore(tmp_path / "i.db") as store:
        with pytest.raises(IncidentInvalid) as err:
            new(store, **kw)
        assert err.value.field == field
        assert store.list() == (0, [])


def test_a_writer_killed_right_after_create_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    code = textwrap.dedent(f"""
        import os, signal, sys
        from datetime import UTC, datetime
        from transit_api.incidents import Effect, IncidentStore, Severity, Source
        store = IncidentStore({str(path)!r})
        i = store.create(source=Source.DETECTOR, reported_by="loop-7", severity=Severity.SEVERE,
                         effect=Effect.NO_SERVICE, lanes=["A1_A2_0"], start=datetime(2040, 1, 1, tzinfo=UTC))
        print(i.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert res.returncode == -signal.SIGKILL, res.stderr
    with IncidentStore(path) as store:
        got = store.get(int(res.stdout))
        assert got is not None and (got.reported_by, got.lanes) == ("loop-7", ("A1_A2_0",))


def test_a_file_that_is_not_an_incident_store_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        IncidentStore(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE stops (id TEXT)")
    with pytest.raises(StoreError, match="not a Lintas incident store"):
        IncidentStore(other)


def test_the_rate_limiter_is_a_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.take("a", 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", 2.0, 3) == pytest.approx(0.5)
    assert limiter.take("b", 2.0, 3) == 0.0  # per name
    now[0] = 0.5
    assert limiter.take("a", 2.0, 3) == 0.0
    now[0] = 100.0  # refilled to the burst, not beyond
    assert [limiter.take("a", 2.0, 3) == 0.0 for _ in range(4)] == [True, True, True, False]
    assert RateLimiter.retry_after(0.01) == "1" and RateLimiter.retry_after(4.2) == "5"


# ---------------------------------------------------------------- the config file

def write_config(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def good_config(path: Path) -> Path:
    return write_config(path, f"""
        [cors]
        origins = ["https://peta.example"]

        [rate_limit]
        per_second = 50
        burst = 200

        [[tokens]]
        name = "desk"
        sha256 = "{sha(DESK)}"

        [[tokens]]
        name = "shift"
        sha256 = "{sha(SHIFT)}"

        [[tokens]]
        name = "flood"
        sha256 = "{sha(FLOOD)}"
        per_second = 0.2
        burst = 3
    """)


def test_a_good_config(tmp_path: Path) -> None:
    cfg = load_config(good_config(tmp_path / "api.toml"))
    assert cfg.cors_origins == ("https://peta.example",)
    assert [(e.name, e.rate, e.burst) for e in cfg.tokens.entries] == [("desk", 50.0, 200), ("shift", 50.0, 200),
                                                                     ("flood", 0.2, 3)]
    assert cfg.tokens.identify(DESK).name == "desk" and cfg.tokens.identify(FLOOD).name == "flood"
    assert cfg.tokens.identify("desk") is None and cfg.tokens.identify(sha(DESK)) is None


BAD_CONFIGS = [
    ("[rate_limit]\nper_secnd = 5\n", "rate_limit.per_secnd", "unknown key"),
    ("[rate_limit]\nburst = 0\n", "rate_limit.burst", "1 or more"),
    ("[rate_limit]\nper_second = -1\n", "rate_limit.per_second", "above 0"),
    ("[cors]\norigins = [\"peta.example/path\"]\n", "cors.origins[0]", "scheme://host"),
    (f"[[tokens]]\nname = \"desk\"\nsha256 = \"{DESK}\"\n", "tokens[0].sha256", "64 lowercase hex digits"),
    ("[[tokens]]\nsha256 = \"" + "a" * 64 + "\"\n", "tokens[0].name", "missing"),
    ("[[tokens]]\nname = \"a\"\nsha256 = \"" + "a" * 64 + "\"\n[[tokens]]\nname = \"b\"\nsha256 = \"" + "a" * 64
     + "\"\n", "tokens[1].sha256", "same hash as tokens[0]"),
    ("tokens = \"all\"\n", "tokens", "array of tables"),
    ("debug = true\n", "debug", "unknown key"),
]


@pytest.mark.parametrize(("text", "key", "message"), BAD_CONFIGS)
def test_a_bad_config_names_the_key_and_the_file(tmp_path: Path, text: str, key: str, message: str) -> None:
    path = tmp_path / "api.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert (err.value.key, err.value.path) == (key, path)
    assert str(err.value).startswith(f"{path}: key '{key}': ") and message in str(err.value)
    assert DESK not in str(err.value)  # a token pasted where its hash belongs is not echoed


@pytest.mark.parametrize(("text", "expect"), [
    (BAD_CONFIGS[0][0], "key 'rate_limit.per_secnd': unknown key"),
    (BAD_CONFIGS[4][0], "key 'tokens[0].sha256': must be 64 lowercase hex digits"),
    ("[rate_limit\n", "not valid TOML"),
])
def test_lintas_api_refuses_a_bad_config_with_exit_2(tmp_path: Path, text: str, expect: str) -> None:
    path = tmp_path / "api.toml"
    path.write_text(text)
    res = subprocess.run([str(LINTAS), "api", "--gtfs", str(demo.GTFS_DIR), "--config", str(path), "--db",
                          str(tmp_path / "i.db"), "--port", str(_free_port())], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2
    assert res.stderr.startswith(f"lintas: error: --config {path}: ") and expect in res.stderr
    assert DESK not in res.stderr


def test_tokens_without_a_db_are_refused(tmp_path: Path) -> None:
    res = subprocess.run([str(LINTAS), "api", "--gtfs", str(demo.GTFS_DIR), "--config",
                          str(good_config(tmp_path / "api.toml"))], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "there is no --db to keep incidents in" in res.stderr


def test_hash_token_prints_the_sha256_of_stdin() -> None:
    res = subprocess.run([str(LINTAS), "api", "--hash-token"], input=DESK + "\n", capture_output=True, text=True,
                         timeout=60)
    assert (res.returncode, res.stdout) == (0, sha(DESK) + "\n")
    short = subprocess.run([str(LINTAS), "api", "--hash-token"], input="secret\n", capture_output=True, text=True,
                           timeout=60)
    assert short.returncode == 2 and "at least 16 characters" in short.stderr and short.stdout == ""


# ---------------------------------------------------------------- a real server

def call(base: str, method: str, path: str, body: object = None, token: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], object]:
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, h, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, h, raw = e.code, dict(e.headers), e.read()
    ctype = h.get("content-type", "")
    return status, {k.lower(): v for k, v in h.items()}, json.loads(raw) if "json" in ctype else raw.decode()


class Server:
    """`lintas api` in a subprocess on a free port; stderr to a file (read by the tests)."""

    def __init__(self, tmp: Path, config: Path, db: Path) -> None:
        self.tmp, self.config, self.db = tmp, config, db
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> str:
        self.starts += 1
        self.port = _free_port()
        self.stderr = self.tmp / f"stderr-{self.starts}.txt"
        with self.stderr.open("w") as err:
            self.proc = subprocess.Popen([str(LINTAS), "api", "--gtfs", str(demo.GTFS_DIR), "--config",
                                          str(self.config), "--db", str(self.db), "--port", str(self.port)],
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"lintas api exited {self.proc.returncode}: {self.stderr.read_text()}")
            try:
                if call(self.base, "GET", "/health")[0] == 200:
                    return self.base
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("lintas api did not answer /health in 30 s")
            time.sleep(0.05)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("api")
    srv = Server(tmp, good_config(tmp / "api.toml"), tmp / "incidents.db")
    srv.start()
    yield srv
    srv.stop()


GOOD = {"severity": "SEVERE", "effect": "SIGNIFICANT_DELAYS", "cause": "ACCIDENT", "description": "Tabrakan",
        "stop_ids": ["K1E_2"], "edges": ["A1_A2"], "lanes": ["A1_A2_0"], "lat": -0.0301, "lon": 109.3312,
        "start": "2026-03-02T07:15:00", "end": "2026-03-02T08:15:00"}


def metric(text: str, name: str, **labels: str) -> float:
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_post_with_a_good_token_is_201_and_reads_back(server: Server) -> None:
    status, headers, body = call(server.base, "POST", "/incidents", GOOD, token=DESK)
    assert status == 201, body
    assert headers["location"] == f"/incidents/{body['id']}"
    assert {k: body[k] for k in GOOD} == {**GOOD, "start": "2026-03-02T07:15:00+07:00",
                                          "end": "2026-03-02T08:15:00+07:00"}  # the feed's time zone
    assert (body["source"], body["reported_by"], body["updated_by"], body["version"], body["active"]) == (
        "operator", "desk", "desk", 1, False)
    status, _, got = call(server.base, "GET", headers["location"])
    assert (status, got) == (200, body)


def test_a_missing_or_wrong_token_is_401_and_never_logged(server: Server) -> None:
    before = call(server.base, "GET", "/incidents")[2]["total"]
    wrong = "wrong-token-zyxwvutsrqponmlkjihgfedcba"
    for hdrs in ({}, {"Authorization": f"Basic {DESK}"}, {"Authorization": "Bearer"},
                 {"Authorization": f"Bearer {wrong}"}, {"Authorization": f"Bearer {sha(DESK)}"}):
        for method, path in (("POST", "/incidents"), ("PATCH", "/incidents/1")):
            status, headers, body = call(server.base, method, path, {**GOOD, "version": 1} if method == "PATCH"
                                         else GOOD, headers=hdrs)
            assert status == 401, (hdrs, body)
            assert headers["www-authenticate"] == "Bearer"
            assert "token" in body["detail"]
    assert call(server.base, "GET", "/incidents")[2]["total"] == before  # nothing written
    log = server.stderr.read_text()
    assert f"refused POST /incidents from 127.0.0.1: wrong token (its sha256 begins {sha(wrong)[:8]})" in log
    assert "refused PATCH /incidents/1 from 127.0.0.1: no bearer token" in log
    for secret in (wrong, sha(wrong), DESK, sha(DESK)[8:], FLOOD):
        assert secret not in log


@pytest.mark.parametrize(("change", "loc"), [
    ({"severity": "BAD"}, ["body", "severity"]),
    ({"severity": "severe"}, ["body", "severity"]),
    ({"effect": None}, ["body", "effect"]),
    ({"cause": "ALIENS"}, ["body", "cause"]),
    ({"severty": "SEVERE"}, ["body", "severty"]),  # a typo is not silently dropped
    ({"lat": 100}, ["body", "lat"]),
    ({"lon": None}, ["body", "lon"]),  # lat without lon
    ({"stop_ids": [], "edges": [], "lanes": [], "lat": None, "lon": None}, ["body", "location"]),
    ({"end": "2026-03-02T07:00:00"}, ["body", "end"]),  # before the start
    ({"start": "yesterday"}, ["body", "start"]),
    ({"stop_ids": ["K1E_2", "NOPE"]}, ["body", "stop_ids", 1]),  # not in the feed
    ({"lanes": ["A1_A2 0"]}, ["body", "lanes", 0]),
    ({"description": "x" * 2001}, ["body", "description"]),
])
def test_a_bad_body_is_422_naming_the_field(server: Server, change: dict, loc: list) -> None:
    body = {k: v for k, v in {**GOOD, **change}.items() if not (k == "effect" and v is None)}
    status, _, answer = call(server.base, "POST", "/incidents", body, token=DESK)
    assert status == 422, answer
    assert [e["loc"] for e in answer["detail"]] == [loc]


def test_a_body_that_is_not_json_is_422(server: Server) -> None:
    status, _, answer = call(server.base, "POST", "/incidents", b'{"severity": ', token=DESK)
    assert status == 422 and answer["detail"][0]["type"] == "json_invalid"


def test_patch(server: Server) -> None:
    _, _, made = call(server.base, "POST", "/incidents", {**GOOD, "end": None}, token=DESK)
    url = f"/incidents/{made['id']}"
    status, _, closed = call(server.base, "PATCH", url, {"version": 1, "end": "2026-03-02T07:45:00",
                                                         "severity": "WARNING"}, token=DESK)
    assert status == 200, closed
    assert (closed["version"], closed["end"], closed["severity"], closed["description"]) == (
        2, "2026-03-02T07:45:00+07:00", "WARNING", "Tabrakan")  # the rest unchanged
    assert call(server.base, "GET", url)[2] == closed
    status, _, answer = call(server.base, "PATCH", url, {"version": 1, "description": "late"}, token=DESK)
    assert (status, answer["detail"]) == (409, f"incident {made['id']} is at version 2, not 1: read it again and "
                                               "apply the change to version 2")
    status, _, reopened = call(server.base, "PATCH", url, {"version": 2, "end": None, "lat": None, "lon": None},
                               token=SHIFT)
    assert (status, reopened["end"], reopened["lat"], reopened["version"], reopened["updated_by"],
            reopened["reported_by"]) == (200, None, None, 3, "shift", "desk")
    for change, loc in (({"version": 3}, ["body"]), ({"version": 3, "severity": None}, ["body", "severity"]),
                        ({"version": 3, "source": "detector"}, ["body", "source"]),
                        ({"version": 3, "start": "2026-03-02T09:00:00", "end": "2026-03-02T08:00:00"},
                         ["body", "end"]),
                        ({"end": None}, ["body", "version"])):
        status, _, answer = call(server.base, "PATCH", url, change, token=DESK)
        assert status == 422 and [e["loc"] for e in answer["detail"]] == [loc], (change, answer)
    assert call(server.base, "GET", url)[2] == reopened  # the refused changes changed nothing
    assert call(server.base, "PATCH", "/incidents/999999", {"version": 1, "description": "x"}, token=DESK)[::2] == (
        404, {"detail": "no incident with id 999999"})


def test_list_paginates_and_filters_active(server: Server) -> None:
    periods = [("2040-01-01T08:00:00", "2040-01-01T09:00:00"), ("2040-01-01T08:30:00", None),
               ("2040-01-01T09:00:00", "2040-01-01T10:00:00")]
    ids = [call(server.base, "POST", "/incidents", {**GOOD, "start": s, "end": e}, token=DESK)[2]["id"]
           for s, e in periods]

    def listed(query: str) -> list[int]:
        status, _, page = call(server.base, "GET", "/incidents?limit=1000&" + query)
        assert status == 200, page
        assert all(i["active"] is ("active=false" not in query) for i in page["items"] if "active=" in query)
        return [i["id"] for i in page["items"] if i["id"] in ids]

    assert listed("active=true&at=2040-01-01T08:45:00") == ids[:2]
    assert listed("active=false&at=2040-01-01T08:45:00") == ids[2:]
    assert listed("active=true&at=2040-01-01T09:00:00") == ids[1:]  # the end is not part of the period
    assert listed("active=true&at=2040-01-01T02:00:00Z") == ids[1:]  # the same instant, in UTC
    _, _, whole = call(server.base, "GET", "/incidents?limit=1000")
    all_ids = [i["id"] for i in whole["items"]]
    assert all_ids == sorted(all_ids) and set(ids) <= set(all_ids) and whole["total"] == len(all_ids)
    paged = []
    for offset in range(0, whole["total"], 2):
        _, _, page = call(server.base, "GET", f"/incidents?limit=2&offset={offset}")
        assert (page["total"], page["limit"], page["offset"], len(page["items"]) <= 2) == (whole["total"], 2, offset,
                                                                                            True)
        paged += [i["id"] for i in page["items"]]
    assert paged == all_ids
    for query, param in (("limit=0", "limit"), ("offset=-1", "offset"), ("active=maybe", "active"),
                         ("at=noon", "at")):
        status, _, answer = call(server.base, "GET", f"/incidents?{query}")
        assert (status, [e["loc"] for e in answer["detail"]]) == (422, [["query", param]])


def test_an_unknown_incident_is_404_with_a_reason(server: Server) -> None:
    assert call(server.base, "GET", "/incidents/999999")[::2] == (404, {"detail": "no incident with id 999999"})
    status, _, answer = call(server.base, "GET", "/incidents/abc")
    assert (status, answer["detail"][0]["loc"]) == (422, ["path", "incident_id"])


def test_writes_are_rate_limited_per_token(server: Server) -> None:
    before = call(server.base, "GET", "/metrics")[2]
    # flood: 3 at once, then one per 5 s; the requests below take well under a second
    statuses = [call(server.base, "POST", "/incidents", GOOD, token=FLOOD) for _ in range(4)]
    assert [s for s, _h, _b in statuses[:3]] == [201, 201, 201]
    status, headers, body = statuses[3]
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 5
    assert body["detail"].startswith("too many writes for token 'flood' (at most 3 at once, 0.2 a second)")
    # a refused write is refused before its body is read: a bad body is 429 too, not 422
    assert call(server.base, "POST", "/incidents", {"severity": "BAD"}, token=FLOOD)[0] == 429
    assert call(server.base, "POST", "/incidents", GOOD, token=DESK)[0] == 201  # another token's bucket
    after = call(server.base, "GET", "/metrics")[2]
    refused = "lintas_api_write_refused_total"
    assert metric(after, refused, reason="rate_limited") - metric(before, refused, reason="rate_limited") == 2
    assert "token 'flood' over its rate" in server.stderr.read_text()


def test_metrics(server: Server) -> None:
    status, headers, before = call(server.base, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=")
    call(server.base, "POST", "/incidents", {**GOOD, "start": None, "end": None}, token=DESK)  # active from now
    call(server.base, "POST", "/incidents", GOOD)  # no token
    call(server.base, "POST", "/incidents", {**GOOD, "lat": 100}, token=DESK)
    call(server.base, "GET", "/incidents/999999")
    call(server.base, "GET", "/no/such/path")
    _, _, after = call(server.base, "GET", "/metrics")

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    req = "lintas_api_requests_total"
    assert delta(req, method="POST", route="/incidents", status="201") == 1
    assert delta(req, method="POST", route="/incidents", status="401") == 1
    assert delta(req, method="POST", route="/incidents", status="422") == 1
    assert delta(req, method="GET", route="/incidents/{incident_id}", status="404") == 1
    assert delta(req, method="GET", route="unmatched", status="404") == 1
    assert delta(req, method="GET", route="/metrics", status="200") == 1
    refused = "lintas_api_write_refused_total"
    assert delta(refused, reason="missing_token") == 1 and delta(refused, reason="invalid") == 1
    assert delta("lintas_api_incident_writes_total", operation="created") == 1
    assert delta("lintas_api_incidents_active") == 1
    _, _, listed = call(server.base, "GET", "/incidents?active=true&limit=1000")
    assert metric(after, "lintas_api_incidents_active") == listed["total"]
    for reason in ("wrong_token", "rate_limited", "not_found", "version_conflict"):
        assert f'{refused}{{reason="{reason}"}}' in after  # shown from the start, so alerts can watch them


def test_cors_origins_come_from_the_config(server: Server) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    status, headers, _ = call(server.base, "OPTIONS", "/incidents", headers={"Origin": "https://peta.example",
                                                                            **preflight})
    assert status == 200 and headers["access-control-allow-origin"] == "https://peta.example"
    assert "PATCH" in headers["access-control-allow-methods"]
    status, headers, _ = call(server.base, "OPTIONS", "/incidents", headers={"Origin": "https://evil.example",
                                                                            **preflight})
    assert status == 400 and "access-control-allow-origin" not in headers
    _, headers, _ = call(server.base, "GET", "/incidents", headers={"Origin": "https://peta.example"})
    assert headers["access-control-allow-origin"] == "https://peta.example"
    _, headers, _ = call(server.base, "GET", "/incidents", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers


def test_kill_9_right_after_a_201_loses_nothing(tmp_path: Path) -> None:
    srv = Server(tmp_path, good_config(tmp_path / "api.toml"), tmp_path / "incidents.db")
    try:
        srv.start()
        status, _, made = call(srv.base, "POST", "/incidents", GOOD, token=DESK)
        assert status == 201
        srv.kill9()
        srv.start()
        status, _, got = call(srv.base, "GET", f"/incidents/{made['id']}")
        assert (status, got) == (200, made)
        status, _, changed = call(srv.base, "PATCH", f"/incidents/{made['id']}", {"version": 1, "lanes": []},
                                  token=DESK)
        assert status == 200
        srv.kill9()
        srv.start()
        assert call(srv.base, "GET", f"/incidents/{made['id']}")[2] == changed
        assert call(srv.base, "GET", "/incidents")[2]["total"] == 1
    finally:
        srv.stop()


def test_the_openapi_docs_show_the_writes_their_token_and_an_example(server: Server) -> None:
    status, _, doc = call(server.base, "GET", "/openapi.json")
    assert status == 200
    post = doc["paths"]["/incidents"]["post"]
    assert post["security"] == [{"HTTPBearer": []}] and doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] \
        == "bearer"
    assert set(post["responses"]) == {"201", "401", "422", "429"}
    assert set(doc["paths"]["/incidents/{incident_id}"]["patch"]["responses"]) == {"200", "401", "404", "409", "422",
                                                                                 "429"}
    example = doc["components"]["schemas"]["IncidentIn"]["examples"][0]
    assert call(server.base, "POST", "/incidents", example, token=DESK)[0] == 201  # the example is a valid body
