"""The interface every capture backend implements: what change capture does differently per database.

A backend owns the SQL of:
- the changelog (`changelog_ddl` / `drop_changelog_ddl`) and how its ids are handed out in
  commit order (`high_id`, `raise_id_floor`: a changelog created again starts after a floor;
  `number_committed`: where ids are given after commit, by a sequencer, readers call it first);
- the capture triggers of one table (`trigger_ddl` / `drop_trigger_ddl`, `triggers_installed`),
  writing one changelog row per changed row: op I/U/D (a key change: D then I), `pk` as text,
  the rows as JSON, `tx_time` and the origin;
- the origin marker (`set_origin` / `clear_origin`): how the migrator's own writes tell the
  triggers (and the session hook) their origin, read back by the trigger in the same transaction;
- what the session hook needs (`row_json_expr`, `insert_changes`): the same rows as the triggers;
- the capture history table (`history_ddl`).
What every backend shares (locking, write connections, `%` escaping) comes from
`es_app.dialect`. A new backend is one more module here and one line in `_MODULES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from es_app.dialect import dialect_for

Entry = Mapping[str, Any]  # a changelog row the hook writes: t (table), op, pk, old, new (JSON text or None)


class CaptureBackend(ABC):
    """Returns and runs change capture's SQL for one database backend; each subclass implements every method."""

    name: str = ""
    ids_after_commit: bool = False  # a committed changelog row can still be without id (see `number_committed`)

    # -- the changelog ---------------------------------------------------------
    @abstractmethod
    def changelog_ddl(self) -> list[str]:
        """Returns the statements creating the changelog (and what numbers it) if missing."""

    @abstractmethod
    def drop_changelog_ddl(self) -> list[str]:
        """Returns the statements dropping the changelog and what belongs to it (if present)."""

    @abstractmethod
    def high_id(self, conn: Connection) -> int:
        """Returns the highest id the changelog in place has handed out, 0 when none."""

    @abstractmethod
    def raise_id_floor(self, conn: Connection, floor: int) -> None:
        """Makes the next changelog id at least `floor` + 1 (never lowers it)."""

    @abstractmethod
    def number_committed(self, bind: Engine | Connection) -> int:
        """Gives ids to the committed changelog rows that have none yet, in commit order; returns how many.

        Only where ids are given after commit (MySQL: a sequencer; SQLite and PostgreSQL number
        at INSERT or COMMIT and return 0). With an Engine, in a transaction of its own, committed
        before it returns: call it before the read transaction that should see the ids begins.
        With a Connection, in the caller's transaction, which must commit: a snapshot reader
        then gets a highest id covering every change its snapshot holds.
        """

    # -- the triggers of one table ---------------------------------------------
    @abstractmethod
    def trigger_ddl(self, conn: Connection, table: str, key: str, columns: Sequence[str]) -> list[str]:
        """Returns the statements (re)creating the capture triggers of one table (`columns`: all of them)."""

    @abstractmethod
    def drop_trigger_ddl(self, table: str) -> list[str]:
        """Returns the statements dropping one table's capture triggers (if present)."""

    @abstractmethod
    def triggers_installed(self, conn: Connection, table: str) -> bool:
        """Returns True when the table's capture triggers are in place."""

    # -- the origin marker -----------------------------------------------------
    @abstractmethod
    def set_origin(self, conn: Connection, origin: str) -> None:
        """Marks the writes made on `conn` from now on, in its transaction, with `origin`.

        Raises CaptureNotInstalled when what the marker needs is missing.
        """

    @abstractmethod
    def clear_origin(self, conn: Connection) -> None:
        """Ends `set_origin`: the writes made on `conn` are the legacy app's again."""

    # -- the session hook ------------------------------------------------------
    @abstractmethod
    def row_json_expr(self, conn: Connection, table: str, columns: Sequence[str], alias: str) -> str:
        """Returns the expression of a row of `table` (as `alias`) as JSON text, the same JSON the triggers write."""

    @abstractmethod
    def insert_changes(self, conn: Connection, entries: Sequence[Entry]) -> None:
        """Writes the hook's changelog rows (with the current origin) and wakes the readers where it can."""

    # -- the capture history ---------------------------------------------------
    @abstractmethod
    def history_ddl(self) -> list[str]:
        """Returns the statements creating the capture history table if missing."""

    # -- running the DDL, in the caller's transaction ------------------------------
    def create_changelog(self, conn: Connection) -> None:
        """Creates the changelog (and what numbers it) if missing."""
        self.run(conn, self.changelog_ddl())

    def drop_changelog(self, conn: Connection) -> None:
        """Drops the changelog and what belongs to it (if present)."""
        self.run(conn, self.drop_changelog_ddl())

    def install_triggers(self, conn: Connection, table: str, key: str, columns: Sequence[str]) -> None:
        """(Re)creates the capture triggers of one table."""
        self.run(conn, self.trigger_ddl(conn, table, key, columns))

    def drop_triggers(self, conn: Connection, table: str) -> None:
        """Drops one table's capture triggers (if present)."""
        self.run(conn, self.drop_trigger_ddl(table))

    def create_history(self, conn: Connection) -> None:
        """Creates the capture history table if missing."""
        self.run(conn, self.history_ddl())

    def run(self, conn: Connection, statements: Sequence[str]) -> None:
        """Runs parameterless statements in the caller's transaction (`%` escaped where the driver needs it)."""
        dialect = dialect_for(conn)
        for statement in statements:
            conn.exec_driver_sql(dialect.driver_sql(conn, statement))
