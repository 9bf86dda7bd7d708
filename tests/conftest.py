"""Shared fixtures: fresh databases on either backend, and service checks that fail on CI.

`backend` is parametrized over "sqlite" and "postgres". Each test gets fresh databases
migrated to head: a new SQLite file, or a PostgreSQL database cloned from a template
built once per session. When CI=true and a server is unreachable, tests fail instead
of skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Callable, Iterator
from urllib.parse import urlparse

import pytest
from sqlalchemy import create_engine, text

from es_app.store import make_engine
from migrator import schema

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url.replace("+psycopg", "").replace("+pymysql", ""))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> None:
    """Skips the test when the server is down; fails it instead when CI=true."""
    if not _reachable(url, default_port):
        message = f"{name} at {url} is unreachable"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: server-backed tests must run)")
        pytest.skip(message)


def require_postgres() -> None:
    require_service("PostgreSQL", PG_URL, 5432)


def require_redis() -> None:
    require_service("Redis", REDIS_URL, 6379)


def require_mysql() -> None:
    require_service("MariaDB", MYSQL_URL, 3306)


def _with_db(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


class PostgresDatabases:
    """Creates databases cloned from a migrated template; drops them all at the end."""

    def __init__(self) -> None:
        self.admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        self.template: str | None = None
        self.created: list[str] = []

    def _exec(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(sql))

    def _ensure_template(self) -> str:
        if self.template is None:
            name = f"tmpl_{uuid.uuid4().hex[:12]}"
            self._exec(f'CREATE DATABASE "{name}"')
            self.created.append(name)
            engine = make_engine(_with_db(PG_URL, name))
            schema.upgrade_all({"es": engine, "legacy": engine})
            engine.dispose()
            self.template = name
        return self.template

    def new(self) -> str:
        template = self._ensure_template()
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._exec(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.created.append(name)
        return _with_db(PG_URL, name)

    def drop(self, url: str) -> None:
        name = url.rpartition("/")[2]
        self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in reversed(self.created):
            self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.dispose()


class MySQLDatabases:
    """Creates MySQL/MariaDB databases (utf8mb4) holding the legacy schema at head; drops them all at the end.

    MySQL is a legacy database only: the event store of a test with a MySQL legacy database is
    an SQLite file (or PostgreSQL).
    """

    def __init__(self) -> None:
        self.admin = create_engine(MYSQL_URL, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def _exec(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(sql))

    def new(self, *, schema_head: bool = True) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._exec(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        self.created.append(name)
        url = _with_db(MYSQL_URL, name)
        if schema_head:
            engine = make_engine(url)
            schema.upgrade_all({"legacy": engine})
            engine.dispose()
        return url

    def drop(self, url: str) -> None:
        name = url.rpartition("/")[2].partition("?")[0]
        self._exec(f"DROP DATABASE IF EXISTS `{name}`")
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in reversed(self.created):
            self._exec(f"DROP DATABASE IF EXISTS `{name}`")
        self.admin.dispose()


@pytest.fixture(scope="session")
def mysql_databases() -> Iterator[MySQLDatabases]:
    require_mysql()
    dbs = MySQLDatabases()
    yield dbs
    dbs.close()


LEGACY_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                   pytest.param("mysql", marks=pytest.mark.mysql)]


@pytest.fixture(params=LEGACY_BACKENDS)
def legacy_backend(request: pytest.FixtureRequest) -> str:
    """The legacy database's backend: "sqlite", "postgres" or "mysql" (the legacy contract tests run on all three)."""
    if request.param == "postgres":
        require_postgres()
    if request.param == "mysql":
        require_mysql()
    return request.param


@pytest.fixture
def new_legacy_and_es_urls(legacy_backend: str, tmp_path, request: pytest.FixtureRequest
                           ) -> Iterator[Callable[[str], tuple[str, str]]]:
    """Returns a factory: name -> (legacy URL, event store URL), fresh databases at schema head.

    SQLite and PostgreSQL: one database holds both (as `new_database_url`). MySQL: a MySQL
    legacy database and an SQLite event store beside it.
    """
    made: list[tuple[object, str]] = []

    def make(name: str = "db") -> tuple[str, str]:
        if legacy_backend == "mysql":
            dbs: MySQLDatabases = request.getfixturevalue("mysql_databases")
            legacy = dbs.new()
            made.append((dbs, legacy))
            es = f"sqlite:///{tmp_path / f'{name}-es-{uuid.uuid4().hex[:6]}.db'}"
            engine = make_engine(es)
            schema.upgrade_all({"es": engine})
            engine.dispose()
            return legacy, es
        if legacy_backend == "postgres":
            pg: PostgresDatabases = request.getfixturevalue("postgres_databases")
            url = pg.new()
            made.append((pg, url))
            return url, url
        url = f"sqlite:///{tmp_path / f'{name}-{uuid.uuid4().hex[:6]}.db'}"
        engine = make_engine(url)
        schema.upgrade_all({"es": engine, "legacy": engine})
        engine.dispose()
        return url, url

    yield make
    from es_app.bootstrap import dispose_engines

    dispose_engines()
    for dbs, url in made:
        try:
            dbs.drop(url)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - the session's end drops what is left
            pass


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    require_postgres()
    dbs = PostgresDatabases()
    yield dbs
    dbs.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        require_postgres()
    return request.param


@pytest.fixture
def new_database_url(backend: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """Returns a factory: name -> URL of a fresh database at schema head on this test's backend.

    PostgreSQL databases are dropped when the test ends (WITH FORCE, which also closes the
    idle connections that cached engines still pool), so a long run does not exhaust the
    server's max_connections.
    """
    created: list[tuple[PostgresDatabases, str]] = []

    def make(name: str = "db") -> str:
        if backend == "postgres":
            dbs: PostgresDatabases = request.getfixturevalue("postgres_databases")
            created.append((dbs, dbs.new()))
            return created[-1][1]
        url = f"sqlite:///{tmp_path / f'{name}-{uuid.uuid4().hex[:6]}.db'}"
        engine = make_engine(url)
        schema.upgrade_all({"es": engine, "legacy": engine})
        engine.dispose()
        return url

    yield make
    for dbs, url in created:
        try:
            dbs.drop(url)
        except Exception:  # noqa: BLE001 - the session's end drops what is left
            pass


@pytest.fixture
def es_engine(new_database_url):
    engine = make_engine(new_database_url("es"))
    yield engine
    engine.dispose()



@pytest.fixture(autouse=True)
def _dispose_shared_engines() -> Iterator[None]:
    """Disposes the per-URL engines that in-process CLI/API calls share, so no test hoards connections."""
    yield
    from es_app.bootstrap import dispose_engines

    dispose_engines()
