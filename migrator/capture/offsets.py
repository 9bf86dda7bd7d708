"""The relay's checkpoint: the last changelog id relayed, per table, in the event-store database.

It moves in the same transaction as the events it accounts for. With it: the changelog
generation it read and how far it has read the capture history (es revision
`migrator_capture_gaps`; see `migrator.capture.gaps`).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Connection, DateTime, MetaData, String, Table, select, update

from es_app.dialect import dialect_for

metadata = MetaData()

offsets = Table(
    "migrator_offsets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("generation", String(36), nullable=True),
    Column("history_seq", BigInteger, nullable=True),
    Column("id_base", BigInteger, nullable=True),
)


@dataclasses.dataclass(frozen=True)
class OffsetState:
    """Returns a relay checkpoint: position, changelog generation read, capture history read up to, last move."""

    position: int
    generation: str | None = None
    history_seq: int = 0
    updated_at: datetime | None = None
    id_base: int = 0  # added to changelog ids once they restarted below the offset: ids the relay uses stay unique


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
    dialect = dialect_for(conn)
    conn.execute(dialect.insert_ignore(offsets, values={"name": name, "position": 0, "updated_at": datetime.now(UTC)}))
    return conn.execute(dialect.lock_rows(select(offsets.c.position).where(offsets.c.name == name))).scalar_one()


def _state(row) -> OffsetState:
    at = row.updated_at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return OffsetState(row.position, row.generation, row.history_seq or 0, at, row.id_base or 0)


def get_state(conn: Connection, name: str) -> OffsetState | None:
    """Returns the stored checkpoint, None when there is none (no lock)."""
    row = conn.execute(select(offsets).where(offsets.c.name == name)).first()
    return None if row is None else _state(row)


def lock_state(conn: Connection, name: str) -> OffsetState:
    """Returns the checkpoint like `lock_offset` (created if needed, locked until commit), with its other columns."""
    lock_offset(conn, name)
    return _state(conn.execute(select(offsets).where(offsets.c.name == name)).one())


def save_capture_state(conn: Connection, name: str, generation: str | None, history_seq: int,
                       id_base: int) -> None:
    """Stores the generation read, the history seq accounted for and the id base, in the caller's transaction."""
    conn.execute(update(offsets).where(offsets.c.name == name)
                 .values(generation=generation, history_seq=history_seq, id_base=id_base))


def save_offset(conn: Connection, name: str, position: int) -> None:
    """Stores the position in the caller's transaction (after `lock_offset`)."""
    conn.execute(update(offsets).where(offsets.c.name == name)
                 .values(position=position, updated_at=datetime.now(UTC)))


def reset_offset(conn: Connection, name: str, position: int = 0) -> None:
    """Moves the checkpoint back (or forward) by hand; a re-run relays nothing twice (event ids)."""
    lock_offset(conn, name)
    save_offset(conn, name, position)
