"""Data-quality findings: dirty legacy data that was imported anyway, recorded for the operator.

Legacy data is the truth until writes switch, so an import never drops or blocks a row for
it; what the new side cannot take as it is (e.g. two rows whose emails differ only by case,
of which only one can hold the email's claim) is recorded here, in the event-store database,
in the same transaction as the import. A finding is recorded once: (kind, table, key, value)
is unique, so re-running a backfill or the relay adds none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    inspect,
    select,
)

from es_app.dialect import dialect_for

metadata = MetaData()

findings = Table(
    "migrator_findings",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(100), nullable=False),  # e.g. duplicate_email: duplicate_<unique field>
    Column("table_name", String(200), nullable=False),
    Column("key", String(255), nullable=False),  # legacy key of the row the finding is about
    Column("other_key", String(255), nullable=True),  # the other row's key (or stream id) involved, if any
    Column("value", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("found_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("kind", "table_name", "key", "value", name="uq_migrator_findings"),
    Index("ix_migrator_findings_table_kind", "table_name", "kind"),
)


@dataclasses.dataclass(frozen=True)
class Finding:
    """Returns one data-quality finding; `id` and `found_at` are set once stored."""

    kind: str
    table_name: str
    key: str
    value: str
    detail: str
    other_key: str | None = None
    id: int | None = None
    found_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "table_name": self.table_name, "key": self.key,
                "other_key": self.other_key, "value": self.value, "detail": self.detail,
                "found_at": self.found_at.isoformat() if self.found_at else None}


def duplicate_kind(field: str) -> str:
    """Returns the kind of a finding about a unique field's value held by another row: `duplicate_<field>`."""
    return f"duplicate_{field}"


def record_findings(conn: Connection, found: Iterable[Finding]) -> int:
    """Stores the findings in the caller's transaction, skipping those already stored; returns how many are new."""
    now = datetime.now(UTC)
    rows = [{"kind": f.kind, "table_name": f.table_name, "key": str(f.key), "other_key": f.other_key,
             "value": f.value, "detail": f.detail, "found_at": now} for f in found]
    rows = list({(r["kind"], r["table_name"], r["key"], r["value"]): r for r in rows}.values())
    if not rows:
        return 0
    dialect = dialect_for(conn)
    new = 0
    for start in range(0, len(rows), 100):
        result = conn.execute(dialect.insert_ignore(findings, values=rows[start:start + 100])
                              .returning(findings.c.id))
        new += len(result.all())
    return new


def list_findings(conn: Connection, *, table: str | None = None, kind: str | None = None,
                  limit: int | None = None) -> list[Finding]:
    """Returns the stored findings (of one table or kind), oldest first."""
    q = select(findings).order_by(findings.c.id)
    if table is not None:
        q = q.where(findings.c.table_name == table)
    if kind is not None:
        q = q.where(findings.c.kind == kind)
    if limit is not None:
        q = q.limit(limit)
    return [Finding(r.kind, r.table_name, r.key, r.value, r.detail, r.other_key, r.id, _utc(r.found_at))
            for r in conn.execute(q)]


def count_findings(conn: Connection, *, table: str | None = None) -> dict[str, int]:
    """Returns {kind: number of findings} (of one table), kinds sorted."""
    q = select(findings.c.kind, func.count()).group_by(findings.c.kind).order_by(findings.c.kind)
    if table is not None:
        q = q.where(findings.c.table_name == table)
    return {kind: n for kind, n in conn.execute(q)}


def findings_table_exists(conn: Connection) -> bool:
    """Returns True when the event-store database has the findings table (`migrator init` made it)."""
    return inspect(conn).has_table(findings.name)


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite hands the time back without its offset
    return value
