"""SQLite: ON CONFLICT upserts; BEGIN IMMEDIATE serializes writers, so no row or advisory locks.

Booleans are stored as 0/1 and JSON as text: the driver-level operations convert them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, text
from sqlalchemy.dialects.sqlite import insert

from .base import DriverTable, OnConflictDialect, bool_in, converter, quoted, text_decoder

_PLAIN = (str, int, float, type(None))  # values the driver stores as SQLAlchemy's types would (bools, JSON: not)
IN_CHUNK = 1000  # values per `IN` list: well under SQLite's limit of bound parameters


@cache
def _encoder(table: DriverTable) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
    """Returns the conversion of a row to what SQLite stores (booleans 1/0, JSON as text, None as 'null')."""
    dumps = table.dumps
    return converter({i: bool_in if k == "boolean" else dumps
                      for i, k in enumerate(table.kinds) if k in ("boolean", "json")})


@cache
def _upsert_sql(table: DriverTable) -> str:
    """Returns the upsert of one row (for executemany), keeping a stored row whose version is not older."""
    t = table.name
    sets = ", ".join(f'"{c}" = excluded."{c}"' for c in table.columns if c != table.key)
    newer = "" if table.version is None else f' WHERE "{t}"."{table.version}" < excluded."{table.version}"'
    return (f'INSERT INTO "{t}" ({quoted(table.columns)}) VALUES ({", ".join("?" * len(table.columns))}) '
            f'ON CONFLICT ("{table.key}") DO UPDATE SET {sets}{newer}')


def _index_defs(conn: Connection, table: str) -> list[tuple[str, str]]:
    return [(n, d) for n, d in conn.execute(text(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL "
        "ORDER BY name"), {"t": table})]


class SQLiteDialect(OnConflictDialect):
    name = "sqlite"
    single_writer = True
    _insert = staticmethod(insert)

    def snapshot_read_options(self) -> dict[str, Any]:
        return {}  # a DEFERRED transaction already reads one snapshot

    def write_options(self) -> dict[str, Any]:
        return {"sqlite_begin": "IMMEDIATE"}  # es_app.store.engine's BEGIN hook: writers queue, never upgrade

    def grow_cache(self, conn: Connection, size_bytes: int) -> None:
        conn.exec_driver_sql(f"PRAGMA cache_size=-{size_bytes // 1024}")  # negative: KiB, not pages

    def set_driver_autocommit(self, dbapi_conn: Any, on: bool) -> bool:
        return False  # the engine runs sqlite3 with isolation_level None and emits BEGIN itself

    def _key_floor(self, conn: Connection, table: str) -> int:
        # an AUTOINCREMENT table never reuses the keys of deleted rows: sqlite_sequence holds its highest
        if not conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).first():
            return 0
        seq = conn.execute(text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table}).scalar()
        return int(seq or 0)

    def read_together(self, cur: Any, reads: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Any]]:
        return super().read_together(cur, [(statement.replace("%s", "?"), params) for statement, params in reads])

    def select_in(self, cur: Any, table: DriverTable, values: Sequence[Any],
                  columns: Sequence[str] | None = None) -> list[Sequence[Any]]:
        cols = tuple(table.columns if columns is None else columns)
        head = f'SELECT {quoted(cols)} FROM "{table.name}" WHERE "{table.key}" IN '
        decode = text_decoder(table, cols)
        rows: list[Sequence[Any]] = []
        for start in range(0, len(values), IN_CHUNK):
            part = list(values[start:start + IN_CHUNK])
            cur.execute(f'{head}({", ".join("?" * len(part))})', part)
            rows.extend(cur.fetchall() if decode is None else map(decode, cur.fetchall()))
        return rows

    def upsert_newer(self, cur: Any, table: DriverTable, rows: Sequence[Sequence[Any]],
                     absent: Collection[Any] = ()) -> None:
        if rows:
            encode = _encoder(table)
            cur.executemany(_upsert_sql(table), rows if encode is None else map(encode, rows))

    def insert_ignore_many(self, conn: Connection, table: Table, key_columns: Sequence[str],
                           rows: Sequence[Mapping[str, Any]], same: Mapping[str, Any],
                           dumps: Callable[[Any], str] = json.dumps) -> int:
        """Rows of plain values (text, numbers, NULL) go in by one executemany of driver SQL, without
        SQLAlchemy's work per row (a backfill's claims: 5,000 a chunk); others as the base does."""
        if not rows:
            return 0
        columns = (*rows[0], *same)
        values = [(*r.values(), *same.values()) for r in rows]
        if any(type(v) not in _PLAIN for row in values for v in row):  # rows share their keys (the contract)
            return super().insert_ignore_many(conn, table, key_columns, rows, same, dumps)
        return conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({quoted(columns)}) VALUES '
                                    f'({", ".join("?" * len(columns))}) ON CONFLICT ({quoted(key_columns)}) DO NOTHING',
                                    values).rowcount

    def clone_table_empty(self, conn: Connection, source: str, target: str) -> None:
        conn.execute(text(f"DROP TABLE IF EXISTS {target}"))
        ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                           {"t": source}).scalar_one()
        head = rf'^CREATE TABLE\s+"?{re.escape(source)}"?'
        conn.execute(text(re.sub(head, f"CREATE TABLE {target}", ddl, count=1)))

    def copy_indexes(self, conn: Connection, source: str, target: str) -> list[tuple[str, str]]:
        return []  # SQLite renames no index: swap_tables builds them on the renamed table

    def swap_tables(self, conn: Connection, live: str, target: str, indexes: Sequence[tuple[str, str]]) -> None:
        ddls = _index_defs(conn, live)
        conn.execute(text(f"DROP TABLE {live}"))
        conn.execute(text(f"ALTER TABLE {target} RENAME TO {live}"))
        for _, ddl in ddls:
            conn.execute(text(ddl))


DIALECT = SQLiteDialect()
