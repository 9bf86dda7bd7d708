"""Email uniqueness under concurrent commands on real threads (the "set validation" problem):
the claim is checked in the append's transaction, so exactly one of the contenders wins."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from sqlalchemy import select

from es_app.domain import UPCASTERS, DomainError, User, UserState
from es_app.services import EMAIL_SCOPE, UserNotFound, UserService
from es_app.store import ClaimTaken, ConcurrencyError, EventStore, Repository, SnapshotStore, UpcasterRegistry
from es_app.store.schema import unique_claims
from tests.integration.store_threads import Threads


@pytest.fixture
def users(es_engine) -> UserService:
    store = EventStore(es_engine, UpcasterRegistry(UPCASTERS))
    return UserService(Repository(store, SnapshotStore(es_engine), User, UserState, snapshot_every=5))


def claims(users: UserService) -> dict[str, str]:
    with users.repository.store.engine.connect() as conn:
        rows = conn.execute(select(unique_claims.c.value, unique_claims.c.owner)
                            .where(unique_claims.c.scope == EMAIL_SCOPE))
        return {value: owner for value, owner in rows}


def assert_claims_match_users(users: UserService, user_ids) -> None:
    """Every live user holds the claim of its email, and nothing else is claimed."""
    live = {}
    for user_id in user_ids:
        state = users.repository.load(user_id).state
        if state.exists and not state.deleted:
            live[user_id] = state.email
    assert len(set(live.values())) == len(live), "two live users share an email"
    assert claims(users) == {email: user_id for user_id, email in live.items()}


def race(n: int, command) -> list:
    """Runs command(i) for i in range(n) on n threads released together; returns result or error."""
    barrier = threading.Barrier(n, timeout=60)

    def contender(i: int):
        barrier.wait()
        try:
            return command(i)
        except (ClaimTaken, ConcurrencyError, DomainError) as exc:
            return exc

    threads = Threads()
    for i in range(n):
        threads.start(contender, i)
    return threads.join()


@pytest.mark.parametrize("contenders", [2, 12])
def test_concurrent_registrations_of_one_email_have_exactly_one_winner(users, contenders):
    spellings = ["ann@example.org", "ANN@example.org", " Ann@Example.Org "]
    outcomes = race(contenders, lambda i: users.register(f"Ann {i}", spellings[i % 3], user_id=f"user-{i}"))

    winners = [i for i, o in enumerate(outcomes) if not isinstance(o, Exception)]
    assert len(winners) == 1
    losers = [o for o in outcomes if isinstance(o, Exception)]
    assert all(isinstance(o, ClaimTaken) and o.owner == f"user-{winners[0]}" for o in losers)
    assert len(users.repository.store.read_all()) == 1  # losers wrote nothing
    assert_claims_match_users(users, [f"user-{i}" for i in range(contenders)])


def test_concurrent_changes_to_one_new_email_have_exactly_one_winner(users):
    n = 6
    for i in range(n):
        users.register(f"User {i}", f"u{i}@example.org", user_id=f"user-{i}")
    outcomes = race(n, lambda i: users.execute(f"user-{i}", lambda u: u.change_email("wanted@example.org")))

    winners = [i for i, o in enumerate(outcomes) if not isinstance(o, Exception)]
    assert len(winners) == 1 and all(isinstance(o, ClaimTaken) for o in outcomes if isinstance(o, Exception))
    for i in range(n):  # losers keep their old address, and its claim
        expected = "wanted@example.org" if i == winners[0] else f"u{i}@example.org"
        assert users.repository.load(f"user-{i}").state.email == expected
    assert_claims_match_users(users, [f"user-{i}" for i in range(n)])


def test_an_email_freed_by_a_change_or_a_delete_goes_to_exactly_one_newcomer(users):
    users.register("Ann", "ann@example.org", user_id="user-a")
    users.register("Bob", "bob@example.org", user_id="user-b")
    users.execute("user-a", lambda u: u.change_email("ann@new.example"))
    users.execute("user-b", lambda u: u.delete())

    freed = ["ann@example.org", "bob@example.org"]
    outcomes = race(8, lambda i: users.register(f"New {i}", freed[i % 2], user_id=f"user-{i}"))

    won = Counter(freed[i % 2] for i, o in enumerate(outcomes) if not isinstance(o, Exception))
    assert won == Counter(freed)  # each freed address taken exactly once
    assert_claims_match_users(users, ["user-a", "user-b", *(f"user-{i}" for i in range(8))])


def test_random_concurrent_registrations_changes_and_deletes_keep_claims_consistent(users):
    emails = [f"e{i}@example.org" for i in range(4)]
    created: list[str] = []
    lock = threading.Lock()

    def worker(seed: int) -> Counter:
        rng, outcomes = random.Random(seed), Counter()
        for n in range(12):
            with lock:
                known = list(created)
            op = rng.choice(["register", "change", "change", "delete"]) if known else "register"
            try:
                if op == "register":
                    user_id = f"user-{seed}-{n}"
                    with lock:
                        created.append(user_id)
                    users.register("U", rng.choice(emails), user_id=user_id)
                elif op == "change":
                    users.execute(rng.choice(known), lambda u: u.change_email(rng.choice(emails)))
                else:
                    users.execute(rng.choice(known), lambda u: u.delete())
                outcomes[op] += 1
            except (ClaimTaken, ConcurrencyError, DomainError, UserNotFound) as exc:
                outcomes[type(exc).__name__] += 1
        return outcomes

    threads = Threads()
    for seed in range(8):
        threads.start(worker, seed)
    totals = sum(threads.join(), Counter())

    assert totals["register"] >= 1  # the first registration to commit always wins
    assert_claims_match_users(users, created)


def test_the_claim_alone_decides_even_without_the_append_lock(es_engine):
    """The claim table's primary key, not the gap-safety lock, is what makes one registration win."""
    store = EventStore(es_engine, UpcasterRegistry(UPCASTERS), serialize_appends=False)
    users = UserService(Repository(store, SnapshotStore(es_engine), User, UserState))
    outcomes = race(12, lambda i: users.register(f"Ann {i}", "ann@example.org", user_id=f"user-{i}"))
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert all(isinstance(o, ClaimTaken) for o in outcomes if isinstance(o, Exception))
    assert_claims_match_users(users, [f"user-{i}" for i in range(12)])
