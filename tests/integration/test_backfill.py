"""Backfill-as-events on both backends: chunks, checkpoint and resume, skipping relay-made
streams, watermarks and legacy timestamps, the rate cap and pause conditions, a second table."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from es_app.bootstrap import build, engine_for
from es_app.projections import run_projections
from es_app.settings import Settings
from es_app.store import EventStore, ExpectedVersion, NewEvent, make_engine
from migrator.capture import CaptureNotInstalled
from migrator.capture import changelog as capture
from migrator.backfill.run import BackfillError, projection_lag
from migrator.cli import main
from migrator.mapping import USERS
from migrator.relay.runner import Relay, backlog as relay_backlog
from migrator.backfill.throttle import PauseGate

from .backfill_helpers import (
    ACCOUNTS,
    FakeClock,
    create_accounts,
    differences,
    import_counts,
    insert_accounts,
    insert_users,
    keys,
    make_backfill,
)


def event_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM events")).scalar()


def test_chunks_import_every_row_once_with_legacy_timestamps_and_watermark(pair):
    engine, es = pair.legacy, pair.es
    insert_users(engine, keys(23))
    with engine.begin() as conn:  # captured changes before the backfill: the watermark covers them
        conn.execute(text("UPDATE users SET full_name = 'Renamed' WHERE id = 7"))
        conn.execute(text("DELETE FROM users WHERE id = 9"))
    with engine.connect() as conn:  # (PostgreSQL numbers changelog rows at commit)
        latest = capture.latest_change_id(conn)
    b = make_backfill(engine, es=es, batch_size=5)
    b.start()
    sizes = []
    run = b.run_to_end(lambda r: sizes.append(r.rows))
    assert sizes == [5, 5, 5, 5, 2, 0]
    assert (run.status, run.rows_done, run.rows_imported, run.rows_skipped, run.chunks) == ("done", 22, 22, 0, 5)
    assert run.last_key == 23 and run.watermark == latest
    assert differences(engine, EventStore(es), b.mapping) == []
    assert set(import_counts(EventStore(es), b.mapping).values()) == {1}
    first = EventStore(es).read_stream("user-3")[0]
    assert first.type == "UserImported"
    assert first.metadata["source"] == "backfill"
    assert first.metadata["changelog_watermark"] == latest
    assert first.metadata["occurred_at"] == first.data["updated_at"] == "2020-01-03T03:04:08.678904+00:00"
    assert first.data["legacy_key"] == 3 and first.data["row"]["full_name"] == " User 3 "
    assert first.data["name"] == "User 3" and first.data["email"] == "user3@example.org"


def test_streams_the_relay_already_made_are_skipped(pair):
    engine, es = pair.legacy, pair.es
    insert_users(engine, keys(6))
    store = EventStore(es)
    relay_made = NewEvent("UserImported", {"name": "by relay"}, {"source": "relay", "changelog_watermark": 0})
    store.append("user-4", [relay_made], ExpectedVersion.NO_STREAM)
    b = make_backfill(engine, es=es, batch_size=4)
    b.start()
    run = b.run_to_end()
    assert (run.rows_done, run.rows_imported, run.rows_skipped) == (6, 5, 1)
    assert [e.data["name"] for e in store.read_stream("user-4")] == ["by relay"]
    assert import_counts(store, b.mapping) == {f"user-{i}": 1 for i in keys(6)}


def test_a_crash_mid_run_resumes_from_the_checkpoint_with_no_duplicate_and_no_gap(pair, monkeypatch):
    engine, es = pair.legacy, pair.es
    insert_users(engine, keys(30))
    b = make_backfill(engine, es=es, batch_size=7)
    b.start()
    calls = {"n": 0}
    real = EventStore.append_batch

    def failing(self, conn, items, **kw):
        calls["n"] += 1
        result = real(self, conn, items, **kw)
        if calls["n"] == 3:  # the third chunk's events are written, then the process "dies" before commit
            raise RuntimeError("killed")
        return result

    monkeypatch.setattr(EventStore, "append_batch", failing)
    with pytest.raises(RuntimeError):
        b.run_to_end()
    monkeypatch.setattr(EventStore, "append_batch", real)
    assert event_count(es) == 14
    again = make_backfill(engine, es=es, batch_size=7)
    with pytest.raises(BackfillError, match="--resume .* --restart"):
        again.start()
    run = again.start(resume=True)
    assert (run.rows_done, run.last_key) == (14, 14)
    run = again.run_to_end()
    assert (run.rows_done, run.rows_imported, run.rows_skipped) == (30, 30, 0)
    assert event_count(es) == 30
    assert differences(engine, EventStore(es), again.mapping) == []


def test_restart_forgets_the_run_and_skips_what_is_imported(pair):
    engine, es = pair.legacy, pair.es
    insert_users(engine, keys(10))
    b = make_backfill(engine, es=es, batch_size=4)
    b.start()
    b.step()
    again = make_backfill(engine, es=es, batch_size=4)
    run = again.start(restart=True)
    assert run.rows_done == 0
    run = again.run_to_end()
    assert (run.rows_done, run.rows_imported, run.rows_skipped) == (10, 6, 4)
    with pytest.raises(BackfillError, match="finished .* --restart"):
        make_backfill(engine, es=es).start()
    assert make_backfill(engine, es=es).start(resume=True).finished


def test_rows_changed_between_read_and_append_keep_the_older_watermark(pair):
    engine, es = pair.legacy, pair.es
    insert_users(engine, keys(3))
    b = make_backfill(engine, es=es, batch_size=10)
    b.start()
    chunk = b.read_chunk()
    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET full_name = 'Later' WHERE id = 2"))
    with engine.connect() as conn:
        later = capture.latest_change_id(conn)
    b.write_chunk(chunk)
    imported = EventStore(es).read_stream("user-2")[0]
    assert imported.data["name"] == "User 2"  # the row as read ...
    assert imported.metadata["changelog_watermark"] < later  # ... so the relay will apply the change


def test_the_rate_cap_sleeps_to_hold_the_average_rate(db):
    _, engine = db
    insert_users(engine, keys(25))
    clock = FakeClock()
    b = make_backfill(engine, batch_size=50, max_rate=10, clock=clock)
    b.start()
    sizes = []
    b.run_to_end(lambda r: sizes.append(r.rows))
    assert sizes == [10, 10, 5, 0]  # chunks shrink to the cap, so it acts at least once a second
    assert clock.sleeps == [1.0, 1.0, 0.5]
    assert clock.now - 1000.0 == pytest.approx(25 / 10)


def test_a_pause_file_holds_the_backfill_until_it_is_removed(db, tmp_path):
    _, engine = db
    insert_users(engine, keys(4))
    pause = tmp_path / "pause"
    pause.touch()
    clock = FakeClock()
    seen = []

    def while_paused():
        seen.append(event_count(engine))
        if len(clock.sleeps) == 3:
            pause.unlink()

    clock.hooks.append(while_paused)
    reasons = []
    b = make_backfill(engine, batch_size=10, pause_file=pause, poll_s=2.0, clock=clock)
    b.on_pause = reasons.append
    b.start()
    b.run_to_end()
    assert seen == [0, 0, 0] and clock.sleeps == [2.0, 2.0, 2.0]
    assert reasons == [f"pause file {pause} exists"] * 3
    assert event_count(engine) == 4


def test_it_pauses_while_projections_lag_and_goes_on_once_they_catch_up(pair):
    engine, es = pair.legacy, pair.es
    insert_users(engine, keys(12))
    container = build(Settings(es_database_url=pair.es_url, legacy_database_url=pair.legacy_url))
    clock = FakeClock()
    clock.hooks.append(lambda: run_projections(container))  # a projector catching up while we wait
    lags = []
    gate = PauseGate(projection_lag=lambda: lags.append(projection_lag(container)) or lags[-1], max_projection_lag=4)
    b = make_backfill(engine, es=es, batch_size=5, clock=clock, gate=gate)
    b.start()
    b.run_to_end()
    assert lags == [0, 5, 0, 5, 0, 2]  # paused (one poll) after each full chunk, never before
    assert len(clock.sleeps) == 2
    assert differences(engine, EventStore(es), b.mapping) == []
    container.engine.dispose()


def test_a_second_table_with_a_text_key_backfills_with_no_code_change(pair):
    engine, es = pair.legacy, pair.es
    create_accounts(engine)
    capture.install(engine, [ACCOUNTS])
    codes = [f"acc-{c}" for c in "kbxadzm"]
    insert_accounts(engine, codes)
    b = make_backfill(engine, ACCOUNTS, es=es, batch_size=3)
    b.start()
    run = b.run_to_end()
    assert (run.rows_done, run.rows_imported, run.last_key) == (7, 7, "acc-z")
    store = EventStore(es)
    assert differences(engine, store, b.mapping) == []
    first = store.read_stream("account-acc-a")[0]
    assert first.type == "AccountImported" and first.data["legacy_key"] == "acc-a"
    assert first.data["owner"] == "Owner acc-a" and first.metadata["occurred_at"] == first.data["updated_at"]
    assert b.mapping.replay(store.read_stream("account-acc-b"))["extra"] == {"note": None}


def test_without_capture_it_refuses_to_start(new_database_url):
    engine = make_engine(new_database_url("nocapture"))
    with pytest.raises(CaptureNotInstalled, match="migrator capture install"):
        make_backfill(engine).start()
    engine.dispose()


def test_cli_backfills_projects_and_reports(pair, capsys, tmp_path):
    engine, es = pair.legacy, pair.es
    urls = ["--es-url", pair.es_url, "--legacy-url", pair.legacy_url]
    insert_users(engine, keys(9))
    assert main(["backfill", "--batch-size", "4", *urls]) == 0
    out = capsys.readouterr().out
    assert "backfill summary" in out and "9/9" in out
    for url in {pair.es_url, pair.legacy_url}:
        engine_for(url).dispose()  # the CLI's pooled connections: give them back to the server
    with es.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users_view WHERE deleted = false")).scalar() == 9
    assert main(["backfill", *urls]) == 1
    err = capsys.readouterr().err
    assert "finished" in err and "--restart" in err and len(err.strip().splitlines()) == 1
    assert main(["backfill", "--resume", "--restart", *urls]) == 1
    assert main(["backfill", "--table", "nope", *urls]) == 1
    assert "no mapping for this table" in capsys.readouterr().err
    for url in {pair.es_url, pair.legacy_url}:
        engine_for(url).dispose()
    assert event_count(es) == 9


def test_it_pauses_while_the_relay_backlog_is_too_long(pair):
    engine, es = pair.legacy, pair.es
    insert_users(engine, keys(8))
    with engine.begin() as conn:  # 8 inserts and 3 updates wait for the relay
        conn.execute(text("UPDATE users SET full_name = 'Changed' WHERE id IN (2, 5, 8)"))
    relay = Relay(USERS.bind(engine), engine, EventStore(es), batch_size=1)
    clock = FakeClock()
    clock.hooks.append(lambda: relay.run_batch())  # the relay catches up one change per poll
    seen = []
    gate = PauseGate(relay_backlog=lambda: seen.append(relay_backlog(engine, es, [USERS])) or seen[-1],
                     max_relay_backlog=9)
    b = make_backfill(engine, es=es, batch_size=10, clock=clock, gate=gate)
    b.start()
    b.run_to_end()
    assert seen[:3] == [11, 10, 9] and len(clock.sleeps) == 2
    relay.drain()
    assert differences(engine, EventStore(es), b.mapping) == []


def test_cli_refuses_an_event_store_that_is_not_initialised(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["backfill", "--es-url", url, "--legacy-url", url]) == 1
    err = capsys.readouterr().err
    assert "migrator init" in err and len(err.strip().splitlines()) == 1
    engine_for(url).dispose()


def test_the_store_is_analysed_as_the_backfill_doubles_it(db, monkeypatch):
    _, engine = db
    insert_users(engine, keys(10))
    calls = []
    monkeypatch.setattr("migrator.backfill.run.ANALYZE_FIRST_AT", 2)
    monkeypatch.setattr(EventStore, "analyze", lambda self: calls.append(event_count(engine)))
    b = make_backfill(engine, batch_size=2)
    b.start()
    b.run_to_end()
    assert calls == [2, 4, 8]  # after 2, 4 and 8 rows imported


def test_analyze_gives_the_postgresql_planner_the_table_size(db):
    _, engine = db
    insert_users(engine, keys(30))
    b = make_backfill(engine, batch_size=100)
    b.start()
    b.run_to_end()
    EventStore(engine).analyze()  # a no-op on SQLite
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn:
            assert conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'events'")).scalar() == 30
