"""Latest snapshot per stream, with the version it covers and the state's schema version."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from .engine import is_sqlite, write_transaction
from .schema import snapshots


@dataclasses.dataclass(frozen=True)
class Snapshot:
    stream_id: str
    version: int
    schema_version: int
    state: dict[str, Any]


class SnapshotStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, stream_id: str) -> Snapshot | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(snapshots).where(snapshots.c.stream_id == stream_id)).first()
        return None if row is None else Snapshot(row.stream_id, row.version, row.schema_version, row.state)

    def save(self, snap: Snapshot) -> None:
        """Stores `snap` unless a snapshot of a later version with the same schema is already there."""
        if is_sqlite(self.engine):
            from sqlalchemy.dialects.sqlite import insert
        else:
            # assignment: the other dialect's Insert, with the same on_conflict_do_update
            from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
        values = dataclasses.asdict(snap) | {"taken_at": datetime.now(UTC)}
        stmt = insert(snapshots).values(**values)
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[snapshots.c.stream_id],
            set_={k: excluded[k] for k in ("version", "schema_version", "state", "taken_at")},
            where=(snapshots.c.version < excluded.version) | (snapshots.c.schema_version != excluded.schema_version),
        )
        with write_transaction(self.engine) as conn:
            conn.execute(stmt)
