"""The relay on every legacy backend: changes become events per key in order, idempotently, with the watermark rule."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from es_app.store import ConcurrencyError, EventStore, ExpectedVersion, make_engine, write_transaction
from es_app.store.schema import events
from migrator.capture import changelog as capture
from migrator.capture.offsets import offset_name, reset_offset
from migrator.mapping import USERS, backfill_import_id, import_metadata
from migrator.relay.runner import Relay, backlog
from migrator.verify import compare

T = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)


@pytest.fixture
def urls(new_legacy_and_es_urls):
    """The legacy database and the event store's (one database on SQLite and PostgreSQL, two with MySQL)."""
    return new_legacy_and_es_urls("db")


@pytest.fixture
def db(urls):
    """The legacy database."""
    engine = make_engine(urls[0])
    yield engine
    engine.dispose()


@pytest.fixture
def store(urls):
    engine = make_engine(urls[1])
    yield EventStore(engine)
    engine.dispose()


@pytest.fixture
def users(db):
    return USERS.bind(db)


def insert(conn, *ids, name="User", active=True):
    conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                      "VALUES (:id, :email, :name, :active, NULL, :t, :t)"),
                 [{"id": i, "email": f"u{i}@example.org", "name": f"{name} {i}", "active": active, "t": T}
                  for i in ids])


def update(conn, sql, **params):
    conn.execute(text(f"UPDATE users SET {sql}"), params)


def assert_streams_match_rows(store, mapping, engine, keys):
    assert compare(engine, store, mapping, keys).lines() == []


def event_count(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events)).scalar()


def test_inserts_updates_and_deletes_become_events_per_key_in_order(db, store, users):
    capture.install(db, [USERS])
    with db.begin() as conn:
        insert(conn, 1, 2, 3)
    with db.begin() as conn:
        update(conn, "full_name = 'Ann', is_active = :f WHERE id = 1", f=False)
        update(conn, "email = 'NEW@example.org', phone = '555' WHERE id = 2")
        conn.execute(text("DELETE FROM users WHERE id = 3"))
    with db.begin() as conn:
        update(conn, "is_active = :t WHERE id = 1", t=True)
        insert(conn, 3, name="Again")  # the same key, inserted after its delete
    relay = Relay(users, db, store)
    assert relay.backlog() == 8 and backlog(db, store.engine, [USERS]) == 8
    totals = relay.drain()
    assert (totals.read, totals.relayed, totals.events, relay.backlog()) == (8, 8, 10, 0)
    assert [e.type for e in store.read_stream("user-1")] == [
        "UserImported", "UserNameChanged", "UserDeactivated", "UserReactivated"]
    assert [e.type for e in store.read_stream("user-2")] == ["UserImported", "UserEmailChanged", "UserPhoneChanged"]
    assert [e.type for e in store.read_stream("user-3")] == ["UserImported", "UserDeleted", "UserImported"]
    assert_streams_match_rows(store, users, db, [1, 2, 3])
    first = store.read_stream("user-1")
    with db.connect() as conn:
        log = capture.read_changes(conn, "users", 0)
    assert first[0].metadata | {"occurred_at": None} == {
        "source": "relay", "actor": "legacy", "changelog_watermark": log[0].id, "changelog_id": log[0].id,
        "occurred_at": None}
    assert first[1].metadata == {"source": "relay", "actor": "legacy", "changelog_id": log[3].id,
                                 "occurred_at": log[3].tx_time}


def test_first_touch_imports_the_old_row_then_applies_the_change(db, store, users):
    with db.begin() as conn:
        insert(conn, 1, 2)  # written before capture existed
    capture.install(db, [USERS])
    with db.begin() as conn:
        update(conn, "full_name = 'Renamed' WHERE id = 1")
        conn.execute(text("DELETE FROM users WHERE id = 2"))
    Relay(users, db, store).drain()
    with db.connect() as conn:
        change_id = capture.read_changes(conn, "users", 0)[0].id
    imported, renamed = store.read_stream("user-1")
    assert (imported.type, imported.data["name"], renamed.type) == ("UserImported", "User 1", "UserNameChanged")
    assert imported.metadata["changelog_watermark"] == change_id - 1
    assert imported.metadata["occurred_at"] == users.timestamp_of({"u": T}, "u")  # the old row's updated_at
    assert [e.type for e in store.read_stream("user-2")] == ["UserImported", "UserDeleted"]
    assert_streams_match_rows(store, users, db, [1, 2])


