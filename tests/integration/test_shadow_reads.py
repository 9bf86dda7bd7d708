"""Shadow reads and the read switchover on every legacy backend (MySQL: a MariaDB legacy database beside an SQLite
event store), through the legacy app with live routes: the mode
picked up by a running app, legacy responses byte-for-byte unchanged under concurrent load, a slowed-down
candidate counted as timeouts, mismatches recorded with both values and lag told apart, `new` mode with a
percent rollout by key hash and read-your-writes, and the A/A run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from es_app.bootstrap import build, engine_for
from es_app.projections import run_projections
from es_app.settings import Settings
from es_app.store import NewEvent
from legacy_app.db import Database
from legacy_app.reads import LegacyTableReads
from legacy_app.service import UserService
from migrator.capture import changelog as capture
from migrator.cli import main
from migrator.mapping import USERS
from migrator.phases import load, stream_id
from migrator.relay.runner import relays_for
from migrator.shadow.aa import run_aa
from migrator.shadow.mismatches import LAG, MISMATCH, recent
from migrator.shadow.sampling import sampled
from migrator.switchover.app import create_switchable_app
from migrator.switchover.live import LiveRoutes

USERS_N = 24
DEADLINE_S = 60.0  # how long a test waits for something to happen: a bound on hanging, not a speed assertion


class Urls(str):
    """The legacy database's URL; its event store's is `.es` (the same database on SQLite and PostgreSQL)."""

    es: str

    def __new__(cls, legacy: str, es: str) -> Urls:
        made = super().__new__(cls, legacy)
        made.es = es
        return made


def catch_up(url: Urls) -> None:
    engine = engine_for(url)
    es = build(Settings(es_database_url=url.es))
    for relay in relays_for([USERS], engine, es.store):
        relay.drain()
    run_projections(es)


@pytest.fixture
def url(new_legacy_and_es_urls) -> Iterator[Urls]:
    url = Urls(*new_legacy_and_es_urls("shadow"))  # SQLite, PostgreSQL: the legacy tables and the store in one
    assert main(["capture", "install", "--legacy-url", url]) == 0
    database = Database.connect(url)
    users = UserService(database)
    for i in range(1, USERS_N + 1):
        users.create(email=f"user{i}@example.org", full_name=f"User {i}", is_active=i % 3 != 0,
                     phone=None if i % 4 == 0 else f"+1 555 {i:04d}")
    database.dispose()
    assert main(["backfill", "--es-url", url.es, "--legacy-url", url]) == 0
    catch_up(url)
    assert main(["advance", "--to", "backfilled", "--force", "--reason", "test", "--actor", "t",
                 "--es-url", url.es, "--legacy-url", url]) == 0
    yield url
    engine_for(url).dispose()
    engine_for(url.es).dispose()


def settings(url: Urls, **extra) -> Settings:
    base = {"es_database_url": url.es, "legacy_database_url": url, "routes_poll_s": 0.05, "shadow_flush_s": 0.2,
            "shadow_timeout_ms": 30_000.0, "read_wait_s": 30.0}
    return Settings(**{**base, **extra})


def reads(url: Urls, *args: str) -> None:
    assert main(["reads", *args, "--actor", "t", "--es-url", url.es, "--legacy-url", url]) == 0


def served(client: TestClient, mode: str, source: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'legacy_api_reads_total{{mode="{mode}",served="{source}"}}'):
            return float(line.split()[-1])
    return 0.0


def wait_for_mode(client: TestClient, mode: str, source: str = "legacy") -> None:
    """Reads until a read is served in `mode` (the running app picked the mode up)."""
    before, deadline = served(client, mode, source), time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        client.get("/users/1")
        if served(client, mode, source) > before:
            return
        time.sleep(0.02)
    pytest.fail(f"the app did not pick up reads mode {mode}")


REQUESTS = [f"/users/{i}" for i in range(1, USERS_N + 2)] + [
    "/users", "/users?limit=5&offset=3", "/users?search=user%201", "/users?search=EXAMPLE&limit=7"]


def legacy_bytes(url: Urls) -> dict[str, tuple[int, bytes]]:
    with TestClient(create_switchable_app(url, settings(url))) as client:
        return {r: (resp.status_code, resp.content) for r in REQUESTS if (resp := client.get(r)) is not None}


def test_a_running_app_follows_the_reads_mode_without_a_restart(url):
    with TestClient(create_switchable_app(url, settings(url))) as client:
        wait_for_mode(client, "legacy")
        reads(url, "--mode", "shadow")
        wait_for_mode(client, "shadow")
        reads(url, "--mode", "new")
        wait_for_mode(client, "new", "read_model")
        reads(url, "--mode", "legacy")
        wait_for_mode(client, "legacy")
        metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "legacy_api_shadow_reads_total" in metrics.text
    assert "legacy_api_read_fallbacks" in metrics.text


def test_shadow_responses_are_byte_for_byte_legacy_under_concurrent_load(url):
    expected = legacy_bytes(url)
    reads(url, "--mode", "shadow")
    load_ = REQUESTS * 4
    with TestClient(create_switchable_app(url, settings(url))) as client:
        wait_for_mode(client, "shadow")
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(lambda r: (r, client.get(r)), load_))
    assert all((resp.status_code, resp.content) == expected[r] for r, resp in got)
    state = load(build(Settings(es_database_url=url.es)).store)
    assert state.shadow_recorded and state.shadow_compared > 0
    assert state.shadow_mismatched == 0 and state.shadow_errors == 0
    assert not recent(engine_for(url.es), "users", kind=MISMATCH)


class SlowCandidate:
    """The read model's reads, each slowed down well past the shadow timeout."""

    def __init__(self, inner):
        self.inner, self.mode = inner, inner.mode

    def get(self, user_id):
        time.sleep(0.3)
        return self.inner.get(user_id)

    def search(self, query=None, *, limit=50, offset=0):
        time.sleep(0.3)
        return self.inner.search(query, limit=limit, offset=offset)


