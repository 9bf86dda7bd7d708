"""The legacy API's reads answered from the new read model (`users_view`), for `new` mode.

Each read model row of a legacy user (one with a `legacy_key`) becomes the `UserRecord` legacy would
give: the id from the legacy key, the mapped fields under their legacy column names (the mapping says
which), the timestamps parsed from the ISO text the events carry. Users created on the new side
without a legacy key are not listed, as the legacy API never had them. Values are the new side's:
what the mapping's normalizers made of them (e.g. the email in lower case).

Read-your-writes: before a get, the key must not be behind (`Freshness`: no legacy change waiting for
the relay, the row as new as its stream); before a search, the whole table. The read waits up to
`wait_s` for that, and when the new side is still behind it is served by legacy (which is the truth
while writes are legacy), counted as a fallback.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Engine, Row, cast, func, or_, select

from es_app.projections.tables import users_view as uv
from legacy_app.reads import MAX_PAGE, Page, ReadMode, UserReads, UserRecord

from ..mapping import CompiledMapping
from ..shadow.freshness import Freshness
from ..shadow.metrics import ReadMetrics


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


class ReadModelReads:
    """Returns legacy-shaped reads of `users_view`; `fallback` serves what the read model cannot answer yet.

    `freshness` None: no read-your-writes wait (what a shadow candidate reads: lag is judged after)."""

    mode = ReadMode.NEW

    def __init__(self, es: Engine, mapping: CompiledMapping, *, fallback: UserReads | None = None,
                 freshness: Freshness | None = None, wait_s: float = 2.0, metrics: ReadMetrics | None = None):
        self.es, self.mapping, self.fallback, self.freshness = es, mapping, fallback, freshness
        self.wait_s, self.metrics = wait_s, metrics
        by_field = {c.field: c.column for c in mapping.columns}
        self._columns = {by_field.get(f, f): uv.c[f] for f in ("name", "email", "active", "phone")}

    def _record(self, row: Row) -> UserRecord | None:
        created, updated = _when(row.created_at), _when(row.updated_at)
        if created is None or updated is None:
            return None
        values = {col: row._mapping[c.name] for col, c in self._columns.items()}
        return UserRecord(id=int(row.legacy_key), email=values["email"], full_name=values["full_name"],
                          is_active=bool(values["is_active"]), phone=values["phone"],
                          created_at=created, updated_at=updated)

    def _fall_back(self, read: str) -> UserReads | None:
        if self.fallback is None:
            return None
        if self.metrics is not None:
            self.metrics.fallback(read)
        return self.fallback

    def get(self, user_id: int) -> UserRecord | None:
        """Returns the user as the read model holds it (None: no such live legacy user)."""
        if self.freshness is not None:
            lag = self.freshness.wait_key(user_id, self.wait_s)  # reads the row too
            if lag.behind and (legacy := self._fall_back("get")) is not None:
                return legacy.get(user_id)
            row = lag.row
        else:
            with self.es.connect() as conn:
                row = conn.execute(select(uv).where(uv.c.id == self.mapping.stream_id(user_id))).first()
        if row is None or row.deleted or row.legacy_key is None:
            return None
        record = self._record(row)
        if record is None and (legacy := self._fall_back("get")) is not None:
            return legacy.get(user_id)
        return record

    def search(self, query: str | None = None, *, limit: int = 50, offset: int = 0) -> Page:
        """Returns one page, in legacy id order, of live legacy users whose name or email contains `query`."""
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise ValueError(f"limit must be 1..{MAX_PAGE} and offset >= 0")
        behind = self.freshness is not None and self.freshness.wait_feed(self.wait_s).behind
        if behind and (legacy := self._fall_back("search")) is not None:
            return legacy.search(query, limit=limit, offset=offset)
        where: list[ColumnElement[bool]] = [uv.c.deleted.is_(False), uv.c.legacy_key.is_not(None)]
        if query:
            pattern = f"%{_escape_like(query.lower())}%"
            where.append(or_(func.lower(uv.c.name).like(pattern, escape="\\"),
                             func.lower(uv.c.email).like(pattern, escape="\\")))
        with self.es.connect() as conn:
            total = conn.execute(select(func.count()).select_from(uv).where(*where)).scalar() or 0
            rows = conn.execute(select(uv).where(*where).order_by(cast(uv.c.legacy_key, BigInteger))
                                .limit(limit).offset(offset)).all()
        records = [self._record(r) for r in rows]
        if any(r is None for r in records) and (legacy := self._fall_back("search")) is not None:
            return legacy.search(query, limit=limit, offset=offset)
        return Page([r for r in records if r is not None], total, limit, offset)
