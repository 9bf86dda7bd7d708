"""Imports take the unique claims of their rows in their own transaction; dirty duplicates become findings."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text

from es_app.services import EMAIL_SCOPE
from es_app.store import Claim, EventStore, make_engine, write_transaction
from es_app.store.schema import unique_claims
from migrator.capture import changelog as capture
from migrator.claims.findings import count_findings, list_findings
from migrator.mapping import USERS
from migrator.relay.runner import Relay
from migrator.mapping import load_mapping_file
from tests.accounts import MAPPING_FILE, accounts_mapping, create_accounts

from .backfill_helpers import insert_users, keys, make_backfill

T = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


@pytest.fixture
def engine(new_database_url):
    """One database holding the legacy tables (capture installed for users) and the event store."""
    engine = make_engine(new_database_url("claims"))
    capture.install(engine, [USERS])
    yield engine
    engine.dispose()


def claims(engine, scope=EMAIL_SCOPE) -> dict[str, str]:
    """Returns {value: owner} of one scope."""
    with engine.connect() as conn:
        return dict(conn.execute(select(unique_claims.c.value, unique_claims.c.owner)
                                 .where(unique_claims.c.scope == scope)).all())


def findings(engine, **kw):
    with engine.connect() as conn:
        return list_findings(conn, **kw)


def insert_user(conn, key: int, email: str) -> None:
    conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                      "VALUES (:id, :email, :name, TRUE, NULL, :t, :t)"),
                 {"id": key, "email": email, "name": f"User {key}", "t": T})


def backfill(engine, **options):
    b = make_backfill(engine, **options)
    b.start(restart=True)
    return b.run_to_end()


@pytest.mark.parametrize("read_process", [False, True], ids=["in-writer", "reader-process"])
def test_the_backfill_claims_every_imported_email_normalized(engine, read_process):
    insert_users(engine, keys(25))  # emails such as User7@Example.org
    run = backfill(engine, batch_size=10, read_process=read_process)
    assert run.rows_imported == 25
    assert claims(engine) == {f"user{i}@example.org": f"user-{i}" for i in keys(25)}
    assert findings(engine) == []


def test_case_duplicates_are_both_imported_the_lower_key_holds_the_claim_and_one_finding_is_recorded(engine):
    with engine.begin() as conn:
        insert_user(conn, 1, "leg1@example.org")
        insert_user(conn, 2, "other@example.org")
        insert_user(conn, 3, " LEG1@Example.org ")  # the legacy app accepts it: its uniqueness is case-sensitive
    run = backfill(engine, batch_size=2)  # the duplicate lies in the next chunk
    assert run.rows_imported == 3
    store = EventStore(engine)
    assert [store.stream_version(f"user-{k}") for k in (1, 2, 3)] == [1, 1, 1]
    assert claims(engine) == {"leg1@example.org": "user-1", "other@example.org": "user-2"}
    (found,) = findings(engine)
    assert (found.kind, found.table_name, found.key, found.other_key, found.value) == (
        "duplicate_email", "users", "3", "1", "leg1@example.org")
    assert "user-1" in found.detail and "\n" not in found.detail

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM migrator_backfill_runs"))
        conn.execute(text("DELETE FROM unique_claims WHERE owner = 'user-1'"))
    backfill(engine)  # every stream exists: nothing imported, nothing claimed, no second finding
    with engine.connect() as conn:
        assert count_findings(conn) == {"duplicate_email": 1}


def test_duplicates_within_one_chunk_go_to_the_lowest_key(engine):
    with engine.begin() as conn:
        for key, email in ((5, "Dup@Example.org"), (6, "dup@example.org"), (7, "DUP@EXAMPLE.ORG")):
            insert_user(conn, key, email)
    backfill(engine)
    assert claims(engine) == {"dup@example.org": "user-5"}
    assert sorted((f.key, f.other_key) for f in findings(engine)) == [("6", "5"), ("7", "5")]


def test_the_relay_moves_claims_with_inserts_email_changes_and_deletes(engine):
    relay = Relay(USERS, engine, EventStore(engine))
    with engine.begin() as conn:
        insert_user(conn, 1, "a@example.org")
        insert_user(conn, 2, "B@example.org")
    relay.drain()
    assert claims(engine) == {"a@example.org": "user-1", "b@example.org": "user-2"}

    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET email = 'C@example.org' WHERE id = 1"))
        conn.execute(text("UPDATE users SET email = 'a@example.org' WHERE id = 2"))  # takes the freed value
    relay.drain()
    assert claims(engine) == {"c@example.org": "user-1", "a@example.org": "user-2"}

    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET full_name = 'Renamed' WHERE id = 1"))
        conn.execute(text("DELETE FROM users WHERE id = 2"))
    relay.drain()
    assert claims(engine) == {"c@example.org": "user-1"}
    assert findings(engine) == []


def test_a_relayed_case_duplicate_is_imported_and_recorded_once(engine):
    relay = Relay(USERS, engine, EventStore(engine))
    with engine.begin() as conn:
        insert_user(conn, 1, "leg1@example.org")
    relay.drain()
    with engine.begin() as conn:
        insert_user(conn, 2, "LEG1@example.org")
        conn.execute(text("UPDATE users SET full_name = 'Still a duplicate' WHERE id = 2"))
    relay.drain()
    assert EventStore(engine).stream_version("user-2") == 2
    assert claims(engine) == {"leg1@example.org": "user-1"}
    assert [(f.kind, f.key, f.other_key) for f in findings(engine)] == [("duplicate_email", "2", "1")]

    with engine.begin() as conn:  # the holder leaves the value: the next change of the other row claims it
        conn.execute(text("UPDATE users SET email = 'new@example.org' WHERE id = 1"))
        conn.execute(text("UPDATE users SET phone = '+1' WHERE id = 2"))
    relay.drain()
    assert claims(engine) == {"new@example.org": "user-1", "leg1@example.org": "user-2"}
    assert len(findings(engine)) == 1


def test_claims_and_events_commit_together(engine):
    relay = Relay(USERS, engine, EventStore(engine))
    with engine.begin() as conn:
        insert_user(conn, 1, "a@example.org")

    def crash() -> None:
        raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        relay.run_batch(before_commit=crash)
    assert claims(engine) == {} and EventStore(engine).stream_version("user-1") == 0
    relay.drain()
    assert claims(engine) == {"a@example.org": "user-1"}


def test_a_second_table_declares_its_own_unique_field_in_its_mapping_file(engine, tmp_path):
    source = MAPPING_FILE.read_text()
    path = tmp_path / "accounts.toml"
    path.write_text(source.replace('timestamp_precision = "ms"', 'timestamp_precision = "ms"\nunique = ["title"]'))
    (mapping,) = load_mapping_file(path)
    assert mapping.unique == {"title": "account-title"}
    assert accounts_mapping().unique == {}
    create_accounts(engine)
    with engine.begin() as conn:
        for code, title in (("a-1", "Main "), ("a-2", "Spare"), ("a-3", " Main")):
            conn.execute(text("INSERT INTO accounts (code, owner_email, title, enabled, opened_at, touched_at) "
                              "VALUES (:c, 'o@example.org', :t, TRUE, :ts, :ts)"), {"c": code, "t": title, "ts": T})
    capture.install(engine, [mapping])
    b = make_backfill(engine, mapping)
    b.start()
    b.run_to_end()
    assert claims(engine, "account-title") == {"Main": "account-a-1", "Spare": "account-a-2"}
    assert [(f.kind, f.table_name, f.key, f.other_key) for f in findings(engine, table="accounts")] == [
        ("duplicate_title", "accounts", "a-3", "a-1")]


def test_store_claim_in_is_set_based_and_idempotent(engine):
    store = EventStore(engine)
    wanted = [(f"s-{i}", [Claim("scope", f"v{i % 3}")]) for i in range(6)]
    with write_transaction(engine) as conn:
        conflicts = store.claim_in(conn, wanted)
    assert [(c.wanted_by, c.owner) for c in conflicts] == [("s-3", "s-0"), ("s-4", "s-1"), ("s-5", "s-2")]
    with write_transaction(engine) as conn:
        assert store.claim_in(conn, wanted[:3]) == []  # held by the same owners: no conflict
        assert store.release_in(conn, ["s-0", "s-1"], keep={"s-1": [Claim("scope", "v1")]}) == 1
        assert store.claims_of(conn, ["s-0", "s-1"]) == {"s-1": {Claim("scope", "v1")}}


def test_an_unknown_unique_field_is_a_one_line_mapping_error():
    from migrator.mapping import MappingError

    with pytest.raises(MappingError, match="unique field 'mail' is not a mapped field"):
        dataclasses.replace(USERS, unique={"mail": EMAIL_SCOPE})