def test_a_slow_candidate_never_changes_the_response_and_counts_as_timeouts(url):
    expected = legacy_bytes(url)
    reads(url, "--mode", "shadow")
    es = build(settings(url, shadow_timeout_ms=50.0, shadow_pool=2, shadow_queue=1000))
    database = Database.connect(url)
    routes = LiveRoutes(database, es, [USERS.bind(database.engine)], name="users", poll_s=0.05,
                        candidate=SlowCandidate(LegacyTableReads(database)))
    from legacy_app.api import create_app

    with TestClient(create_app(url, routes=lambda _db: routes)) as client:
        got = [(r, client.get(r)) for r in REQUESTS]
    database.dispose()
    assert all((resp.status_code, resp.content) == expected[r] for r, resp in got)
    totals = routes.metrics.totals()
    assert totals["timeouts"] == len(REQUESTS) and totals["compared"] == 0
    assert load(es.store).shadow_timeouts == len(REQUESTS)  # flushed on close


def test_a_mismatch_is_recorded_with_both_values_and_lag_is_told_apart(url):
    with engine_for(url.es).begin() as conn:  # the read model disagrees with legacy for user 3
        conn.execute(text("UPDATE users_view SET name = 'Someone Else' WHERE id = 'user-3'"))
    reads(url, "--mode", "shadow")
    with TestClient(create_switchable_app(url, settings(url))) as client:
        wait_for_mode(client, "shadow")
        assert client.get("/users/3").json()["full_name"] == "User 3"
        assert client.put("/users/4", json={"full_name": "Renamed Four"}).status_code == 200  # not relayed
        assert client.get("/users/4").json()["full_name"] == "Renamed Four"
    found = {m.key: m for m in recent(engine_for(url.es), "users")}
    real, lag = found["3"], found["4"]
    assert real.kind == MISMATCH and real.fields == ("name",)
    assert real.legacy["full_name"] == "User 3" and real.candidate["full_name"] == "Someone Else"
    assert real.read_model_position is not None and real.changelog_id is not None
    assert lag.kind == LAG and lag.fields == ("name",)
    assert lag.legacy["full_name"] == "Renamed Four" and lag.candidate["full_name"] == "User 4"
    capture.number_committed(engine_for(url))  # MySQL: the change gets its id (as the mismatch's recorder did)
    with engine_for(url).connect() as conn:
        newest = conn.execute(text("SELECT max(id) FROM migrator_changelog WHERE pk = '4'")).scalar()
    assert lag.changelog_id == newest
    state = load(build(Settings(es_database_url=url.es)).store)
    assert state.shadow_mismatched >= 1 and state.shadow_lagged >= 1  # the guard reads mismatched only

    assert main(["shadow", "mismatches", "--json", "--es-url", url.es, "--legacy-url", url]) == 0


def test_new_mode_serves_the_read_model_byte_for_byte_with_a_percent_rollout(url, capsys):
    expected = legacy_bytes(url)
    reads(url, "--mode", "new")
    with TestClient(create_switchable_app(url, settings(url))) as client:
        wait_for_mode(client, "new", "read_model")
        got = {r: client.get(r) for r in REQUESTS}
        assert all((resp.status_code, resp.content) == expected[r] for r, resp in got.items())
        with engine_for(url.es).begin() as conn:  # tell the read model's answers apart from legacy's
            conn.execute(text("UPDATE users_view SET name = name || ' (rm)'"))
        reads(url, "--mode", "new", "--percent", "50")
        outside = next(i for i in range(1, USERS_N + 1) if not sampled(i, 50.0))
        deadline = time.monotonic() + DEADLINE_S
        while client.get(f"/users/{outside}").json()["full_name"].endswith(" (rm)"):  # until the app follows
            assert time.monotonic() < deadline
            time.sleep(0.02)
        names = {i: client.get(f"/users/{i}").json()["full_name"] for i in range(1, USERS_N + 1)}
    from_model = {i for i, n in names.items() if n.endswith(" (rm)")}
    assert from_model == {i for i in names if sampled(i, 50.0)}
    assert 0 < len(from_model) < USERS_N


