"""Fixtures shared by the integration tests of the backfill."""

from __future__ import annotations

import pytest

from es_app.store import make_engine
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

