"""Backfill of 100,000 legacy rows on PostgreSQL while 4 threads keep editing legacy rows through
the legacy API, with capture installed and the relay following. At the end: 0 differences
between legacy rows, the replay of their streams, and the read model."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from es_app.bootstrap import build
from es_app.projections import run_projections
from es_app.settings import Settings
from es_app.store import make_engine
from legacy_app.api import create_app
from migrator.backfill.run import Backfill, BackfillOptions, projector_for
from migrator.capture import changelog as capture
from migrator.mapping import USERS
from migrator.relay.follow import follow
from migrator.relay.runner import Relay
from migrator.verify import compare, legacy_rows, users_read_model
from tests.integration.backfill_helpers import differences, duplicated_changes

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]

ROWS = 100_000
EDITORS = 4
BATCH = 2000
PACE_S = 0.03  # between one editor's requests (~100 edits/s in all): the 2 cores are shared with the backfill


class Editors:
    """Threads editing legacy rows through the legacy API: updates (half of them right around the
    backfill's cursor, where chunk snapshots and live changes race), inserts and deletes."""

    def __init__(self, legacy_url: str, cursor, stop: threading.Event):
        self.app = create_app(legacy_url)
        self.cursor, self.stop = cursor, stop
        self.ops: Counter[str] = Counter()
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def run(self, lane: int) -> None:
        """Edits the keys with key % EDITORS == lane (the legacy app's load-mutate-save answers
        a PUT racing a DELETE of the same row with a 500, which is not what this test is about)."""
        seed = lane
        rng = random.Random(lane)
        n = 0
        with TestClient(self.app) as client:
            while not self.stop.wait(PACE_S):
                n += 1
                roll = rng.random()
                near = self.cursor() + rng.randint(-BATCH // 4, BATCH)
                key = max(1, near if rng.random() < 0.5 else rng.randint(1, ROWS))
                key += (lane - key) % EDITORS  # each editor owns the keys of its lane
                if roll < 0.80:
                    body = rng.choice([{"full_name": f" Edited {seed}-{n} "}, {"is_active": rng.random() < 0.5},
                                       {"phone": rng.choice([None, f"+1 555 {n:06d}"])},
                                       {"email": f"Ed.{seed}.{n}@Example.org", "full_name": f"Both {n}"}])
                    r = client.put(f"/users/{key}", json=body)
                    self._count("put", r.status_code, (200, 404))
                elif roll < 0.90:
                    r = client.post("/users", json={"email": f"new.{seed}.{n}@example.org",
                                                    "full_name": f"New {seed} {n}", "phone": None})
                    self._count("post", r.status_code, (201,))
                else:
                    r = client.delete(f"/users/{key}")
                    self._count("delete", r.status_code, (204, 404))

    def _count(self, op: str, status: int, ok: tuple[int, ...]) -> None:
        with self.lock:
            self.ops[f"{op} {status}"] += 1
            if status not in ok:
                self.errors.append(f"{op} -> {status}")


def seed_rows(engine) -> None:
    """ROWS legacy rows in one statement: unicode and untrimmed names, mixed-case emails, missing
    phones, inactive users, uneven timestamps (`migrator seed` makes nicer ones, but slower)."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
            "SELECT i, CASE WHEN i % 50 = 0 THEN 'Mixed.' || i || '@Example.ORG' ELSE 'user' || i || '@example.org' END, "
            "(ARRAY['Zoë Ünal', ' José Ávila ', '李雷', 'Ann O''Brien', 'Ивана Петрова'])[1 + i % 5] || ' ' || i, "
            "i % 10 <> 0, CASE WHEN i % 5 = 0 THEN NULL ELSE '+1 555 ' || lpad(i::text, 7, '0') END, "
            "timestamptz '2012-01-01 00:00:00+00' + (i * interval '37 minutes 13.123457 seconds'), "
            "timestamptz '2016-01-01 00:00:00+00' + (i * interval '53 minutes 1.654321 seconds') "
            "FROM generate_series(1, CAST(:n AS integer)) AS i"), {"n": ROWS})
        conn.execute(text("SELECT setval(pg_get_serial_sequence('users', 'id'), :n)"), {"n": ROWS})


def edit_in_a_process(legacy_url: str, cursor, stop, results) -> None:
    """The legacy app's side, in its own process (as in production; and off the backfill's GIL):
    EDITORS threads editing through the API until `stop`; puts (ops, errors) on `results`."""
    editors = Editors(legacy_url, lambda: cursor.value, stop)
    threads = [threading.Thread(target=editors.run, args=(i,), name=f"editor-{i}") for i in range(EDITORS)]
    for t in threads:
        t.start()
    results.put("editing")
    for t in threads:
        t.join()
    results.put((dict(editors.ops), editors.errors))


def test_backfill_100k_rows_under_live_api_edits_ends_with_zero_differences(postgres_databases):
    legacy_url, es_url = postgres_databases.new(), postgres_databases.new()
    legacy, es_engine = make_engine(legacy_url), make_engine(es_url)
    seed_rows(legacy)
    capture.install(legacy, [USERS])
    mapping = USERS.bind(legacy)
    es = build(Settings(es_database_url=es_url, legacy_database_url=legacy_url))
    backfill = Backfill(mapping, legacy, es.store, options=BackfillOptions(batch_size=BATCH),
                        project=projector_for(es))
    backfill.start()
    started = time.perf_counter()

    ctx = multiprocessing.get_context("spawn")
    cursor, stop_edits, results = ctx.Value("q", 0), ctx.Event(), ctx.Queue()
    editing = ctx.Process(target=edit_in_a_process, args=(legacy_url, cursor, stop_edits, results), name="editors")
    stop_relay = threading.Event()
    relay = Relay(mapping, legacy, es.store, batch_size=1000)
    relaying = threading.Thread(target=follow, args=([relay], legacy),
                                kwargs={"stop": stop_relay, "poll_interval": 0.2}, name="relay")
    editing.start()
    relaying.start()
    try:
        assert results.get(timeout=60) == "editing"  # the editors are at work before the backfill starts
        run = backfill.run_to_end(lambda _chunk: setattr(cursor, "value", int(backfill.run.last_key or 0)))
    finally:
        stop_edits.set()
        ops, errors = results.get(timeout=120)
        editing.join(timeout=60)
        stop_relay.set()
        relaying.join(timeout=60)
    relay.drain()
    run_projections(es)
    print(f"backfill {run.rows_done} rows in {time.perf_counter() - started:.1f} s under {dict(ops)}")

    assert errors == []
    edits = sum(ops.values())
    assert edits > 200 and ops["put 200"] > 100, ops
    assert run.rows_done >= ROWS - ops["delete 204"] and run.rows_imported + run.rows_skipped == run.rows_done
    with legacy.connect() as conn:  # (a PUT that changes nothing writes nothing)
        changes = conn.execute(text("SELECT count(*) FROM migrator_changelog")).scalar()
    assert ops["post 201"] + ops["delete 204"] + 100 <= changes <= edits
    t0 = time.perf_counter()
    rows = legacy_rows(legacy, mapping)
    deleted = set(range(1, ROWS + 1)) - set(rows)
    assert differences(legacy, es.store, mapping, deleted_keys=deleted) == []
    assert duplicated_changes(es.store, mapping) == []
    assert compare(legacy, es.store, mapping, read_model=users_read_model(es_engine)).lines() == []
    print(f"compare {time.perf_counter() - t0:.1f} s")
    for engine in (legacy, es_engine, es.engine):
        engine.dispose()
