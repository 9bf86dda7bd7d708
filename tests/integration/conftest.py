"""Fixtures shared by the integration tests of the backfill."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import Engine

from es_app.store import EventStore, make_engine
from migrator.capture import changelog as capture
from migrator.mapping import USERS


@pytest.fixture
def db(new_database_url):
    """One database holding the legacy tables (with capture installed) and the event store."""
    url = new_database_url("bf")
    engine = make_engine(url)
    capture.install(engine, [USERS])
    yield url, engine
    engine.dispose()


@dataclasses.dataclass(frozen=True)
class Pair:
    """A legacy database (with capture installed) and an event store: one database on SQLite and PostgreSQL,
    a MySQL/MariaDB legacy database beside an SQLite event store."""

    legacy_url: str
    es_url: str
    legacy: Engine
    es: Engine

    @property
    def store(self) -> EventStore:
        return EventStore(self.es)


@pytest.fixture
def pair(new_legacy_and_es_urls):
    """A `Pair` on each legacy backend (sqlite, postgres, mysql)."""
    legacy_url, es_url = new_legacy_and_es_urls("bf")
    legacy = make_engine(legacy_url)
    es = legacy if es_url == legacy_url else make_engine(es_url)
    capture.install(legacy, [USERS])
    yield Pair(legacy_url, es_url, legacy, es)
    legacy.dispose()
    es.dispose()
