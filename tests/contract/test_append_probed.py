"""append_probed_in: the append lock, a probe and the append in the caller's write transaction (one
round trip on PostgreSQL), for a caller that rolls the transaction back unless it gets a result."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from es_app.store import Claim, ClaimTaken, ConcurrencyError, ExpectedVersion, write_transaction
from es_app.store.schema import unique_claims
from tests.factories import NewEventFactory

PROBE = "SELECT stream_id, version FROM events WHERE event_id = %s"
EMAIL = "email"


class Discarded(Exception):
    """Raised by a test to roll its write transaction back, as the caller does without a result."""


def claims_held(store) -> set[tuple[str, str, str]]:
    with store.engine.connect() as conn:
        return {tuple(r) for r in conn.execute(select(unique_claims.c.scope, unique_claims.c.value,
                                                      unique_claims.c.owner))}


def test_an_empty_probe_lets_the_append_and_its_claims_through(store):
    events = NewEventFactory.build_batch(2)
    with write_transaction(store.engine) as conn:
        result, found = store.append_probed_in(conn, "user-1", events, ExpectedVersion.NO_STREAM,
                                               probe=(PROBE, ("no-such-id",)), claims=[Claim(EMAIL, "a@x.org")])
    assert found == [] and result is not None and (result.version, result.written) == (2, True)
    assert [e.event_id for e in store.read_stream("user-1")] == [e.event_id for e in events]
    assert claims_held(store) == {(EMAIL, "a@x.org", "user-1")}


def test_a_probe_that_finds_rows_returns_them_and_nothing_stays_once_the_caller_rolls_back(store):
    first = NewEventFactory.build_batch(1)
    store.append("user-1", first)
    with pytest.raises(Discarded):
        with write_transaction(store.engine) as conn:
            result, found = store.append_probed_in(conn, "user-2", NewEventFactory.build_batch(1),
                                                   probe=(PROBE, (first[0].event_id,)),
                                                   claims=[Claim(EMAIL, "b@x.org")])
            assert result is None and [tuple(r) for r in found] == [("user-1", 1)]
            raise Discarded
    assert store.stream_version("user-2") == 0 and claims_held(store) == set()


def test_an_exact_expected_version_is_checked_and_releases_move_claims(store):
    store.append("user-1", NewEventFactory.build_batch(1), claims=[Claim(EMAIL, "old@x.org")])
    with write_transaction(store.engine) as conn:
        result, _ = store.append_probed_in(conn, "user-1", NewEventFactory.build_batch(1), 1,
                                           probe=(PROBE, ("none",)), claims=[Claim(EMAIL, "new@x.org")],
                                           releases=[Claim(EMAIL, "old@x.org")])
    assert result is not None and result.version == 2
    assert claims_held(store) == {(EMAIL, "new@x.org", "user-1")}


@pytest.mark.parametrize("expected", [ExpectedVersion.NO_STREAM, 3])
def test_a_version_that_does_not_match_changes_nothing_not_even_claims(store, expected):
    store.append("user-1", NewEventFactory.build_batch(1), claims=[Claim(EMAIL, "old@x.org")])
    with write_transaction(store.engine) as conn:
        with pytest.raises(ConcurrencyError) as info:
            store.append_probed_in(conn, "user-1", NewEventFactory.build_batch(1), expected,
                                   probe=(PROBE, ("none",)), claims=[Claim(EMAIL, "new@x.org")],
                                   releases=[Claim(EMAIL, "old@x.org")])
        held = {tuple(r) for r in conn.execute(select(unique_claims.c.scope, unique_claims.c.value,
                                                      unique_claims.c.owner))}
    assert info.value.actual == 1
    assert held == {(EMAIL, "old@x.org", "user-1")}  # seen inside the transaction, before it ends
    assert store.stream_version("user-1") == 1


def test_an_exact_retry_returns_the_stored_result(store):
    events = NewEventFactory.build_batch(1)
    first = store.append("user-1", events, ExpectedVersion.NO_STREAM, claims=[Claim(EMAIL, "a@x.org")])
    with write_transaction(store.engine) as conn:
        again, _ = store.append_probed_in(conn, "user-1", events, ExpectedVersion.NO_STREAM,
                                          probe=(PROBE, ("none",)), claims=[Claim(EMAIL, "a@x.org")])
    assert again is not None and (again.version, again.positions, again.written) == (1, first.positions, False)


def test_a_claim_held_by_another_stream_is_refused(store):
    store.append("user-1", NewEventFactory.build_batch(1), claims=[Claim(EMAIL, "a@x.org")])
    with pytest.raises(ClaimTaken) as info:
        with write_transaction(store.engine) as conn:
            store.append_probed_in(conn, "user-2", NewEventFactory.build_batch(1), ExpectedVersion.NO_STREAM,
                                   probe=(PROBE, ("none",)), claims=[Claim(EMAIL, "a@x.org")])
    assert info.value.owner == "user-1"
    assert store.stream_version("user-2") == 0 and claims_held(store) == {(EMAIL, "a@x.org", "user-1")}
