"""The store bench's work done through the `eventsourcing` library (PyPI), for the ratios.

`EsSide` mirrors `bench.store.OurSide` operation for operation: a User-like aggregate
in an `eventsourcing.application.Application` for the command path and loads, and the
application recorder (`insert_events`, `select_notifications`) for store-level work.
Persistence is `eventsourcing.sqlite` or `eventsourcing.postgres`, in a database of its own.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from functools import lru_cache
from typing import Any, Iterator
from uuid import UUID

from .common import postgres_parts


def available() -> bool:
    """Returns True when the `eventsourcing` library can be imported."""
    try:
        import eventsourcing.application  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def sqlite_synchronous(mode: str) -> Iterator[None]:
    """Makes every SQLite connection eventsourcing opens use `PRAGMA synchronous=<mode>`.

    Our engine runs WAL with synchronous=NORMAL; eventsourcing runs WAL with SQLite's
    default (FULL). The bench gives both sides the same durability setting.
    """
    from eventsourcing.sqlite import SQLiteConnectionPool

    original = SQLiteConnectionPool._create_connection

    def create(self):  # noqa: ANN001, ANN202
        conn = original(self)
        conn._sqlite_conn.execute(f"PRAGMA synchronous={mode}")
        return conn

    SQLiteConnectionPool._create_connection = create
    try:
        yield
    finally:
        SQLiteConnectionPool._create_connection = original


@lru_cache(maxsize=None)
def _classes() -> tuple[type, type]:
    """Returns (EsUser, EsUsers), defined once: eventsourcing registers each class under a topic."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class EsUser(Aggregate):
        @event("Registered")
        def __init__(self, name: str, email: str, phone: str | None = None):
            self.name, self.email, self.phone, self.active = name, email, phone, True

        @event("NameChanged")
        def _name_changed(self, name: str) -> None:
            self.name = name

        def change_name(self, name: str) -> None:
            name = (name or "").strip()
            if not name or name == self.name:
                raise ValueError("bad or unchanged name")
            self._name_changed(name)

    class EsUsers(Application):
        is_snapshotting_enabled = True

        def register(self, name: str, email: str) -> UUID:
            user = EsUser(name, email)
            self.save(user)
            return user.id

        def rename(self, user_id: UUID, name: str) -> None:
            user = self.repository.get(user_id)
            user.change_name(name)
            self.save(user)

    return EsUser, EsUsers


class EsSide:
    """Returns nothing but does the bench's work through eventsourcing (see module doc)."""

    name = "eventsourcing"
    server: Any = None  # the CPU of the database server's backends (a bench.common.ServerCpu, set by bench.store)

    def __init__(self, backend: str, url: str, *, pool_size: int = 10):
        from eventsourcing.persistence import StoredEvent

        self._stored_event = StoredEvent
        self.backend = backend
        self.user_cls, app_cls = _classes()
        if backend == "sqlite":
            env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                   "SQLITE_DBNAME": url.removeprefix("sqlite:///"), "SQLITE_LOCK_TIMEOUT": "60"}
        else:
            parts = postgres_parts(url)
            env = {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": parts["dbname"],
                   "POSTGRES_HOST": parts["host"], "POSTGRES_PORT": parts["port"],
                   "POSTGRES_USER": parts["user"], "POSTGRES_PASSWORD": parts["password"],
                   "POSTGRES_POOL_SIZE": str(pool_size), "POSTGRES_MAX_OVERFLOW": "2"}
        self.app = app_cls(env=env)
        self.recorder = self.app.recorder

    # -- command path ----------------------------------------------------------
    def register(self, n: int) -> list[UUID]:
        return [self.app.register(f"User {i}", f"u{i}-{uuid.uuid4().hex[:8]}@example.org") for i in range(n)]

    def create(self, i: int) -> None:
        self.app.register(f"User {i}", f"c{i}-{uuid.uuid4().hex[:8]}@example.org")

    def command(self, user_id: UUID, name: str) -> None:
        self.app.rename(user_id, name)

    # -- store level -----------------------------------------------------------
    def new_stream(self) -> UUID:
        return uuid.uuid4()

    def _stored(self, stream: UUID, version: int, i: int) -> Any:
        state = json.dumps({"name": f"Name {i}", "n": i, "meta": {"actor": "bench"}}).encode()
        return self._stored_event(originator_id=stream, originator_version=version, topic="Thing", state=state)

    def append_one(self, stream: UUID, version: int, i: int) -> None:
        self.recorder.insert_events([self._stored(stream, version + 1, i)])

    def append_many(self, stream: UUID, n: int) -> None:
        self.recorder.insert_events([self._stored(stream, v, v) for v in range(1, n + 1)])

    def append_across(self, streams: list[UUID]) -> None:
        self.recorder.insert_events([self._stored(s, 1, i) for i, s in enumerate(streams)])

    def read_feed(self, page: int) -> int:
        """Returns how many events it read, decoding each one's JSON as our store does."""
        seen, after = 0, 0
        while True:
            batch = self.recorder.select_notifications(start=after + 1, limit=page)
            for n in batch:
                json.loads(n.state)
            seen += len(batch)
            if len(batch) < page:
                return seen
            after = batch[-1].id

    # -- loading ---------------------------------------------------------------
    def build_stream(self, n: int, *, snapshot_at: int | None = None, chunk: int = 1000) -> UUID:
        """Returns the id of a new stream of `n` events, with a snapshot at version `snapshot_at`."""
        user = self.user_cls("Loaded", "loaded@example.org")
        for v in range(2, n + 1):
            user.change_name(f"Name {v}")
            if v % chunk == 0 or v == snapshot_at:
                self.app.save(user)
            if v == snapshot_at:
                self.app.take_snapshot(user.id)
        self.app.save(user)
        return user.id

    def load(self, stream: UUID) -> int:
        return self.app.repository.get(stream).version

    def close(self) -> None:
        self.app.close()
