"""The interface every backend adapter implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.dml import Insert

OnlyIf = Callable[[ReadOnlyColumnCollection[str, Any]], ColumnElement[bool]]


class UnsupportedBackend(ValueError):
    """Raised for a database backend without an adapter."""


class Dialect:
    """Returns backend-specific statements; subclasses fill in their SQL.

    `single_writer` is true where the database serializes writers itself (SQLite's
    BEGIN IMMEDIATE), so row locks add nothing there. `listens` is true where a commit can wake
    a waiting connection (PostgreSQL's LISTEN/NOTIFY).
    """

    name: str = ""
    single_writer: bool = False
    listens: bool = False  # LISTEN/NOTIFY wake-ups; without them callers poll

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
