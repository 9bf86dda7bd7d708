"""The projection runner: read the global feed after the checkpoint, apply a batch, move the checkpoint.

Each batch is one write transaction: lock the checkpoint row, read up to `batch_size`
events of the projection's category after it (one query), let the projection fold
them (one read of the rows they touch, one bulk upsert) and store the new position.
The read model and its checkpoint therefore commit together, and because rows keep
the version of the last event applied, replaying a batch changes nothing.

The feed is gap-free to read by position (appends are serialised, see the store), so
when a read returns fewer events than asked, everything up to the head read just
before it has been seen and the checkpoint moves to that head.

Sharding: a shard reads the same feed but applies only the events of the streams it
owns (`shard_of`), so per-stream order holds and no two shards touch the same row.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import weakref
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, Engine, select

from es_app.bulk_gc import bulk_gc
from es_app.dialect import dialect_for
from es_app.store import EventStore, RecordedEvent
from es_app.store.driver import driver_cursor
from es_app.store.engine import write_transaction
from es_app.store.statements import HEAD

from .base import Batch, Projection
from .checkpoints import (
    check_shard,
    checkpoint_name,
    ensure_layout,
    get_position,
    layout_names,
    lock_position,
    lock_position_sql,
    save_locked_position,
    save_position,
    shard_of,
)
from .dead_letters import PARKED, PARKED_STREAMS_SQL, park, parked_streams
from .registry import select_projections
from .tables import projection_checkpoints as cp

DEFAULT_BATCH_SIZE = 2000
READ_AHEAD_THREADS = 4  # pages read ahead at once in a process (one per projection being caught up)


class HandlerFailed(Exception):
    """A handler raised on `event` and failures are not being parked; earlier events were committed."""

    def __init__(self, projection: str, event: RecordedEvent, error: BaseException):
        super().__init__(f"{projection}: {event.type} at position {event.position} "
                         f"({event.stream_id} v{event.version}): {type(error).__name__}: {error}")
        self.projection, self.event, self.error = projection, event, error


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """Returns what one batch did: events read and applied, the new position, whether at the head."""

    checkpoint: str
    read: int
    applied: int
    parked: int
    position: int
    head: int
    at_head: bool
    failure: HandlerFailed | None = None


@dataclasses.dataclass(frozen=True)
class FeedPage:
    """Events of the feed after `after`, read with the head seen just before them."""

    after: int
    head: int
    events: list[RecordedEvent]


def types_of(projection: Projection) -> tuple[str, ...] | None:
    """Returns the event types a projection handles (None: all of its category)."""
    return getattr(projection, "types", None)


def read_page(store: EventStore, projection: Projection, after: int, batch_size: int,
              conn: Connection | None = None, head: int | None = None) -> FeedPage:
    """Returns the next page of the feed for a projection (head first, so every event up to it is in view;
    `head` when the caller read it already)."""
    head = store.head_position(conn) if head is None else head
    events = store.read_all(after=after, limit=batch_size, category=projection.category, conn=conn,
                            types=types_of(projection)) if after < head else []
    return FeedPage(after, head, events)


def run_batch(conn: Connection, store: EventStore, projection: Projection, *, shard: int | None = None,
              shards: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE, park_failures: bool = True,
              attempts: int = 1, checkpoint: str | None = None, ahead: Future | None = None,
              read_ahead: Callable[[int], Future] | None = None, last: bool = False
              ) -> tuple[BatchResult, Future | None]:
    """Returns the result of projecting one batch inside the caller's write transaction.

    `ahead` is a page read in advance (used only if it starts at the locked checkpoint);
    `read_ahead(position)` starts reading the next page while this one is applied.
    Returns the future of that next page too (None when at the head). With `last` the
    caller commits right after: on PostgreSQL the batch's writes, its checkpoint and the
    COMMIT go in one round trip (`_write_batches`), so nothing may be executed in the
    transaction after it.
    """
    started = time.perf_counter()
    name = checkpoint or checkpoint_name(projection.name, shard, shards)
    # without a page read ahead, the page after where this process last left the checkpoint is read with the lock
    hint = _last_positions(conn.engine).get(name) if ahead is None else None
    opened = _open_batches(conn, store, [(projection, name, hint)], batch_size)[0]
    position, page = _batch_page(conn, store, projection, opened, shards, batch_size, ahead)
    if position >= page.head:
        return BatchResult(name, 0, 0, 0, position, page.head, True), None
    new_position, at_head = _advance(position, page, batch_size)
    following = read_ahead(new_position) if read_ahead is not None and not at_head else None
    mine = page.events if shards is None else [e for e in page.events if shard_of(e.stream_id, shards) == shard]
    batch, result = _fold_batch(conn, projection, name, page, mine, (new_position, at_head),
                                park_failures=park_failures, attempts=attempts, blocked=opened.blocked)
    _write_batches(conn, [(batch, result)], time.perf_counter() - started, last=last)
    return result, following


def apply_events(conn: Connection, projection: Projection, events: Sequence[RecordedEvent], *,
                 park_failures: bool = True, attempts: int = 1, new_streams: Collection[str] = (),
                 blocked: set[str] | None = None) -> tuple[int, int, HandlerFailed | None]:
    """Returns (applied, parked, failure) after folding `events` into the projection in the caller's
    transaction and writing what they changed (`fold_events`, then the batch's flush)."""
    batch, applied, parked, failure = fold_events(conn, projection, events, park_failures=park_failures,
                                                  attempts=attempts, new_streams=new_streams, blocked=blocked)
    batch.flush()
    return applied, parked, failure


def fold_events(conn: Connection, projection: Projection, events: Sequence[RecordedEvent], *,
                park_failures: bool = True, attempts: int = 1, new_streams: Collection[str] = (),
                blocked: set[str] | None = None) -> tuple[Batch, int, int, HandlerFailed | None]:
    """Returns (the batch, applied, parked, failure) after folding `events` into a batch of the projection
    opened in the caller's transaction; the batch's rows are written by its `flush`, the caller's to call.

    Streams with a parked event (`blocked`, read here unless the caller did in this transaction) are
    passed over. A failing event is parked (its stream then waits) or, without `park_failures`, ends
    the batch: the failure is returned and the events before it stay applied. `new_streams` were
    created in the caller's transaction: no row of theirs is looked up.
    """
    blocked = parked_streams(conn, projection.name) if blocked is None else set(blocked)
    batch = projection.open(conn, [e for e in events if e.stream_id not in blocked and e.stream_id not in new_streams])
    applied = parked = 0
    failure = None
    for event in events:
        if event.stream_id in blocked:
            continue
        try:
            applied += bool(batch.apply(event))
        except Exception as exc:  # noqa: BLE001 - a handler's failure is parked or reported
            if not park_failures:
                failure = HandlerFailed(projection.name, event, exc)
                break
            park(conn, projection.name, event, exc, attempts)
            blocked.add(event.stream_id)
            parked += 1
    return batch, applied, parked, failure


@dataclasses.dataclass(frozen=True)
class _Opened:
    """What `_open_batches` read for one batch."""

    checkpoint: str
    position: int | None  # the checkpoint's, locked until the transaction ends (None: no row)
    head: int  # the feed's head, read after the lock
    blocked: set[str]  # the projection's parked streams
    page: FeedPage | None  # the page after the hint, read after the head (None without a hint)


def _open_batches(conn: Connection, store: EventStore, wanted: Sequence[tuple[Projection, str, int | None]],
                  batch_size: int) -> list[_Opened]:
    """Returns what the batches of (projection, checkpoint name, hint) start from: each checkpoint's
    position, locked until the transaction ends, the feed's head read after every lock, each
    projection's parked streams and, where a hint is given, the page of the feed after it, read after
    the head: on PostgreSQL all in one round trip with the transaction's BEGIN. A page is its batch's
    when the hint is the position."""
    dialect = dialect_for(conn)
    lock = lock_position_sql(dialect)
    reads: list[tuple[str, Sequence[Any]]] = [(lock, (name,)) for _, name, _ in wanted]
    reads.append((HEAD, ()))
    reads += [(PARKED_STREAMS_SQL, (projection.name, PARKED)) for projection, _, _ in wanted]
    paged = {i: after for i, (_, _, after) in enumerate(wanted) if after is not None}
    reads += [store.read_all_query(after=after, limit=batch_size, category=wanted[i][0].category,
                                   types=types_of(wanted[i][0]))
              for i, after in paged.items()]
    with driver_cursor(conn) as cur:
        got = dialect.read_together(cur, reads)
    n = len(wanted)
    head = got[n][0][0] or 0
    pages = dict(zip(paged, got[2 * n + 1:], strict=True))
    opened = []
    for i, (_, name, after) in enumerate(wanted):
        page = None if after is None else FeedPage(after, head, store.recorded(pages[i]) if after < head else [])
        locked = got[i]
        opened.append(_Opened(name, locked[0][0] if locked else None, head,
                              {stream_id for (stream_id,) in got[n + 1 + i]}, page))
    return opened


def _batch_page(conn: Connection, store: EventStore, projection: Projection, opened: _Opened,
                shards: int | None, batch_size: int, ahead: Future | None = None) -> tuple[int, FeedPage]:
    """Returns the batch's locked position and its page: the one read ahead or with the lock when it
    starts there, else read now (none read yet, or another process moved the checkpoint since). A
    missing checkpoint row (a first run, or another layout — shard count, rebuild — replaced this
    one) is laid out here first."""
    position = opened.position
    if position is None:
        _forget_layout(conn.engine, projection.name)
        ensure_layout(conn, projection.name, shards)
        position = lock_position(conn, opened.checkpoint) or 0
    try:
        page = ahead.result() if ahead is not None else opened.page
    except Exception:  # noqa: BLE001 - read it again here
        page = None
    if page is None or page.after != position:
        page = read_page(store, projection, position, batch_size, conn, opened.head)
    return position, page


def _advance(position: int, page: FeedPage, batch_size: int) -> tuple[int, bool]:
    """Returns (the position after the page, whether that is the head): a short page saw everything up
    to the head read before it."""
    events = page.events
    if len(events) < batch_size:
        return max(page.head, events[-1].position if events else position), True
    return events[-1].position, False


def _fold_batch(conn: Connection, projection: Projection, checkpoint: str, page: FeedPage,
                events: Sequence[RecordedEvent], advanced: tuple[int, bool], *, park_failures: bool, attempts: int,
                blocked: set[str]) -> tuple[Batch, BatchResult]:
    """Returns the batch of `events` (the page's, or this shard's of them) folded, and its result: the
    checkpoint goes to `advanced` (`_advance`'s position after the page, at the head or not), or to just
    before an event whose handler failed, so that the event is read again."""
    batch, applied, parked, failure = fold_events(conn, projection, events, park_failures=park_failures,
                                                  attempts=attempts, blocked=blocked)
    new_position, at_head = advanced if failure is None else (failure.event.position - 1, False)
    return batch, BatchResult(checkpoint, len(page.events), applied, parked, new_position, page.head, at_head,
                              failure)


def _write_batches(conn: Connection, done: Sequence[tuple[Batch, BatchResult]], elapsed: float, *,
                   last: bool) -> None:
    """Writes each folded batch's rows and moves its checkpoint (locked by this transaction) to the
    result's position. With `last` the caller commits right after: on PostgreSQL every write and the
    COMMIT then go in one round trip (`Dialect.writes_with_commit`)."""
    dialect = dialect_for(conn)
    if not (last and dialect.commits_with_last_write):
        for batch, result in done:
            batch.flush()
            save_position(conn, result.checkpoint, result.position, rate=_rate(result.read, elapsed))
        return
    with driver_cursor(conn) as cur, dialect.writes_with_commit(cur):
        for batch, result in done:
            batch.flush()
            save_locked_position(cur, result.checkpoint, result.position, _rate(result.read, elapsed))


def _rate(events: int, elapsed: float) -> float | None:
    return events / elapsed if events and elapsed > 0 else None


def run_projection(engine: Engine, store: EventStore, projection: Projection, *, until_head: bool = True,
                   shard: int | None = None, shards: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                   park_failures: bool = True, attempts: int = 1,
                   on_batch: Callable[[BatchResult], Any] | None = None) -> int:
    """Returns the number of events one projection (or one shard of it) applied.

    Batches until the head of the feed (or one batch with `until_head=False`). On
    PostgreSQL, while a full batch is applied the next page is read on another
    connection, so the server's work overlaps ours. On SQLite each page is read before the
    batch's write transaction, so other writers (a backfill) are not kept waiting while
    it is read. With `park_failures=False` a failing handler raises
    HandlerFailed after the events before it were committed (for the caller to retry).
    """
    shard, shards = check_shard(shard, shards) if projection.shardable else (None, None)
    _ensure_layout_once(engine, projection, shards)
    total = 0
    sqlite = dialect_for(engine).single_writer
    position = None
    read_ahead = None
    if until_head and not sqlite:
        def read_ahead(after: int) -> Future:
            return _read_ahead_pool().submit(read_page, store, projection, after, batch_size)
    name = checkpoint_name(projection.name, shard, shards)
    with bulk_gc():
        ahead: Future | None = None
        while True:
            if sqlite:  # not on a thread: it would fight the writer for the GIL (sqlite3 takes it back per row)
                # The page is read before the write transaction, after the position this process last left
                # the checkpoint at: if another process moved it since, run_batch reads the page again.
                position = _last_positions(engine).get(name) if position is None else position
                ahead = Future()
                with engine.connect() as conn:
                    if position is None:
                        position = get_position(conn, name) or 0
                    ahead.set_result(read_page(store, projection, position, batch_size, conn))
            with write_transaction(engine) as conn:
                result, ahead = run_batch(conn, store, projection, shard=shard, shards=shards,
                                          batch_size=batch_size, park_failures=park_failures, attempts=attempts,
                                          ahead=ahead, read_ahead=read_ahead, last=True)
            total += result.applied
            position = _last_positions(engine)[name] = result.position
            if on_batch is not None:
                on_batch(result)
            if result.failure is not None:
                raise result.failure
            if result.at_head or not until_head:
                return total


FIRST_BATCH_SIZE = 200  # events per projection in `run_first_batches`' shared transaction


def run_first_batches(engine: Engine, store: EventStore, projections: Sequence[Projection], *,
                      batch_size: int = FIRST_BATCH_SIZE, park_failures: bool = True,
                      attempts: int = 1) -> list[BatchResult]:
    """Returns the result of one batch of each (unsharded) projection, all in one write transaction.

    What a run costs when each projection has a few events to apply (the embedded worker after
    a command): one transaction instead of one per projection; on PostgreSQL three round trips in
    all (every checkpoint lock, the head, the parked streams and the pages with the BEGIN; the rows
    the users projection folds onto; every write and checkpoint with the COMMIT). The batches are
    small (`batch_size`), so the pages read inside the write transaction keep other writers waiting
    no longer than a batch; a projection that is not at the head after it, or whose handler failed
    (`BatchResult.failure`), is the caller's to go on with (`run_projection`).
    """
    for projection in projections:
        _ensure_layout_once(engine, projection, None)
    hints = _last_positions(engine)
    results: list[BatchResult] = []
    with bulk_gc(), write_transaction(engine) as conn:
        started = time.perf_counter()
        opened = _open_batches(conn, store, [(p, p.name, hints.get(p.name)) for p in projections], batch_size)
        done: list[tuple[Batch, BatchResult]] = []
        for projection, start in zip(projections, opened, strict=True):
            position, page = _batch_page(conn, store, projection, start, None, batch_size)
            if position >= page.head:
                results.append(BatchResult(start.checkpoint, 0, 0, 0, position, page.head, True))
                continue
            done.append(_fold_batch(conn, projection, start.checkpoint, page, page.events,
                                    _advance(position, page, batch_size), park_failures=park_failures,
                                    attempts=attempts, blocked=start.blocked))
            results.append(done[-1][1])
        if done:
            _write_batches(conn, done, time.perf_counter() - started, last=True)
    for result in results:
        hints[result.checkpoint] = result.position
    return results


# -- what a process keeps between runs -------------------------------------------
#
# The checkpoint layout each projection was found in, per engine: checked once per process
# instead of with a SELECT on every run. It cannot go stale unnoticed: a layout is only ever
# replaced whole (`ensure_layout`, `replace_layout` delete every row not in the new one), so a
# run whose own checkpoint row is gone knows the layout changed, and `run_batch` then forgets
# it and lays it out again in its transaction (as the first run of a process does).
_LAYOUTS: weakref.WeakKeyDictionary[Engine, set[tuple[str, int | None]]] = weakref.WeakKeyDictionary()
_STATE_LOCK = threading.Lock()  # guards _LAYOUTS, _POOL and _POSITIONS
_POOL: list[ThreadPoolExecutor] = []  # the process's read-ahead pool, started on first use
_POSITIONS: weakref.WeakKeyDictionary[Engine, dict[str, int]] = weakref.WeakKeyDictionary()


def _last_positions(engine: Engine) -> dict[str, int]:
    """Returns {checkpoint name: the position this process's last batch left it at} (a hint only)."""
    found = _POSITIONS.get(engine)
    if found is None:
        with _STATE_LOCK:
            found = _POSITIONS.setdefault(engine, {})
    return found


def _ensure_layout_once(engine: Engine, projection: Projection, shards: int | None) -> None:
    key = (projection.name, shards)
    if key in _LAYOUTS.get(engine, ()):
        return
    wanted = set(layout_names(projection.name, shards))
    with engine.connect() as conn:
        have = set(conn.execute(select(cp.c.name).where(cp.c.name.in_(wanted))).scalars())
    if have != wanted:
        with write_transaction(engine) as conn:
            ensure_layout(conn, projection.name, shards)
    with _STATE_LOCK:
        _LAYOUTS.setdefault(engine, set()).add(key)


def _forget_layout(engine: Engine, projection: str) -> None:
    with _STATE_LOCK:
        known = _LAYOUTS.get(engine)
        if known:
            known.difference_update({k for k in known if k[0] == projection})


def _read_ahead_pool() -> ThreadPoolExecutor:
    """Returns the process's read-ahead pool: one, long-lived, its threads started as pages are read."""
    with _STATE_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=READ_AHEAD_THREADS, thread_name_prefix="read-ahead"))
        return _POOL[0]


