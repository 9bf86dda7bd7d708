"""The interface every backend adapter implements."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, select, text
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.dml import Insert

OnlyIf = Callable[[ReadOnlyColumnCollection[str, Any]], ColumnElement[bool]]


class UnsupportedBackend(ValueError):
    """Raised for a database backend without an adapter."""


KINDS = ("text", "boolean", "integer", "bigint", "json")


@dataclass(frozen=True)
class DriverTable:
    """A table as the DB-API statements of `select_in` and `upsert_newer` see it.

    `kinds` gives each column's kind, one of KINDS: booleans are Python bools and "json"
    columns Python values (None, dict, list, ...) on the way in and out, whatever the backend
    stores. `key` is the unique column rows are found and upserted by; `version` the column
    whose higher value wins an upsert (None: the incoming row always wins). `dumps` and `loads`
    encode and decode the JSON columns (and, where a backend ships a batch as one JSON
    document, the batch).
    """

    name: str
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    key: str
    version: str | None = None
    dumps: Callable[[Any], str] = json.dumps
    loads: Callable[[Any], Any] = json.loads

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(KINDS))
        if len(self.kinds) != len(self.columns) or unknown:
            raise ValueError(f"one kind per column, of {KINDS}: {self.kinds!r}")
        if self.key not in self.columns or (self.version is not None and self.version not in self.columns):
            raise ValueError(f"key {self.key!r} and version {self.version!r} must be columns of {self.name!r}")

    def kind_of(self, column: str) -> str:
        return self.kinds[self.columns.index(column)]


def quoted(names: Sequence[str]) -> str:
    """Returns the names double-quoted, comma-separated (the SQL standard's quoting: SQLite, PostgreSQL)."""
    return ", ".join(f'"{n}"' for n in names)


def converter(funcs: Mapping[int, Callable[[Any], Any]]) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
    """Returns a function applying `funcs` (index -> conversion) to a row's values, None when there are none."""
    items = tuple(funcs.items())
    if not items:
        return None

    def convert(row: Sequence[Any]) -> list[Any]:
        out = list(row)
        for i, func in items:
            out[i] = func(out[i])
        return out

    return convert


def bool_in(value: Any) -> Any:
    """Returns a bool as the 0/1 that SQLite and MySQL store (None stays None)."""
    return None if value is None else int(value)


def bool_out(value: Any) -> Any:
    """Returns a stored 0/1 as bool (None stays None)."""
    return None if value is None else bool(value)


@cache
def text_decoder(table: DriverTable, columns: tuple[str, ...]) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
    """Returns the conversion of a row read where booleans are 0/1 and JSON is text (SQLite, MySQL), None when
    `columns` hold neither."""
    loads = table.loads

    def json_out(value: Any) -> Any:
        return None if value is None else loads(value)

    kinds = [table.kind_of(c) for c in columns]
    return converter({i: bool_out if k == "boolean" else json_out
                      for i, k in enumerate(kinds) if k in ("boolean", "json")})


class Dialect:
    """Returns backend-specific statements; subclasses fill in their SQL.

    `single_writer` is true where the database serializes writers itself (SQLite's
    BEGIN IMMEDIATE), so row locks add nothing there. `listens` is true where a commit can wake
    a waiting connection (PostgreSQL's LISTEN/NOTIFY). `transactional_ddl` is false where
    CREATE/DROP commit implicitly (MySQL/MariaDB): callers order their DDL so that a failure between
    two statements leaves a safe state.
    """

    name: str = ""
    single_writer: bool = False
    listens: bool = False  # LISTEN/NOTIFY wake-ups; without them callers poll
    transactional_ddl: bool = True  # DDL rolls back with its transaction (not MySQL's: each DDL commits by itself)
    commits_with_last_write: bool = False  # `writes_with_commit` saves a round trip (PostgreSQL)

    def upsert(self, table: Table, values: Mapping[str, Any] | None, key_columns: Sequence[str],
               update_columns: Sequence[str], only_if: OnlyIf | None = None) -> Insert:
        """Returns an INSERT of `values` that updates `update_columns` when a row with the same keys exists.

        `only_if(incoming)` returns the condition (on the table's columns and the incoming
        row's) under which the existing row is updated; without it, it always is.
        """
        raise NotImplementedError

    def insert_ignore(self, table: Table, key_columns: Sequence[str] | None = None,
                      values: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None) -> Insert:
        """Returns an INSERT that skips rows whose keys already exist (values here or at execute time).

        Without `key_columns` a row conflicting on any unique constraint is skipped.
        """
        raise NotImplementedError

    def lock_rows(self, query: Select[Any]) -> Select[Any]:
        """Returns the query locking the rows it reads until the transaction ends."""
        return query if self.single_writer else query.with_for_update()

    @property
    def row_lock_clause(self) -> str:
        """Returns what a driver-level SELECT ends with to lock the rows it reads (`lock_rows` in SQL)."""
        return "" if self.single_writer else " FOR UPDATE"

    def read_together(self, cur: Any, reads: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Any]]:
        """Returns the rows of each read, driver-level SQL written with %s placeholders, run in order
        on the cursor's connection (in its transaction); on PostgreSQL in one round trip."""
        out = []
        for statement, params in reads:
            cur.execute(statement, params)
            out.append(cur.fetchall())
        return out

    @contextlib.contextmanager
    def writes_with_commit(self, cur: Any) -> Iterator[None]:
        """Runs a transaction's last writes, made in the block on `cur`'s connection, and where
        `commits_with_last_write` its COMMIT after them, in one round trip (PostgreSQL: the block's
        statements are pipelined, so none of them may read a result, and `rowcount` is -1 in it; an
        exception inside it sends what was queued but no COMMIT). The transaction is then committed,
        its own commit has nothing left to do, and nothing may be executed in it after the block.
        Elsewhere the block runs as written and the caller commits (SQLite commits in process: there
        is no round trip to save, and its driver SQL takes ? rather than %s)."""
        yield

    def try_advisory_lock(self, conn: Connection, key: int) -> bool:
        """Returns whether a session-wide lock on `key` was taken (always true without such locks)."""
        return True

    def advisory_unlock(self, conn: Connection, key: int) -> None:
        """Releases a lock taken by try_advisory_lock (nothing without such locks)."""

    def lock_for_transaction(self, conn: Connection, key: int) -> None:
        """Waits for a lock on `key` held until the transaction ends (nothing where writers are serialized)."""

    def snapshot_read_options(self) -> dict[str, Any]:
        """Returns the execution options of a read-only transaction that sees one snapshot throughout."""
        return {"isolation_level": "REPEATABLE READ"}

    def write_options(self) -> dict[str, Any]:
        """Returns the execution options of a connection whose transactions will write."""
        return {}

    def driver_sql(self, conn: Connection, statement: str) -> str:
        """Returns a parameterless statement for exec_driver_sql, its `%` escaped for format-style drivers."""
        return statement.replace("%", "%%") if conn.dialect.paramstyle in ("format", "pyformat") else statement

    def grow_cache(self, conn: Connection, size_bytes: int) -> None:
        """Lets this connection cache up to `size_bytes` of database pages (SQLite's cache_size, for
        writes spread at random over a big index); nothing where the server sizes its own cache."""

    def set_driver_autocommit(self, dbapi_conn: Any, on: bool) -> bool:
        """Returns whether the DB-API connection's autocommit was switched to `on`.

        False, having done nothing, where the driver opens no transaction of its own before a
        statement (SQLite here: the engine emits BEGIN itself), so reads are one round trip already.
        """
        raise NotImplementedError

    def select_in(self, cur: Any, table: DriverTable, values: Sequence[Any],
                  columns: Sequence[str] | None = None) -> list[Sequence[Any]]:
        """Returns the rows of `table` whose key is one of `values`, read on a DB-API cursor.

        Each row holds `columns` (default: all of the table's) in that order, booleans as bool
        and JSON columns decoded. Any number of values: the backend splits them into as many
        statements as its parameter limits need.
        """
        raise NotImplementedError

    def upsert_newer(self, cur: Any, table: DriverTable, rows: Sequence[Sequence[Any]],
                     absent: Collection[Any] = ()) -> None:
        """Writes `rows` (value tuples in `table.columns` order) on a DB-API cursor; returns nothing.

        A row is inserted, or replaces the stored row with its key when the stored row's
        `table.version` is lower; otherwise the stored row stays. `absent` holds keys the
        caller knows are not stored (and holds a lock so that no one stores them meanwhile):
        the backend may bulk-copy those rows instead, and falls back to the upsert, having
        written none of them, if one was stored after all.
        """
        raise NotImplementedError

    def bulk_copy(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Inserts new `rows` (mappings with the same keys: column names) the fastest way the backend has.

        Returns nothing; a row whose key exists raises IntegrityError. Runs in the connection's
        transaction. The default is one executemany of the table's INSERT; PostgreSQL COPYs the
        values to the driver as they are, bypassing SQLAlchemy's bind processing, so they must
        be what the driver takes for the column's type (str, bool, int, datetime, ...).
        """
        if rows:
            conn.execute(table.insert(), list(rows))

    def insert_ignore_many(self, conn: Connection, table: Table, key_columns: Sequence[str],
                           rows: Sequence[Mapping[str, Any]], same: Mapping[str, Any],
                           dumps: Callable[[Any], str] = json.dumps) -> int:
        """Inserts `rows` plus the `same` values (columns with one value for every row); returns how many went in
        (-1 inside `writes_with_commit` on PostgreSQL, where no result is read).

        A row whose `key_columns` exist is skipped. `rows` are mappings with the same keys,
        in the table's SQLAlchemy types; `dumps` encodes them where a backend ships the batch
        as one JSON document (PostgreSQL), so their values must be JSON values there.
        """
        if not rows:
            return 0
        shared = dict(same)
        return conn.execute(self.insert_ignore(table, key_columns), [{**r, **shared} for r in rows]).rowcount

    def next_key(self, conn: Connection, table: str, key_column: str, counters: Table) -> int:
        """Returns a new integer key for a row of `table` that no insert into the table can take.

        Call it in a write transaction (see `write_options`) that inserts the row with that key.
        `counters` is a table (table_name text primary key, last_key integer), created here when
        missing, that remembers the last key handed out per table. The default (SQLite): one more
        than the highest of the table's largest key (and, on SQLite, of sqlite_sequence's) and the
        last key handed out, under the transaction's write lock, so
        an insert by another writer waits for the row and then numbers after it. PostgreSQL takes
        the next value of the key column's sequence, as the table's own inserts do. MySQL/MariaDB
        would raise the table's AUTO_INCREMENT past the key (LAST_INSERT_ID over the counter).
        """
        quote = conn.dialect.identifier_preparer.quote
        counters.create(conn, checkfirst=True)
        last = conn.execute(self.lock_rows(select(counters.c.last_key).where(
            counters.c.table_name == table))).scalar()
        top = conn.execute(text(f"SELECT max({quote(key_column)}) FROM {quote(table)}")).scalar()
        key = max(int(last or 0), int(top or 0), self._key_floor(conn, table)) + 1
        conn.execute(self.upsert(counters, {"table_name": table, "last_key": key}, ["table_name"], ["last_key"]))
        return key

    def _key_floor(self, conn: Connection, table: str) -> int:
        """Returns a key the backend itself remembers having used for the table (0 when it keeps none)."""
        return 0

    def clone_table_empty(self, conn: Connection, source: str, target: str) -> None:
        """Creates table `target` empty, shaped like `source` (its columns, defaults, constraints and
        primary key, not its secondary indexes), dropping an existing `target` first; returns nothing."""
        raise NotImplementedError

    def copy_indexes(self, conn: Connection, source: str, target: str) -> list[tuple[str, str]]:
        """Returns (temporary name, final name) pairs of `source`'s secondary indexes, built now on `target`.

        The pairs are for `swap_tables`. Returns [] and builds nothing where indexes cannot be
        renamed (SQLite: `swap_tables` builds them afresh instead).
        """
        raise NotImplementedError

    def swap_tables(self, conn: Connection, live: str, target: str, indexes: Sequence[tuple[str, str]]) -> None:
        """Drops `live` and renames `target` into its place, with `live`'s primary key and secondary
        indexes (those `copy_indexes` built, renamed to their final names); returns nothing."""
        raise NotImplementedError


class OnConflictDialect(Dialect):
    """Backends with INSERT ... ON CONFLICT (SQLite, PostgreSQL); `_insert` is their dialect's insert()."""

    _insert: Callable[[Table], Any]

    def upsert(self, table: Table, values: Mapping[str, Any] | None, key_columns: Sequence[str],
               update_columns: Sequence[str], only_if: OnlyIf | None = None) -> Insert:
        stmt = self._insert(table)
        if values is not None:
            stmt = stmt.values(dict(values))
        return stmt.on_conflict_do_update(index_elements=list(key_columns),
                                          set_={c: stmt.excluded[c] for c in update_columns},
                                          where=None if only_if is None else only_if(stmt.excluded))

    def insert_ignore(self, table: Table, key_columns: Sequence[str] | None = None,
                      values: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None) -> Insert:
        stmt = self._insert(table)
        if values is not None:
            stmt = stmt.values(dict(values) if isinstance(values, Mapping) else [dict(v) for v in values])
        return stmt.on_conflict_do_nothing(index_elements=list(key_columns) if key_columns else None)
