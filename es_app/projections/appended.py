"""Projecting events in the transaction that appends them, instead of reading them back from the feed.

A bulk writer (the backfill) that appends under the append lock knows the events it has
just written and that nothing else lies between the first and the last of them. Here
each projection folds them — after any of the feed's events between its checkpoint and
them — and moves its checkpoints to the last one, all in the writer's transaction: the
events, the read model and the checkpoints commit together, and the feed is never read
back. A projection that is further behind than `max_behind` events, or has not run yet,
is left alone for the runner (`run_projections`) to catch up after the commit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Connection

from es_app.store import EventStore, RecordedEvent, category_of

from .base import Projection
from .checkpoints import lock_layout, save_position, shard_in_name, shard_of
from .registry import select_projections
from .runner import DEFAULT_BATCH_SIZE, apply_events, types_of


def project_appended(conn: Connection, store: EventStore, appended: Sequence[RecordedEvent], *,
                     names: list[str] | tuple[str, ...] | None = None,
                     max_behind: int = DEFAULT_BATCH_SIZE) -> bool:
    """Folds events just appended in `conn`'s write transaction into the projections (or `names`).

    `appended` must be every event the transaction appended, in position order, with nothing
    else in the feed between the first and the last (one `append_batch` under the append lock).
    Returns True when every checkpoint of every projection now stands at the last of them,
    False when some projection was left for the runner.
    """
    if not appended:
        return True
    first, last = appended[0].position, appended[-1].position
    if last - first + 1 != len(appended):
        return False  # not one contiguous run of positions: read them from the feed instead
    complete = True
    created = {e.stream_id for e in appended if e.version == 1}  # streams this transaction started
    for projection in select_projections(names):
        types = types_of(projection)
        ours = [e for e in appended if projection.category in (None, category_of(e.stream_id))
                and (types is None or e.type in types)]
        plan = _catch_up_plan(conn, store, projection, ours, types, first, last, max_behind)
        if plan is None:
            complete = False
            continue
        for name, events in plan.items():
            started = time.perf_counter()
            shard, shards = shard_in_name(name)
            if shards is not None:
                events = [e for e in events if shard_of(e.stream_id, shards) == shard]
            apply_events(conn, projection, events, new_streams=created)
            elapsed = time.perf_counter() - started
            save_position(conn, name, last, rate=len(events) / elapsed if events and elapsed > 0 else None)
    return complete


def _catch_up_plan(conn: Connection, store: EventStore, projection: Projection, ours: list[RecordedEvent],
                   types: tuple[str, ...] | None, first: int, last: int,
                   max_behind: int) -> dict[str, list[RecordedEvent]] | None:
    """Returns {checkpoint name: events to apply} (locking the checkpoints), or None to leave the projection
    to the runner: never run, or a checkpoint more than `max_behind` events behind the appended ones."""
    layout = lock_layout(conn, projection.name)
    if not layout:
        return None  # its layout (shard count) is the runner's to create
    plan: dict[str, list[RecordedEvent]] = {}
    for name, position in layout.items():
        if position >= last:
            continue
        gap: list[RecordedEvent] = []
        if position < first - 1:
            gap = store.read_all(after=position, before=first, limit=max_behind + 1,
                                 category=projection.category, types=types, conn=conn)
            if len(gap) > max_behind:
                return None
        plan[name] = gap + [e for e in ours if e.position > position]
    return plan
