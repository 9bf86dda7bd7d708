"""Trigger capture on every legacy backend: one changelog row per changed row, in the legacy write's transaction."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from es_app.store import make_engine
from migrator.capture import changelog as capture
from migrator.mapping import USERS, MappingError

T = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)


@pytest.fixture
def legacy(new_legacy_and_es_urls):
    legacy_url, _ = new_legacy_and_es_urls("legacy")
    engine = make_engine(legacy_url)
    yield engine
    engine.dispose()


@pytest.fixture
def captured(legacy):
    capture.install(legacy, [USERS])
    return legacy


@pytest.fixture
def pg_captured(postgres_databases):
    engine = make_engine(postgres_databases.new())
    capture.install(engine, [USERS])
    yield engine
    engine.dispose()


def insert_users(conn, *ids, active=True):
    conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                      "VALUES (:id, :email, :name, :active, NULL, :t, :t)"),
                 [{"id": i, "email": f"u{i}@example.org", "name": f"User {i}", "active": active, "t": T}
                  for i in ids])


def changes(engine, after=0):
    with engine.connect() as conn:
        return capture.read_changes(conn, "users", after)


def test_insert_update_delete_each_write_one_row_with_old_and_new(captured):
    with captured.begin() as conn:
        insert_users(conn, 1)
    with captured.begin() as conn:
        conn.execute(text("UPDATE users SET full_name = 'Ann' WHERE id = 1"))
    with captured.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE id = 1"))
    ins, upd, dele = changes(captured)
    assert [(c.op, c.pk, c.origin, c.table) for c in (ins, upd, dele)] == [
        ("I", "1", "legacy", "users"), ("U", "1", "legacy", "users"), ("D", "1", "legacy", "users")]
    assert ins.id < upd.id < dele.id
    assert ins.old_row is None and dele.new_row is None
    assert ins.new_row["full_name"] == "User 1" and upd.old_row["full_name"] == "User 1"
    assert upd.new_row["full_name"] == "Ann" and dele.old_row["full_name"] == "Ann"
    assert set(upd.new_row) == {"id", "email", "full_name", "is_active", "phone", "created_at", "updated_at"}
    bound = USERS.bind(captured)
    assert bound.state_from_row(ins.new_row) == {"name": "User 1", "email": "u1@example.org", "active": True,
                                                 "phone": None, "extra": {}}
    assert bound.timestamp_of(ins.new_row, "created_at") == T.isoformat()
    assert datetime.fromisoformat(ins.tx_time).tzinfo is not None


def test_multi_row_statements_write_one_row_per_changed_row(captured):
    with captured.begin() as conn:
        insert_users(conn, 1, 2, 3, 4)  # executemany
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) VALUES "
                          "(5, 'u5@x.org', 'Five', :a, :t, :t), (6, 'u6@x.org', 'Six', :a, :t, :t)"),
                     {"a": True, "t": T})
    with captured.begin() as conn:
        conn.execute(text("UPDATE users SET is_active = :f WHERE id <= 3"), {"f": False})
        conn.execute(text("DELETE FROM users WHERE id >= 5"))
    found = [(c.op, c.pk) for c in changes(captured)]
    assert found[:6] == [("I", str(i)) for i in range(1, 7)]
    assert sorted(found[6:9]) == [("U", "1"), ("U", "2"), ("U", "3")]
    assert sorted(found[9:]) == [("D", "5"), ("D", "6")]


def test_a_rolled_back_transaction_leaves_no_changelog_row(captured):
    with captured.begin() as conn:
        insert_users(conn, 1)
    with pytest.raises(RuntimeError):
        with captured.begin() as conn:
            insert_users(conn, 2)
            conn.execute(text("UPDATE users SET full_name = 'X' WHERE id = 1"))
            raise RuntimeError("the legacy app fails after writing")
    with pytest.raises(DBAPIError):
        with captured.begin() as conn:
            insert_users(conn, 3)
            insert_users(conn, 1)  # duplicate key: the statement and the transaction fail
    assert [(c.op, c.pk) for c in changes(captured)] == [("I", "1")]
    with captured.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 1


def test_changing_the_key_is_a_delete_and_an_insert(captured):
    with captured.begin() as conn:
        insert_users(conn, 1)
        conn.execute(text("UPDATE users SET id = 10 WHERE id = 1"))
    assert [(c.op, c.pk) for c in changes(captured)] == [("I", "1"), ("D", "1"), ("I", "10")]


def test_migrator_writes_are_marked_and_the_marker_ends_with_the_block(captured):
    with captured.begin() as conn:
        insert_users(conn, 1)
        with capture.migrator_writes(conn):
            conn.execute(text("UPDATE users SET full_name = 'From events' WHERE id = 1"))
        conn.execute(text("UPDATE users SET phone = '1' WHERE id = 1"))
    with captured.begin() as conn, capture.migrator_writes(conn, "reverse-projection"):
        conn.execute(text("DELETE FROM users WHERE id = 1"))
    assert [(c.op, c.origin) for c in changes(captured)] == [
        ("I", "legacy"), ("U", "migrator"), ("U", "legacy"), ("D", "reverse-projection")]
    with captured.begin() as conn:  # a later transaction is the legacy app's again
        insert_users(conn, 2)
    assert changes(captured)[-1].origin == "legacy"


def test_install_remove_and_status_are_idempotent(legacy):
    before = capture.status(legacy, [USERS])
    assert (before.changelog, before.installed) == (False, False)
    first = capture.install(legacy, [USERS])
    again = capture.install(legacy, [USERS])
    assert first == again and again.installed and again.tables[0].changes == 0
    with legacy.begin() as conn:
        insert_users(conn, 1, 2)
    st = capture.status(legacy, [USERS])
    assert (st.tables[0].changes, st.tables[0].last_id > 0) == (2, True)
    removed = capture.remove(legacy, [USERS])
    assert capture.remove(legacy, [USERS]) == removed
    assert (removed.changelog, removed.installed, removed.tables[0].changes) == (True, False, 2)
    with legacy.begin() as conn:
        insert_users(conn, 3)  # not captured any more
    assert len(changes(legacy)) == 2
    gone = capture.remove(legacy, [USERS], drop_changelog=True)
    assert (gone.changelog, gone.tables[0].changes) == (False, 0)
    assert capture.remove(legacy, [USERS], drop_changelog=True) == gone


def test_install_refuses_a_mapping_that_does_not_fit(legacy):
    import dataclasses

    with pytest.raises(MappingError, match="column 'nick' does not exist"):
        capture.install(legacy, [dataclasses.replace(USERS, exclude=("nick",))])
    assert not capture.status(legacy, [USERS]).changelog  # nothing half-written


def test_session_mode_installs_the_changelog_without_triggers(legacy):
    capture.install(legacy, [USERS])
    st = capture.install(legacy, [USERS], mode="session")
    assert st.changelog and not st.tables[0].installed
    with legacy.begin() as conn:
        insert_users(conn, 1)
    assert changes(legacy) == []


@pytest.mark.postgres
def test_postgres_ids_follow_commit_order_not_statement_order(pg_captured):
    # (SQLite has one writer at a time, so ids follow commit order there by construction)
    captured = pg_captured
    first_wrote, second_committed = threading.Event(), threading.Event()

    def slow_writer():
        with captured.begin() as conn:
            insert_users(conn, 1)  # writes first ...
            first_wrote.set()
            second_committed.wait(10)
        # ... commits last

    t = threading.Thread(target=slow_writer)
    t.start()
    assert first_wrote.wait(10)
    with captured.begin() as conn:
        insert_users(conn, 2)
    second_committed.set()
    t.join(10)
    assert [c.pk for c in changes(captured)] == ["2", "1"]
    with captured.connect() as conn:  # a reader that saw "2" (id n) never misses "1": its id is > n
        ids = conn.execute(text("SELECT pk, id, entry FROM migrator_changelog ORDER BY entry")).all()
    assert [r.pk for r in ids] == ["1", "2"] and ids[0].id > ids[1].id


@pytest.mark.postgres
def test_postgres_refuses_truncate_while_capture_is_installed(pg_captured):
    captured = pg_captured
    with pytest.raises(DBAPIError, match="TRUNCATE would bypass it"):
        with captured.begin() as conn:
            conn.execute(text("TRUNCATE users"))
    capture.remove(captured, [USERS])
    with captured.begin() as conn:
        conn.execute(text("TRUNCATE users"))


def test_a_column_added_later_is_captured_after_install_runs_again(captured):
    with captured.begin() as conn:
        insert_users(conn, 1)
        conn.execute(text("ALTER TABLE users ADD COLUMN nickname VARCHAR(40)"))
    capture.install(captured, [USERS])  # refreshes the SQLite triggers' column list
    with captured.begin() as conn:
        conn.execute(text("UPDATE users SET nickname = 'annie' WHERE id = 1"))
    update = changes(captured)[-1]
    assert (update.old_row["nickname"], update.new_row["nickname"]) == (None, "annie")
    bound = USERS.bind(captured)
    (event,) = bound.change_events(update.old_row, update.new_row, event_ids=lambda i: str(i), metadata={})
    assert (event.type, event.data) == ("UserLegacyColumnChanged", {"column": "nickname", "value": "annie"})
