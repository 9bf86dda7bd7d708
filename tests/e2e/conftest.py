"""Fixtures of the end-to-end CLI tests."""

from __future__ import annotations

import pytest

from es_app.bootstrap import engine_for


@pytest.fixture
def urls(new_database_url):
    """Returns (legacy URL, event-store URL): two fresh databases on the test's backend."""
    pair = new_database_url("legacy"), new_database_url("es")
    yield pair
    for url in pair:
        engine_for(url).dispose()  # the CLI's cached engines: give their connections back
