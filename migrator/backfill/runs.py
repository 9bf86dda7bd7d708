"""The backfill's checkpoint: one row per backfilled table in the event-store database.

The row moves in the same transaction as the chunk's appends, so after a crash
it names exactly the last chunk whose events are stored.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)

metadata = MetaData()

backfill_runs = Table(
    "migrator_backfill_runs",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("table_name", String(200), nullable=False),
    Column("status", String(20), nullable=False),  # "running" or "done"
    Column("last_key", Text, nullable=True),  # JSON (non-JSON keys such as UUIDs as text): the last key stored
    Column("rows_done", BigInteger, nullable=False),
    Column("rows_imported", BigInteger, nullable=False),
    Column("rows_skipped", BigInteger, nullable=False),
    Column("rows_parked", BigInteger, nullable=False, server_default="0"),  # rows parked (see migrator.parking.entries)
    Column("chunks", Integer, nullable=False),
    Column("watermark", BigInteger, nullable=True),  # changelog watermark of the last chunk
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

RUNNING, DONE = "running", "done"


@dataclasses.dataclass
class BackfillRun:
    """Returns the progress of one table's backfill, as last committed."""

    name: str
    table_name: str
    status: str = RUNNING
    last_key: Any = None
    rows_done: int = 0
    rows_imported: int = 0
    rows_skipped: int = 0
    rows_parked: int = 0
    chunks: int = 0
    watermark: int | None = None
    started_at: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status == DONE

    def _values(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["last_key"] = None if self.last_key is None else json.dumps(self.last_key, default=str)
        return values


def load_run(conn: Connection, name: str) -> BackfillRun | None:
    """Returns the stored run of that name, or None when there is none."""
    row = conn.execute(select(backfill_runs).where(backfill_runs.c.name == name)).mappings().first()
    if row is None:
        return None
    values = dict(row)
    values["last_key"] = None if values["last_key"] is None else json.loads(values["last_key"])
    return BackfillRun(**values)


def save_run(conn: Connection, run: BackfillRun) -> None:
    """Stores the run in the caller's transaction (insert or update)."""
    run.updated_at = datetime.now(UTC)
    values = run._values()
    updated = conn.execute(backfill_runs.update().where(backfill_runs.c.name == run.name)
                           .values(**{k: v for k, v in values.items() if k != "name"}))
    if updated.rowcount == 0:
        conn.execute(backfill_runs.insert().values(**values))


def delete_run(conn: Connection, name: str) -> None:
    conn.execute(backfill_runs.delete().where(backfill_runs.c.name == name))
