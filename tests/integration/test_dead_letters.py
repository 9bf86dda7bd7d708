"""Sequenced dead letters on both backends: a poison event parks only its stream; retry and skip."""

from __future__ import annotations

import pytest

from es_app.projections import (
    DeadLetterNotFound,
    HandlerFailed,
    NotParked,
    list_parked,
    projection_status,
    read_model_position,
    run_projections,
    shard_of,
)
from es_app.projections import dead_letters, users
from es_app.store import NewEvent

from .projection_helpers import checkpoints, container, dump, expected_row, register, view_fields


@pytest.fixture
def es(new_database_url):
    c = container(new_database_url("es"))
    yield c
    c.engine.dispose()  # give the server its connections back


def poison(es, stream_id: str) -> int:
    """Appends an event the users projection cannot apply (a field is missing); returns its position."""
    return es.store.append(stream_id, [NewEvent("UserEmailChanged", {"mail": "oops"})]).position


def rename(es, stream_id: str, name: str) -> None:
    es.store.append(stream_id, [NewEvent("UserNameChanged", {"name": name})])


def test_a_poison_event_parks_only_its_stream_and_later_events_wait_behind_it(es):
    a, b = register(es, "Ann"), register(es, "Bob")
    bad = poison(es, a)
    rename(es, a, "Anna")
    rename(es, b, "Bobby")
    run_projections(es, names=["users"])
    [letter] = list_parked(es.engine)
    assert (letter.stream_id, letter.version, letter.position, letter.event_type) == (a, 2, bad, "UserEmailChanged")
    assert letter.status == "parked" and letter.attempts == 1 and "TypeError" in letter.error
    rows = dump(es.engine)
    assert rows[a]["version"] == 1 and rows[a]["name"] == "Ann"  # waits behind the parked event
    assert rows[b]["name"] == "Bobby"  # other streams flow
    assert read_model_position(es.engine) == es.store.head_position()
    assert {s.name: s.parked for s in projection_status(es)}["users"] == 1

    rename(es, a, "Anne")  # still waits: the stream stays parked
    rename(es, b, "Robert")
    run_projections(es, names=["users"])
    rows = dump(es.engine)
    assert (rows[a]["version"], rows[b]["name"]) == (1, "Robert")
    assert len(list_parked(es.engine)) == 1

    again = dead_letters.retry(es, letter.id)  # the event is still poison
    assert (again.status, again.attempts) == ("parked", 2)
    assert dump(es.engine)[a]["version"] == 1

    skipped = dead_letters.skip(es, letter.id)
    assert skipped.status == "skipped" and skipped.resolved_at is not None
    row = dump(es.engine)[a]
    assert (row["name"], row["version"]) == ("Anne", 4)  # the waiting events were applied in order
    assert list_parked(es.engine) == []
    assert [d.status for d in list_parked(es.engine, status=None)] == ["skipped"]
    rename(es, a, "Annie")
    run_projections(es, names=["users"])
    assert dump(es.engine)[a]["name"] == "Annie"  # the stream flows again


def test_retry_applies_the_parked_event_and_the_waiting_ones_once_the_handler_works(es, monkeypatch):
    a, b = register(es, "Ann"), register(es, "Bob")
    real_check = users._check

    def flaky(state):
        if state.name == "Bug":
            raise RuntimeError("handler bug")
        real_check(state)

    monkeypatch.setattr(users, "_check", flaky)
    rename(es, a, "Bug")
    rename(es, a, "Bug 2")
    rename(es, b, "Bob 2")
    run_projections(es, names=["users"])
    [letter] = list_parked(es.engine)
    assert letter.stream_id == a and "handler bug" in letter.error
    monkeypatch.undo()  # the fix is deployed
    done = dead_letters.retry(es, letter.id)
    assert done.status == "retried"
    rows = dump(es.engine)
    assert view_fields(rows[a]) == expected_row(es, a) and rows[a]["name"] == "Bug 2"
    assert view_fields(rows[b]) == expected_row(es, b)
    with pytest.raises(NotParked):
        dead_letters.retry(es, letter.id)
    with pytest.raises(NotParked):
        dead_letters.skip(es, letter.id)
    with pytest.raises(DeadLetterNotFound):
        dead_letters.retry(es, 9999)


def test_when_a_waiting_event_fails_on_retry_it_becomes_the_parked_one(es):
    a = register(es, "Ann")
    poison(es, a)
    rename(es, a, "Anna")
    second = poison(es, a)
    rename(es, a, "Anne")
    run_projections(es, names=["users"])
    [first] = list_parked(es.engine)
    dead_letters.skip(es, first.id)
    [now] = list_parked(es.engine)
    assert now.position == second and now.id != first.id
    assert (dump(es.engine)[a]["name"], dump(es.engine)[a]["version"]) == ("Anna", 3)
    dead_letters.skip(es, now.id)
    assert dump(es.engine)[a]["name"] == "Anne"


def test_without_parking_a_failure_commits_the_events_before_it_and_raises(es):
    a, b = register(es, "Ann"), register(es, "Bob")
    bad = poison(es, a)
    rename(es, b, "Bobby")
    with pytest.raises(HandlerFailed) as info:
        run_projections(es, names=["users"], park_failures=False)
    assert info.value.event.position == bad
    assert checkpoints(es.engine)["users"] == bad - 1
    assert dump(es.engine)[b]["name"] == "Bob"  # after the failure: not yet
    assert list_parked(es.engine) == []
    run_projections(es, names=["users"], park_failures=True, attempts=4)
    [letter] = list_parked(es.engine)
    assert letter.attempts == 4 and dump(es.engine)[b]["name"] == "Bobby"


def test_retry_uses_the_checkpoint_of_the_shard_that_owns_the_stream(es):
    ids = [register(es, f"U{i}") for i in range(6)]
    a = ids[0]
    poison(es, a)
    rename(es, a, "Anna")
    owner = shard_of(a, 2)
    run_projections(es, shard=owner, shards=2, names=["users"])  # the other shard stays at 0
    assert checkpoints(es.engine)[f"users:{1 - owner}/2"] == 0
    [letter] = list_parked(es.engine)
    assert letter.stream_id == a
    dead_letters.skip(es, letter.id)
    assert dump(es.engine)[a]["name"] == "Anna"
