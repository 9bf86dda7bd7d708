"""The plugin's fixtures for the project's own suite, on both backends.

Installed, the distribution registers `migrator.testing.plugin` through its `pytest11` entry point; the
fixtures are imported here too, so these tests run the same before that install is refreshed. The
session's database maker is parametrized over SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from migrator.testing.databases import PostgresDatabases, SqliteDatabases
from migrator.testing.plugin import (  # noqa: F401 - fixtures
    migrator_database,
    migrator_es_url,
    migrator_legacy_setup,
    migrator_legacy_url,
    migrator_mapping,
    migrator_world,
    migrator_worlds,
)
from tests.conftest import PG_URL, require_postgres


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrator_databases(request: pytest.FixtureRequest,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteDatabases | PostgresDatabases]:
    if request.param == "postgres":
        require_postgres()
    databases = PostgresDatabases(PG_URL) if request.param == "postgres" else SqliteDatabases(
        tmp_path_factory.mktemp("migrator"))
    yield databases
    databases.close()
