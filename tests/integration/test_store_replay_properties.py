"""Random command sequences saved through the Repository on SQLite: every way of loading
(snapshot + tail, full replay from the store, as of each version) gives the state the
aggregate reported."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings

from es_app.domain import UPCASTERS, User, UserState, event_from_data
from es_app.store import EventStore, ExpectedVersion, Repository, SnapshotStore, UpcasterRegistry, make_engine
from migrator import schema
from tests.factories import as_new_events
from tests.strategies import histories, run, start_user

TIMES = ("created_at", "updated_at")  # taken from metadata on replay, unknown to a fresh command


def without_times(state: UserState) -> dict:
    return {k: v for k, v in state.to_dict().items() if k not in TIMES}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'es.db'}")
    schema.upgrade_all({"es": engine})
    store = EventStore(engine, UpcasterRegistry(UPCASTERS))
    yield Repository(store, SnapshotStore(engine), User, UserState, snapshot_every=3)
    engine.dispose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories)
def test_every_load_path_equals_the_reported_state(repo, history):
    start, commands = history
    stream_id = f"user-{uuid.uuid4()}"
    user, start_events = start_user(stream_id, start)
    states = [without_times(User.replay(stream_id, ((e, {}) for e in start_events[:n])).state)
              for n in range(len(start_events) + 1)]  # states[v] = the state as of version v
    if start_events:
        repo.store.append(stream_id, as_new_events(start_events, actor="prop"), ExpectedVersion.NO_STREAM)
    for command in commands:
        if run(user, command):
            repo.save(user, metadata={"actor": "prop"})  # snapshots every 3 events
            states.append(without_times(user.state))

    stored = [(event_from_data(r.type, r.data), r.metadata) for r in repo.store.read_stream(stream_id)]
    full = User.replay(stream_id, stored)
    loaded = repo.load(stream_id)

    assert len(stored) == user.version == len(states) - 1
    assert without_times(full.state) == without_times(user.state)
    assert loaded.state == full.state  # snapshot + tail == full replay, timestamps included
    for version, expected in enumerate(states):
        assert without_times(repo.load(stream_id, version=version).state) == expected
