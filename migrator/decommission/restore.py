"""Loading a decommission archive back into a database (the recipe of docs/decommission.md).

The archive is checked first (row counts and sha256). A table that does not exist is created from
the manifest's columns (names, types as the source database declared them, NOT NULL, the key as
primary key; no other index or constraint). Values go back through the target table's column
types: ISO text to dates and times, base64 to bytes, decimal text to Decimal, 0/1 to booleans.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, inspect
from sqlalchemy import types as sqltypes

from .archive import ArchiveError, TableArchive, check, read_rows

BATCH_ROWS = 1000


def _parser(column_type: Any) -> Callable[[Any], Any] | None:
    """Returns how an archived value of this column type becomes the Python value its type binds."""
    if isinstance(column_type, sqltypes.DateTime):
        return lambda v: datetime.fromisoformat(v) if isinstance(v, str) else v
    if isinstance(column_type, sqltypes.Date):
        return lambda v: date.fromisoformat(v[:10]) if isinstance(v, str) else v
    if isinstance(column_type, sqltypes.Time):
        return lambda v: time.fromisoformat(v) if isinstance(v, str) else v
    if isinstance(column_type, sqltypes.Boolean):
        return lambda v: bool(v) if isinstance(v, int) else v
    if isinstance(column_type, sqltypes.LargeBinary):
        return lambda v: base64.b64decode(v) if isinstance(v, str) else v
    if isinstance(column_type, sqltypes.Numeric) and getattr(column_type, "asdecimal", False):
        return lambda v: Decimal(v) if isinstance(v, str) else v
    return None


def _create(conn: Connection, entry: TableArchive) -> None:
    quote = conn.dialect.identifier_preparer.quote_identifier  # the backend's own quotes (MySQL: backticks)
    columns = [f"{quote(c['name'])} {c['type']}" + ("" if c.get("nullable", True) else " NOT NULL")
               for c in entry.columns]
    conn.exec_driver_sql(f"CREATE TABLE {quote(entry.table)} ({', '.join(columns)}, "
                         f"PRIMARY KEY ({quote(entry.key)}))")


def _batches(rows: Iterable[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def restore(engine: Engine, directory: Path, tables: Iterable[str] | None = None) -> dict[str, int]:
    """Returns the rows restored per table once the archive in `directory` is checked and its tables (all, or
    `tables`) are loaded, each in one transaction. ArchiveError when the archive does not read back, a table is
    not in it, or the rows restored are not the manifest's count."""
    manifest = check(directory)
    wanted = set(tables) if tables is not None else {t.table for t in manifest.tables}
    missing = wanted - {t.table for t in manifest.tables}
    if missing:
        raise ArchiveError(f"the archive in {directory} holds no table {', '.join(sorted(missing))}")
    restored: dict[str, int] = {}
    for entry in manifest.tables:
        if entry.table not in wanted:
            continue
        with engine.begin() as conn:
            if not inspect(conn).has_table(entry.table):
                _create(conn, entry)
            target = Table(entry.table, MetaData(), autoload_with=conn)
            parsers = {c.name: p for c in target.columns if (p := _parser(c.type)) is not None}
            count = 0
            for batch in _batches(read_rows(directory, entry.table)):
                conn.execute(target.insert(), [{k: parsers[k](v) if k in parsers and v is not None else v
                                                for k, v in row.items()} for row in batch])
                count += len(batch)
            if count != entry.rows:
                raise ArchiveError(f"restored {count:,} rows of {entry.table}, the manifest says {entry.rows:,}")
        restored[entry.table] = count
    return restored
