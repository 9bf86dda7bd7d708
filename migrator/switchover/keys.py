"""Legacy keys for users created through the event-sourced writes: never one a legacy insert can take.

A user created while writes are switched needs an integer key before its stream (`user-<key>`)
exists, and the legacy table must never get another row with that key: not from another program
inserting directly, nor after a rollback to legacy writes. `allocate_key` asks the dialect's
`next_key` in the caller's legacy write transaction, which then inserts the row (PostgreSQL: the
key column's sequence; SQLite: after the table's highest key and the last key handed out, kept in
`migrator_keys`, under the write lock that also covers the row's insert).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, MetaData, String, Table

from es_app.dialect import dialect_for

from ..mapping import CompiledMapping

metadata = MetaData()

keys = Table(
    "migrator_keys",
    metadata,
    Column("table_name", String(200), primary_key=True),
    Column("last_key", BigInteger, nullable=False),
)


def allocate_key(conn: Connection, mapping: CompiledMapping) -> int:
    """Returns a new key of the mapping's table, in the caller's legacy write transaction (which should insert
    its row). Raises ValueError for a table whose key is not an integer."""
    if mapping.coerce.get(mapping.key, "int") != "int":
        raise ValueError(f"table {mapping.table}: new keys are integers, its key {mapping.key!r} is not")
    return dialect_for(conn).next_key(conn, mapping.table, mapping.key, keys)
