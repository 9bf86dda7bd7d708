"""Fixtures of the store contract suite: a store, its snapshots and a User repository on each backend."""

from __future__ import annotations

import pytest

from es_app.domain import UPCASTERS, User, UserState
from es_app.services import UserService
from es_app.store import EventStore, Repository, SnapshotStore, UpcasterRegistry

SNAPSHOT_EVERY = 3


@pytest.fixture
def store(es_engine) -> EventStore:
    return EventStore(es_engine, UpcasterRegistry(UPCASTERS))


@pytest.fixture
def snapshots(es_engine) -> SnapshotStore:
    return SnapshotStore(es_engine)


@pytest.fixture
def repo(store, snapshots) -> Repository:
    return Repository(store, snapshots, User, UserState, snapshot_every=SNAPSHOT_EVERY)


@pytest.fixture
def users(repo) -> UserService:
    return UserService(repo)