def test_running_twice_or_from_a_reset_offset_writes_nothing_twice(db, store, users):
    capture.install(db, [USERS])
    with db.begin() as conn:
        insert(conn, *range(1, 8))
    with db.begin() as conn:
        update(conn, "full_name = 'Changed' WHERE id <= 5")
    relay = Relay(users, db, store, batch_size=4)
    first = relay.drain()
    count = event_count(store.engine)
    assert (first.read, first.batches, count) == (12, 3, 12)
    assert relay.drain().read == 0
    with write_transaction(store.engine) as conn:  # as if the checkpoint had never moved
        reset_offset(conn, offset_name("users"))
    again = relay.drain()
    assert (again.read, again.relayed, again.skipped, event_count(store.engine)) == (12, 0, 12, count)
    assert_streams_match_rows(store, users, db, range(1, 8))


def test_a_crash_before_commit_leaves_neither_events_nor_offset(db, store, users):
    capture.install(db, [USERS])
    with db.begin() as conn:
        insert(conn, 1, 2)
        update(conn, "phone = '1' WHERE id = 1")
    relay = Relay(users, db, store)

    def crash():
        raise KeyboardInterrupt("killed between the append and the commit")

    with pytest.raises(KeyboardInterrupt):
        relay.run_batch(before_commit=crash)
    assert (event_count(store.engine), relay.position()) == (0, 0)
    assert relay.drain().events == 3
    assert_streams_match_rows(store, users, db, [1, 2])


def test_changes_already_in_a_backfilled_row_are_not_applied_twice(db, store, users):
    capture.install(db, [USERS])
    with db.begin() as conn:
        insert(conn, 1, 2)
    with db.begin() as conn:
        update(conn, "full_name = 'Seen by the backfill' WHERE id = 1")
    with db.begin() as conn:  # as the backfill reads: the watermark in the row's snapshot, committed
        watermark = capture.latest_change_id(conn)
        row = conn.execute(text("SELECT * FROM users WHERE id = 1")).mappings().one()
    with db.begin() as conn:
        update(conn, "full_name = 'After the backfill read' WHERE id = 1")
    # the backfill's import of key 1, read at `watermark`, lands before the relay runs
    store.append("user-1", [users.import_event(row, event_id=backfill_import_id("users", 1),
                                               metadata=import_metadata("backfill", watermark, None))],
                 ExpectedVersion.NO_STREAM)
    totals = Relay(users, db, store).drain()
    assert [(e.type, e.metadata["source"]) for e in store.read_stream("user-1")] == [
        ("UserImported", "backfill"), ("UserNameChanged", "relay")]
    assert store.read_stream("user-1")[1].data == {"name": "After the backfill read"}
    assert (totals.read, totals.relayed) == (4, 2)  # I1 and U1 are in the backfilled row; I2 and U1' are not
    assert_streams_match_rows(store, users, db, [1, 2])
    # and the other way round: the relay imported key 2 first, so the backfill's import is refused
    with db.connect() as conn:
        row2 = conn.execute(text("SELECT * FROM users WHERE id = 2")).mappings().one()
    with pytest.raises(ConcurrencyError):
        store.append("user-2", [users.import_event(row2, event_id=backfill_import_id("users", 2),
                                                   metadata=import_metadata("backfill", watermark, None))],
                     ExpectedVersion.NO_STREAM)


def test_the_migrators_own_writes_are_not_relayed(db, store, users):
    capture.install(db, [USERS])
    with db.begin() as conn:
        insert(conn, 1)
    with db.begin() as conn, capture.migrator_writes(conn):
        update(conn, "full_name = 'Projected back from events' WHERE id = 1")
    totals = Relay(users, db, store).drain()
    assert (totals.read, totals.relayed, totals.skipped) == (2, 1, 1)
    assert [e.type for e in store.read_stream("user-1")] == ["UserImported"]


def test_concurrent_relays_of_one_table_write_each_change_once(db, store, users):
    capture.install(db, [USERS])
    with db.begin() as conn:
        insert(conn, *range(1, 41))
    for n in range(3):
        with db.begin() as conn:
            update(conn, f"full_name = 'Round {n}' WHERE id % 2 = {n % 2}")
    relays = [Relay(users, db, EventStore(store.engine), batch_size=7) for _ in range(3)]
    errors: list[BaseException] = []

    def run(r):
        try:
            r.drain()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with store.engine.connect() as conn:
        per_change = Counter(m.get("changelog_id") for m in conn.execute(select(events.c.meta)).scalars())
    assert max(per_change.values()) == 1 and len(per_change) == 40 + 60
    assert_streams_match_rows(store, users, db, range(1, 41))


def test_events_keep_the_order_of_the_changelog_across_batches(db, store, users):
    capture.install(db, [USERS])
    with db.begin() as conn:
        insert(conn, 1)
    for n in range(10):
        with db.begin() as conn:
            update(conn, "full_name = :n, updated_at = :t WHERE id = 1", n=f"Name {n}", t=T + timedelta(seconds=n))
    Relay(users, db, store, batch_size=3).drain()
    assert [e.data.get("name") for e in store.read_stream("user-1")] == ["User 1"] + [f"Name {n}" for n in range(10)]
