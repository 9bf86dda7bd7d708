"""The pytest plugin (entry point `pytest11`: `migrator = "migrator.testing.plugin"`): fixtures for proving a
table's migration in a team's own test suite. See docs/testing.md.

Databases are temporary SQLite files, or fresh PostgreSQL databases (dropped after each test) when
`--migrator-postgres URL` or the environment variable MIGRATOR_TEST_POSTGRES_URL names a server.
Hypothesis is not imported here: only `migrator.testing.strategies` needs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from ..mapping import USERS, TableMapping
from .databases import PostgresDatabases, SqliteDatabases
from .world import MigratorWorld

ENV_POSTGRES = "MIGRATOR_TEST_POSTGRES_URL"
OPTION = "--migrator-postgres"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("migrator", "crud-to-es migrator")
    group.addoption(OPTION, metavar="URL", default=None,
                    help=f"run the migrator fixtures on PostgreSQL at URL (also: env {ENV_POSTGRES})")


@pytest.fixture(scope="session")
def migrator_databases(request: pytest.FixtureRequest,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteDatabases | PostgresDatabases]:
    """Returns the session's maker of fresh databases at schema head: PostgreSQL when a URL is given, else SQLite."""
    url = request.config.getoption(OPTION, default=None) or os.environ.get(ENV_POSTGRES)
    databases = PostgresDatabases(url) if url else SqliteDatabases(tmp_path_factory.mktemp("migrator"))
    yield databases
    databases.close()


@pytest.fixture
def migrator_database(migrator_databases: SqliteDatabases | PostgresDatabases) -> Iterator[Callable[[], str]]:
    """Returns a factory of URLs of fresh databases with both schemas at head, dropped after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(migrator_databases.new())
        return made[-1]

    yield make
    from es_app.bootstrap import dispose_engines

    dispose_engines()
    for url in made:
        migrator_databases.drop(url)


@pytest.fixture
def migrator_legacy_url(migrator_database: Callable[[], str]) -> str:
    """Returns the URL of the test's legacy database (the legacy schema at head)."""
    return migrator_database()


@pytest.fixture
def migrator_es_url(migrator_database: Callable[[], str]) -> str:
    """Returns the URL of the test's event store (the event-store schema at head)."""
    return migrator_database()


@pytest.fixture
def migrator_mapping() -> TableMapping:
    """Returns the mapping under test: USERS. Override it with your own declaration (and create its table)."""
    return USERS


@pytest.fixture
def migrator_legacy_setup() -> Callable[[str], object]:
    """Returns what prepares a new legacy database before capture is installed (default: nothing). Override it to
    create your table: `lambda legacy_url: ...`."""
    return lambda legacy_url: None


@pytest.fixture
def migrator_worlds(migrator_database: Callable[[], str], migrator_mapping: TableMapping,
                    migrator_legacy_setup: Callable[[str], object]) -> Callable[[], MigratorWorld]:
    """Returns a factory of fresh worlds of the mapping under test (one per hypothesis example); making one closes
    the pooled connections of the worlds before it."""

    def make() -> MigratorWorld:
        from es_app.bootstrap import dispose_engines

        dispose_engines()
        legacy_url = migrator_database()
        migrator_legacy_setup(legacy_url)
        return MigratorWorld.create(legacy_url, migrator_database(), migrator_database(), migrator_mapping)

    return make


@pytest.fixture
def migrator_world(migrator_legacy_url: str, migrator_es_url: str, migrator_mapping: TableMapping,
                   migrator_legacy_setup: Callable[[str], object],
                   migrator_database: Callable[[], str]) -> MigratorWorld:
    """Returns the world of the mapping under test: capture installed, both event stores ready."""
    migrator_legacy_setup(migrator_legacy_url)
    return MigratorWorld.create(migrator_legacy_url, migrator_es_url, migrator_database(), migrator_mapping)
