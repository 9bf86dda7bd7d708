"""Capture gaps (invariant 9): a recreated changelog or a stretch with capture off is detected, reported,
read from its beginning and repaired by a re-sync; the relay never skips silently. Every legacy backend."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select, text

from es_app.store import EventStore, make_engine
from es_app.store.schema import events
from migrator.capture import changelog as capture
from migrator.capture.gaps import CAPTURE_OFF, CHANGELOG_RECREATED, IDS_RESTARTED, open_gaps
from migrator.capture.history import HISTORY
from migrator.capture.offsets import get_state, offset_name
from migrator.mapping import USERS
from migrator.relay.resync import Resync
from migrator.relay.runner import Relay
from migrator.verify import compare

T = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)


@pytest.fixture
def urls(new_legacy_and_es_urls):
    return new_legacy_and_es_urls("gaps")


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


def insert(db, *ids, name="User"):
    with db.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                          "VALUES (:id, :email, :name, :active, NULL, :t, :t)"),
                     [{"id": i, "email": f"u{i}@example.org", "name": f"{name} {i}", "active": True, "t": T}
                      for i in ids])


def write(db, sql, **params):
    with db.begin() as conn:
        conn.execute(text(sql), params)


def max_id(db):
    with db.begin() as conn:
        return capture.latest_change_id(conn)


def mismatched(store, mapping, db):
    """Returns the keys whose stream does not replay to the legacy row (or is live without one)."""
    return sorted(compare(db, store, mapping).keys)


def relayed_once(db, store, users, n=5):
    capture.install(db, [USERS])
    insert(db, *range(1, n + 1))
    relay = Relay(users, db, store, batch_size=2)
    assert relay.drain().read == n
    return relay


def test_ids_continue_above_the_old_ones_after_the_changelog_is_recreated(db, store, users):
    relayed_once(db, store, users)
    old = max_id(db)
    capture.remove(db, [USERS], drop_changelog=True)
    capture.install(db, [USERS])
    write(db, "UPDATE users SET full_name = 'After' WHERE id = 1")
    with db.connect() as conn:
        ids = [c.id for c in capture.read_changes(conn, "users", 0)]
    assert ids and min(ids) > old
    with db.connect() as conn:  # the history stays when the changelog goes
        actions = list(conn.execute(text(f"SELECT action FROM {HISTORY} ORDER BY seq")).scalars())
    assert actions == ["changelog_created", "installed", "removed", "changelog_dropped", "changelog_created",
                       "installed"]


def test_a_recreated_changelog_is_relayed_from_its_beginning_and_the_gap_reported(db, store, users):
    relay = relayed_once(db, store, users)
    assert relay.position() > 0
    capture.remove(db, [USERS], drop_changelog=True)
    write(db, "UPDATE users SET full_name = 'Unseen' WHERE id = 1")  # capture off: not in any changelog
    capture.install(db, [USERS])
    insert(db, 6, 7)
    write(db, "UPDATE users SET phone = '555' WHERE id = 2")
    write(db, "DELETE FROM users WHERE id = 3")
    pending = open_gaps(db, store.engine, [USERS])
    assert [(g.reason, g.id) for g in pending] == [(CHANGELOG_RECREATED, None)]  # seen before the relay runs
    totals = relay.drain()
    assert totals.read == 4 and relay.backlog() == 0
    assert mismatched(store, users, db) == [1]  # only the change made while capture was off
    gaps = open_gaps(db, store.engine, [USERS])
    assert [(g.table, g.reason) for g in gaps] == [("users", CHANGELOG_RECREATED)] and gaps[0].id is not None
    assert gaps[0].since <= gaps[0].until and "relay --resync --table users" in gaps[0].warning()
    assert relay.drain().read == 0 and len(open_gaps(db, store.engine, [USERS])) == 1  # recorded once, reported until resolved
    with store.engine.connect() as conn:
        assert get_state(conn, offset_name("users")).generation is not None


def test_triggers_removed_and_reinstalled_is_a_gap_reported_by_status_and_relay(db, store, users):
    relay = relayed_once(db, store, users)
    capture.remove(db, [USERS])
    write(db, "UPDATE users SET full_name = 'Unseen' WHERE id = 2")
    assert relay.drain().read == 0 and open_gaps(db, store.engine, [USERS]) == []  # still off: the stretch has no end yet
    capture.install(db, [USERS])
    write(db, "UPDATE users SET full_name = 'Seen' WHERE id = 4")
    assert [g.reason for g in open_gaps(db, store.engine, [USERS])] == [CAPTURE_OFF]
    assert relay.drain().read == 1
    gaps = open_gaps(db, store.engine, [USERS])
    assert [(g.reason, g.id is not None) for g in gaps] == [(CAPTURE_OFF, True)]
    assert mismatched(store, users, db) == [2]


def test_resync_makes_every_stream_agree_and_resolves_the_gap(db, store, users):
    relay = relayed_once(db, store, users, n=7)
    capture.remove(db, [USERS], drop_changelog=True)
    write(db, "UPDATE users SET full_name = 'Unseen', is_active = :f WHERE id = 1", f=False)
    write(db, "DELETE FROM users WHERE id IN (2, 3)")
    insert(db, 8, 9, name="Unseen")
    write(db, "INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) "
              "VALUES (3, 'back@example.org', 'Back', :t, :ts, :ts)", t=True, ts=T)  # deleted and inserted again
    capture.install(db, [USERS])
    write(db, "UPDATE users SET phone = '1' WHERE id = 4")
    relay.drain()
    assert mismatched(store, users, db) == [1, 2, 3, 8, 9]
    first = Resync(users, db, store, chunk_size=3).run()
    assert (first.rows, first.imported, first.deleted, first.gaps_resolved) == (8, 4, 1, 1)
    assert mismatched(store, users, db) == [] and open_gaps(db, store.engine, [USERS]) == []
    assert {e.metadata["source"] for e in store.read_stream("user-2")[-1:]} == {"resync"}
    with store.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(events)).scalar()
    again = Resync(users, db, store, chunk_size=3).run()
    assert (again.imported, again.deleted, again.gaps_resolved) == (0, 0, 0)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == count
    write(db, "UPDATE users SET full_name = 'Later' WHERE id = 1")  # the relay goes on after the resync
    assert relay.drain().read == 1 and mismatched(store, users, db) == []


def test_a_stretch_before_anything_reached_the_event_store_is_no_gap(db, store, users):
    capture.install(db, [USERS])
    capture.remove(db, [USERS], drop_changelog=True)
    insert(db, 1)
    capture.install(db, [USERS])
    write(db, "UPDATE users SET full_name = 'x' WHERE id = 1")
    relay = Relay(users, db, store)
    assert relay.drain().read == 1 and open_gaps(db, store.engine, [USERS]) == []


def test_ids_restarted_by_a_changelog_made_without_the_history_are_reported(db, store, users):
    relay = relayed_once(db, store, users)
    capture.remove(db, [USERS], drop_changelog=True)
    with db.begin() as conn:  # as an older version (or a hand) would leave it: no history to continue from
        conn.execute(text(f"DROP TABLE {HISTORY}"))
    capture.install(db, [USERS])
    insert(db, 6)
    write(db, "UPDATE users SET full_name = 'Again' WHERE id = 1")  # id 2 now: below user-1's old watermark
    assert relay.drain().read == 2
    assert [g.reason for g in open_gaps(db, store.engine, [USERS])] == [IDS_RESTARTED]
    assert mismatched(store, users, db) == []  # both delivered, with event ids unlike the old ones


def test_a_stream_moved_by_another_writer_during_resync_is_left_for_a_second_run(db, store, users, monkeypatch):
    relay = relayed_once(db, store, users, n=3)
    capture.remove(db, [USERS])
    write(db, "UPDATE users SET full_name = 'Unseen' WHERE id IN (1, 2)")
    capture.install(db, [USERS])
    relay.drain()
    resync = Resync(users, db, store)
    replayed = resync._replayed

    def stale(conn, stream_ids):  # as if user-1 got an event between the comparison and the append
        return {sid: ((v - 1, s) if sid == "user-1" else (v, s)) for sid, (v, s) in replayed(conn, stream_ids).items()}

    monkeypatch.setattr(resync, "_replayed", stale)
    first = resync.run()
    assert (first.imported, first.raced, first.gaps_resolved) == (1, 1, 0) and len(open_gaps(db, store.engine, [USERS])) == 1
    assert mismatched(store, users, db) == [1]
    second = Resync(users, db, store).run()
    assert (second.imported, second.raced, second.gaps_resolved) == (1, 0, 1)
    assert mismatched(store, users, db) == [] and open_gaps(db, store.engine, [USERS]) == []


def test_resync_moves_the_unique_claims_of_the_rows_it_fixes(db, store, users):
    from es_app.store.schema import unique_claims

    relay = relayed_once(db, store, users, n=3)
    capture.remove(db, [USERS])
    write(db, "UPDATE users SET email = 'moved@example.org' WHERE id = 1")
    write(db, "DELETE FROM users WHERE id = 2")
    capture.install(db, [USERS])
    relay.drain()
    Resync(users, db, store, chunk_size=2).run()
    with store.engine.connect() as conn:
        owners = dict(conn.execute(select(unique_claims.c.value, unique_claims.c.owner)).all())
    assert owners == {"moved@example.org": "user-1", "u3@example.org": "user-3"}
