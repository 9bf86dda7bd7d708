"""The composition root: builds engines, stores and services from settings, once per URL."""

from __future__ import annotations

import dataclasses
import threading

from sqlalchemy import Engine

from es_app.domain import UPCASTERS, User, UserState
from es_app.services import UserService
from es_app.settings import Settings, get_settings
from es_app.store import EventStore, Repository, SnapshotStore, UpcasterRegistry, make_engine

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """Returns one shared engine per database URL in this process."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def dispose_engines() -> None:
    """Closes every shared engine's pooled connections and forgets the engines."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


@dataclasses.dataclass
class EsContainer:
    settings: Settings
    engine: Engine
    store: EventStore
    snapshots: SnapshotStore
    users: Repository[User]
    user_service: UserService


def build(settings: Settings | None = None) -> EsContainer:
    """Returns the wired event-sourced side for these settings (default: the environment's)."""
    settings = settings or get_settings()
    engine = engine_for(settings.es_database_url)
    store = EventStore(engine, UpcasterRegistry(UPCASTERS))
    snapshots = SnapshotStore(engine)
    users = Repository(store, snapshots, User, UserState,
                       snapshot_every=settings.snapshot_every)
    return EsContainer(settings, engine, store, snapshots, users, UserService(users))
