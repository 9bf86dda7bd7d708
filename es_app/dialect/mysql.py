"""MySQL / MariaDB (PyMySQL), as a legacy database: ON DUPLICATE KEY upserts, GET_LOCK, SELECT ... FOR UPDATE.

The event store and its read models run on SQLite or PostgreSQL; the operations only they
use (rebuilding a read model by table swap) refuse this backend with one line. Booleans are
TINYINT(1) (0/1 on the wire) and JSON is text (MariaDB's JSON is LONGTEXT), so the driver-level
operations convert them as SQLite's do. Identifiers are quoted with backticks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, event, literal_column, text
from sqlalchemy.dialects.mysql import insert
from sqlalchemy.sql.dml import Insert

from .base import Dialect, DriverTable, OnlyIf, UnsupportedBackend, bool_in, converter, text_decoder

IN_CHUNK = 1000  # values per `IN` list
LOCK_WAIT_S = 600  # GET_LOCK's wait for a transaction-long lock (a legacy write holds its lock for milliseconds)


def ticked(names: Sequence[str]) -> str:
    """Returns the names backtick-quoted, comma-separated."""
    return ", ".join(f"`{n}`" for n in names)


def _lock_name(key: int) -> str:
    return f"migrator:{key}"


@cache
def _encoder(table: DriverTable) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
    dumps = table.dumps

    def json_in(value: Any) -> Any:
        return None if value is None else dumps(value)

    return converter({i: bool_in if k == "boolean" else json_in
                      for i, k in enumerate(table.kinds) if k in ("boolean", "json")})


@cache
def _upsert_sql(table: DriverTable) -> str:
    """Returns the upsert of one row (for executemany), keeping a stored row whose version is not older.

    Each assignment tests the version against the stored row's before any column is assigned:
    MySQL assigns left to right, so the version column itself is assigned last.
    """
    others = [c for c in table.columns if c != table.key and c != table.version]
    if table.version is None:
        sets = ", ".join(f"`{c}` = VALUES(`{c}`)" for c in others)
    else:
        newer = f"`{table.version}` < VALUES(`{table.version}`)"
        sets = ", ".join([*(f"`{c}` = IF({newer}, VALUES(`{c}`), `{c}`)" for c in others),
                          f"`{table.version}` = GREATEST(`{table.version}`, VALUES(`{table.version}`))"])
    holes = ", ".join(["%s"] * len(table.columns))
    return f"INSERT INTO `{table.name}` ({ticked(table.columns)}) VALUES ({holes}) ON DUPLICATE KEY UPDATE {sets}"


class MySQLDialect(Dialect):
    name = "mysql"
    transactional_ddl = False  # CREATE/DROP/ALTER/TRUNCATE commit implicitly, before and after

    def upsert(self, table: Table, values: Mapping[str, Any] | None, key_columns: Sequence[str],
               update_columns: Sequence[str], only_if: OnlyIf | None = None) -> Insert:
        if only_if is not None:  # MySQL assigns left to right: a condition would see the row half-updated
            raise UnsupportedBackend("conditional upserts are the event store's, on SQLite or PostgreSQL")
        stmt = insert(table)
        if values is not None:
            stmt = stmt.values(dict(values))
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update_columns})

    def insert_ignore(self, table: Table, key_columns: Sequence[str] | None = None,
                      values: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None) -> Insert:
        # not INSERT IGNORE, which also turns other errors (a value too long, a NULL) into warnings:
        # a duplicate key assigns the first key column to itself, a no-op
        stmt = insert(table)
        if values is not None:
            stmt = stmt.values(dict(values) if isinstance(values, Mapping) else [dict(v) for v in values])
        first = key_columns[0] if key_columns else next(iter(table.primary_key.columns)).name
        return stmt.on_duplicate_key_update({first: literal_column(f"`{first}`")})

    def try_advisory_lock(self, conn: Connection, key: int) -> bool:
        return conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": _lock_name(key)}).scalar() == 1

    def advisory_unlock(self, conn: Connection, key: int) -> None:
        conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": _lock_name(key)})

    def lock_for_transaction(self, conn: Connection, key: int) -> None:
        """Waits for a lock on `key` held until the transaction ends.

        MySQL has no transaction-scoped named lock, and its DDL commits implicitly, so the
        lock is GET_LOCK's (session-wide, kept across those implicit commits), released when
        the connection commits or rolls back.
        """
        name = _lock_name(key)
        if conn.execute(text("SELECT GET_LOCK(:n, :s)"), {"n": name, "s": LOCK_WAIT_S}).scalar() != 1:
            raise TimeoutError(f"lock {name} not taken within {LOCK_WAIT_S} s")

        held = [True]

        def end(finish: str) -> Callable[[Connection], None]:
            def release(c: Connection) -> None:  # before SQLAlchemy's own COMMIT/ROLLBACK: end the transaction first
                dbapi = c.connection.dbapi_connection
                if held[0] and dbapi is not None:
                    held[0] = False
                    getattr(dbapi, finish)()
                    cur = dbapi.cursor()
                    try:
                        cur.execute(f"DO RELEASE_LOCK('{name}')")
                    finally:
                        cur.close()
            return release

        on_commit, on_rollback = end("commit"), end("rollback")
        event.listen(conn, "commit", on_commit)
        event.listen(conn, "rollback", on_rollback)

    def snapshot_read_options(self) -> dict[str, Any]:
        return {"isolation_level": "REPEATABLE READ"}

    def write_options(self) -> dict[str, Any]:
        # InnoDB's default REPEATABLE READ would keep a writer on the snapshot of its first read: a writer that
        # waits for others (the reverse projection relaying a key first) must see their commits, as on PostgreSQL
        return {"isolation_level": "READ COMMITTED"}

    def set_driver_autocommit(self, dbapi_conn: Any, on: bool) -> bool:
        dbapi_conn.autocommit(on)
        return True

    def grow_cache(self, conn: Connection, size_bytes: int) -> None:
        """Nothing: InnoDB's buffer pool is the server's."""

    def next_key(self, conn: Connection, table: str, key_column: str, counters: Table) -> int:
        """Returns the table's next AUTO_INCREMENT value, reserved by raising the counter past it.

        The value comes from the counter row (locked until the transaction ends) and the
        table's largest key; the table's AUTO_INCREMENT is then raised past it, so the legacy
        app's own inserts number after it even before the row is inserted.
        """
        key = super().next_key(conn, table, key_column, counters)
        quote = conn.dialect.identifier_preparer.quote
        conn.execute(text(f"ALTER TABLE {quote(table)} AUTO_INCREMENT = {int(key) + 1}"))
        return key

    def _key_floor(self, conn: Connection, table: str) -> int:
        # AUTO_INCREMENT never hands out a key below it again (until a restart of MySQL < 8 recomputes it)
        found = conn.execute(text(
            "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = :t"), {"t": table}).scalar()
        return max(int(found or 1) - 1, 0)

    def select_in(self, cur: Any, table: DriverTable, values: Sequence[Any],
                  columns: Sequence[str] | None = None) -> list[Sequence[Any]]:
        cols = tuple(table.columns if columns is None else columns)
        head = f"SELECT {ticked(cols)} FROM `{table.name}` WHERE `{table.key}` IN "
        decode = text_decoder(table, cols)
        rows: list[Sequence[Any]] = []
        for start in range(0, len(values), IN_CHUNK):
            part = list(values[start:start + IN_CHUNK])
            cur.execute(f'{head}({", ".join(["%s"] * len(part))})', part)
            rows.extend(cur.fetchall() if decode is None else map(decode, cur.fetchall()))
        return rows

    def upsert_newer(self, cur: Any, table: DriverTable, rows: Sequence[Sequence[Any]],
                     absent: Collection[Any] = ()) -> None:
        if rows:
            encode = _encoder(table)
            cur.executemany(_upsert_sql(table), list(rows if encode is None else map(encode, rows)))

    def clone_table_empty(self, conn: Connection, source: str, target: str) -> None:
        raise UnsupportedBackend("read models are rebuilt on SQLite or PostgreSQL, not on MySQL/MariaDB")

    def copy_indexes(self, conn: Connection, source: str, target: str) -> list[tuple[str, str]]:
        raise UnsupportedBackend("read models are rebuilt on SQLite or PostgreSQL, not on MySQL/MariaDB")

    def swap_tables(self, conn: Connection, live: str, target: str, indexes: Sequence[tuple[str, str]]) -> None:
        raise UnsupportedBackend("read models are rebuilt on SQLite or PostgreSQL, not on MySQL/MariaDB")


DIALECT = MySQLDialect()
