"""Recorded shadow mismatches: every sampled read whose candidate differed from legacy, in the event-store
database (`migrator_shadow_mismatches`, es revision `migrator_shadow_mismatches`).

A row keeps both values, the fields that differ, the read model's position for the key and the changelog
id the new side stood at (see `Freshness`), and its kind: `lag` when the key (or, for a search, the table)
had changes not relayed or projected yet, else `mismatch`. Only `mismatch` counts against the guard.
JSON is stored ASCII-escaped, so any legacy value round-trips on either backend.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

metadata = MetaData()

MISMATCH, LAG = "mismatch", "lag"

shadow_mismatches = Table(
    "migrator_shadow_mismatches",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("migration", String(200), nullable=False),
    Column("table_name", String(200), nullable=False),
    Column("key", String(400), nullable=False),  # the legacy key, or `search?<query>` for a page
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("kind", String(20), nullable=False),  # mismatch | lag
    Column("fields", Text, nullable=False),  # JSON list of the fields that differ
    Column("legacy", Text, nullable=False),  # JSON: the legacy read (null: no user)
    Column("candidate", Text, nullable=False),  # JSON: the candidate read
    Column("read_model_position", BigInteger, nullable=True),  # the key's row position (search: the checkpoint)
    Column("changelog_id", BigInteger, nullable=True),  # the changelog id the new side stood at
    Index("ix_migrator_shadow_mismatches_migration", "migration", "id"),
)


def _default(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, default=_default)


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """Returns one recorded difference between a legacy read and its candidate."""

    migration: str
    table: str
    key: str
    kind: str
    fields: tuple[str, ...]
    legacy: Any
    candidate: Any
    read_model_position: int | None
    changelog_id: int | None
    recorded_at: datetime | None = None
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "migration": self.migration, "table": self.table, "key": self.key, "kind": self.kind,
                "recorded_at": None if self.recorded_at is None else self.recorded_at.isoformat(timespec="seconds"),
                "fields": list(self.fields), "legacy": json.loads(_dumps(self.legacy)),
                "candidate": json.loads(_dumps(self.candidate)),
                "read_model_position": self.read_model_position, "changelog_id": self.changelog_id}


def record(engine: Engine, found: Mismatch) -> None:
    """Stores one mismatch (its own transaction)."""
    with engine.begin() as conn:
        conn.execute(insert(shadow_mismatches).values(
            migration=found.migration, table_name=found.table, key=found.key[:400],
            recorded_at=found.recorded_at or datetime.now(UTC), kind=found.kind, fields=_dumps(list(found.fields)),
            legacy=_dumps(found.legacy), candidate=_dumps(found.candidate),
            read_model_position=found.read_model_position, changelog_id=found.changelog_id))


def recent(engine: Engine, migration: str, *, kind: str | None = None, limit: int = 20) -> list[Mismatch]:
    """Returns the newest recorded mismatches of the migration (of one kind, if given), newest first."""
    t = shadow_mismatches
    q = select(t).where(t.c.migration == migration)
    if kind is not None:
        q = q.where(t.c.kind == kind)
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(t.c.id.desc()).limit(limit)).mappings().all()
    out = []
    for r in rows:
        at = r["recorded_at"]
        at = at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at
        out.append(Mismatch(r["migration"], r["table_name"], r["key"], r["kind"], tuple(json.loads(r["fields"])),
                            json.loads(r["legacy"]), json.loads(r["candidate"]), r["read_model_position"],
                            r["changelog_id"], at, r["id"]))
    return out
