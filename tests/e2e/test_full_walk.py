"""The whole walk, legacy → decommissioned, on each backend (and from a MariaDB legacy database), with live traffic
through the legacy API the whole time: a writer (creates, renames, deactivations, deletes, each write read back at
once) and readers. The operator's steps are the CLI's (`capture install`, `advance`, `backfill`, `verify --full`,
`reads`, `rollback`, `decommission`); a worker thread runs the relay, the projections and the reverse projection as
the Celery worker would. Checked: no answer of the legacy API is a 5xx, every write is read back as written (read
your writes in every reads mode), a clean full verify at every step, rollbacks under traffic (from shadow_reads
and from writes_switched), no lost write and no duplicate event at the end, and the archive's manifest
matching the table it replaced."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from es_app.bootstrap import build, engine_for
from es_app.projections import run_projections
from es_app.settings import Settings, get_settings
from migrator.cli import main
from migrator.phases import load
from migrator.relay.tasks import relay as relay_task
from migrator.switchover.app import create_switchable_app
from tests.conftest import require_postgres

SETTINGS = {"SHADOW_MIN_COMPARED": "20", "READS_SWITCHED_MIN_S": "0", "WRITES_SWITCHED_MIN_S": "0",
            "ROUTES_POLL_S": "0.05", "SHADOW_FLUSH_S": "0.1", "RELAY_MAX_IDLE_S": "600", "READ_WAIT_S": "5"}


class Traffic:
    """A writer and two readers on the legacy API; every answer checked, every write remembered."""

    def __init__(self, client: TestClient, seed_ids: list[int]):
        self.client, self.stop = client, threading.Event()
        self.expected: dict[int, dict[str, Any] | None] = {i: None for i in seed_ids}  # None: not written by us
        self.writes = 0
        self.problems: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._writer, daemon=True)] + \
                       [threading.Thread(target=self._reader, args=(r,), daemon=True) for r in range(2)]

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads)

    def wait_writes(self, n: int, timeout: float = 60.0) -> None:
        """Returns once the writer made `n` more writes."""
        target, deadline = self.writes + n, time.monotonic() + timeout
        while self.writes < target:
            assert time.monotonic() < deadline and not self.problems, self.problems[:3]
            time.sleep(0.02)

    def _check(self, response: Any, *ok: int) -> bool:
        if response.status_code not in ok:
            self.problems.append(f"{response.request.method} {response.request.url.path}: {response.status_code} "
                                 f"{response.text[:200]} {response.request.extensions.get('after', '')}")
            return False
        return True

    def _writer(self) -> None:
        rng, n = random.Random(7), 0
        while not self.stop.is_set():
            n += 1
            live = [i for i, e in self.expected.items() if e is None or not e.get("deleted")]
            choice = rng.random()
            if choice < 0.3 or not live:
                body = {"email": f"walker{n}@example.org", "full_name": f"Walker {n}"}
                r = self.client.post("/users", json=body)
                if self._check(r, 201):
                    self.expected[r.json()["id"]] = {"full_name": body["full_name"], "is_active": True}
            elif choice < 0.9:
                uid = rng.choice(live)
                body = {"full_name": f"Renamed {n}"} if rng.random() < 0.7 else {"is_active": rng.random() < 0.5}
                r = self.client.put(f"/users/{uid}", json=body)
                if self._check(r, 200):
                    self.expected[uid] = {**(self.expected[uid] or {}), **body}
                    if self.expected[uid].get("full_name") is None:
                        self.expected[uid]["full_name"] = r.json()["full_name"]
                        self.expected[uid].setdefault("is_active", r.json()["is_active"])
            else:
                uid = rng.choice(live)
                r = self.client.delete(f"/users/{uid}")
                if self._check(r, 204):
                    self.expected[uid] = {"deleted": True}
            if r.status_code < 300:
                self.writes += 1
                self._read_back(r)

    def _read_back(self, write: Any) -> None:
        """Read your writes: the next read of the user shows the write, whatever the reads mode."""
        uid = int(write.request.url.path.rsplit("/", 1)[-1]) if write.request.method != "POST" else write.json()["id"]
        want = self.expected[uid] or {}
        r = self.client.get(f"/users/{uid}")
        r.request.extensions["after"] = f"after {write.request.method} {write.status_code}"
        if want.get("deleted"):
            self._check(r, 404)
        elif self._check(r, 200):
            got = r.json()
            seen = {k: got[k] for k in want}
            if seen != want:
                self.problems.append(f"read after write of user {uid}: {seen} != {want}")

    def _reader(self, r: int) -> None:
        rng = random.Random(r)
        while not self.stop.is_set():
            ids = list(self.expected)
            if rng.random() < 0.8:
                self._check(self.client.get(f"/users/{rng.choice(ids)}"), 200, 404)
            else:
                self._check(self.client.get("/users", params={"search": "walker", "limit": 20}), 200)


class Worker:
    """The Celery worker's jobs in a thread: relay (then the reverse projection), projections."""

    def __init__(self, legacy_url: str, es_url: str):
        self.legacy_url, self.es_url = legacy_url, es_url
        self.stop, self.errors = threading.Event(), []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        es = build(Settings(es_database_url=self.es_url, legacy_database_url=self.legacy_url))
        while not self.stop.is_set():
            try:
                if load(es.store).phase != "decommissioned":
                    relay_task(self.es_url, self.legacy_url)
                run_projections(es)
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(exc))
            self.stop.wait(0.05)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)


