"""Writes switched: the legacy API's writes become events first (EsWrites), and the reverse projection keeps the
legacy table equal to the streams, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from es_app.store import NewEvent
from legacy_app.db import Database
from legacy_app.service import EmailTaken, UserNotFound
from legacy_app.writes import WriteRefused
from migrator.capture import changelog as capture
from migrator.capture.changelog import CHANGELOG
from migrator.claims.findings import list_findings
from migrator.switchover.reverse import NO_LEGACY_KEY, REVERSE_ORIGIN, checkpoint, waiting_keys_of
from migrator.switchover.writes import es_writes

from .switchover_helpers import make_world


@pytest.fixture
def world(new_legacy_and_es_urls):
    """On every legacy backend (MySQL: a MariaDB legacy database beside an SQLite event store)."""
    w = make_world(lambda name: new_legacy_and_es_urls(name)[0 if name == "legacy" else 1])
    yield w
    w.legacy.dispose()


def test_create_update_delete_through_the_legacy_api_become_events_then_rows(world):
    with world.client() as client:
        created = client.post("/users", json={"email": "Ann@Example.org", "full_name": "Ann", "phone": "555"})
        assert created.status_code == 201, created.text
        body = created.json()
        key = body["id"]
        assert key == 4  # after the highest legacy key
        assert world.types(key) == ["UserRegistered"]
        assert client.get(f"/users/{key}").json() == body  # the row the table holds, returned as it is
        assert (body["email"], body["full_name"], body["phone"], body["is_active"]) == \
            ("ann@example.org", "Ann", "555", True)

        changed = client.put(f"/users/{key}", json={"full_name": "Anna", "is_active": False, "phone": None})
        assert changed.status_code == 200, changed.text
        assert world.types(key) == ["UserRegistered", "UserNameChanged", "UserDeactivated", "UserPhoneChanged"]
        assert client.get(f"/users/{key}").json() == changed.json()
        assert changed.json()["updated_at"] >= body["updated_at"]

        same = client.put(f"/users/{key}", json={"full_name": "Anna"})  # nothing differs: nothing written
        assert same.status_code == 200 and same.json() == changed.json()
        assert len(world.types(key)) == 4

        imported = client.put("/users/2", json={"email": "two@example.org"})  # a user the relay imported
        assert imported.status_code == 200, imported.text
        assert world.types(2) == ["UserImported", "UserEmailChanged"]
        assert world.row(2)["email"] == "two@example.org"

        assert client.delete(f"/users/{key}").status_code == 204
        assert world.types(key)[-1] == "UserDeleted"
        assert world.row(key) is None
        assert client.get(f"/users/{key}").status_code == 404

        inactive = client.post("/users", json={"email": "bo@example.org", "full_name": "Bo", "is_active": False})
        assert inactive.status_code == 201 and inactive.json()["is_active"] is False
        assert world.types(inactive.json()["id"]) == ["UserRegistered", "UserDeactivated"]
    assert world.verify().clean


def test_errors_are_the_legacy_apis(world):
    with world.client() as client:
        taken = client.post("/users", json={"email": "USER1@example.org", "full_name": "Dup"})  # claim: any case
        assert taken.status_code == 409 and "email already in use" in taken.json()["detail"]
        assert client.put("/users/2", json={"email": "user1@example.org"}).status_code == 409
        assert client.put("/users/99", json={"full_name": "X"}).status_code == 404
        assert client.delete("/users/99").status_code == 404
        assert client.delete("/users/3").status_code == 204
        assert client.put("/users/3", json={"full_name": "X"}).status_code == 404  # deleted: not found
        assert client.delete("/users/3").status_code == 404
    before = world.event_count()
    with pytest.raises(WriteRefused, match="invalid email"):
        world.writes().create(email="not an email", full_name="X")
    with pytest.raises(WriteRefused, match="name must not be empty"):
        world.writes().update(1, {"full_name": "   "})
    with pytest.raises(EmailTaken):
        world.writes().create(email="user2@example.org", full_name="X")
    with pytest.raises(UserNotFound):
        world.writes().update(42, {"full_name": "X"})
    assert world.event_count() == before


def test_a_legacy_row_without_a_stream_is_refused_with_the_reason(world):
    with world.legacy.begin() as conn:  # written while capture was not looking: no stream
        conn.execute(text(f"DELETE FROM {CHANGELOG}"))
    world.insert(7)
    with world.legacy.begin() as conn:
        conn.execute(text(f"DELETE FROM {CHANGELOG} WHERE pk = '7'"))
    with world.client() as client:
        refused = client.put("/users/7", json={"full_name": "Seven"})
    assert refused.status_code == 422
    assert "user 7 has no stream in the event store" in refused.json()["detail"]


def test_reverse_writes_are_marked_and_never_relayed_back(world):
    w = world.writes()
    record = w.create(email="cy@example.org", full_name="Cy")
    w.update(record.id, {"email": "cy2@example.org"})
    w.update(1, {"is_active": False})
    w.delete(2)
    capture.number_committed(world.legacy)  # MySQL: the committed changes get their ids (a reader does first)
    with world.legacy.connect() as conn:
        origins = conn.execute(text(f"SELECT DISTINCT origin FROM {CHANGELOG} WHERE id > 3")).scalars().all()
    assert origins == [REVERSE_ORIGIN]
    before = world.event_count()
    totals = world.relay()
    assert (totals.read, totals.events) == (4, 0)
    assert world.event_count() == before
    assert world.verify().clean


def test_a_replay_changes_nothing_and_other_paths_reach_the_table(world):
    w = world.writes()
    record = w.create(email="di@example.org", full_name="Di")
    service = world.es.user_service  # the event-sourced API's handler: not through the legacy app
    service.execute(f"user-{record.id}", lambda u: u.change_name("Diana"))
    service.execute("user-1", lambda u: u.delete())
    stray = service.register("Eve", "eve@example.org").stream_id  # a user-<uuid>: no legacy key
    reverse = world.reverse()
    done = reverse.catch_up()
    assert (done.updated, done.deleted, done.unplaceable) == (1, 1, 1)
    assert world.row(record.id)["full_name"] == "Diana" and world.row(1) is None
    with world.store.engine.connect() as conn:
        found = list_findings(conn, kind=NO_LEGACY_KEY)
    assert [f.key for f in found] == [stray]
    with world.legacy.begin() as conn:  # from the beginning again: every row already holds its stream
        conn.execute(text("UPDATE migrator_reverse SET position = 0"))
    again = reverse.catch_up()
    assert again.events > 0 and again.written == 0
    with world.legacy.connect() as conn:
        assert checkpoint(conn, "users") == world.store.head_position()


def test_a_direct_legacy_change_not_yet_relayed_is_never_undone(world):
    w = world.writes()
    world.legacy_writes().update(1, {"full_name": "Direct"})  # another program, captured, not relayed yet
    world.es.user_service.execute("user-1", lambda u: u.change_phone("999"))  # and the event-sourced API
    done = world.reverse().catch_up()
    assert done.waiting == 1 and world.row(1)["full_name"] == "Direct"  # waits for the relay
    world.relay()
    w.update(2, {"full_name": "Two"})  # any later catch-up writes the waiting key
    row = world.row(1)
    assert (row["full_name"], row["phone"]) == ("Direct", "999")
    assert world.verify().clean


def test_new_keys_never_collide_with_direct_legacy_inserts(world):
    w = world.writes()
    a = w.create(email="a@example.org", full_name="A")
    direct = world.legacy_writes().create(email="b@example.org", full_name="B")  # the table's own numbering
    world.insert(50)  # an explicit key far ahead
    c = w.create(email="c@example.org", full_name="C")
    d = world.legacy_writes().create(email="d@example.org", full_name="D")
    assert [a.id, direct.id, c.id, d.id] == [4, 5, 51, 52]
    world.relay()
    assert world.verify().clean


def test_a_key_whose_stream_exists_is_passed_over(world):
    with world.legacy.begin() as conn:  # the highest row goes: SQLite would number the next insert 3 again
        conn.execute(text("DELETE FROM users WHERE id = 3"))
    world.relay()
    assert world.writes().create(email="e@example.org", full_name="E").id == 4
    assert world.types(3) == ["UserImported", "UserDeleted"]


def test_one_database_for_both_sides(new_database_url):
    world = make_world(new_database_url, same_database=True)
    try:
        with world.client() as client:
            created = client.post("/users", json={"email": "one@example.org", "full_name": "One"})
            assert created.status_code == 201, created.text
            assert client.put(f"/users/{created.json()['id']}", json={"full_name": "Uno"}).status_code == 200
        world.relay()
        assert world.verify().clean
    finally:
        world.legacy.dispose()


def test_emails_that_swap_rows_in_one_batch_are_written_together(world):
    service, reverse = world.es.user_service, world.reverse()
    service.execute("user-1", lambda u: u.change_email("a@example.org"))
    service.execute("user-2", lambda u: u.change_email("b@example.org"))
    reverse.catch_up()
    service.execute("user-1", lambda u: u.change_email("temp@example.org"))
    service.execute("user-2", lambda u: u.change_email("a@example.org"))
    service.execute("user-1", lambda u: u.change_email("b@example.org"))
    done = reverse.catch_up()  # row 1 cannot take b@ while row 2 has it, nor row 2 a@: a swap
    assert (done.updated, done.waiting) == (2, 0)
    assert (world.row(1)["email"], world.row(2)["email"]) == ("b@example.org", "a@example.org")
    world.relay()
    assert world.verify().clean


def test_a_write_on_a_key_with_a_direct_change_not_yet_relayed_relays_it_first(world):
    world.legacy_writes().update(1, {"full_name": "Direct"})  # another program, captured, not relayed yet
    record = world.writes().update(1, {"phone": "999"})
    assert (record.full_name, record.phone) == ("Direct", "999")
    assert world.types(1) == ["UserImported", "UserPhoneChanged", "UserNameChanged"]
    assert world.verify().clean


def test_the_factory_makes_one_writer_per_database_and_container(world):
    database = Database(world.legacy)
    first = es_writes(database, world.es)
    assert es_writes(database, world.es) is first
    assert es_writes(Database(world.legacy), world.es) is not first


def test_a_stream_never_imported_nor_registered_leaves_its_row_alone(world):
    world.insert(8)
    with world.legacy.begin() as conn:  # not relayed: the row has no stream
        conn.execute(text(f"DELETE FROM {CHANGELOG} WHERE pk = '8'"))
    world.store.append("user-8", [NewEvent("UserNameChanged", {"name": "Stray"})])
    done = world.reverse().catch_up()
    assert (done.written, done.waiting) == (0, 1)
    assert world.row(8)["full_name"] == "User 8"
    with world.legacy.connect() as conn:
        assert waiting_keys_of(conn) == [("users", "8", "stream user-8 was never imported nor registered: its row "
                                                        "stays as it is")]