def _after_fork() -> None:
    """A forked child (a Celery prefork worker) starts with no pool: its parent's threads are not in it."""
    global _STATE_LOCK
    _STATE_LOCK = threading.Lock()
    _POOL.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def run_projections(container: Any, *, until_head: bool = True, shard: int | None = None,
                    shards: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                    names: list[str] | tuple[str, ...] | None = None, park_failures: bool = True,
                    attempts: int = 1, on_batch: Callable[[BatchResult], Any] | None = None) -> int:
    """Returns the number of events applied by the registered projections (or `names`) up to the head.

    `shard`/`shards` select one shard of the shardable projections; projections that
    cannot be sharded (the notifications outbox) run only on shard 0 or unsharded.
    """
    shard, shards = check_shard(shard, shards)
    total = 0
    for projection in select_projections(names):
        if not projection.shardable and shard not in (None, 0):
            continue
        total += run_projection(container.engine, container.store, projection, until_head=until_head,
                                shard=shard, shards=shards, batch_size=batch_size,
                                park_failures=park_failures, attempts=attempts, on_batch=on_batch)
    return total


def caught_up(engine: Engine, position: int, names: list[str] | tuple[str, ...] | None = None) -> bool:
    """Returns True when every checkpoint of the projections (or `names`) is at or past `position`."""
    from .checkpoints import read_model_position

    with engine.connect() as conn:
        return all(read_model_position(conn, p.name) >= position for p in select_projections(names))
