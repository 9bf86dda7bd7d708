"""`migrator.repair`: a stored verify run's mismatches become correction, import and delete events and read-model
rebuilds; the legacy row is read again at repair time; a second repair writes nothing."""

from __future__ import annotations

from sqlalchemy import select, text

from es_app.bootstrap import build
from es_app.projections import refold_users, run_projections
from es_app.settings import Settings
from es_app.store import EventStore
from es_app.store.schema import unique_claims
from migrator.capture import changelog as capture
from migrator.mapping import USERS
from migrator.relay.runner import Relay
from migrator.repair import repair
from migrator.verify import compare, runs, users_read_model

from .backfill_helpers import ACCOUNTS, create_accounts, insert_accounts, insert_users, keys


def _behind_the_relays_back(engine, sql: str, **params) -> None:
    """Writes to the legacy table without a changelog row, as a capture gap would."""
    with engine.begin() as conn, capture.migrator_writes(conn):
        conn.execute(text(sql), params)


def _mismatch(table: str, key, stream_id: str, kind: str, **explain) -> dict:
    return {"table": table, "key": key, "stream_id": stream_id, "kind": kind,
            "fields": {"name": {"legacy": "x", "new": "y", "replay": "y"}},
            "explain": {"changelog": None, "event": None, "pending": explain or None, "summary": "by hand"}}


def _stored(engine, mismatches: list[dict]) -> dict:
    doc = {"format": 1, "id": None, "clean": False, "started_at": "2026-12-06T20:30:00+00:00",
           "finished_at": "2026-12-06T20:30:01+00:00", "duration_s": 1.0,
           "options": {"tables": ["users"], "sample": 2000, "full": False, "since_last": False, "since_run": None,
                       "wait_s": 5.0},
           "counts": {}, "tables": [], "watermarks": {}, "mismatches_total": len(mismatches),
           "mismatches_truncated": False, "mismatches": mismatches}
    return runs.load(engine, runs.store(engine, doc))


def _claims(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(unique_claims.c.value, unique_claims.c.owner)).all())


def _view(engine, sid: str):
    with engine.connect() as conn:
        return conn.execute(text("SELECT name, email, deleted FROM users_view WHERE id = :i"), {"i": sid}).first()


def test_repair_plans_then_applies_the_events_that_make_verify_clean_and_a_second_run_adds_nothing(pair):
    engine, es = pair.legacy, pair.es
    users = USERS.bind(engine)
    insert_users(engine, keys(8))
    store = EventStore(es)
    Relay(users, engine, store).drain()
    container = build(Settings(es_database_url=pair.es_url, legacy_database_url=pair.legacy_url, broker_url=""))
    run_projections(container)

    _behind_the_relays_back(engine, "UPDATE users SET full_name = ' Changed ', email = 'NEW3@x.org' WHERE id = 3")
    _behind_the_relays_back(engine, "UPDATE users SET email = 'not an email' WHERE id = 6")  # the domain refuses it
    _behind_the_relays_back(engine, "DELETE FROM users WHERE id = 5")
    _behind_the_relays_back(engine, "INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) "
                                    "VALUES (9, 'nine@x.org', 'Nine', true, '2020-01-01', '2020-01-01')")
    with es.begin() as conn:  # a projection bug: the read model alone is wrong
        conn.execute(text("UPDATE users_view SET name = 'Wrong' WHERE id = 'user-4'"))
    doc = _stored(es, [
        _mismatch("users", 3, "user-3", "field_differs"),
        _mismatch("users", 6, "user-6", "field_differs"),
        _mismatch("users", 5, "user-5", "missing_in_legacy"),
        _mismatch("users", 9, "user-9", "missing_in_new"),
        _mismatch("users", 4, "user-4", "replay_differs"),
        _mismatch("users", 1, "user-1", "pending", changelog_id=77, read_model_position=12),
        _mismatch("users", 2, "user-2", "field_differs"),  # agrees again by now
        _mismatch("orders", 1, "order-1", "field_differs"),
    ])
    run_id = doc["id"]
    _behind_the_relays_back(engine, "UPDATE users SET full_name = 'Changed Again' WHERE id = 3")  # after the run
    read_model = users_read_model(es)
    assert set(compare(engine, store, users, read_model=read_model).keys) == {3, 4, 5, 6, 9}
    head = store.head_position()

    plan = repair(doc, engine, store, [users])
    assert store.head_position() == head and _view(es, "user-4").name == "Wrong"  # a dry run writes nothing
    by_key = {(a.key, a.action): a for a in plan.actions}
    assert [(a.key, a.action) for a in plan.actions] == [
        (3, "correct"), (6, "import"), (5, "delete"), (9, "import"), (4, "rebuild"), (1, "skip"), (2, "none"),
        (1, "skip")]
    assert by_key[(3, "correct")].detail == ('name "User 3" -> "Changed Again"; '
                                              'email "user3@example.org" -> "new3@x.org"')
    assert by_key[(3, "correct")].events == 2 and not by_key[(3, "correct")].done
    assert "changelog #77 not relayed" in plan.actions[5].detail and "verify again" in plan.actions[5].detail
    assert plan.actions[7].detail == "no mapping of this table" and plan.events == 0

    applied = repair(doc, engine, store, [users], apply=True)
    assert [a.action for a in applied.actions] == [a.action for a in plan.actions]
    assert all(a.done for a in applied.actions if a.action in ("correct", "import", "delete", "rebuild"))
    assert applied.events == 2 + 1 + 1 + 1 and applied.raced == 0
    run_projections(container)
    assert compare(engine, store, users, read_model=read_model).ok
    assert _view(es, "user-4").name == "User 4"

    three = store.read_stream("user-3")
    corrections = [e for e in three if e.type == "UserCorrected"]
    assert [(e.data["field"], e.data["value"], e.data["reason"]) for e in corrections] == [
        ("name", "Changed Again", f"repair of verify run {run_id}"),
        ("email", "new3@x.org", f"repair of verify run {run_id}")]
    assert {e.metadata["source"] for e in corrections} == {"repair"}
    assert three[0].type == "UserImported"  # the history keeps what was there before the fix
    assert [e.type for e in store.read_stream("user-6")][-1] == "UserImported"
    assert store.read_stream("user-5")[-1].type == "UserDeleted"
    assert store.read_stream("user-9")[-1].metadata["source"] == "repair"
    claims = _claims(es)
    assert claims["new3@x.org"] == "user-3" and "user3@example.org" not in claims
    assert claims["nine@x.org"] == "user-9" and "user5@example.org" not in claims

    head = store.head_position()
    again = repair(doc, engine, store, [users], apply=True)
    assert again.events == 0 and {a.action for a in again.actions} == {"none", "skip"}
    assert store.head_position() == head


