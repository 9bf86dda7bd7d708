"""A legacy database and an event store with writes switched: the legacy app's routes over `EsWrites`."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text

from es_app.bootstrap import EsContainer
from es_app.projections import run_projections
from es_app.store import EventStore, make_engine
from es_app.store.schema import events
from legacy_app.api import create_app
from legacy_app.db import Database
from legacy_app.reads import UserReads, reads_for
from legacy_app.service import UserService
from legacy_app.writes import UserWrites
from migrator.capture import changelog as capture
from migrator.mapping import USERS
from migrator.relay.runner import Relay
from migrator.switchover.reverse import ReverseProjection
from migrator.switchover.writes import EsWrites
from migrator.verify import verify

from .projection_helpers import container

T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def no_publish(_settings, _position) -> None:
    """The wake-up after a command: the tests project themselves."""


class SwitchedRoutes:
    """Reads from the legacy table, writes through the event store (what the live routes do in writes_switched)."""

    def __init__(self, database: Database, es: EsContainer):
        self._reads = reads_for(database, "legacy")
        self._writes = EsWrites(database, es, publish=no_publish)

    def reads(self) -> UserReads:
        return self._reads

    def writes(self) -> UserWrites:
        return self._writes


@dataclasses.dataclass
class World:
    legacy_url: str
    es_url: str
    legacy: Engine
    es: EsContainer

    @property
    def store(self) -> EventStore:
        return self.es.store

    @property
    def users(self):
        return USERS.bind(self.legacy)

    def writes(self) -> EsWrites:
        return EsWrites(Database(self.legacy), self.es, publish=no_publish)

    def legacy_writes(self) -> UserService:
        return UserService(Database(self.legacy))

    def reverse(self) -> ReverseProjection:
        return ReverseProjection(self.users, self.legacy, self.store)

    @contextmanager
    def client(self) -> Iterator[TestClient]:
        app = create_app(self.legacy_url, routes=lambda database: SwitchedRoutes(database, self.es))
        with TestClient(app) as c:
            yield c

    def relay(self):
        return Relay(self.users, self.legacy, self.store).drain()

    def verify(self):
        run_projections(self.es, names=["users"])
        return verify(self.legacy, self.store.engine, [self.users], full=True, wait=0)

    def insert(self, *ids: int) -> None:
        with self.legacy.begin() as conn:
            conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                              "VALUES (:id, :email, :name, :active, NULL, :t, :t)"),
                         [{"id": i, "email": f"User{i}@Example.org", "name": f"User {i}", "active": True, "t": T}
                          for i in ids])

    def row(self, key: int) -> dict | None:
        with self.legacy.connect() as conn:
            found = conn.execute(text("SELECT * FROM users WHERE id = :k"), {"k": key}).mappings().first()
        return None if found is None else dict(found)

    def event_count(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar() or 0)

    def events_per_stream(self) -> Counter[str]:
        with self.store.engine.connect() as conn:
            return Counter(conn.execute(select(events.c.stream_id).where(events.c.category == "user")).scalars())

    def types(self, key: int) -> list[str]:
        return [e.type for e in self.store.read_stream(f"user-{key}")]


def make_world(new_database_url, *, same_database: bool = False) -> World:
    """Returns a world whose legacy rows 1-3 are imported (capture installed, relayed)."""
    legacy_url = new_database_url("legacy")
    es_url = legacy_url if same_database else new_database_url("es")
    legacy = make_engine(legacy_url)
    capture.install(legacy, [USERS])
    world = World(legacy_url, es_url, legacy, container(es_url))
    world.insert(1, 2, 3)
    world.relay()
    return world
