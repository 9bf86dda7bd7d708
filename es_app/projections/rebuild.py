"""Rebuild the users read model by replay, blue/green.

1. Create an empty `users_view_next` shaped like the live table (no secondary indexes yet).
2. Replay the whole feed into it with the normal runner, under its own checkpoint,
   while the live table keeps serving reads and keeps being projected.
3. Give it the live table's indexes (PostgreSQL: built now under temporary names;
   SQLite: built in step 4, it renames no index). The dialect adapter's clone_table_empty,
   copy_indexes and swap_tables hold the DDL.
4. Swap in one transaction: lock the live checkpoints, catch the new table up to the
   head, drop the old table, rename the new one (and its indexes) into place, and set
   every checkpoint of the layout to the new table's position. Readers see either the
   old table or the new one, never a half-built one.

Events parked during the replay become the live projection's dead letters; the old
table's parked events are marked "superseded".
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, MetaData, Table, func, select

from es_app.dialect import dialect_for
from es_app.store.engine import write_transaction

from .checkpoints import USERS, current_shards, delete_checkpoint, ensure_layout, replace_layout
from .runner import DEFAULT_BATCH_SIZE, BatchResult, run_batch, run_projection
from .tables import dead_letters as dl
from .tables import projection_checkpoints as cp
from .tables import users_view
from .users import UsersProjection

LIVE = users_view.name
NEXT = f"{LIVE}_next"
REBUILD = f"{USERS}@rebuild"  # checkpoint and dead-letter name while rebuilding
_REBUILD_LOCK_KEY = 7_045_112_358


class RebuildInProgress(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class RebuildResult:
    """Returns what a rebuild did: events applied, rows in the new table, its position, seconds taken."""

    applied: int
    rows: int
    position: int
    seconds: float


def _next_table() -> Table:
    return Table(NEXT, MetaData(), *[Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                                     for c in users_view.columns])


def rebuild_users(container: Any, *, shards: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                  on_batch: Callable[[BatchResult], Any] | None = None) -> RebuildResult:
    """Returns the result of rebuilding users_view from position 0 and swapping it in.

    `shards` is the checkpoint layout to leave behind (default: the current one).
    Raises RebuildInProgress when another rebuild holds the lock (PostgreSQL).
    """
    started = time.perf_counter()
    engine, store = container.engine, container.store
    with engine.connect() as guard:
        dialect = dialect_for(guard)
        if not dialect.try_advisory_lock(guard, _REBUILD_LOCK_KEY):
            raise RebuildInProgress("another rebuild of users_view is running")
        guard.commit()
        try:
            with write_transaction(engine) as conn:
                layout = shards if shards is not None else current_shards(conn, USERS)
                dialect.clone_table_empty(conn, LIVE, NEXT)
                delete_checkpoint(conn, REBUILD)
                conn.execute(dl.update().where(dl.c.projection == REBUILD, dl.c.status == "parked")
                             .values(status="superseded", resolved_at=datetime.now(UTC)))
            projection = UsersProjection(name=REBUILD, table=_next_table())
            applied = run_projection(engine, store, projection, batch_size=batch_size, on_batch=on_batch)
            with write_transaction(engine) as conn:
                indexes = dialect.copy_indexes(conn, LIVE, NEXT)
            with write_transaction(engine) as conn:
                ensure_layout(conn, USERS, layout)  # so the live checkpoints exist to be locked
                q = select(cp.c.name).where((cp.c.name == USERS) | cp.c.name.like(f"{USERS}:%"))
                conn.execute(dialect.lock_rows(q)).all()
                while True:
                    result, _ = run_batch(conn, store, projection, batch_size=batch_size)
                    applied += result.applied
                    if result.at_head:
                        break
                dialect.swap_tables(conn, LIVE, NEXT, indexes)
                replace_layout(conn, USERS, layout, result.position)
                conn.execute(dl.update().where(dl.c.projection == USERS, dl.c.status == "parked")
                             .values(status="superseded", resolved_at=datetime.now(UTC)))
                conn.execute(dl.update().where(dl.c.projection == REBUILD).values(projection=USERS))
                delete_checkpoint(conn, REBUILD)
                rows = conn.execute(select(func.count()).select_from(users_view)).scalar_one()
        finally:
            dialect.advisory_unlock(guard, _REBUILD_LOCK_KEY)
            guard.commit()
    return RebuildResult(applied, rows, result.position, time.perf_counter() - started)
