"""SQLite capture: four triggers per table, AUTOINCREMENT ids, and a `migrator_origin` row as origin marker.

SQLite has one writer at a time, so AUTOINCREMENT ids already follow commit order. The
rows are `json_object(...)` over the columns reflected at install (binary columns as hex),
so `capture install` is run again after columns are added. The origin marker is a row in
`migrator_origin` that exists only inside the migrator's write transaction: no other
writer can see it, and a crash rolls it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy import types as sqltypes

from ..errors import CaptureNotInstalled
from ..sql import CHANGELOG, HISTORY, HISTORY_ACTIONS, LEGACY_ORIGIN, literal, quote
from .base import CaptureBackend, Entry

ORIGIN_TABLE = "migrator_origin"  # holds a row only inside a migrator write transaction
ORIGIN_EXPR = f"coalesce((SELECT origin FROM {ORIGIN_TABLE} LIMIT 1), '{LEGACY_ORIGIN}')"
NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
TRIGGER_SUFFIXES = ("ins", "upd", "key", "del")

CHANGELOG_DDL = [
    f"""CREATE TABLE IF NOT EXISTS {CHANGELOG} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        table_name TEXT NOT NULL,
        op TEXT NOT NULL CHECK (op IN ('I', 'U', 'D')),
        pk TEXT NOT NULL,
        old_row TEXT,
        new_row TEXT,
        tx_time TEXT NOT NULL,
        origin TEXT NOT NULL DEFAULT '{LEGACY_ORIGIN}'
    )""",
    f"CREATE INDEX IF NOT EXISTS ix_{CHANGELOG}_table_id ON {CHANGELOG} (table_name, id)",
    f"CREATE TABLE IF NOT EXISTS {ORIGIN_TABLE} (origin TEXT NOT NULL)",
]

DROP_CHANGELOG_DDL = [f"DROP TABLE IF EXISTS {CHANGELOG}", f"DROP TABLE IF EXISTS {ORIGIN_TABLE}"]

HISTORY_DDL = [
    f"""CREATE TABLE IF NOT EXISTS {HISTORY} (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        action TEXT NOT NULL CHECK (action IN ({", ".join(literal(a) for a in HISTORY_ACTIONS)})),
        table_name TEXT,
        generation TEXT,
        last_id INTEGER NOT NULL DEFAULT 0
    )""",
]


def trigger_names(table: str) -> list[str]:
    """Returns the names of one table's four capture triggers."""
    return [f"migrator_capture_{table}_{s}" for s in TRIGGER_SUFFIXES]


def row_json(prefix: str, columns: Sequence[str], binary: Iterable[str] = ()) -> str:
    """Returns a json_object(...) expression of a row; `prefix` is NEW, OLD or a table alias."""
    binary = set(binary)
    parts = []
    for c in columns:
        ref = f"{prefix}.{quote(c)}"
        value = f"hex({ref})" if c in binary else ref
        parts.append(f"{literal(c)}, {value}")
    return f"json_object({', '.join(parts)})"


def binary_columns(conn: Connection, table: str) -> list[str]:
    """Returns the table's columns stored as hex in the JSON rows (binary, or of no declared type)."""
    return [c["name"] for c in inspect(conn).get_columns(table)
            if isinstance(c["type"], (sqltypes.LargeBinary, sqltypes.NullType))]


class SQLiteCapture(CaptureBackend):
    name = "sqlite"

    def changelog_ddl(self) -> list[str]:
        return list(CHANGELOG_DDL)

    def drop_changelog_ddl(self) -> list[str]:
        return list(DROP_CHANGELOG_DDL)

    def high_id(self, conn: Connection) -> int:
        return conn.execute(text(
            f"SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{CHANGELOG}'), 0)")).scalar() or 0

    def raise_id_floor(self, conn: Connection, floor: int) -> None:
        self.run(conn, [
            f"DELETE FROM sqlite_sequence WHERE name = '{CHANGELOG}' AND seq < {int(floor)}",
            f"INSERT INTO sqlite_sequence (name, seq) SELECT '{CHANGELOG}', {int(floor)} "
            f"WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = '{CHANGELOG}')"])

    def number_committed(self, bind: Engine | Connection) -> int:
        return 0  # ids are given at INSERT, by one writer at a time

    def trigger_ddl(self, conn: Connection, table: str, key: str, columns: Sequence[str]) -> list[str]:
        t, k = quote(table), quote(key)
        name = dict(zip(TRIGGER_SUFFIXES, (quote(n) for n in trigger_names(table)), strict=True))
        binary = binary_columns(conn, table)
        old, new = row_json("OLD", columns, binary), row_json("NEW", columns, binary)

        def entry(op: str, pk: str, old_row: str, new_row: str) -> str:
            return (f"INSERT INTO {CHANGELOG} (table_name, op, pk, old_row, new_row, tx_time, origin) VALUES "
                    f"({literal(table)}, '{op}', CAST({pk} AS TEXT), {old_row}, {new_row}, {NOW}, "
                    f"{ORIGIN_EXPR});")

        return [
            *self.drop_trigger_ddl(table),
            f"CREATE TRIGGER {name['ins']} AFTER INSERT ON {t} FOR EACH ROW BEGIN "
            f"{entry('I', f'NEW.{k}', 'NULL', new)} END",
            f"CREATE TRIGGER {name['upd']} AFTER UPDATE ON {t} FOR EACH ROW WHEN OLD.{k} IS NEW.{k} BEGIN "
            f"{entry('U', f'NEW.{k}', old, new)} END",
            f"CREATE TRIGGER {name['key']} AFTER UPDATE ON {t} FOR EACH ROW WHEN OLD.{k} IS NOT NEW.{k} BEGIN "
            f"{entry('D', f'OLD.{k}', old, 'NULL')} {entry('I', f'NEW.{k}', 'NULL', new)} END",
            f"CREATE TRIGGER {name['del']} AFTER DELETE ON {t} FOR EACH ROW BEGIN "
            f"{entry('D', f'OLD.{k}', old, 'NULL')} END",
        ]

    def drop_trigger_ddl(self, table: str) -> list[str]:
        return [f"DROP TRIGGER IF EXISTS {quote(n)}" for n in trigger_names(table)]

    def triggers_installed(self, conn: Connection, table: str) -> bool:
        names = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
                                 {"t": table}).scalars())
        return set(trigger_names(table)) <= names

    def set_origin(self, conn: Connection, origin: str) -> None:
        if not inspect(conn).has_table(ORIGIN_TABLE):
            raise CaptureNotInstalled()
        conn.execute(text(f"DELETE FROM {ORIGIN_TABLE}"))
        conn.execute(text(f"INSERT INTO {ORIGIN_TABLE} (origin) VALUES (:o)"), {"o": origin})

    def clear_origin(self, conn: Connection) -> None:
        conn.execute(text(f"DELETE FROM {ORIGIN_TABLE}"))

    def row_json_expr(self, conn: Connection, table: str, columns: Sequence[str], alias: str) -> str:
        return row_json(alias, columns, binary_columns(conn, table))

    def insert_changes(self, conn: Connection, entries: Sequence[Entry]) -> None:
        conn.execute(text(
            f"INSERT INTO {CHANGELOG} (table_name, op, pk, old_row, new_row, tx_time, origin) "
            f"VALUES (:t, :op, :pk, :old, :new, {NOW}, {ORIGIN_EXPR})"), [dict(e) for e in entries])

    def history_ddl(self) -> list[str]:
        return list(HISTORY_DDL)


BACKEND = SQLiteCapture()
