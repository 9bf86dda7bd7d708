"""Engines for either backend: URL normalisation, SQLite pragmas, write transactions."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError

from es_app.dialect import dialect_for

from .driver import dbapi_connection, translated_errors

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 60.0  # how long an SQLite connection waits for a lock another connection holds
_FIRST_PAUSE_S, _LONGEST_PAUSE_S = 0.0001, 0.002  # begin_immediate's tries


def normalize_url(url: str) -> str:
    """Returns the URL with the driver this project uses (psycopg 3 for PostgreSQL)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith(("mysql://", "mariadb://")):
        url = "mysql+pymysql://" + url.partition("://")[2]
    return url


def make_engine(url: str, *, ping_after_idle_s: float | None = None, **kwargs) -> Engine:
    """Returns an engine; SQLite gets WAL, a busy timeout and explicit BEGIN handling.

    PostgreSQL connections idle for more than `ping_after_idle_s` (default
    PING_AFTER_IDLE_S) are pinged when checked out of the pool; busy ones are not.
    """
    ping_after_idle_s = PING_AFTER_IDLE_S if ping_after_idle_s is None else ping_after_idle_s
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "mysql":
        return make_mysql_engine(url, **kwargs)
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    _decode_json_fast(engine)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_after_idle_s)
    return engine


PING_AFTER_IDLE_S = 5.0


MYSQL_SESSION = ("SET time_zone = '+00:00', "
                 "sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')")
"""How each MySQL/MariaDB session starts (as legacy_app.db's): UTC, and strict whatever the server's sql_mode,
so a legacy write (the reverse projection's) that a column cannot hold fails instead of being truncated."""


def make_mysql_engine(url: str, **kwargs: Any) -> Engine:
    """Returns an engine for a MySQL/MariaDB (legacy) database: utf8mb4, UTC sessions, pinged connections.

    The session time zone is UTC, so NOW() and TIMESTAMP columns read as UTC like DATETIME
    values this project writes, and the session is strict (MYSQL_SESSION); a URL without `charset` gets
    utf8mb4 (4-byte characters).
    """
    parsed = make_url(url)
    if "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", 3600)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("init_command", MYSQL_SESSION)
    return create_engine(parsed, connect_args=connect_args, **kwargs)


def _decode_json_fast(engine: Engine) -> None:
    """Makes psycopg decode json/jsonb with the store's loads (orjson; exact for big integers).

    The text format (what every query here reads) gets a loader that is `loads` itself: psycopg's
    own calls it through a method that copies the buffer first, which costs as much as the parse."""
    from psycopg.adapt import Loader
    from psycopg.types.json import set_json_loads

    from .codec import loads

    class JsonText(Loader):
        # assignment: a function where Loader declares a method; psycopg calls `loader.load(data)`
        # either way, and this spares a Python frame per value read
        load = staticmethod(loads)  # type: ignore[assignment]

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        set_json_loads(loads, dbapi_conn)  # the binary formats
        for name in ("json", "jsonb"):
            dbapi_conn.adapters.register_loader(name, JsonText)


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Pings a pooled connection on checkout only when it sat idle for more than `idle_s`.

    SQLAlchemy's pool_pre_ping pings on every checkout: one more round trip per
    operation, as much as the operation itself on the store's hot paths. A connection
    that was used moments ago is alive; one that sat idle may have been cut. When a
    ping fails the whole pool is invalidated and the checkout retried on a new connection.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn, record) -> None:
        record.info["es_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, _proxy) -> None:
        since = record.info.get("es_idle_since")
        if since is None or time.monotonic() - since <= idle_s:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError(f"idle connection failed its ping: {exc}") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode != "IMMEDIATE":
            conn.exec_driver_sql(f"BEGIN {mode}")
            return
        with translated_errors(engine.dialect):
            begin_immediate(conn.connection.dbapi_connection)


def begin_immediate(db: Any, timeout_s: float = BUSY_TIMEOUT_S) -> None:
    """Begins a write transaction on an sqlite3 connection, waiting for another process's writer.

    It tries again every 0.1 to 2 ms rather than through SQLite's busy handler, whose sleeps
    between tries are 1, 2, 5, 10 ... up to 100 ms: a command that met a worker process's
    projection batch (under a millisecond) waited out a whole first sleep or more after it
    ended. After `timeout_s` the "database is locked" error is raised, as the busy timeout would.
    """
    db.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + timeout_s
        pause = _FIRST_PAUSE_S
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 1.5, _LONGEST_PAUSE_S)
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_SQLITE_WRITERS_GUARD = threading.Lock()


@contextmanager
def sqlite_writer_turn(engine: Engine, timeout_s: float = 60.0) -> Iterator[None]:
    """Waits for this process's turn to write to an SQLite engine (taken before BEGIN IMMEDIATE).

    Threads then queue on an in-process lock instead of polling SQLite's file lock
    through the busy handler, which sleeps up to 100 ms between tries. Other processes
    still wait on the file lock. After `timeout_s` it goes on without its turn and
    SQLite's own busy timeout decides, as it would without this lock.
    """
    with _SQLITE_WRITERS_GUARD:
        lock = _SQLITE_WRITERS.get(engine)
        if lock is None:
            lock = _SQLITE_WRITERS[engine] = threading.RLock()
    got = lock.acquire(timeout=timeout_s)
    try:
        yield
    finally:
        if got:
            lock.release()


WAL_CHECKPOINT_EVERY_S = 0.05  # the least time between two of `checkpoint_wal`'s checkpoints of one engine
_CHECKPOINTED: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()


def checkpoint_wal(engine: Engine, every_s: float = WAL_CHECKPOINT_EVERY_S) -> bool:
    """Copies an SQLite database's write-ahead log into the database file, at most once per `every_s` per
    engine; returns whether it did (elsewhere it does nothing).

    The checkpoint is PASSIVE: it waits on no reader and no writer, and copies what it can. The API runs
    it once a written command's answer is sent, the projection tasks after their batches, so that commits
    leave the log short of SQLite's automatic checkpoint (1,000 pages), which runs inside the commit that
    crosses it: at one client, one command in about 65 paid for a whole checkpoint (docs/benchmarks.md).
    The automatic one stays, for when nothing else checkpoints. A checkpoint that fails is logged: it
    leaves the log to the automatic one.
    """
    if not dialect_for(engine).single_writer:
        return False
    now = time.monotonic()
    with _SQLITE_WRITERS_GUARD:
        if now - _CHECKPOINTED.get(engine, -every_s) < every_s:
            return False
        _CHECKPOINTED[engine] = now
    try:
        with dbapi_connection(engine) as db:  # in autocommit: a checkpoint inside a transaction stops at its snapshot
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except DBAPIError as exc:
        log.warning("write-ahead log checkpoint failed (SQLite's automatic one remains): %s", exc)
        return False
    return True


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """Yields a connection in a transaction that will write.

    It begins with the dialect's write_options: on SQLite BEGIN IMMEDIATE, so concurrent
    writers queue on the database lock instead of failing when a read lock is upgraded,
    and where the database has a single writer, this process's threads take turns first.
    """
    dialect = dialect_for(engine)
    with sqlite_writer_turn(engine) if dialect.single_writer else nullcontext(), engine.connect() as conn:
        conn.execution_options(**dialect.write_options())
        with conn.begin():
            yield conn