def test_a_table_without_correction_event_is_corrected_with_its_column_event(pair):
    engine, es = pair.legacy, pair.es
    create_accounts(engine)
    capture.install(engine, [ACCOUNTS])
    insert_accounts(engine, ["acc-a", "acc-b"])
    accounts = ACCOUNTS.bind(engine)
    store = EventStore(es)
    Relay(accounts, engine, store).drain()
    _behind_the_relays_back(engine, "UPDATE accounts SET owner = 'Zed', note = 'later' WHERE code = 'acc-b'")
    doc = _stored(es, [_mismatch("accounts", "acc-b", "account-acc-b", "field_differs"),
                           _mismatch("accounts", "acc-a", "account-acc-a", "replay_differs")])
    result = repair(doc, engine, store, [accounts], apply=True)
    assert [(a.key, a.action) for a in result.actions] == [("acc-b", "correct"), ("acc-a", "skip")]
    assert result.actions[1].detail == "the table has no read model to rebuild"
    fixed = store.read_stream("account-acc-b")[-2:]
    assert [(e.type, e.data) for e in fixed] == [("AccountColumnChanged", {"column": "owner", "value": "Zed"}),
                                                 ("AccountColumnChanged", {"column": "note", "value": "later"})]
    assert fixed[0].metadata["reason"] == f"repair of verify run {doc['id']}"
    assert compare(engine, store, accounts).ok


def test_refold_rebuilds_only_rows_that_differ_from_their_stream(db):
    url, engine = db
    users = USERS.bind(engine)
    insert_users(engine, keys(3))
    store = EventStore(engine)
    assert refold_users(engine, store, ["user-1"]).unprojected  # the projection never ran: nothing to re-fold
    Relay(users, engine, store).drain()
    container = build(Settings(es_database_url=url, legacy_database_url=url, broker_url=""))
    run_projections(container)
    with engine.begin() as conn:
        conn.execute(text("UPDATE users_view SET email = 'bad@x.org' WHERE id = 'user-2'"))
        conn.execute(text("INSERT INTO users_view (id, name, email, active, deleted, version, position) "
                          "VALUES ('user-77', 'Ghost', 'g@x.org', true, false, 1, 1)"))
    assert refold_users(engine, store, ["user-1", "user-2", "user-77"], write=False).changed == ("user-2", "user-77")
    assert _view(engine, "user-2").email == "bad@x.org"
    assert refold_users(engine, store, ["user-1", "user-2", "user-77"]).changed == ("user-2", "user-77")
    assert _view(engine, "user-2").email == "user2@example.org" and _view(engine, "user-77") is None
    assert refold_users(engine, store, ["user-1", "user-2", "user-77"]).changed == ()
    assert compare(engine, store, users, read_model=users_read_model(engine)).ok


def test_a_read_model_row_with_neither_stream_nor_legacy_row_is_removed_by_its_rebuild(pair):
    engine, es = pair.legacy, pair.es
    users = USERS.bind(engine)
    insert_users(engine, keys(2))
    store = EventStore(es)
    Relay(users, engine, store).drain()
    run_projections(build(Settings(es_database_url=pair.es_url, legacy_database_url=pair.legacy_url, broker_url="")))
    with es.begin() as conn:
        conn.execute(text("INSERT INTO users_view (id, name, email, active, deleted, version, position) "
                          "VALUES ('user-50', 'Ghost', 'g@x.org', true, false, 1, 1)"))
    read_model = users_read_model(es)
    assert compare(engine, store, users, read_model=read_model).keys == ["50"]
    doc = _stored(es, [_mismatch("users", 50, "user-50", "missing_in_legacy")])
    result = repair(doc, engine, store, [users], apply=True)
    assert [(a.key, a.action, a.done) for a in result.actions] == [(50, "rebuild", True)] and result.events == 0
    assert _view(es, "user-50") is None and compare(engine, store, users, read_model=read_model).ok
    assert [a.action for a in repair(doc, engine, store, [users], apply=True).actions] == ["none"]