def cli(capsys, *argv: str, urls: tuple[str, str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*argv, "--legacy-url", urls[0], "--es-url", urls[1]])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def until(capsys, urls: tuple[str, str], *argv: str, tries: int = 40) -> str:
    """Returns the output of the first success of a command the operator retries while traffic moves on
    (an advance whose backlog guard saw a change in flight, a verify that caught a write mid-way)."""
    for _ in range(tries):
        code, out, err = cli(capsys, *argv, urls=urls)
        if code == 0:
            return out
        time.sleep(0.2)
    raise AssertionError(f"migrator {' '.join(argv)} never succeeded: {err or out}")


def phase(urls: tuple[str, str]) -> str:
    return load(build(Settings(es_database_url=urls[1])).store).phase


def shadow_compared(capsys, urls: tuple[str, str]) -> int:
    doc = json.loads(cli(capsys, "status", "--json", urls=urls)[1])
    return 0 if doc["shadow"] is None else doc["shadow"]["compared"]


@pytest.fixture
def walk_settings(monkeypatch):
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("migrator.relay.tasks.publish_appended", lambda *a, **k: None)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def mariadb_urls(request, mysql_databases, tmp_path):
    """Returns (legacy URL on MariaDB, event-store URL): a fresh MariaDB legacy database, the event store in an
    SQLite file or a fresh PostgreSQL database."""
    legacy = mysql_databases.new(schema_head=False)  # `migrator init` makes the legacy table, as for the others
    if request.param == "postgres":
        require_postgres()
        es = request.getfixturevalue("postgres_databases").new()
    else:
        es = f"sqlite:///{tmp_path / 'es.db'}"
    yield legacy, es
    for url in (legacy, es):
        engine_for(url).dispose()
    mysql_databases.drop(legacy)


def test_the_full_walk_under_live_traffic(urls, walk_settings, capsys, tmp_path: Path):
    walk(urls, capsys, tmp_path)


@pytest.mark.mysql
def test_the_full_walk_under_live_traffic_from_mariadb(mariadb_urls, walk_settings, capsys, tmp_path: Path):
    """The same walk with the legacy database on MariaDB (capture by triggers and the id sequencer, DDL that
    commits by itself, the reverse projection's keys from AUTO_INCREMENT)."""
    walk(mariadb_urls, capsys, tmp_path)


