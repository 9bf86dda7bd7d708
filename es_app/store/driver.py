"""DB-API connections under SQLAlchemy's pool, for the store's hot paths.

SQLAlchemy Core spends tens of microseconds per statement on cache keys, result
wrappers and events; on the command path that was most of the time. These paths
run fixed SQL strings (see `sqlite.py`, `postgres.py`) on the DB-API connection
under SQLAlchemy's pool instead (sqlite3 caches prepared statements, psycopg
prepares them after a few uses). The stored format is exactly what the SQLAlchemy
tables in `schema.py` write and read, so both kinds of access can be mixed freely.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from es_app.dialect import Dialect, dialect_for

from .codec import dumps, loads  # re-exported: the read model's batch writer encodes with the store's codec

__all__ = ["dbapi_connection", "dbapi_of", "driver_cursor", "dumps", "loads", "translated_errors"]


@contextmanager
def dbapi_connection(engine: Engine, *, autocommit: bool = False) -> Iterator[Any]:
    """Yields a pooled DB-API connection; `autocommit` makes reads one round trip each (the dialect's
    set_driver_autocommit: PostgreSQL; SQLite's driver opens no transaction of its own).

    Driver errors come out as SQLAlchemy's (IntegrityError, OperationalError, ...), as
    they would from Core; a connection found dead is invalidated, not pooled again.
    The pool rolls back whatever transaction an error left open.
    """
    with translated_errors(engine.dialect):
        fairy = engine.raw_connection()
    conn = fairy.dbapi_connection
    dialect = dialect_for(engine)
    try:
        with translated_errors(engine.dialect, fairy):
            switched = autocommit and dialect.set_driver_autocommit(conn, True)
            try:
                yield conn
            finally:
                if switched:
                    _leave_autocommit(dialect, fairy)
    finally:
        fairy.close()


def _leave_autocommit(dialect: Dialect, fairy: Any) -> None:
    """Puts a connection back in transaction mode; one that refuses is not pooled again."""
    try:
        dialect.set_driver_autocommit(fairy.dbapi_connection, False)
    except Exception:  # noqa: BLE001 - a broken connection: drop it rather than pool it in autocommit
        fairy.invalidate()


@contextmanager
def translated_errors(dialect: Any, fairy: Any = None) -> Iterator[None]:
    """Re-raises DB-API errors as the matching SQLAlchemy exception (IntegrityError, ...)."""
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as err:
        invalidated = fairy is not None and dialect.is_disconnect(err, fairy.dbapi_connection, None)
        if invalidated:
            fairy.invalidate(err)
        raise DBAPIError.instance(None, None, err, dbapi_error, connection_invalidated=invalidated,
                                  dialect=dialect) from err


@contextmanager
def driver_cursor(conn: Connection) -> Iterator[Any]:
    """Yields a cursor of `conn`'s DB-API connection (its transaction), closed after; driver errors
    come out as SQLAlchemy's."""
    with translated_errors(conn.dialect):
        cur = dbapi_of(conn).cursor()
        try:
            yield cur
        finally:
            cur.close()


def dbapi_of(conn: Connection) -> Any:
    """Returns the DB-API connection under a SQLAlchemy connection (same transaction)."""
    return conn.connection.dbapi_connection
