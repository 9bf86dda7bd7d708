"""append_call: an append as one call of a server-side function (PostgreSQL's `es_append`); None on SQLite,
whose caller appends otherwise. `append` goes through `es_append` on PostgreSQL, so the rest of the
contract suite holds it to every append's rules; these pin what the call itself returns."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from es_app.store import Claim, ClaimTaken, ExpectedVersion
from es_app.store.schema import unique_claims
from tests.factories import NewEventFactory

EMAIL = "email"


def claims_held(store) -> set[tuple[str, str, str]]:
    with store.engine.connect() as conn:
        return {tuple(r) for r in conn.execute(select(unique_claims.c.scope, unique_claims.c.value,
                                                      unique_claims.c.owner))}


ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
ON_POSTGRES = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)],
                                      indirect=True)


@ON_SQLITE
def test_sqlite_has_no_call_and_writes_nothing(store):
    assert store.append_call("es_append", (), "user-1", NewEventFactory.build_batch(1)) is None
    assert store.stream_version("user-1") == 0


@ON_POSTGRES
def test_a_call_appends_with_its_claims_and_returns_versions_and_positions(store):
    events = NewEventFactory.build_batch(3)
    outcome, version, positions = store.append_call("es_append", (), "user-1", events, ExpectedVersion.NO_STREAM,
                                                    claims=[Claim(EMAIL, "a@x.org")])
    assert (outcome, version) == ("appended", 3)
    stored = store.read_stream("user-1")
    assert [e.event_id for e in stored] == [e.event_id for e in events]
    assert positions == [e.position for e in stored] and positions == sorted(positions)
    assert claims_held(store) == {(EMAIL, "a@x.org", "user-1")}


@ON_POSTGRES
def test_a_version_that_does_not_match_writes_nothing_and_returns_the_current_one(store):
    store.append("user-1", NewEventFactory.build_batch(2))
    for expected in (ExpectedVersion.NO_STREAM, 5):
        outcome, version, positions = store.append_call(
            "es_append", (), "user-1", NewEventFactory.build_batch(1), expected,
            claims=[Claim(EMAIL, "b@x.org")], releases=[Claim(EMAIL, "a@x.org")])
        assert (outcome, version, positions) == ("mismatch", 2, None)
    assert store.stream_version("user-1") == 2 and claims_held(store) == set()


@ON_POSTGRES
def test_a_claim_another_stream_holds_raises_and_the_call_writes_nothing(store):
    store.append("user-1", NewEventFactory.build_batch(1), claims=[Claim(EMAIL, "taken@x.org")])
    with pytest.raises(ClaimTaken) as caught:
        store.append_call("es_append", (), "user-2", NewEventFactory.build_batch(1), ExpectedVersion.NO_STREAM,
                          claims=[Claim(EMAIL, "free@x.org"), Claim(EMAIL, "taken@x.org")])
    assert (caught.value.claim, caught.value.owner) == (Claim(EMAIL, "taken@x.org"), "user-1")
    assert store.stream_version("user-2") == 0
    assert claims_held(store) == {(EMAIL, "taken@x.org", "user-1")}  # the first claim was undone too


@ON_POSTGRES
def test_releases_go_before_claims_in_the_call(store):
    store.append("user-1", NewEventFactory.build_batch(1), claims=[Claim(EMAIL, "old@x.org")])
    outcome, version, _ = store.append_call("es_append", (), "user-1", NewEventFactory.build_batch(1), 1,
                                            claims=[Claim(EMAIL, "new@x.org")], releases=[Claim(EMAIL, "old@x.org")])
    assert (outcome, version) == ("appended", 2)
    assert claims_held(store) == {(EMAIL, "new@x.org", "user-1")}


@ON_POSTGRES
def test_a_function_name_must_be_a_name(store):
    with pytest.raises(ValueError, match="not a function name"):
        store.append_call("es_append(); DROP TABLE events; --", (), "user-1", NewEventFactory.build_batch(1))
