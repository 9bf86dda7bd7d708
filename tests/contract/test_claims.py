"""Unique claims: a value (an email) held by one stream, checked in the append's own transaction."""

from __future__ import annotations

import pytest

from es_app.domain import UserIsDeleted
from es_app.services import EMAIL_SCOPE, UserService
from es_app.store import Claim, ClaimTaken, ConcurrencyError, ExpectedVersion
from es_app.store.schema import unique_claims
from tests.factories import NewEventFactory

ANN = Claim(EMAIL_SCOPE, "ann@example.org")
BOB = Claim(EMAIL_SCOPE, "bob@example.org")


def claim_owner(store, claim: Claim) -> str | None:
    with store.engine.connect() as conn:
        return conn.execute(unique_claims.select().with_only_columns(unique_claims.c.owner).where(
            unique_claims.c.scope == claim.scope, unique_claims.c.value == claim.value)).scalar()


# -- the store -------------------------------------------------------------------

def test_a_taken_claim_refuses_the_whole_append(store):
    store.append("user-1", [NewEventFactory()], ExpectedVersion.NO_STREAM, claims=[ANN])
    with pytest.raises(ClaimTaken) as info:
        store.append("user-2", [NewEventFactory(), NewEventFactory()], ExpectedVersion.NO_STREAM, claims=[BOB, ANN])
    assert (info.value.claim, info.value.owner) == (ANN, "user-1")
    assert store.stream_version("user-2") == 0
    assert claim_owner(store, BOB) is None  # rolled back with the rest
    assert claim_owner(store, ANN) == "user-1"


def test_a_stream_may_claim_its_own_value_again_and_scopes_are_separate(store):
    store.append("user-1", [NewEventFactory()], claims=[ANN])
    store.append("user-1", [NewEventFactory()], claims=[ANN])
    store.append("user-2", [NewEventFactory()], claims=[Claim("nickname", ANN.value)])
    assert (claim_owner(store, ANN), store.stream_version("user-1")) == ("user-1", 2)


def test_a_release_frees_the_value_for_another_stream(store):
    store.append("user-1", [NewEventFactory()], claims=[ANN])
    store.append("user-1", [NewEventFactory()], releases=[ANN])
    assert claim_owner(store, ANN) is None
    store.append("user-2", [NewEventFactory()], claims=[ANN])
    assert claim_owner(store, ANN) == "user-2"


def test_only_the_owner_can_release(store):
    store.append("user-1", [NewEventFactory()], claims=[ANN])
    store.append("user-2", [NewEventFactory()], releases=[ANN])
    assert claim_owner(store, ANN) == "user-1"


def test_swapping_a_claim_is_atomic(store):
    store.append("user-1", [NewEventFactory()], claims=[ANN])
    store.append("user-2", [NewEventFactory()], claims=[BOB])
    with pytest.raises(ClaimTaken):  # user-1 wants bob's address: nothing changes, ann's stays held
        store.append("user-1", [NewEventFactory()], 1, claims=[BOB], releases=[ANN])
    assert (claim_owner(store, ANN), claim_owner(store, BOB)) == ("user-1", "user-2")
    assert store.stream_version("user-1") == 1


def test_a_claim_is_not_taken_when_the_append_fails_on_its_version(store):
    store.append("user-1", [NewEventFactory()])
    with pytest.raises(ConcurrencyError):
        store.append("user-1", [NewEventFactory()], ExpectedVersion.NO_STREAM, claims=[ANN])
    assert claim_owner(store, ANN) is None


# -- through the UserService -----------------------------------------------------

def test_a_registered_email_cannot_be_registered_again_in_any_case(users: UserService):
    first = users.register("Ann", "ann@example.org", user_id="user-1")
    with pytest.raises(ClaimTaken) as info:
        users.register("Other Ann", " ANN@Example.org ", user_id="user-2")
    assert info.value.owner == "user-1"
    assert (first.version, users.repository.store.stream_version("user-2")) == (1, 0)


def test_changing_the_email_frees_the_old_one_and_takes_the_new_one(users: UserService):
    users.register("Ann", "ann@example.org", user_id="user-1")
    users.execute("user-1", lambda u: u.change_email("ann@new.example"))
    users.register("Bob", "ann@example.org", user_id="user-2")  # the old address is free again
    with pytest.raises(ClaimTaken):
        users.register("Cy", "ann@new.example", user_id="user-3")
    store = users.repository.store
    assert claim_owner(store, Claim(EMAIL_SCOPE, "ann@new.example")) == "user-1"
    assert claim_owner(store, ANN) == "user-2"


def test_changing_to_a_taken_email_is_refused_and_writes_nothing(users: UserService):
    users.register("Ann", "ann@example.org", user_id="user-1")
    users.register("Bob", "bob@example.org", user_id="user-2")
    with pytest.raises(ClaimTaken):
        users.execute("user-2", lambda u: u.change_email("ann@example.org"))
    with pytest.raises(ClaimTaken):
        users.execute("user-2", lambda u: u.correct("email", "ann@example.org", "typo"))
    assert users.repository.load("user-2").state.email == "bob@example.org"
    assert users.repository.store.stream_version("user-2") == 1


def test_a_correction_of_the_email_moves_the_claim(users: UserService):
    users.register("Ann", "ann@exmaple.org", user_id="user-1")
    users.execute("user-1", lambda u: u.correct("email", "ann@example.org", "typo"))
    store = users.repository.store
    assert claim_owner(store, Claim(EMAIL_SCOPE, "ann@exmaple.org")) is None
    assert claim_owner(store, ANN) == "user-1"


def test_deleting_a_user_frees_its_email(users: UserService):
    users.register("Ann", "ann@example.org", user_id="user-1")
    users.execute("user-1", lambda u: u.delete())
    assert claim_owner(users.repository.store, ANN) is None
    users.register("New Ann", "ann@example.org", user_id="user-2")
    with pytest.raises(UserIsDeleted):
        users.execute("user-1", lambda u: u.reactivate())