def test_new_mode_reads_your_writes(url):
    reads(url, "--mode", "new")
    stop = threading.Event()

    def follow() -> None:  # the relay and the projections, running as they would beside the app
        while not stop.is_set():
            catch_up(url)
            time.sleep(0.02)

    with TestClient(create_switchable_app(url, settings(url))) as client:
        wait_for_mode(client, "new", "read_model")
        runner = threading.Thread(target=follow)
        runner.start()
        try:
            for i in (5, 6, 7):
                assert client.put(f"/users/{i}", json={"full_name": f"Written {i}"}).status_code == 200
                assert client.get(f"/users/{i}").json()["full_name"] == f"Written {i}"
        finally:
            stop.set()
            runner.join()
        metrics = client.get("/metrics").text
    assert 'legacy_api_read_fallbacks_total{read="get"}' not in metrics  # answered by the read model


def test_new_mode_falls_back_to_legacy_while_the_relay_is_stopped(url):
    reads(url, "--mode", "new")
    with TestClient(create_switchable_app(url, settings(url, read_wait_s=0.05))) as client:
        wait_for_mode(client, "new", "read_model")
        assert client.put("/users/8", json={"full_name": "Eight"}).status_code == 200
        assert client.get("/users/8").json()["full_name"] == "Eight"
        metrics = client.get("/metrics").text
    assert 'legacy_api_read_fallbacks_total{read="get"} 1.0' in metrics


def test_writes_switched_without_event_sourced_writes_are_refused_reads_still_work(url):
    es = build(Settings(es_database_url=url.es))
    es.store.append(stream_id("users"), [NewEvent("WritesModeChanged", {"mode": "new", "previous": "legacy"},
                                                  {"actor": "t"})])
    with TestClient(create_switchable_app(url, settings(url), writes_factory=None)) as client:
        refused = client.put("/users/2", json={"full_name": "No"})
        assert refused.status_code == 503 and "no event-sourced writes" in refused.json()["detail"]
        assert client.get("/users/2").status_code == 200


def test_the_a_a_run_measures_the_noise_floor(url, capsys, monkeypatch):
    database = Database.connect(url)
    result = run_aa(database, USERS.bind(database.engine), reads=200, threads=4, timeout_s=30.0, seed=1)
    database.dispose()
    c = result.counts
    assert c["compared"] + c["skipped"] == 200 and c["compared"] > 0
    assert c["mismatched"] == 0 and c["errors"] == 0 and result.mismatch_rate == 0.0
    capsys.readouterr()
    from es_app.settings import get_settings

    monkeypatch.setenv("SHADOW_TIMEOUT_MS", "30000")  # as above: no read times out on a loaded machine
    get_settings.cache_clear()
    try:
        assert main(["shadow", "aa", "--reads", "40", "--json", "--legacy-url", url]) == 0
    finally:
        get_settings.cache_clear()
    doc = json.loads(capsys.readouterr().out)
    assert doc["reads"] == 40 and doc["mismatched"] == 0 and doc["compared"] + doc["skipped"] == 40


def test_the_reads_command(url, new_legacy_and_es_urls, capsys):
    def run(*argv: str, at: Urls = url) -> tuple[int, list[str]]:
        capsys.readouterr()
        code = main(["reads", *argv, "--es-url", at.es, "--legacy-url", at])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, [line for line in (err or out).splitlines() if line.strip()]

    assert main(["reads", "--help"]) == 0 and "--percent" in capsys.readouterr().out
    for bad in (["--mode", "shadow", "--percent", "0"], ["--mode", "new", "--percent", "100.5"],
                ["--mode", "sideways"], ["--percent", "10"], ["--mode", "new", "--percent", "nan"]):
        code, err = run(*bad)
        assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (bad, err)
    code, _ = run("--mode", "shadow", "--percent", "12.5")
    assert code == 0
    state = load(build(Settings(es_database_url=url.es)).store)
    assert (state.reads, state.reads_percent) == ("shadow", 12.5)
    assert state.history[-1].type == "ReadsModeChanged" and state.history[-1].actor != "unknown"

    fresh = Urls(*new_legacy_and_es_urls("fresh"))  # the legacy phase: only `legacy` is allowed
    code, err = run("--mode", "new", at=fresh)
    assert code == 1 and err == ["error: reads cannot be new before the backfilled phase: the migration users is "
                                 "legacy (see `migrator plan`)"]
    code, out = run("--mode", "legacy", at=fresh)
    assert code == 0 and out == ["migration users: reads are already legacy"]
    for argv in (["shadow", "--help"], ["shadow", "aa", "--help"], ["shadow", "mismatches", "--help"]):
        assert main(argv) == 0
