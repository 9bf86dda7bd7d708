"""The legacy app's own database access: engine factory, schema check and sessions.

legacy_app imports nothing from es_app or migrator, so it builds its engines itself.
SQLite gets WAL and a busy timeout; write sessions start with BEGIN IMMEDIATE so
concurrent load-mutate-save requests queue on the lock instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Connection, Engine, String, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.functions import FunctionElement

DEFAULT_URL = "sqlite:///var/legacy.db"
URL_ENV = "LEGACY_DATABASE_URL"


class LegacySession(Session):
    """The session class of every legacy unit of work (a stable target for session event hooks)."""


class SchemaMissing(RuntimeError):
    """The legacy database has no `users` table yet."""


def database_url() -> str:
    """Returns the legacy database URL from LEGACY_DATABASE_URL (default: sqlite:///var/legacy.db)."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


def normalize_url(url: str) -> str:
    """Returns the URL with this project's drivers: psycopg 3 for PostgreSQL (`postgres://` and
    `postgresql://` accepted), PyMySQL for MySQL/MariaDB (`mysql://`, `mariadb://`)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith(("mysql://", "mariadb://")):
        url = "mysql+pymysql://" + url.partition("://")[2]
    return url


def is_sqlite_url(url: str) -> bool:
    """Returns True when the URL names an SQLite database."""
    return make_url(normalize_url(url)).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """Returns the file of an SQLite URL (None for other backends and in-memory databases)."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


MYSQL_SESSION = ("SET time_zone = '+00:00', "
                 "sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')")
"""How each MySQL/MariaDB session starts: UTC, and strict whatever the server's sql_mode, so a value
the column cannot hold (too long, a 4-byte character in a utf8mb3 column) is refused with an error
instead of being silently truncated or turned into `?` (docs/operations.md)."""


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """Returns an engine for the legacy database (default: LEGACY_DATABASE_URL)."""
    url = normalize_url(url or database_url())
    path = sqlite_path(url)
    if is_sqlite_url(url):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "mysql":  # utf8mb4 (4-byte characters), UTC and strict sessions
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        kwargs.setdefault("pool_recycle", 3600)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("init_command", MYSQL_SESSION)
        return create_engine(parsed, connect_args=connect_args, **kwargs)
    return create_engine(url, **kwargs)


def _text(raw: bytes) -> str:
    """Returns SQLite text as str; bytes that are not UTF-8 (written by another program) read as U+FFFD."""
    return raw.decode("utf-8", "replace")


def _lower(value):
    if isinstance(value, bytes):
        value = _text(value)
    return value.lower() if isinstance(value, str) else value


class unicode_lower(FunctionElement):
    """lower() that folds non-ASCII letters too (SQLite's built-in lower() folds ASCII only)."""

    inherit_cache = True
    type = String()


@compiles(unicode_lower)
def _unicode_lower_default(element, compiler, **kw):
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(unicode_lower, "sqlite")
def _unicode_lower_sqlite(element, compiler, **kw):
    return f"legacy_lower(CAST({compiler.process(element.clauses, **kw)} AS BLOB))"  # bytes: see _text


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # BEGIN is emitted below, with the mode asked for
        dbapi_conn.text_factory = _text
        dbapi_conn.create_function("legacy_lower", 1, _lower, deterministic=True)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', 'DEFERRED')}")


def has_schema(engine: Engine) -> bool:
    """Returns True when the legacy `users` table exists in the database."""
    with engine.connect() as conn:
        return inspect(conn).has_table("users")


class Database:
    """The legacy database of one process: an engine, write sessions and read sessions."""

    def __init__(self, engine: Engine):
        self.engine = engine
        writer = engine.execution_options(sqlite_begin="IMMEDIATE") if engine.dialect.name == "sqlite" else engine
        self.write_session = sessionmaker(writer, class_=LegacySession, expire_on_commit=False)
        self.read_session = sessionmaker(engine, class_=LegacySession, expire_on_commit=False)

    @classmethod
    def connect(cls, url: str | None = None, *, check_schema: bool = True) -> Database:
        """Returns a Database for the URL; raises SchemaMissing when `users` does not exist."""
        url = url or database_url()
        path = sqlite_path(url)
        if check_schema and path is not None and not path.exists():
            raise SchemaMissing(f"the legacy database {path} does not exist: run `migrator init`")
        db = cls(make_engine(url))
        if check_schema and not has_schema(db.engine):
            db.dispose()
            raise SchemaMissing(f"the legacy database has no `users` table: run `migrator init` "
                                f"({db.engine.url.render_as_string(hide_password=True)})")
        return db

    def dispose(self) -> None:
        self.engine.dispose()
