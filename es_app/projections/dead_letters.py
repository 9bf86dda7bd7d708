"""Dead letters, sequenced per stream (as Axon's sequenced dead-letter queue).

When a projection's handler keeps failing on an event, the event is parked here.
From then on that stream's later events wait behind it: the runner passes over them
(its checkpoint moves on, other streams keep flowing) and they are read again from
the store when the parked event is retried or skipped. At most one event per
(projection, stream) is parked at a time.

- `retry` applies the parked event and the ones waiting behind it, in order;
- `skip` drops the parked event and applies the waiting ones.

If a waiting event fails in turn, it becomes the stream's parked event.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select

from es_app.dialect import dialect_for
from es_app.store import RecordedEvent
from es_app.store.engine import write_transaction

from .checkpoints import checkpoint_name, current_shards, lock_position, shard_of
from .registry import get_projection
from .tables import dead_letters as dl

PARKED = "parked"


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """Returns one parked (or resolved) event of a projection."""

    id: int
    projection: str
    stream_id: str
    position: int
    version: int
    event_id: str
    event_type: str
    error: str
    attempts: int
    status: str  # parked | retried | skipped | superseded
    parked_at: datetime
    resolved_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class DeadLetterNotFound(LookupError):
    pass


class NotParked(ValueError):
    """The dead letter was already retried, skipped or superseded."""


def _letter(row: Any) -> DeadLetter:
    return DeadLetter(**{c.name: getattr(row, c.name) for c in dl.columns})


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def park(conn: Connection, projection: str, event: RecordedEvent, exc: BaseException, attempts: int = 1) -> None:
    """Parks `event` for `projection` in the caller's transaction."""
    conn.execute(dl.insert().values(
        projection=projection, stream_id=event.stream_id, position=event.position, version=event.version,
        event_id=event.event_id, event_type=event.type, error=describe(exc), attempts=attempts,
        status=PARKED, parked_at=datetime.now(UTC)))


_PARKED_STREAMS = select(dl.c.stream_id).where(dl.c.projection == bindparam("dl_projection"), dl.c.status == PARKED)
PARKED_STREAMS_SQL = "SELECT stream_id FROM dead_letters WHERE projection = %s AND status = %s"
"""`parked_streams` as driver SQL (parameters: the projection, PARKED), for reads sent together."""


def parked_streams(conn: Connection, projection: str) -> set[str]:
    """Returns the ids of the streams that have a parked event for this projection."""
    return set(conn.execute(_PARKED_STREAMS, {"dl_projection": projection}).scalars())


def list_parked(engine: Engine, *, projection: str | None = None, stream_id: str | None = None,
                status: str | None = PARKED, after_id: int = 0, limit: int = 100) -> list[DeadLetter]:
    """Returns dead letters by id (parked ones by default; `status=None` for all), after `after_id`."""
    q = select(dl).where(dl.c.id > after_id)
    if projection is not None:
        q = q.where(dl.c.projection == projection)
    if stream_id is not None:
        q = q.where(dl.c.stream_id == stream_id)
    if status is not None:
        q = q.where(dl.c.status == status)
    with engine.connect() as conn:
        return [_letter(r) for r in conn.execute(q.order_by(dl.c.id).limit(limit))]


def get_dead_letter(engine: Engine, letter_id: int) -> DeadLetter:
    """Returns one dead letter; raises DeadLetterNotFound."""
    with engine.connect() as conn:
        row = conn.execute(select(dl).where(dl.c.id == letter_id)).first()
    if row is None:
        raise DeadLetterNotFound(f"no dead letter with id {letter_id}")
    return _letter(row)


def parked_count(engine: Engine | Connection, projection: str | None = None) -> dict[str, int]:
    """Returns the number of parked events per projection."""
    q = select(dl.c.projection, func.count()).where(dl.c.status == PARKED).group_by(dl.c.projection)
    if projection is not None:
        q = q.where(dl.c.projection == projection)
    if isinstance(engine, Connection):
        return {p: n for p, n in engine.execute(q)}
    with engine.connect() as conn:
        return {p: n for p, n in conn.execute(q)}


def retry(container: Any, letter_id: int) -> DeadLetter:
    """Returns the dead letter after applying it and the events waiting behind it.

    Its status becomes "retried"; if it fails again it stays "parked" with one more
    attempt and the new error. Raises DeadLetterNotFound or NotParked.
    """
    return _resolve(container, letter_id, skip_head=False)


def skip(container: Any, letter_id: int) -> DeadLetter:
    """Returns the dead letter marked "skipped" after applying the events waiting behind it.

    The parked event itself is never applied. Raises DeadLetterNotFound or NotParked.
    """
    return _resolve(container, letter_id, skip_head=True)


def _resolve(container: Any, letter_id: int, *, skip_head: bool) -> DeadLetter:
    with write_transaction(container.engine) as conn:
        q = select(dl).where(dl.c.id == letter_id)
        row = conn.execute(dialect_for(conn).lock_rows(q)).first()
        if row is None:
            raise DeadLetterNotFound(f"no dead letter with id {letter_id}")
        letter = _letter(row)
        if letter.status != PARKED:
            raise NotParked(f"dead letter {letter_id} is already {letter.status}")
        projection = get_projection(letter.projection)
        shards = current_shards(conn, projection.name) if projection.shardable else None
        name = checkpoint_name(projection.name, shard_of(letter.stream_id, shards) if shards else None, shards)
        upto = lock_position(conn, name) or 0
        waiting = [e for e in container.store.read_stream(letter.stream_id, from_version=letter.version, conn=conn)
                   if e.position <= upto]
        if skip_head and waiting and waiting[0].event_id == letter.event_id:
            waiting = waiting[1:]
        batch = projection.open(conn, waiting)
        now = datetime.now(UTC)
        done: dict[str, Any] = {"status": "skipped" if skip_head else "retried", "resolved_at": now}
        for event in waiting:
            try:
                batch.apply(event)
            except Exception as exc:  # noqa: BLE001 - a handler's failure parks the event
                if event.event_id == letter.event_id:
                    done = {"attempts": letter.attempts + 1, "error": describe(exc)}
                else:
                    park(conn, projection.name, event, exc)
                break
        batch.flush()
        conn.execute(dl.update().where(dl.c.id == letter_id).values(**done))
        return _letter(conn.execute(select(dl).where(dl.c.id == letter_id)).one())
