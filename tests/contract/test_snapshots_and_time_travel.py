"""Snapshots (every N events, latest valid + tail, schema versions) and loading as of a version or a time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from es_app.domain import User, UserState, event_from_data
from es_app.store import ExpectedVersion, Repository, Snapshot, write_transaction
from es_app.store.schema import snapshots as snapshots_table
from tests.contract.conftest import SNAPSHOT_EVERY
from tests.factories import NewEventFactory, UserNameChangedFactory, UserRegisteredFactory, as_new_events


class UserWithNewSnapshotShape(User):
    """The same aggregate after a release that changed the shape of its snapshots."""

    snapshot_schema_version = User.snapshot_schema_version + 1


def full_replay(repo: Repository, stream_id: str, to_version: int | None = None) -> User:
    recorded = repo.store.read_stream(stream_id, to_version=to_version)
    return User.replay(stream_id, ((event_from_data(r.type, r.data), r.metadata) for r in recorded))


def user_with_names(repo: Repository, *names: str, stream_id: str = "user-1") -> User:
    """Returns a saved user registered as names[0] and renamed, one save per name."""
    user = User.register(stream_id, names[0], "ann@example.org")
    repo.save(user)
    for name in names[1:]:
        user.change_name(name)
        repo.save(user)
    return user


def poison_snapshot(engine, stream_id: str, **fields) -> None:
    """Overwrites fields of the stored snapshot's state, so a test can tell whether it was applied."""
    with write_transaction(engine) as conn:
        row = conn.execute(snapshots_table.select().where(snapshots_table.c.stream_id == stream_id)).one()
        conn.execute(update(snapshots_table).where(snapshots_table.c.stream_id == stream_id)
                     .values(state={**row.state, **fields}))


# -- taking snapshots ------------------------------------------------------------

def test_a_snapshot_is_taken_each_time_a_save_crosses_a_multiple_of_n(repo, snapshots):
    user = user_with_names(repo, "A", "B")
    assert snapshots.get("user-1") is None  # version 2 < 3
    user.change_name("C")
    repo.save(user)
    snap = snapshots.get("user-1")
    assert (snap.version, snap.schema_version) == (SNAPSHOT_EVERY, User.snapshot_schema_version)
    assert snap.state == full_replay(repo, "user-1").state.to_dict()

    for name in ("D", "E"):  # versions 4, 5: the snapshot stays at 3
        user.change_name(name)
        repo.save(user)
    assert snapshots.get("user-1").version == 3
    user.change_name("F")
    user.change_phone("555")  # one save of versions 6 and 7 crosses 6: snapshot at 7
    repo.save(user)
    assert snapshots.get("user-1").version == 7
    assert snapshots.get("user-1").state["phone"] == "555"


def test_loading_applies_the_latest_snapshot_then_the_tail(repo, store):
    user_with_names(repo, "A", "B", "C", "D")  # snapshot at 3, tail = version 4
    poison_snapshot(store.engine, "user-1", email="from@snapshot.example")
    loaded = repo.load("user-1")
    # the email only the snapshot holds, the name only the tail: both were applied
    assert (loaded.state.email, loaded.state.name, loaded.version) == ("from@snapshot.example", "D", 4)


def test_snapshot_plus_tail_equals_a_full_replay(repo, snapshots):
    user = user_with_names(repo, "A", "B", "C", "D", "E")
    user.deactivate("left")
    repo.save(user)  # snapshot at 6
    user.correct("email", "ANN@fixed.example", "typo")
    repo.save(user)  # the tail: version 7
    assert snapshots.get("user-1").version == 6
    loaded = repo.load("user-1")
    assert loaded.state == full_replay(repo, "user-1").state
    assert loaded.version == 7 and loaded.state.email == "ann@fixed.example"


