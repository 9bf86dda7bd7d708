"""Idempotent retries after a timeout (same event ids) and the metadata every event carries."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from es_app.domain import User
from es_app.store import EventIdConflict, EventStore, ExpectedVersion, NewEvent, write_transaction
from tests.factories import NewEventFactory


class ResponseLost(Exception):
    """The database committed, but the caller never heard back (a timeout, a dropped connection)."""


def append_and_lose_the_response(store: EventStore, stream_id: str, new_events, expected) -> None:
    with write_transaction(store.engine) as conn:
        store.append_in(conn, stream_id, new_events, expected)
    raise ResponseLost(stream_id)


@pytest.mark.parametrize("expected", [ExpectedVersion.NO_STREAM, 0, ExpectedVersion.ANY],
                         ids=["no_stream", "exact", "any"])
def test_a_retry_after_a_lost_response_returns_the_first_result_and_writes_nothing(store, expected):
    attempt = NewEventFactory.build_batch(3)
    with pytest.raises(ResponseLost):
        append_and_lose_the_response(store, "user-1", attempt, expected)

    retried = store.append("user-1", attempt, expected)  # the caller retries the very same events

    stored = store.read_stream("user-1")
    assert retried.written is False
    assert [e.event_id for e in stored] == [e.event_id for e in attempt]
    assert (retried.version, retried.positions) == (3, tuple(e.position for e in stored))
    assert len(store.read_all()) == 3


def test_a_retry_after_others_appended_still_finds_its_events(store):
    attempt = NewEventFactory.build_batch(2)
    with pytest.raises(ResponseLost):
        append_and_lose_the_response(store, "user-1", attempt, 0)
    store.append("user-1", NewEventFactory.build_batch(1), 2)  # someone else, meanwhile
    retried = store.append("user-1", attempt, 0)
    assert (retried.written, retried.version) == (False, 2)
    assert store.stream_version("user-1") == 3


def test_a_retry_after_a_rolled_back_attempt_writes(store):
    attempt = NewEventFactory.build_batch(2)
    with pytest.raises(RuntimeError):
        with write_transaction(store.engine) as conn:
            store.append_in(conn, "user-1", attempt, 0)
            raise RuntimeError("the connection dropped before COMMIT")
    result = store.append("user-1", attempt, 0)
    assert (result.written, result.version) == (True, 2)


def test_a_retry_that_is_not_the_same_request_is_refused(store):
    attempt = NewEventFactory.build_batch(2)
    store.append("user-1", attempt, 0)
    with pytest.raises(EventIdConflict):  # a superset of what was stored
        store.append("user-1", [*attempt, NewEventFactory()], 0)
    with pytest.raises(EventIdConflict):  # the same ids in another order
        store.append("user-1", attempt[::-1], 0)
    assert store.stream_version("user-1") == 2


def test_a_retried_command_through_the_repository_is_a_no_op(repo):
    ids = [str(uuid.uuid4())]
    user = User.register("user-1", "Ann", "ann@example.org")
    first = repo.save(user, event_ids=ids)
    again = User.register("user-1", "Ann", "ann@example.org")  # the client resends the command
    retried = repo.save(again, event_ids=ids)
    assert (retried.written, retried.position) == (False, first.position)
    assert repo.load("user-1").version == 1


# -- metadata -----------------------------------------------------------------------

def test_every_event_carries_actor_correlation_causation_and_occurred_at(repo, store):
    correlation = str(uuid.uuid4())
    user = User.register("user-1", "Ann", "ann@example.org")
    first = repo.save(user, metadata={"actor": "admin:7", "correlation_id": correlation,
                                       "causation_id": "command-1"})
    [registered] = store.read_stream("user-1")
    user.change_name("Anne")
    user.deactivate()
    repo.save(user, metadata={"actor": "system", "correlation_id": correlation,
                              "causation_id": registered.event_id})

    stored = store.read_stream("user-1")
    assert [e.metadata["actor"] for e in stored] == ["admin:7", "system", "system"]
    assert {e.metadata["correlation_id"] for e in stored} == {correlation}
    assert [e.metadata["causation_id"] for e in stored] == ["command-1", registered.event_id, registered.event_id]
    assert stored[0].position == first.position
    for e in stored:
        occurred = datetime.fromisoformat(e.metadata["occurred_at"])
        assert occurred.tzinfo is not None
        assert e.recorded_at.tzinfo is not None
        assert occurred == e.recorded_at  # stamped by the store in the append


def test_a_given_occurred_at_is_kept(store):
    legacy_time = "2019-03-04T05:06:07+00:00"
    store.append("user-1", [NewEvent("UserImported", {}, metadata={"occurred_at": legacy_time, "actor": "migrator"})])
    [e] = store.read_stream("user-1")
    assert (e.metadata["occurred_at"], e.metadata["actor"]) == (legacy_time, "migrator")
    assert e.recorded_at > datetime.fromisoformat(legacy_time)


def test_metadata_stays_with_its_own_event_in_a_batch(store):
    new = [NewEventFactory(metadata={"actor": f"a{i}", "correlation_id": f"c{i}"}) for i in range(3)]
    store.append("user-1", new)
    assert [(e.metadata["actor"], e.metadata["correlation_id"]) for e in store.read_stream("user-1")] == [
        ("a0", "c0"), ("a1", "c1"), ("a2", "c2")]
    assert [e.metadata for e in store.read_all()] == [e.metadata for e in store.read_stream("user-1")]


def test_the_store_does_not_alias_the_callers_metadata(store):
    meta = {"actor": "a"}
    store.append("user-1", [NewEvent("Thing", {}, metadata=meta)])
    assert meta == {"actor": "a"}
