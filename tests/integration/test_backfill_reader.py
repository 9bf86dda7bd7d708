"""The backfill's reader process: chunks read and built in a second process give the very same
events, checkpoints and read model as reading them in the writer; its failures are one clear error."""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest
from sqlalchemy import text

from es_app.store import EventStore, make_engine
from migrator.backfill import run as backfill_module
from migrator.capture import changelog as capture
from migrator.backfill.run import Backfill, BackfillError
from migrator.mapping import USERS, CompiledMapping

from .backfill_helpers import (
    ACCOUNTS,
    create_accounts,
    differences,
    insert_accounts,
    insert_users,
    keys,
    make_backfill,
)


def stored_events(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT position, stream_id, version, event_id, event_type, data, metadata FROM events ORDER BY position"))]


def run(engine, mapping=USERS, es=None, **options):
    b = make_backfill(engine, mapping, es=es, batch_size=7, **options)
    b.start()
    return b, b.run_to_end()


def test_a_bound_mapping_goes_to_the_reader_process_as_declaration_and_binding_and_imports_alike(db):
    _, engine = db
    create_accounts(engine)
    for mapping in (USERS.bind(engine), ACCOUNTS.bind(engine)):
        declaration, binding = pickle.loads(pickle.dumps((mapping.declaration, mapping.binding)))
        assert (declaration, binding) == (mapping.declaration, mapping.binding)
        again = CompiledMapping(declaration, binding)
        assert again.table_columns == mapping.table_columns and again._import_plan is not None
        row = {c: None for c in mapping.table_columns} | {mapping.key: 5}
        assert again.import_data(row) == mapping.import_data(row)


def test_chunks_from_the_reader_process_store_the_same_as_chunks_read_in_the_writer(new_legacy_and_es_urls):
    results = []
    for read_process in (False, True):
        legacy_url, es_url = new_legacy_and_es_urls(f"rp{read_process}")
        engine, es = make_engine(legacy_url), make_engine(es_url)
        capture.install(engine, [USERS])
        insert_users(engine, keys(40))
        with engine.begin() as conn:  # a change before the backfill: the watermark covers it
            conn.execute(text("UPDATE users SET full_name = 'Renamed' WHERE id = 7"))
        b, finished = run(engine, es=es, read_process=read_process)
        assert b._pool is None  # closed at the end
        assert differences(engine, EventStore(es), b.mapping) == []
        results.append(([e[1:] for e in stored_events(es)],
                        (finished.rows_done, finished.rows_imported, finished.chunks, finished.last_key)))
        engine.dispose()
        es.dispose()
    assert results[0] == results[1]
    assert results[1][1] == (40, 40, 6, 40)


def test_a_second_table_backfills_through_the_reader_process(pair):
    engine = pair.legacy
    create_accounts(engine)
    capture.install(engine, [ACCOUNTS])
    insert_accounts(engine, [f"acc-{c}" for c in "kbxadzmqrs"])
    b, finished = run(engine, ACCOUNTS, es=pair.es, read_process=True)
    assert (finished.rows_done, finished.rows_imported, finished.last_key) == (10, 10, "acc-z")
    assert differences(engine, pair.store, b.mapping) == []


@pytest.mark.parametrize("rows", [24, 25])
def test_by_default_sqlite_reads_in_a_process_from_the_threshold_on_and_postgresql_on_a_thread(db, monkeypatch,
                                                                                             rows):
    _, engine = db
    insert_users(engine, keys(rows))
    chosen = []
    real = Backfill._read_pool
    monkeypatch.setattr(Backfill, "_read_pool", lambda self: chosen.append(real(self)) or chosen[-1])
    monkeypatch.setattr(backfill_module, "READ_PROCESS_FROM", 25)
    run(engine)
    if engine.dialect.name != "sqlite":
        assert isinstance(chosen[0], ThreadPoolExecutor)
    elif rows == 25:
        assert isinstance(chosen[0], ProcessPoolExecutor)
    else:
        assert chosen[0] is None


def test_a_mapping_that_cannot_be_pickled_reads_in_the_writer_or_says_why(db):
    _, engine = db
    insert_users(engine, keys(10))
    odd = dataclasses.replace(USERS, columns=(*USERS.columns[:3], dataclasses.replace(
        USERS.columns[3], normalize=(lambda v: v,))))  # a lambda cannot be sent to another process
    with pytest.raises(BackfillError, match="--no-read-process"):
        run(engine, odd, read_process=True)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM migrator_backfill_runs"))
    b, finished = run(engine, odd)  # auto: reads in the writer
    assert finished.rows_imported == 10


def test_a_dead_reader_process_is_one_error_and_resume_finishes(pair):
    engine, es = pair.legacy, pair.es
    insert_users(engine, keys(50))
    b = make_backfill(engine, es=es, batch_size=5, read_process=True)
    b.start()
    b.step()  # the first chunk; the second is being read by the process
    for pid in list(b._pool._processes):  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(BackfillError, match="reader process .* died.*--resume"):
        while b.step().rows:
            pass
    again = make_backfill(engine, es=es, batch_size=5)
    again.start(resume=True)
    finished = again.run_to_end()
    assert (finished.rows_done, finished.rows_imported) == (50, 50)
    assert differences(engine, pair.store, again.mapping) == []