def walk(urls: tuple[str, str], capsys, tmp_path: Path) -> None:
    legacy_url, es_url = urls
    assert cli(capsys, "init", urls=urls)[0] == 0
    settings = Settings(es_database_url=es_url, legacy_database_url=legacy_url,
                        **{k.lower(): v for k, v in SETTINGS.items()})
    app = create_switchable_app(legacy_url, settings)
    with TestClient(app) as client:
        ids = [client.post("/users", json={"email": f"seed{i}@example.org", "full_name": f"Seed {i}"}).json()["id"]
               for i in range(40)]
        client.put(f"/users/{ids[0]}", json={"email": "Mixed.Case@Example.org"})  # dirty legacy data
        with Traffic(client, ids) as traffic, Worker(legacy_url, es_url) as worker:
            assert cli(capsys, "capture", "install", urls=urls)[0] == 0
            traffic.wait_writes(10)
            until(capsys, urls, "advance", "--actor", "walker")  # → dual_write, once the relay ran
            assert cli(capsys, "rollback", urls=urls)[0] == 0 and phase(urls) == "legacy"  # capture keeps running
            until(capsys, urls, "advance", "--actor", "walker")  # → dual_write again
            assert cli(capsys, "backfill", urls=urls)[0] == 0
            until(capsys, urls, "advance", "--actor", "walker")  # → backfilled
            until(capsys, urls, "verify", "--full")
            until(capsys, urls, "advance", "--actor", "walker")  # → shadow_reads
            assert phase(urls) == "shadow_reads"

            traffic.wait_writes(10)
            assert cli(capsys, "rollback", "--actor", "walker", urls=urls)[0] == 0  # back to backfilled, under traffic
            assert phase(urls) == "backfilled"
            until(capsys, urls, "advance", "--actor", "walker")  # → shadow_reads again
            for attempt in range(2):  # the second time after a rollback from reads_switched, under traffic
                deadline = time.monotonic() + 60
                while shadow_compared(capsys, urls) < 20:
                    assert time.monotonic() < deadline, "the shadow reads never reached 20 compared"
                    time.sleep(0.1)
                until(capsys, urls, "verify", "--full")
                until(capsys, urls, "advance", "--actor", "walker")  # → reads_switched
                assert phase(urls) == "reads_switched"
                traffic.wait_writes(15)
                if attempt == 0:
                    assert cli(capsys, "rollback", urls=urls)[0] == 0 and phase(urls) == "shadow_reads"

            until(capsys, urls, "advance", "--actor", "walker")  # → writes_switched
            assert phase(urls) == "writes_switched"
            traffic.wait_writes(25)  # writes go through the event-sourced commands now
            assert cli(capsys, "rollback", "--actor", "walker", urls=urls)[0] == 0  # writes back to legacy
            assert phase(urls) == "reads_switched"
            traffic.wait_writes(15)
            until(capsys, urls, "advance", "--actor", "walker")  # → writes_switched again
            traffic.wait_writes(15)
        assert not traffic.problems, traffic.problems[:5]
        assert not worker.errors, worker.errors[:3]
        written = traffic.writes

        es = build(Settings(es_database_url=es_url))
        with Worker(legacy_url, es_url):
            out = until(capsys, urls, "verify", "--full")
        assert "clean" in out
        run_projections(es)

        # no lost write: every user the writer touched is in the read model as last written
        with es.engine.connect() as conn:
            view = {int(r.legacy_key): r for r in conn.execute(text(
                "SELECT legacy_key, name, active, deleted FROM users_view WHERE legacy_key IS NOT NULL"))}
        for uid, want in traffic.expected.items():
            if want is None:
                continue
            row = view[uid]
            if want.get("deleted"):
                assert row.deleted, uid
                continue
            assert not row.deleted and row.name == want["full_name"], (uid, row, want)
            if "is_active" in want:
                assert bool(row.active) == want["is_active"], (uid, row, want)
        # no duplicate event: no stream holds the same event (type and data) twice in a row
        with es.engine.connect() as conn:
            rows = conn.execute(text("SELECT stream_id, event_type, data FROM events WHERE stream_id LIKE 'user-%' "
                                     "ORDER BY stream_id, version")).all()
        repeated = [(a.stream_id, a.event_type) for a, b in itertools.pairwise(rows)
                    if a.stream_id == b.stream_id and (a.event_type, a.data) == (b.event_type, b.data)]
        assert repeated == [] and written >= 100

        with engine_for(legacy_url).connect() as conn:
            before = conn.execute(text("SELECT count(*) FROM users")).scalar_one()
        archive = tmp_path / "archive"
        code, out, err = cli(capsys, "decommission", "--archive", str(archive), urls=urls)
        assert code == 1 and "nothing was done" in out + err  # without --confirm: the steps only
        code, out, err = cli(capsys, "decommission", "--archive", str(archive), "--confirm", "--actor", "walker",
                             urls=urls)
        assert code == 0, err
        assert phase(urls) == "decommissioned"
        manifest = json.loads((archive / "manifest.json").read_text())
        entry = manifest["tables"][0]
        data = (archive / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["rows"] == before
        assert sum(1 for _ in gzip.decompress(data).splitlines()) == before
        code, _, err = cli(capsys, "rollback", urls=urls)
        assert code == 1 and "there is no rolling back" in err

        # after the decommission the legacy API still answers reads, from the read model, and refuses writes
        # with the reason (503); a fresh app (no legacy table to check) does the same
        alive = next(uid for uid, want in traffic.expected.items() if want and not want.get("deleted"))
        for fresh in (client, TestClient(create_switchable_app(legacy_url, settings))):
            got = fresh.get(f"/users/{alive}")
            assert got.status_code == 200 and got.json()["full_name"] == traffic.expected[alive]["full_name"]
            page = fresh.get("/users", params={"limit": 5}).json()
            assert page["total"] == before and len(page["items"]) == 5
            for refused in (fresh.post("/users", json={"email": "after@example.org", "full_name": "After"}),
                            fresh.put(f"/users/{alive}", json={"full_name": "After"})):
                assert refused.status_code == 503 and "decommissioned" in refused.json()["detail"]
