"""The three-way comparison (migrator.verify.compare): legacy rows vs stream replays vs the read model,
for the users table (integer keys, with its read model) and the accounts table (text keys, none)."""

from __future__ import annotations

from sqlalchemy import text

from es_app.bootstrap import build
from es_app.projections import run_projections
from es_app.settings import Settings
from es_app.store import EventStore
from migrator.capture import changelog as capture
from migrator.mapping import USERS
from migrator.relay.runner import Relay
from migrator.verify import READ_MODEL, STREAM, compare, users_read_model

from .backfill_helpers import ACCOUNTS, create_accounts, insert_accounts, insert_users, keys


def _behind_the_relays_back(engine, sql: str, **params) -> None:
    """Writes to the legacy table without a changelog row (the origin marker), as a capture gap would."""
    with engine.begin() as conn, capture.migrator_writes(conn):
        conn.execute(text(sql), params)


def test_users_agree_then_each_view_that_differs_is_named_with_its_fields(db):
    url, engine = db
    users = USERS.bind(engine)
    insert_users(engine, keys(6))
    store = EventStore(engine)
    Relay(users, engine, store).drain()
    container = build(Settings(es_database_url=url, legacy_database_url=url, broker_url=""))
    run_projections(container)
    read_model = users_read_model(engine)

    same = compare(engine, store, users, read_model=read_model)
    assert same.ok and (same.table, same.rows, same.streams) == ("users", 6, 6) and same.lines() == []

    _behind_the_relays_back(engine, "UPDATE users SET full_name = 'Changed Behind' WHERE id = 2")
    _behind_the_relays_back(engine, "DELETE FROM users WHERE id = 5")
    found = compare(engine, store, users, read_model=read_model)
    assert found.keys == [2, 5] and (found.rows, found.streams) == (5, 6)
    renamed, deleted = found.differences
    assert renamed.views == (STREAM, READ_MODEL) and renamed.fields == ("name",)
    assert renamed.legacy["name"] == "Changed Behind" and renamed.stream["name"] == renamed.read_model["name"] == "User 2"
    assert deleted.views == (STREAM, READ_MODEL) and deleted.legacy is None and deleted.stream is not None
    assert set(deleted.fields) >= {"name", "email", "active", "phone"}
    assert found.lines()[0].startswith("user-2: legacy {") and "no legacy row" in found.lines()[2]

    # a key set compares only those keys; without a read model only the streams
    assert compare(engine, store, users, [1, 2, 3]).keys == [2]
    assert compare(engine, store, users, [2]).differences[0].views == (STREAM,)
    assert compare(engine, store, users, [99]).ok  # no row and no stream agree

    Relay(users, engine, store).drain()  # nothing to relay: the writes were not captured
    assert compare(engine, store, users, read_model=read_model).keys == [2, 5]


def test_a_text_key_table_compares_with_no_code_change(db):
    _, engine = db
    create_accounts(engine)
    capture.install(engine, [ACCOUNTS])
    insert_accounts(engine, ["acc-a", "acc-b", "o'brien"])
    accounts = ACCOUNTS.bind(engine)
    store = EventStore(engine)
    Relay(accounts, engine, store).drain()
    assert compare(engine, store, accounts).ok

    _behind_the_relays_back(engine, "UPDATE accounts SET note = 'later', closed = :c WHERE code = :k",
                            c=True, k="o'brien")
    _behind_the_relays_back(engine, "DELETE FROM accounts WHERE code = 'acc-a'")
    found = compare(engine, store, accounts)
    assert found.keys == ["o'brien", "acc-a"]
    changed = found.differences[0]
    assert changed.stream_id == "account-o'brien" and changed.views == (STREAM,)
    assert changed.fields == ("closed", "extra.note")
    assert compare(engine, store, accounts, ["acc-b", "o'brien"]).keys == ["o'brien"]
