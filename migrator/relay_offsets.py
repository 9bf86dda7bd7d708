"""The relay's checkpoint: the last changelog id relayed, per table, in the event-store database.

It moves in the same transaction as the events it accounts for.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, Column, Connection, DateTime, MetaData, String, Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

metadata = MetaData()

offsets = Table(
    "migrator_offsets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def offset_name(table: str) -> str:
    """Returns the checkpoint name of the relay of one legacy table."""
    return f"relay:{table}"


def get_offset(conn: Connection, name: str) -> int:
    """Returns the stored position, 0 when there is none."""
    return conn.execute(select(offsets.c.position).where(offsets.c.name == name)).scalar() or 0


def lock_offset(conn: Connection, name: str) -> int:
    """Returns the stored position, creating the row if needed and locking it until commit (PostgreSQL).

    On SQLite the caller's BEGIN IMMEDIATE already excludes every other writer.
    """
    ins = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    conn.execute(ins(offsets).values(name=name, position=0, updated_at=datetime.now(timezone.utc))
                 .on_conflict_do_nothing())
    return conn.execute(select(offsets.c.position).where(offsets.c.name == name).with_for_update()).scalar_one()


def save_offset(conn: Connection, name: str, position: int) -> None:
    """Stores the position in the caller's transaction (after `lock_offset`)."""
    conn.execute(update(offsets).where(offsets.c.name == name)
                 .values(position=position, updated_at=datetime.now(timezone.utc)))


def reset_offset(conn: Connection, name: str, position: int = 0) -> None:
    """Moves the checkpoint back (or forward) by hand; a re-run relays nothing twice (event ids)."""
    lock_offset(conn, name)
    save_offset(conn, name, position)
