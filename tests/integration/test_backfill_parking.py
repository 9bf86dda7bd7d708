"""A legacy row the event store cannot hold is parked with its reason; the backfill goes on,
resumes past it, counts it, and `retry` imports it after a fix. Legacy: SQLite (it accepts
U+0000, as the legacy app does); event store: both backends."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from es_app.store import EventStore, make_engine
from migrator.parking import entries as parked
from migrator.backfill.run import Backfill, BackfillOptions
from migrator.mapping import USERS
from migrator.parking.retry import retry

from .backfill_helpers import differences, insert_users, keys
from .parking_helpers import RAW_USERS, set_name, sqlite_legacy


@pytest.fixture
def dbs(new_database_url, tmp_path):
    legacy, es = sqlite_legacy(tmp_path), make_engine(new_database_url("es"))
    yield legacy, es
    legacy.dispose()
    es.dispose()


def backfill(legacy, es, mapping=RAW_USERS, **options) -> Backfill:
    return Backfill(mapping.bind(legacy), legacy, EventStore(es), options=BackfillOptions(**options))


def test_a_row_the_store_cannot_hold_is_parked_and_the_others_flow_on(dbs):
    legacy, es = dbs
    insert_users(legacy, keys(12))
    set_name(legacy, 5, "Ann\x00e")
    with legacy.begin() as conn:  # SQLite's loose typing: a boolean the mapping cannot read
        conn.execute(text("UPDATE users SET is_active = 'maybe' WHERE id = 9"))
    b = backfill(legacy, es, batch_size=4)
    b.start()
    results = []
    run = b.run_to_end(results.append)
    assert [r.parked for r in results] == [0, 1, 1, 0]
    assert (run.status, run.rows_done, run.rows_imported, run.rows_parked, run.rows_skipped) == ("done", 12, 10, 2, 0)
    assert b.stored_run().rows_parked == 2
    store = EventStore(es)
    assert store.stream_version("user-5") == 0 and store.stream_version("user-9") == 0
    assert store.stream_version("user-6") == 1

    entries = parked.list_parked(es)
    assert [(e.key, e.source, e.changelog_id, e.status) for e in entries] == [
        ("5", "backfill", None, "parked"), ("9", "backfill", None, "parked")]
    assert "$.name holds U+0000 (NUL)" in entries[0].reason and "\n" not in entries[0].reason
    assert entries[0].row["full_name"] == "Ann\x00e"  # the exact legacy value, reproducible
    assert "not a boolean: 'maybe'" in entries[1].reason and entries[1].reason.startswith("mapping users")
    [count] = parked.counts(es)
    assert (count.table, count.keys, count.backfill, count.relay, count.resolved) == ("users", 2, 2, 0, 0)


def test_a_resume_goes_past_parked_rows_and_a_restart_parks_them_once(dbs):
    legacy, es = dbs
    insert_users(legacy, keys(8))
    set_name(legacy, 2, "x\x00")
    b = backfill(legacy, es, batch_size=3)
    b.start()
    b.step()  # 1..3: 2 is parked
    again = backfill(legacy, es, batch_size=3)  # as after a crash
    run = again.start(resume=True)
    assert run.rows_parked == 1
    run = again.run_to_end()
    assert (run.rows_done, run.rows_imported, run.rows_parked) == (8, 7, 1)
    run = backfill(legacy, es, batch_size=3).start(restart=True)
    run = backfill(legacy, es, batch_size=3)
    run.start(resume=True)
    assert run.run_to_end().rows_parked == 1
    assert len(parked.list_parked(es, include_resolved=True)) == 1


def test_retry_after_a_fix_of_the_mapping_imports_the_row_with_the_original_kept(dbs):
    legacy, es = dbs
    insert_users(legacy, keys(3))
    set_name(legacy, 2, " Ann\x00e ")
    b = backfill(legacy, es)
    b.start()
    b.run_to_end()
    still = retry(EventStore(es), legacy, RAW_USERS.bind(legacy))  # nothing fixed yet
    assert (still.resolved, still.still_parked) == (0, 1)
    assert parked.list_parked(es)[0].attempts == 2

    report = retry(EventStore(es), legacy, USERS.bind(legacy))  # the mapping now strips control characters
    assert (report.resolved, report.still_parked) == (1, 0)
    [event] = EventStore(es).read_stream("user-2")
    assert event.type == "UserImported" and event.data["name"] == "Anne"
    assert event.data["row"]["full_name"] == " Anne "
    assert json.loads(event.metadata["legacy_originals"]["full_name"]) == " Ann\x00e "
    assert differences(legacy, EventStore(es), USERS.bind(legacy)) == []
    assert parked.list_parked(es) == [] and parked.counts(es)[0].resolved == 1


def test_retry_after_a_fix_of_the_legacy_row(dbs):
    legacy, es = dbs
    insert_users(legacy, keys(3))
    set_name(legacy, 3, "Bo\x00b")
    b = backfill(legacy, es)
    b.start()
    b.run_to_end()
    set_name(legacy, 3, "Bob")
    report = retry(EventStore(es), legacy, RAW_USERS.bind(legacy))
    assert (report.resolved, report.still_parked) == (1, 0)
    assert EventStore(es).read_stream("user-3")[0].data["name"] == "Bob"
    assert differences(legacy, EventStore(es), RAW_USERS.bind(legacy)) == []


def test_the_users_mapping_strips_control_characters_and_keeps_the_original(dbs):
    legacy, es = dbs
    insert_users(legacy, keys(2))
    set_name(legacy, 1, "Ann\x00e\x07")
    b = backfill(legacy, es, USERS)
    b.start()
    run = b.run_to_end()
    assert (run.rows_imported, run.rows_parked) == (2, 0)
    event = EventStore(es).read_stream("user-1")[0]
    assert event.data["name"] == "Anne" and event.data["row"]["full_name"] == "Anne"
    assert json.loads(event.metadata["legacy_originals"]["full_name"]) == "Ann\x00e\x07"
    assert "legacy_originals" not in EventStore(es).read_stream("user-2")[0].metadata
    assert differences(legacy, EventStore(es), USERS.bind(legacy)) == []


def test_the_cli_lists_and_retries_parked_rows_and_the_backfill_counts_them(new_database_url, tmp_path, capsys):
    from es_app.bootstrap import engine_for
    from migrator.cli import main

    legacy = sqlite_legacy(tmp_path)
    es_url, legacy_url = new_database_url("es"), legacy.url.render_as_string(hide_password=False)
    urls = ["--es-url", es_url, "--legacy-url", legacy_url]
    insert_users(legacy, keys(5))
    with legacy.begin() as conn:
        conn.execute(text("UPDATE users SET is_active = 'maybe' WHERE id = 4"))
    assert main(["backfill", "--no-project", *urls]) == 0
    out = capsys.readouterr().out
    assert "1 rows parked" in out and "migrator parked list" in out
    assert main(["parked", "list", "--json", *urls]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert (entry["key"], entry["source"], entry["status"]) == ("4", "backfill", "parked")
    assert json.loads(entry["row"])["is_active"] == "maybe"
    assert main(["parked", "list", *urls]) == 0
    table = capsys.readouterr().out
    assert "parked (1)" in table and "'maybe'" in table  # the reason, folded into the table's width

    assert main(["parked", "retry", "--table", "users", *urls]) == 1  # not fixed yet: one line, non-zero
    captured = capsys.readouterr()
    assert "0 entries resolved, 1 still parked" in captured.out
    assert len(captured.err.strip().splitlines()) == 1 and "still parked" in captured.err
    with legacy.begin() as conn:
        conn.execute(text("UPDATE users SET is_active = 1 WHERE id = 4"))
    assert main(["parked", "retry", *urls]) == 0
    assert "1 entries resolved, 0 still parked" in capsys.readouterr().out
    assert main(["parked", "list", "--json", *urls]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert EventStore(make_engine(es_url)).stream_version("user-4") == 1
    engine_for(es_url).dispose()
    legacy.dispose()
