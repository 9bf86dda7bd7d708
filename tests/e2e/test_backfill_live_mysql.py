"""Backfill of legacy rows on MariaDB while 4 threads keep editing legacy rows through the legacy API, with
capture (triggers, ids given after commit by the sequencer) installed and the relay following, into an SQLite
event store. At the end: 0 differences between legacy rows, the replay of their streams and the read model,
no change applied twice, and `verify --full` clean."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from es_app.bootstrap import build
from es_app.projections import run_projections
from es_app.settings import Settings
from es_app.store import make_engine
from migrator import schema
from migrator.backfill.run import Backfill, BackfillOptions, projector_for
from migrator.capture import changelog as capture
from migrator.mapping import USERS
from migrator.relay.follow import follow
from migrator.relay.runner import Relay
from migrator.verify import compare, legacy_rows, users_read_model, verify
from tests.integration.backfill_helpers import differences, duplicated_changes

from .test_backfill_live_postgres import BATCH, edit_in_a_process

pytestmark = [pytest.mark.mysql, pytest.mark.slow, pytest.mark.timeout(900)]

ROWS = 30_000
NAMES = ["Zoë Ünal", " José Ávila ", "李雷", "Ann O'Brien", "Ивана Петрова", "Emoji \U0001F600 Fan"]


def seed_rows(engine) -> None:
    """ROWS legacy rows: unicode (4-byte characters too) and untrimmed names, mixed-case emails, missing phones,
    inactive users, timestamps with and without a fraction of a second."""
    t1, t2 = datetime(2012, 1, 1, tzinfo=UTC), datetime(2016, 1, 1, tzinfo=UTC)
    rows = [{"id": i, "email": f"Mixed.{i}@Example.ORG" if i % 50 == 0 else f"user{i}@example.org",
             "full_name": f"{NAMES[i % len(NAMES)]} {i}", "is_active": i % 10 != 0,
             "phone": None if i % 5 == 0 else f"+1 555 {i:07d}",
             "created_at": t1 + timedelta(minutes=37 * i, seconds=13.123457 * (i % 2)),
             "updated_at": t2 + timedelta(minutes=53 * i, seconds=1.654321 * (i % 3))} for i in range(1, ROWS + 1)]
    with engine.begin() as conn:
        for start in range(0, ROWS, 5000):
            conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                              "VALUES (:id, :email, :full_name, :is_active, :phone, :created_at, :updated_at)"),
                         rows[start:start + 5000])


def test_backfill_from_mariadb_under_live_api_edits_ends_with_zero_differences(mysql_databases, tmp_path):
    legacy_url, es_url = mysql_databases.new(), f"sqlite:///{tmp_path / 'es.db'}"
    legacy, es_engine = make_engine(legacy_url), make_engine(es_url)
    schema.upgrade_all({"es": es_engine})
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
        time.sleep(2)  # edits after the backfill's end too: the relay alone carries them
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
    assert edits > 100 and ops["put 200"] > 50, ops
    assert run.rows_done >= ROWS - ops["delete 204"] and run.rows_imported + run.rows_skipped == run.rows_done
    with legacy.connect() as conn:  # (a PUT that changes nothing writes nothing)
        changes = conn.execute(text("SELECT count(*) FROM migrator_changelog")).scalar()
        unnumbered = conn.execute(text("SELECT count(*) FROM migrator_changelog WHERE id IS NULL")).scalar()
    assert ops["post 201"] + ops["delete 204"] + 50 <= changes <= edits and unnumbered == 0
    rows = legacy_rows(legacy, mapping)
    deleted = set(range(1, ROWS + 1)) - set(rows)
    assert differences(legacy, es.store, mapping, deleted_keys=deleted) == []
    assert duplicated_changes(es.store, mapping) == []
    assert compare(legacy, es.store, mapping, read_model=users_read_model(es_engine)).lines() == []
    report = verify(legacy, es_engine, [mapping], full=True, wait=0)
    assert report.clean, [m.to_json() for m in report.mismatches]
    assert report.tables[0].rows_legacy == len(rows)
    for engine in (legacy, es_engine, es.engine):
        engine.dispose()
