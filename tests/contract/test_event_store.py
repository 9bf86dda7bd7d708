"""The event store contract: every backend passes the same assertions."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from es_app.domain import UPCASTERS
from es_app.store import (
    Claim,
    ClaimTaken,
    ConcurrencyError,
    EventIdConflict,
    EventStore,
    ExpectedVersion,
    NewEvent,
    UpcasterRegistry,
    write_transaction,
)


@pytest.fixture
def store(es_engine) -> EventStore:
    return EventStore(es_engine, UpcasterRegistry(UPCASTERS))


def ev(n: int = 0, type_: str = "Thing", **data) -> NewEvent:
    return NewEvent(type=type_, data={"n": n, **data}, metadata={"actor": "test"})


# -- expected-version modes ------------------------------------------------

def test_no_stream_mode_accepts_only_a_new_stream(store):
    r = store.append("s-1", [ev(1)], ExpectedVersion.NO_STREAM)
    assert (r.version, r.written) == (1, True)
    with pytest.raises(ConcurrencyError) as info:
        store.append("s-1", [ev(2)], ExpectedVersion.NO_STREAM)
    assert info.value.actual == 1


def test_creating_a_stream_that_exists_is_a_concurrency_error_before_any_claim(store):
    store.append("s-1", [ev(1), ev(2)], 0, claims=[Claim("email", "a@example.org")])
    store.append("s-2", [ev(3)], 0, claims=[Claim("email", "b@example.org")])
    for expected in (0, ExpectedVersion.NO_STREAM):  # with a claim s-2 holds: the version fails first
        with pytest.raises(ConcurrencyError) as info:
            store.append("s-1", [ev(4), ev(5)], expected,
                         claims=[Claim("email", "b@example.org"), Claim("email", "c@example.org")])
        assert info.value.actual == 2
    with pytest.raises(ClaimTaken):  # a new stream with that claim: the claim fails
        store.append("s-3", [ev(6)], 0, claims=[Claim("email", "b@example.org")])
    assert [e.data["n"] for e in store.read_stream("s-1")] == [1, 2]
    assert store.read_stream("s-3") == []
    # nothing of the failed appends stayed: the claim they took on the way is free
    assert store.append("s-4", [ev(7)], 0, claims=[Claim("email", "c@example.org")]).version == 1


def test_stream_exists_mode_refuses_a_missing_stream(store):
    with pytest.raises(ConcurrencyError) as info:
        store.append("s-1", [ev()], ExpectedVersion.STREAM_EXISTS)
    assert info.value.actual == 0
    store.append("s-1", [ev()])
    assert store.append("s-1", [ev()], ExpectedVersion.STREAM_EXISTS).version == 2


def test_exact_mode_checks_the_version_and_reports_the_actual_one(store):
    store.append("s-1", [ev(1), ev(2)], 0)
    assert store.append("s-1", [ev(3)], 2).version == 3
    with pytest.raises(ConcurrencyError) as info:
        store.append("s-1", [ev(4)], 2)
    assert info.value.actual == 3
    assert [e.data["n"] for e in store.read_stream("s-1")] == [1, 2, 3]


def test_any_mode_appends_after_whatever_is_there(store):
    store.append("s-1", [ev(1)])
    assert store.append("s-1", [ev(2)], ExpectedVersion.ANY).version == 2


# -- atomicity and idempotency -----------------------------------------------

def test_a_batch_is_atomic(store):
    duplicate = str(uuid.uuid4())
    store.append("s-2", [NewEvent("Thing", {}, event_id=duplicate)])
    with pytest.raises(EventIdConflict):
        store.append("s-1", [ev(1), NewEvent("Thing", {}, event_id=duplicate)])
    assert store.read_stream("s-1") == []
    assert store.stream_version("s-1") == 0


def test_reappending_the_same_events_is_a_no_op(store):
    batch = [ev(1), ev(2)]
    first = store.append("s-1", batch, 0)
    again = store.append("s-1", batch, 0)
    also = store.append("s-1", batch, ExpectedVersion.ANY)
    assert again.written is False and also.written is False
    assert (again.version, again.positions) == (first.version, first.positions)
    assert len(store.read_stream("s-1")) == 2


def test_a_reused_event_id_with_other_content_is_an_error(store):
    e = ev(1)
    store.append("s-1", [e])
    with pytest.raises(EventIdConflict):
        store.append("s-1", [NewEvent("Thing", {"n": 99}, event_id=e.event_id)], 0)
    with pytest.raises(EventIdConflict):
        store.append("s-other", [NewEvent("Thing", {"n": 1}, event_id=e.event_id)])


# -- reading -----------------------------------------------------------------

def test_read_stream_ranges_limits_and_backwards(store):
    store.append("s-1", [ev(i) for i in range(1, 6)])
    assert [e.version for e in store.read_stream("s-1", from_version=2, to_version=4)] == [2, 3, 4]
    assert [e.version for e in store.read_stream("s-1", limit=2)] == [1, 2]
    assert [e.version for e in store.read_stream("s-1", backwards=True, limit=2)] == [5, 4]
    assert store.read_stream("nope-1") == []


def test_global_feed_is_in_position_order_with_filters(store):
    store.append("user-1", [ev(1, "A")])
    store.append("order-1", [ev(2, "B")])
    store.append("user-2", [ev(3, "B"), ev(4, "A")])
    feed = store.read_all()
    assert [e.data["n"] for e in feed] == [1, 2, 3, 4]
    assert [e.position for e in feed] == sorted(e.position for e in feed)
    assert [e.data["n"] for e in store.read_all(after=feed[1].position)] == [3, 4]
    assert [e.data["n"] for e in store.read_all(limit=2)] == [1, 2]
    assert [e.data["n"] for e in store.read_all(types=["A"])] == [1, 4]
    assert [e.data["n"] for e in store.read_all(category="user")] == [1, 3, 4]
    assert [e.data["n"] for e in store.read_all(before=feed[2].position)] == [1, 2]
    assert [e.data["n"] for e in store.read_all(after=feed[0].position, before=feed[3].position,
                                                types=["B"], category="user")] == [3]
    assert store.head_position() == feed[-1].position


def test_recorded_events_carry_ids_types_metadata_and_times(store):
    e = ev(1)
    store.append("user-7", [e])
    [got] = store.read_stream("user-7")
    assert got.event_id == e.event_id and got.type == "Thing" and got.stream_id == "user-7"
    assert got.metadata["actor"] == "test" and "occurred_at" in got.metadata
    assert got.recorded_at is not None


# -- immutability, enforced by the database ---------------------------------

@pytest.mark.parametrize("sql", ["UPDATE events SET data = '{}'", "DELETE FROM events"])
def test_the_database_refuses_to_change_events(store, sql):
    store.append("s-1", [ev(1)])
    with pytest.raises((IntegrityError, DBAPIError)) as info:
        with write_transaction(store.engine) as conn:
            conn.execute(text(sql))
    assert "append-only" in str(info.value)
    assert [e.data["n"] for e in store.read_stream("s-1")] == [1]


# -- upcasting ----------------------------------------------------------------

def test_old_event_versions_are_upcast_at_read_time(store):
    store.append("user-1", [NewEvent("UserRegistered", {"full_name": "Ann Lee", "email": "a@x.io"},
                                     schema_version=1)])
    [got] = store.read_stream("user-1")
    assert got.schema_version == 2
    assert got.data == {"name": "Ann Lee", "email": "a@x.io"}