def test_a_snapshot_of_another_schema_version_is_ignored_and_then_replaced(repo, store, snapshots):
    user_with_names(repo, "A", "B", "C", "D")  # snapshot (schema 1) at version 3
    poison_snapshot(store.engine, "user-1", name="STALE")
    assert repo.load("user-1", version=3).state.name == "STALE"  # control: a valid snapshot is applied

    new_code = Repository(store, snapshots, UserWithNewSnapshotShape, UserState, snapshot_every=SNAPSHOT_EVERY)
    assert new_code.load("user-1", version=3).state.name == "C"  # never applied
    user = new_code.load("user-1")
    assert (user.state.name, user.version) == ("D", 4)

    user.change_name("E")
    new_code.save(user)
    assert snapshots.get("user-1").schema_version == 1  # no boundary crossed yet: still the old one
    user.change_name("F")
    new_code.save(user)  # crosses 6: replaced although the old one's version was lower anyway
    snap = snapshots.get("user-1")
    assert (snap.version, snap.schema_version, snap.state["name"]) == (6, 2, "F")
    assert new_code.load("user-1").state == full_replay(repo, "user-1").state


def test_a_newer_schema_snapshot_is_ignored_by_older_code(repo, store, snapshots):
    user_with_names(repo, "A", "B")
    snapshots.save(Snapshot("user-1", 2, User.snapshot_schema_version + 1, {"shape": "from the future"}))
    loaded = repo.load("user-1")
    assert (loaded.state.name, loaded.version) == ("B", 2)


def test_a_snapshot_is_not_replaced_by_an_older_one_of_the_same_schema(repo, snapshots):
    user_with_names(repo, "A", "B", "C", "D", "E", "F")
    snapshots.save(Snapshot("user-1", 3, User.snapshot_schema_version, {"stale": True}))
    assert snapshots.get("user-1").version == 6


# -- as of a version -------------------------------------------------------------

def test_load_as_of_every_version_equals_the_replay_of_that_prefix(repo, store, snapshots):
    names = ["A", "B", "C", "D", "E", "F", "G"]
    user_with_names(repo, *names)
    assert snapshots.get("user-1").version == 6
    for version in range(0, len(names) + 1):
        as_of = repo.load("user-1", version=version)
        assert as_of.state == full_replay(repo, "user-1", to_version=version).state
        assert as_of.version == version
        assert as_of.state.name == ("" if version == 0 else names[version - 1])
    assert not repo.load("user-1", version=0).state.exists

    poison_snapshot(store.engine, "user-1", name="POISON")  # a snapshot past the wanted version is not used
    assert [repo.load("user-1", version=v).state.name for v in range(1, 8)] == [*"ABCDE", "POISON", "G"]


def test_load_as_of_a_version_past_the_end_gives_the_latest(repo):
    user_with_names(repo, "A", "B")
    assert repo.load("user-1", version=99).version == 2


# -- as of a time ----------------------------------------------------------------

DAY1 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_load_as_of_a_timestamp_uses_when_each_event_occurred(repo, store):
    history = [UserRegisteredFactory(name="A"), UserNameChangedFactory(name="B"), UserNameChangedFactory(name="C")]
    for day, event in enumerate(history):
        [new] = as_new_events([event], occurred_at=(DAY1 + timedelta(days=day)).isoformat())
        store.append("user-1", [new], day)

    def name_at(at):
        return repo.load_as_of("user-1", at).state.name

    assert not repo.load_as_of("user-1", DAY1 - timedelta(seconds=1)).state.exists
    assert name_at(DAY1) == "A"  # inclusive
    assert name_at(DAY1 + timedelta(hours=36)) == "B"
    assert name_at((DAY1 + timedelta(days=2)).isoformat()) == "C"
    assert name_at("2024-01-02T01:00:00+01:00") == "B"  # = day 2 at 00:00 UTC
    assert name_at("2024-01-02T00:59:59+01:00") == "A"
    assert repo.load_as_of("user-1", DAY1 + timedelta(days=2)).state == repo.load("user-1").state


def test_load_as_of_a_timestamp_on_store_stamped_events(repo):
    user = User.register("user-1", "A", "ann@example.org")
    repo.save(user)
    between = datetime.now(timezone.utc)
    user.change_name("B")
    repo.save(user)
    assert repo.load_as_of("user-1", between).state.name == "A"
    assert repo.load_as_of("user-1", datetime.now(timezone.utc)).state.name == "B"


def test_load_as_of_an_unknown_stream_is_empty(repo, store):
    store.append("other-1", [NewEventFactory()], ExpectedVersion.NO_STREAM)
    assert repo.load_as_of("user-404", DAY1).version == 0
    assert repo.load("user-404").version == 0
