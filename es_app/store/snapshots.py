"""Latest snapshot per stream, with the version it covers and the state's schema version."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from es_app.dialect import dialect_for

from .engine import write_transaction
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
        values = dataclasses.asdict(snap) | {"taken_at": datetime.now(UTC)}
        stmt = dialect_for(self.engine).upsert(
            snapshots, values, ["stream_id"], ["version", "schema_version", "state", "taken_at"],
            only_if=lambda new: ((snapshots.c.version < new.version)
                                 | (snapshots.c.schema_version != new.schema_version)),
        )
        with write_transaction(self.engine) as conn:
            conn.execute(stmt)
