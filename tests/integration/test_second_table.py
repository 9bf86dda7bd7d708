"""A second legacy table (`accounts`, text primary key, mapped from a TOML file) through capture and relay."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from es_app.store import EventStore, make_engine
from migrator.capture import changelog as capture
from migrator.mapping import USERS, load_mappings
from migrator.relay.runner import relays_for
from migrator.verify import compare
from tests.accounts import MAPPING_FILE, create_accounts

T = datetime(2026, 5, 6, 7, 8, 9, 987654, tzinfo=timezone.utc)


@pytest.fixture
def db(new_database_url):
    engine = make_engine(new_database_url("db"))
    create_accounts(engine)
    yield engine
    engine.dispose()


def account(code, **over):
    return {"code": code, "owner": f"Owner.{code}@Example.org", "title": f" Account {code} ", "enabled": True,
            "balance": "10.50", "secret": "s3cr3t", "t": T} | over


INSERT = ("INSERT INTO accounts (code, owner_email, title, enabled, balance, secret, opened_at, touched_at) "
          "VALUES (:code, :owner, :title, :enabled, :balance, :secret, :t, :t)")


def test_accounts_flow_through_capture_and_relay_with_no_code_change(db):
    (accounts,) = load_mappings(MAPPING_FILE, db)
    with db.begin() as conn:
        conn.execute(text(INSERT), account("pre-1"))  # before capture: first touch imports the old row
    capture.install(db, [accounts.declaration, USERS])
    with db.begin() as conn:
        conn.execute(text(INSERT), [account("acc-1"), account("acc-2"), account("o'brien")])
    with db.begin() as conn:
        conn.execute(text("UPDATE accounts SET title = 'Renamed', enabled = :f, balance = 99.99, secret = 'x', "
                          "touched_at = :t WHERE code IN ('acc-1', 'pre-1')"), {"f": False, "t": T + timedelta(1)})
        conn.execute(text("UPDATE accounts SET owner_email = 'NEW@example.org' WHERE code = :c"), {"c": "o'brien"})
        conn.execute(text("DELETE FROM accounts WHERE code = 'acc-2'"))
    with db.begin() as conn:
        conn.execute(text("UPDATE accounts SET enabled = :t WHERE code = 'acc-1'"), {"t": True})
        conn.execute(text("UPDATE accounts SET code = 'acc-3' WHERE code = 'o''brien'"))  # a key change
    store = EventStore(db)
    for relay in relays_for([accounts], db, store, batch_size=2):
        relay.drain()

    assert [e.type for e in store.read_stream("account-acc-1")] == [
        "AccountImported", "AccountRenamed", "AccountDisabled", "AccountColumnChanged", "AccountEnabled"]
    assert store.read_stream("account-acc-1")[3].data == {"column": "balance", "value": "99.99"}
    assert [e.type for e in store.read_stream("account-pre-1")] == [
        "AccountImported", "AccountRenamed", "AccountDisabled", "AccountColumnChanged"]
    assert [e.type for e in store.read_stream("account-acc-2")] == ["AccountImported", "AccountClosed"]
    assert [e.type for e in store.read_stream("account-o'brien")] == [
        "AccountImported", "AccountOwnerChanged", "AccountClosed"]
    assert [e.type for e in store.read_stream("account-acc-3")] == ["AccountImported"]
    assert all("secret" not in e.data.get("row", {}) for e in store.read_stream("account-acc-1"))

    with db.connect() as conn:
        rows = {r["code"]: r for r in conn.execute(text("SELECT * FROM accounts")).mappings()}
    assert set(rows) == {"pre-1", "acc-1", "acc-3"}
    assert compare(db, store, accounts, ["pre-1", "acc-1", "acc-2", "o'brien", "acc-3"]).lines() == []
    assert accounts.state_from_row(rows["acc-1"]) == {
        "title": "Renamed", "owner": "owner.acc-1@example.org", "enabled": True, "extra": {"balance": "99.99"}}
    assert store.read_stream("account-acc-1")[0].data["created_at"] == "2026-05-06T07:08:09.987+00:00"  # ms precision
