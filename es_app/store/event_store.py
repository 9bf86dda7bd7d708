"""The append-only event store on SQLite or PostgreSQL.

Gap safety: on PostgreSQL every append takes one transaction-scoped advisory
lock before it reads the stream version and inserts, and holds it until commit.
Positions are therefore handed out in commit order, and a reader tailing the
global feed with `after=checkpoint` can never see position N+1 before N
(see docs/architecture.md). SQLite serialises writers with BEGIN IMMEDIATE.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from .engine import is_sqlite, write_transaction
from .schema import events, unique_claims
from .types import (
    AppendResult,
    Claim,
    ClaimTaken,
    ConcurrencyError,
    EventIdConflict,
    Expected,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    category_of,
)
from .upcasting import UpcasterRegistry

APPEND_LOCK_KEY = 7_045_112_357  # pg_advisory_xact_lock key shared by every appender

_COLUMNS = (
    events.c.position, events.c.stream_id, events.c.version, events.c.event_id,
    events.c.event_type, events.c.schema_version, events.c.data, events.c.meta,
    events.c.recorded_at,
)
_INSERT = insert(events).returning(events.c.position, sort_by_parameter_order=True)


def _matches(expected: Expected, current: int) -> bool:
    if expected is ExpectedVersion.ANY:
        return True
    if expected is ExpectedVersion.NO_STREAM:
        return current == 0
    if expected is ExpectedVersion.STREAM_EXISTS:
        return current > 0
    return current == expected


class EventStore:
    """Append to streams and read streams or the global feed.

    `serialize_appends=False` turns the PostgreSQL append lock off; it exists only
    so tests and benchmarks can show what the lock prevents and what it costs.
    """

    def __init__(self, engine: Engine, upcasters: UpcasterRegistry | None = None,
                 *, serialize_appends: bool = True):
        self.engine = engine
        self.upcasters = upcasters or UpcasterRegistry()
        self.serialize_appends = serialize_appends

    # -- writing -----------------------------------------------------------
    def append(self, stream_id: str, new_events: Sequence[NewEvent],
               expected_version: Expected = ExpectedVersion.ANY, *,
               claims: Iterable[Claim] = (), releases: Iterable[Claim] = ()) -> AppendResult:
        """Returns where the events landed. Raises ConcurrencyError, EventIdConflict, ClaimTaken."""
        try:
            with write_transaction(self.engine) as conn:
                return self.append_in(conn, stream_id, new_events, expected_version,
                                      claims=claims, releases=releases)
        except IntegrityError:
            return self._after_integrity_error(stream_id, new_events, expected_version)

    def append_in(self, conn: Connection, stream_id: str, new_events: Sequence[NewEvent],
                  expected_version: Expected = ExpectedVersion.ANY, *,
                  claims: Iterable[Claim] = (), releases: Iterable[Claim] = ()) -> AppendResult:
        """Appends inside the caller's write transaction (see `write_transaction`)."""
        if not new_events:
            raise ValueError("append needs at least one event")
        self.lock_for_append(conn)
        current = self._stream_version(conn, stream_id)
        if not _matches(expected_version, current):
            retried = self._stored_retry(conn, stream_id, new_events)
            if retried is not None:
                return retried
            raise ConcurrencyError(stream_id, expected_version, current)
        self._release(conn, stream_id, releases)
        self._claim(conn, stream_id, claims)
        rows = self._rows(stream_id, current, new_events)
        positions = tuple(conn.execute(_INSERT, rows).scalars().all())
        return AppendResult(stream_id, current + len(rows), positions[-1], positions)

    def append_batch(self, conn: Connection,
                     items: Sequence[tuple[str, Sequence[NewEvent], Expected]],
                     *, skip_mismatched: bool = False) -> list[AppendResult | None]:
        """Appends to many streams in the caller's write transaction with one bulk insert.

        Returns one result per item; with `skip_mismatched`, an item whose expected
        version does not match is left out (None) instead of raising.
        """
        self.lock_for_append(conn)
        versions = self._stream_versions(conn, [stream_id for stream_id, _, _ in items])
        rows: list[dict[str, Any]] = []
        spans: list[tuple[str, int, int, int] | None] = []
        for stream_id, batch, expected in items:
            current = versions.get(stream_id, 0)
            if not _matches(expected, current):
                if skip_mismatched:
                    spans.append(None)
                    continue
                raise ConcurrencyError(stream_id, expected, current)
            start = len(rows)
            rows.extend(self._rows(stream_id, current, batch))
            versions[stream_id] = current + len(batch)
            spans.append((stream_id, versions[stream_id], start, len(rows)))
        positions = conn.execute(_INSERT, rows).scalars().all() if rows else []
        return [None if span is None else
                AppendResult(span[0], span[1], positions[span[3] - 1], tuple(positions[span[2]:span[3]]))
                for span in spans]

    def lock_for_append(self, conn: Connection) -> None:
        if self.serialize_appends and not is_sqlite(conn):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY})")

    def _rows(self, stream_id: str, current: int, new_events: Sequence[NewEvent]) -> list[dict[str, Any]]:
        now = datetime.now(timezone.utc)
        occurred = now.isoformat()
        category = category_of(stream_id)
        return [
            {
                "stream_id": stream_id, "category": category, "version": current + i,
                "event_id": str(e.event_id), "event_type": e.type, "schema_version": e.schema_version,
                "data": e.data, "meta": {"occurred_at": occurred, **e.metadata}, "recorded_at": now,
            }
            for i, e in enumerate(new_events, start=1)
        ]

    def _claim(self, conn: Connection, stream_id: str, claims: Iterable[Claim]) -> None:
        ins = sqlite_insert if is_sqlite(conn) else pg_insert
        for claim in claims:
            conn.execute(ins(unique_claims).values(scope=claim.scope, value=claim.value, owner=stream_id)
                         .on_conflict_do_nothing())
            owner = conn.execute(select(unique_claims.c.owner).where(
                unique_claims.c.scope == claim.scope, unique_claims.c.value == claim.value)).scalar_one()
            if owner != stream_id:
                raise ClaimTaken(claim, owner)

    def _release(self, conn: Connection, stream_id: str, releases: Iterable[Claim]) -> None:
        for claim in releases:
            conn.execute(unique_claims.delete().where(
                unique_claims.c.scope == claim.scope, unique_claims.c.value == claim.value,
                unique_claims.c.owner == stream_id))

    def _after_integrity_error(self, stream_id: str, new_events: Sequence[NewEvent],
                               expected: Expected) -> AppendResult:
        with self.engine.connect() as conn:
            retried = self._stored_retry(conn, stream_id, new_events)
            if retried is not None:
                return retried
            raise ConcurrencyError(stream_id, expected, self._stream_version(conn, stream_id))

    def _stored_retry(self, conn: Connection, stream_id: str,
                      new_events: Sequence[NewEvent]) -> AppendResult | None:
        """Returns the original result if these exact events are already stored, else None."""
        ids = [str(e.event_id) for e in new_events]
        found = {row.event_id: row for row in conn.execute(
            select(events.c.event_id, events.c.stream_id, events.c.version, events.c.position,
                   events.c.event_type, events.c.data).where(events.c.event_id.in_(ids)))}
        if not found:
            return None
        rows = [found.get(i) for i in ids]
        same = all(r is not None for r in rows) and all(
            r.stream_id == stream_id and r.event_type == e.type and r.data == e.data
            and r.version == rows[0].version + n
            for n, (r, e) in enumerate(zip(rows, new_events)))
        if not same:
            raise EventIdConflict(f"event ids {sorted(found)} are already stored with other content "
                                  f"or in another place than stream {stream_id!r}")
        return AppendResult(stream_id, rows[-1].version, rows[-1].position,
                            tuple(r.position for r in rows), written=False)

    # -- reading -----------------------------------------------------------
    def stream_version(self, stream_id: str) -> int:
        """Returns the stream's last version, 0 when it has no events."""
        with self.engine.connect() as conn:
            return self._stream_version(conn, stream_id)

    @staticmethod
    def _stream_version(conn: Connection, stream_id: str) -> int:
        return conn.execute(select(func.max(events.c.version)).where(
            events.c.stream_id == stream_id)).scalar() or 0

    @staticmethod
    def _stream_versions(conn: Connection, stream_ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(stream_ids))
        for start in range(0, len(unique), 900):
            chunk = unique[start:start + 900]
            found.update((stream_id, version) for stream_id, version in conn.execute(
                select(events.c.stream_id, func.max(events.c.version))
                .where(events.c.stream_id.in_(chunk)).group_by(events.c.stream_id)))
        return found

    def read_stream(self, stream_id: str, from_version: int = 1, to_version: int | None = None,
                    limit: int | None = None, backwards: bool = False,
                    conn: Connection | None = None) -> list[RecordedEvent]:
        """Returns the stream's events between the two versions (inclusive), in version order
        or, with `backwards`, from the newest."""
        q = select(*_COLUMNS).where(events.c.stream_id == stream_id, events.c.version >= from_version)
        if to_version is not None:
            q = q.where(events.c.version <= to_version)
        q = q.order_by(events.c.version.desc() if backwards else events.c.version)
        if limit is not None:
            q = q.limit(limit)
        return self._fetch(q, conn)

    def read_all(self, after: int = 0, limit: int = 1000, types: Iterable[str] | None = None,
                 category: str | None = None, conn: Connection | None = None) -> list[RecordedEvent]:
        """Returns events of the global feed with position > `after`, in position order."""
        q = select(*_COLUMNS).where(events.c.position > after)
        if types is not None:
            q = q.where(events.c.event_type.in_(list(types)))
        if category is not None:
            q = q.where(events.c.category == category)
        return self._fetch(q.order_by(events.c.position).limit(limit), conn)

    def head_position(self, conn: Connection | None = None) -> int:
        """Returns the highest position in the feed, 0 when empty."""
        q = select(func.max(events.c.position))
        if conn is not None:
            return conn.execute(q).scalar() or 0
        with self.engine.connect() as c:
            return c.execute(q).scalar() or 0

    def _fetch(self, q, conn: Connection | None) -> list[RecordedEvent]:  # noqa: ANN001
        if conn is not None:
            return [self._recorded(r) for r in conn.execute(q)]
        with self.engine.connect() as c:
            return [self._recorded(r) for r in c.execute(q)]

    def _recorded(self, r) -> RecordedEvent:  # noqa: ANN001
        schema_version, data = self.upcasters.upcast(r.event_type, r.schema_version, r.data)
        return RecordedEvent(r.position, r.stream_id, r.version, r.event_id, r.event_type,
                             schema_version, data, r.meta, r.recorded_at)
