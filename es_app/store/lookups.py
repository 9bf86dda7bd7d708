"""Look-ups of what the events table holds, in the caller's connection (SQLAlchemy Core: rare
paths, the same on every backend): stream versions, stored ids, and the stored results of an
idempotent retry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from .codec import loads
from .schema import events
from .types import AppendResult, EncodedEvent, EventIdConflict, NewEvent

CHUNK = 500  # values of one IN (...)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    """Yields `items` in slices of `size`."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def stream_version(conn: Connection, stream_id: str) -> int:
    """Returns the stream's last version, 0 when it has no events."""
    return conn.execute(select(func.max(events.c.version)).where(events.c.stream_id == stream_id)).scalar() or 0


def stream_versions(conn: Connection, stream_ids: Iterable[str]) -> dict[str, int]:
    """Returns {stream id: last version} of those streams that have events."""
    found: dict[str, int] = {}
    for chunk in chunks(list(dict.fromkeys(stream_ids))):
        q = (select(events.c.stream_id, func.max(events.c.version))
             .where(events.c.stream_id.in_(chunk)).group_by(events.c.stream_id))
        found.update((sid, version) for sid, version in conn.execute(q))
    return found


def existing_event_ids(conn: Connection, event_ids: Iterable[str]) -> set[str]:
    """Returns those of the event ids that are stored."""
    found: set[str] = set()
    for chunk in chunks(list(dict.fromkeys(str(i) for i in event_ids))):
        found.update(conn.execute(select(events.c.event_id).where(events.c.event_id.in_(chunk))).scalars())
    return found


def stream_ids_in_category(conn: Connection, category: str, after: str, limit: int) -> list[str]:
    """Returns up to `limit` ids of the category's streams that sort after `after`, in order."""
    return list(conn.execute(
        select(events.c.stream_id).distinct().where(events.c.category == category, events.c.stream_id > after)
        .order_by(events.c.stream_id).limit(limit)).scalars())


def last_metadata_of_type(conn: Connection, stream_ids: Iterable[str], event_type: str) -> dict[str, dict[str, Any]]:
    """Returns {stream id: metadata of its latest event of `event_type`} of the streams having one."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in chunks(list(dict.fromkeys(stream_ids))):
        for row in conn.execute(select(events.c.stream_id, events.c.meta)
                                .where(events.c.stream_id.in_(chunk), events.c.event_type == event_type)
                                .order_by(events.c.stream_id, events.c.version)):
            found[row.stream_id] = row.meta or {}
    return found


def first_recorded_at(conn: Connection, category: str) -> datetime | None:
    """Returns when the category's first event was recorded (in UTC), None when it has none."""
    t = conn.execute(select(events.c.recorded_at).where(events.c.category == category)
                     .order_by(events.c.position).limit(1)).scalar()
    return None if t is None else (t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC))


def _data_of(e: NewEvent | EncodedEvent) -> Any:
    if type(e) is EncodedEvent:
        return e.data if e.data is not None else loads(e.data_json)
    return e.data


def stored_results(conn: Connection,
                   items: Sequence[tuple[int, str, Sequence[NewEvent | EncodedEvent]]]) -> dict[int, AppendResult]:
    """Returns, by item index, the original results of items whose exact events are stored
    (same ids, stream, order, type and data): an idempotent retry.

    Raises EventIdConflict when an item's ids are stored only in part, with other
    content, or in another place.
    """
    ids = [str(e.event_id) for _, _, batch in items for e in batch]
    found: dict[str, Any] = {}
    for chunk in chunks(ids):
        found.update((row.event_id, row) for row in conn.execute(
            select(events.c.event_id, events.c.stream_id, events.c.version, events.c.position,
                   events.c.event_type, events.c.data).where(events.c.event_id.in_(chunk))))
    results: dict[int, AppendResult] = {}
    if not found:
        return results
    for index, stream_id, batch in items:
        rows: list[Any] = [found.get(str(e.event_id)) for e in batch]
        if all(r is None for r in rows):
            continue
        same = all(r is not None for r in rows) and all(
            r.stream_id == stream_id and r.event_type == e.type and r.data == _data_of(e)
            and r.version == rows[0].version + n
            for n, (r, e) in enumerate(zip(rows, batch, strict=True)))
        if not same:
            raise EventIdConflict(f"event ids {sorted(str(r.event_id) for r in rows if r is not None)} are "
                                  f"already stored with other content or in another place than stream "
                                  f"{stream_id!r}")
        results[index] = AppendResult(stream_id, rows[-1].version, rows[-1].position,
                                      tuple(r.position for r in rows), written=False)
    return results
