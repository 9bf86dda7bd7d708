"""The relay parks a change the event store cannot hold, and every later change of its key behind
it (per-key order); the other keys flow on; `retry` applies them after a fix. Legacy: SQLite (it
accepts U+0000); event store: both backends."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from es_app.store import EventStore, make_engine
from migrator.parking import entries as parked
from migrator.mapping import USERS
from migrator.parking.retry import retry
from migrator.relay.runner import Relay

from .backfill_helpers import differences, insert_users
from .parking_helpers import RAW_USERS, set_name, sqlite_legacy


@pytest.fixture
def dbs(new_database_url, tmp_path):
    legacy, es = sqlite_legacy(tmp_path), make_engine(new_database_url("es"))
    yield legacy, es
    legacy.dispose()
    es.dispose()


def change_ids(legacy) -> list[int]:
    with legacy.connect() as conn:
        return list(conn.execute(text("SELECT id FROM migrator_changelog ORDER BY id")).scalars())


def types(store, sid):
    return [e.type for e in store.read_stream(sid)]


def parked_changes(legacy, es):
    """Relays users 1..3, then changes of user 2 the first of which cannot be stored without strip_control."""
    insert_users(legacy, [1, 2, 3])
    store = EventStore(es)
    Relay(RAW_USERS.bind(legacy), legacy, store).drain()
    set_name(legacy, 2, "B\x00b")  # cannot be stored
    with legacy.begin() as conn:
        conn.execute(text("UPDATE users SET phone = '+1 555 0002x' WHERE id = 2"))  # could be, but waits
    set_name(legacy, 1, "Ann")  # another key: flows on
    set_name(legacy, 2, "Bobby")
    totals = Relay(RAW_USERS.bind(legacy), legacy, store, batch_size=2).drain()
    return store, totals


def test_a_change_that_cannot_be_stored_is_parked_with_the_later_changes_of_its_key(dbs):
    legacy, es = dbs
    store, totals = parked_changes(legacy, es)
    assert (totals.read, totals.parked, totals.relayed) == (4, 3, 1)
    assert types(store, "user-1") == ["UserImported", "UserNameChanged"]
    assert types(store, "user-2") == ["UserImported"]  # nothing after the parked change: order kept
    ids = change_ids(legacy)[-4:]
    entries = parked.list_parked(es)
    assert [(e.key, e.source, e.changelog_id) for e in entries] == [
        ("2", "relay", ids[0]), ("2", "relay", ids[1]), ("2", "relay", ids[3])]
    assert "UserNameChanged data $.name holds U+0000 (NUL)" in entries[0].reason
    assert entries[1].reason == "waits behind an earlier parked row or change of key 2"
    assert entries[0].row["new_row"]["full_name"] == "B\x00b"  # the change as captured, reproducible

    with legacy.begin() as conn:  # a later batch: still behind
        conn.execute(text("UPDATE users SET is_active = 0 WHERE id = 2"))
    later = Relay(RAW_USERS.bind(legacy), legacy, store).drain()
    assert (later.read, later.parked) == (1, 1)
    assert Relay(RAW_USERS.bind(legacy), legacy, store).drain().read == 0  # never stuck
    [count] = parked.counts(es)
    assert (count.keys, count.relay, count.backfill) == (1, 4, 0)


def test_retry_after_a_mapping_fix_applies_the_parked_changes_in_order(dbs):
    legacy, es = dbs
    store, _ = parked_changes(legacy, es)
    report = retry(store, legacy, USERS.bind(legacy))
    assert (report.resolved, report.still_parked, report.keys) == (3, 0, 1)
    events = store.read_stream("user-2")
    assert [e.type for e in events] == ["UserImported", "UserNameChanged", "UserPhoneChanged", "UserNameChanged"]
    assert events[1].data == {"name": "Bb"}
    assert json.loads(events[1].metadata["legacy_originals"]["full_name"]) == "B\x00b"
    assert events[3].data == {"name": "Bobby"}
    assert differences(legacy, store, USERS.bind(legacy)) == []
    with legacy.begin() as conn:  # the key flows again
        conn.execute(text("UPDATE users SET is_active = 0 WHERE id = 2"))
    assert Relay(USERS.bind(legacy), legacy, store).drain().parked == 0
    assert types(store, "user-2")[-1] == "UserDeactivated"


def test_retry_after_a_legacy_fix_brings_the_key_from_its_current_row(dbs):
    legacy, es = dbs
    store, _ = parked_changes(legacy, es)
    mapping = RAW_USERS.bind(legacy)
    set_name(legacy, 2, "Bo\x00")  # the current row cannot be stored either
    assert (retry(store, legacy, mapping).still_parked, parked.list_parked(es)[0].attempts) == (3, 2)
    assert types(store, "user-2") == ["UserImported"]
    set_name(legacy, 2, "Bob")  # fixed in the legacy database
    report = retry(store, legacy, mapping)
    assert (report.resolved, report.still_parked) == (3, 0)
    assert types(store, "user-2") == ["UserImported", "UserImported"]  # from the current row
    assert store.read_stream("user-2")[-1].metadata["source"] == "retry"
    assert parked.list_parked(es) == []
    later = Relay(mapping, legacy, store).drain()  # the fix's own changes are contained in that import
    assert (later.read, later.parked, later.relayed) == (2, 0, 0)
    assert differences(legacy, store, mapping) == []


def test_a_legacy_key_the_store_cannot_hold_is_parked_by_backfill_and_relay(dbs):
    from migrator.capture import changelog as capture
    from migrator.backfill.run import Backfill

    from .backfill_helpers import ACCOUNTS, create_accounts, insert_accounts

    legacy, es = dbs
    create_accounts(legacy)
    mapping = ACCOUNTS.bind(legacy)
    capture.install(legacy, [ACCOUNTS])
    insert_accounts(legacy, ["a-1", "a\x00b", "a-3"])
    store = EventStore(es)
    b = Backfill(mapping, legacy, store)
    b.start()
    assert (b.run_to_end().rows_parked, store.stream_version("account-a-1")) == (1, 1)
    with legacy.begin() as conn:
        conn.execute(text("UPDATE accounts SET balance_cents = 7"))
    totals = Relay(mapping, legacy, store).drain()
    assert (totals.read, totals.parked, totals.relayed) == (6, 2, 2)  # its INSERT and UPDATE
    entries = parked.list_parked(es)
    assert [(e.key, e.source) for e in entries] == [('"a\\u0000b"', "backfill")] + [('"a\\u0000b"', "relay")] * 2
    assert "stream id holds U+0000" in entries[0].reason
    report = retry(store, legacy, mapping)  # a key no stream can have: it stays parked, the run ends
    assert (report.resolved, report.still_parked) == (0, 3)
