"""Backfill-as-events: every row of a mapped legacy table becomes one import event.

The table is read in keyset-paginated chunks (`key > last ORDER BY key LIMIT n`). Each
chunk is read together with the changelog watermark W = max(migrator_changelog.id) such
that the rows reflect exactly the changes with id <= W (see `read_chunk` and
docs/architecture.md, "Backfill and watermarks"). Each row becomes an import event with
metadata `source=backfill, changelog_watermark=W, occurred_at=<the row's updated_at>`,
appended with expected version NO_STREAM: a stream the relay already created is skipped,
and the relay applies to a stream only changes with id > its import watermark. The
chunk's appends and the run's checkpoint commit in one transaction, so a run killed at
any point resumes from the last stored chunk with no duplicate and no gap. With a
`Projector`, the chunk's events are folded into the read model in that same transaction
too (`es_app.projections.project_appended`), without reading them back from the feed.

While a chunk is written, the next one is read, its events built and encoded ahead: in a
second process (`BackfillOptions.read_process`; by default for a large table with the event
store on SQLite, where the writer's thread also does the database's work, whatever the legacy
database), or with the event store on PostgreSQL on a second thread (the server's work on one
chunk overlaps the Python work on the next). Reading ahead is safe: whether a row's import is
written is decided at write time (NO_STREAM), and its watermark is the one its own snapshot saw.

Nothing here is specific to users: it takes any bound mapping (`TableMapping.bind`).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from es_app.bulk_gc import bulk_gc
from es_app.dialect import dialect_for
from es_app.store import (
    EventStore,
    RecordedEvent,
    write_transaction,
)

from ..capture.changelog import require_installed
from ..claims.unique import claims_by_stream, take_claims
from ..mapping import CompiledMapping
from ..parking.entries import BACKFILL, ToPark, key_of_text, park, storable
from .leases import DEFAULT_TTL_S, Lease, LeaseHeld, LeaseLost, acquire_in, release, release_in, renew, renew_in
from .readahead import _children_ignore_sigint, _picklable, _read_in_process, _start_process_reader
from .reader import Chunk, ChunkReader, Item
from .runs import DONE, BackfillRun, delete_run, load_run, save_run
from .throttle import Clock, PauseGate, RateLimiter, Sleep

ANALYZE_FIRST_AT = 10_000
READ_PROCESS_FROM = 50_000  # rows left, from which a reader process is worth its start (a new interpreter)


class BackfillError(Exception):
    """A backfill that cannot start or go on; the message is one line the user can act on."""


@dataclasses.dataclass
class BackfillOptions:
    """Knobs of one backfill run; the rate cap is off when None. Pause conditions beyond the
    pause file (relay backlog, projection lag) come with a `PauseGate` passed to `Backfill`."""

    batch_size: int = 1000
    max_rate: float | None = None
    pause_file: Path | None = None
    poll_s: float = 1.0
    # read and build chunks ahead in a second process; None = on SQLite when READ_PROCESS_FROM rows or more
    # are left (see Backfill._read_pool). Never with a rate cap, nor for an in-memory database.
    read_process: bool | None = None
    # seconds a run's lease lives without a committed chunk (or a pause poll) renewing it: a second run
    # refuses to start while it lives; a run killed outright is taken over once it expired (migrator.backfill.leases)
    lease_ttl: float = DEFAULT_TTL_S


@dataclasses.dataclass(frozen=True)
class ChunkResult:
    """Returns what one stored chunk did: rows read, imported, skipped (stream already there), and
    whether its events were projected in its own transaction; `parked`: rows the event store cannot
    hold, parked with their reason (see migrator.parking.entries)."""

    rows: int
    imported: int
    skipped: int
    last_key: Any
    watermark: int
    projected: bool = False
    parked: int = 0


@dataclasses.dataclass(frozen=True)
class Projector:
    """How a backfill keeps the read model up with its chunks.

    `appended(conn, events)` folds a chunk's events into the projections inside the chunk's
    transaction and returns True when every projection then stands at them; `catch_up()`
    runs the projections after the commit when it did not (or when `appended` is None).
    """

    catch_up: Callable[[], Any]
    appended: Callable[[Connection, Sequence[RecordedEvent]], bool] | None = None


def projector_for(container: Any) -> Projector:
    """Returns the Projector of an es_app container: `project_appended`, then `run_projections`."""
    from es_app.projections import project_appended, run_projections

    return Projector(catch_up=lambda: run_projections(container),
                     appended=lambda conn, events: project_appended(conn, container.store, events))


def projection_lag(container: Any) -> int:
    """Returns how many events the most-behind projection checkpoint lags the feed's head."""
    from es_app.projections import projection_status

    return max((s.lag for s in projection_status(container)), default=0)


class Backfill:
    """Backfills one mapped table into the event store, chunk by chunk, from its checkpoint.

    `mapping` must be bound to the legacy database (`TableMapping.bind(engine)`). `project`
    keeps the read model up with each stored chunk (see `Projector`; None leaves it to the
    workers); `gate` says when to pause; `clock`/`sleep` are injectable for tests.
    """

    def __init__(self, mapping: CompiledMapping, legacy_engine: Engine, store: EventStore, *,
                 options: BackfillOptions | None = None, gate: PauseGate | None = None,
                 project: Projector | None = None,
                 clock: Clock = time.monotonic, sleep: Sleep = time.sleep):
        if not mapping.table_columns:
            raise BackfillError(f"mapping {mapping.table} is not bound to the database (call mapping.bind)")
        self.mapping, self.legacy, self.store = mapping, legacy_engine, store
        self.options = options or BackfillOptions()
        if self.options.batch_size < 1:
            raise BackfillError("--batch-size must be at least 1")
        if not self.options.lease_ttl > 0:
            raise BackfillError("--lease-ttl must be positive")
        self.gate = gate or PauseGate(pause_file=self.options.pause_file)
        self.project = project
        self.clock, self.sleep = clock, sleep
        self.limiter = RateLimiter(self.options.max_rate, clock=clock, sleep=sleep)
        self.reader = ChunkReader(mapping, legacy_engine)
        self.run: BackfillRun | None = None
        self._pool: Executor | None = None  # reads ahead: a process or a thread (None: not chosen, or not at all)
        self._chosen = False
        self._ahead: tuple[Any, int, Future] | None = None  # (after key, limit, future of (chunk, items))
        self._analyze_at = ANALYZE_FIRST_AT  # the run's imported rows at which the store is next analysed
        self._lease: Lease | None = None  # held from start() to close()

    @property
    def name(self) -> str:
        return self.mapping.table

    # -- the run -----------------------------------------------------------
    def stored_run(self) -> BackfillRun | None:
        """Returns the stored checkpoint of this table's backfill, None if it never ran."""
        with self.store.engine.connect() as conn:
            return load_run(conn, self.name)

    def start(self, *, resume: bool = False, restart: bool = False) -> BackfillRun:
        """Returns the run to continue: a new one, the stored one (`resume`), or a fresh one (`restart`).

        Raises BackfillError when an unfinished or finished run exists and neither flag says what to do,
        or when another run of this table is going on (its lease, see migrator.backfill.leases, names it).
        """
        self._check_capture()
        with write_transaction(self.store.engine) as conn:
            try:
                lease = acquire_in(conn, f"the backfill of {self.name}", self.options.lease_ttl)
            except LeaseHeld as exc:
                raise BackfillError(str(exc)) from None
            run = load_run(conn, self.name)
            if run is not None and restart:
                delete_run(conn, self.name)
                run = None
            elif run is not None and not resume:
                if run.finished:
                    raise BackfillError(f"the backfill of {self.name} finished at {run.finished_at:%Y-%m-%d %H:%M}"
                                        f" ({run.rows_done} rows); pass --restart to run it again")
                raise BackfillError(f"an unfinished backfill of {self.name} exists ({run.rows_done} rows done, "
                                    f"last key {run.last_key!r}): pass --resume to continue or --restart to start over")
            if run is None:
                run = BackfillRun(self.name, self.mapping.table)
                save_run(conn, run)
            if run.finished:
                release_in(conn, lease)  # nothing to run
            else:
                self._lease = lease
        self.run = run
        self.limiter.start()
        return run

    def _check_capture(self) -> None:
        require_installed(self.legacy, [self.mapping.declaration])

    # -- one chunk ---------------------------------------------------------
    def read_chunk(self, limit: int | None = None) -> Chunk:
        """Returns the next chunk after the checkpoint with its watermark (empty rows at the end).

        The SELECT and the watermark share one snapshot: a WAL read transaction on SQLite
        (one writer at a time, so changelog ids follow commit order), a REPEATABLE READ
        transaction on PostgreSQL, where capture numbers changelog rows at commit under
        a lock (migrator.capture.backends.postgres), so ids follow commit order there too; on
        MySQL/MariaDB a REPEATABLE READ transaction whose first read is the watermark's: the
        sequencer numbers the committed changelog rows in it under its lock, and the snapshot
        begins there (migrator.capture.backends.mysql). Hence every change the rows contain has
        an id <= W and every change they lack an id > W.
        """
        return self.reader.read_after(self._require_run().last_key, limit or self.options.batch_size)

    def write_chunk(self, chunk: Chunk, items: list[Item] | None = None) -> ChunkResult:
        """Appends the chunk's import events (skipping existing streams) and moves the checkpoint, in one
        transaction; with a Projector that can, the read model follows in the same transaction.

        Returns what was stored. An empty chunk marks the run done. `items` are the chunk's
        `import_items`, when already built.
        """
        run = self._require_run()
        if items is None:
            items, parked = self.reader.checked_items(chunk)
            chunk = dataclasses.replace(chunk, parked=tuple(parked))
        appended = self.project.appended if self.project is not None else None
        projected = False
        size = chunk.size
        with write_transaction(self.store.engine) as conn:
            self._renew_in(conn)  # first: a run whose lease was taken over writes nothing
            if not items:
                results: list[Any] = []
            elif appended is not None:
                results = self.store.append_batch_recorded(conn, items, skip_mismatched=True)
                projected = appended(conn, [e for events in results if events is not None for e in events])
            else:
                results = self.store.append_batch(conn, items, skip_mismatched=True)
            imported = sum(1 for r in results if r is not None)
            self._take_claims(conn, chunk, items, results)
            n_parked = self._park(conn, chunk.parked)
            updated = dataclasses.replace(
                run, last_key=chunk.last_key, rows_done=run.rows_done + size,
                rows_imported=run.rows_imported + imported,
                rows_skipped=run.rows_skipped + size - imported - n_parked,
                rows_parked=run.rows_parked + n_parked,
                chunks=run.chunks + (1 if size else 0),
                watermark=chunk.watermark if size else run.watermark)
            if not size:
                updated.status, updated.finished_at = DONE, datetime.now(UTC)
            save_run(conn, updated)
        self.run = updated
        return ChunkResult(size, imported, size - imported - n_parked, chunk.last_key, chunk.watermark,
                           projected or not imported, n_parked)

    def _park(self, conn: Connection, rows: Sequence[ToPark]) -> int:
        """Parks the chunk's rows the event store cannot hold (but a key whose stream exists: the
        row was imported before, or the relay made it) and returns how many rows were parked."""
        if not rows:
            return 0
        wanted = {self.mapping.stream_id(key_of_text(r.key)): r for r in rows}
        existing = self.store.stream_versions(conn, [sid for sid in wanted if storable(sid)])
        waiting = [r for sid, r in wanted.items() if sid not in existing]
        park(conn, self.mapping.table, BACKFILL, waiting)
        return len(waiting)

    def import_items(self, chunk: Chunk) -> list[Item]:
        """Returns the chunk's appends: (stream id, [import event], NO_STREAM) per row."""
        return self.reader.import_items(chunk)

    def _take_claims(self, conn: Connection, chunk: Chunk, items: list[Item], results: list[Any]) -> None:
        """Takes the unique claims of the rows imported now (a stream that existed keeps its own), in key
        order: of two rows wanting one value the lower key gets it, the other becomes a finding."""
        wanted = chunk.claims or claims_by_stream(self.mapping, chunk.rows)
        if wanted:
            imported = {item[0] for item, r in zip(items, results, strict=True) if r is not None}
            take_claims(self.store, conn, self.mapping, [(sid, c) for sid, c in wanted if sid in imported])

    def _renew_in(self, conn: Connection) -> None:
        """Renews the run's lease in the chunk's transaction: a run whose lease was taken over stops."""
        if self._lease is not None:
            try:
                renew_in(conn, self._lease)
            except LeaseLost as exc:
                raise BackfillError(f"{exc}; the other run goes on") from None

    def _paused(self, reason: str) -> None:
        if self._lease is not None:
            try:
                renew(self.store.engine, self._lease)
            except LeaseLost as exc:
                raise BackfillError(f"{exc}; the other run goes on") from None
        self.on_pause(reason)

    def step(self) -> ChunkResult:
        """Reads and stores the next chunk (rate cap and pause conditions first), then projects.

        Returns what the chunk did; a result with 0 rows means the run is done.
        """
        self.gate.wait(self.sleep, poll_s=self.options.poll_s, on_pause=self._paused)
        self._apply_live_rate()
        after, limit = self._require_run().last_key, self.limiter.chunk_limit(self.options.batch_size)
        chunk, items = self._next_chunk(after, limit)
        if chunk.size and self._read_pool() is not None:
            self._ahead = (chunk.last_key, limit, self._submit_read(chunk.last_key, limit))
        result = self.write_chunk(chunk, items)
        if self._require_run().rows_imported >= self._analyze_at:  # at 10,000 rows, then each time they double
            self.store.analyze()
            self._analyze_at = 2 * self._require_run().rows_imported
        if self.project is not None and not result.projected:
            self.project.catch_up()
        self.limiter.record(result.rows)
        if not result.rows:
            self.close()
        return result

    def _apply_live_rate(self) -> None:
        """Caps the rate at the lower of --max-rate and the live cap (the migration's throttle), when set."""
        if self.gate.live is None:
            return
        caps = [r for r in (self.options.max_rate, self.gate.live.max_rate()) if r]
        self.limiter.set_max_rate(min(caps) if caps else None)

    def _next_chunk(self, after: Any, limit: int) -> tuple[Chunk, list[Item]]:
        """Returns the chunk after `after` and its items: the one read ahead when it is that one, else read now."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[:2] != (after, limit):
            return self.reader.read_and_build(after, limit, self._parsed)
        try:
            return ahead[2].result()
        except BrokenProcessPool as exc:
            raise self._reader_died(exc) from None

    @property
    def _parsed(self) -> bool:
        """Whether encoded events are read back for the projections (only when the chunk projects inline)."""
        return self.project is not None and self.project.appended is not None

    def _read_pool(self) -> Executor | None:
        """Returns where chunks are read ahead, chosen at the first step (None: they are not).

        A process when asked for, or by default when the event store is SQLite and
        READ_PROCESS_FROM rows or more are left: there the writer's own thread does the
        database's work too, and the reader's Python runs beside it on the other core. A
        reader thread would not do: the writer takes the GIL back after every row of an
        executemany, and a busy reader thread then holds it for up to the switch interval
        (slower than no thread at all when tried). On PostgreSQL, a thread by default: the
        server releases the GIL for a whole statement, and on the 2-core machine of
        docs/benchmarks.md a process gained nothing there (the server wants the other core).
        Throttled runs read nothing ahead.
        """
        if self._chosen or self.options.max_rate is not None:
            return self._pool
        self._chosen = True
        wanted = self.options.read_process
        url = self.legacy.url
        shareable = url.get_backend_name() != "sqlite" or url.database not in (None, "", ":memory:")
        sqlite = dialect_for(self.store.engine).single_writer
        if wanted is None:
            wanted = (sqlite and shareable and _picklable(self.mapping)
                      and self.remaining_estimate() >= READ_PROCESS_FROM)
        elif wanted and not _picklable(self.mapping):
            raise BackfillError(f"the mapping of {self.name} cannot go to a reader process (its normalizer "
                                "functions must be importable by name): run with --no-read-process")
        if wanted and shareable:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_process_reader,
                                             initargs=(self.mapping.declaration, self.mapping.binding,
                                                       url.render_as_string(hide_password=False), os.getpid()))
        elif not sqlite:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"backfill-read:{self.name}")
        return self._pool

    def _submit_read(self, after: Any, limit: int) -> Future:
        assert self._pool is not None
        in_process = isinstance(self._pool, ProcessPoolExecutor)
        read = _read_in_process if in_process else self.reader.read_and_build
        # SIGINT is ignored only while the submit that starts the reader process runs (the process inherits the
        # ignoring); ignored around every submit, a Ctrl-C landing in one was lost and the backfill ran on
        starts = in_process and not getattr(self._pool, "_processes", None)
        # a reader process sends the events' JSON only: their parsed data and metadata would cost more to pickle
        # there and unpickle here (under the writer's GIL) than the writer's own parse of that JSON
        parsed = self._parsed and not in_process
        try:
            with _children_ignore_sigint(starts):
                return self._pool.submit(read, after, limit, parsed)
        except BrokenProcessPool as exc:
            raise self._reader_died(exc) from None

    def _reader_died(self, exc: BaseException) -> BackfillError:
        self.close()
        return BackfillError(f"the backfill's reader process of {self.name} died ({exc}); run again with --resume")

    def close(self) -> None:
        """Stops reading ahead (a chunk read in advance is dropped; it is read again by the next step)
        and gives the run's lease back."""
        self._ahead = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._chosen = False
        lease, self._lease = self._lease, None
        if lease is not None:
            release(self.store.engine, lease)

    def run_to_end(self, on_chunk: Callable[[ChunkResult], Any] | None = None) -> BackfillRun:
        """Steps until the table is exhausted (with a quieter garbage collector, see
        es_app.bulk_gc). Returns the finished run."""
        try:
            with bulk_gc():
                while True:
                    result = self.step()
                    if on_chunk is not None:
                        on_chunk(result)
                    if result.rows == 0:
                        return self._require_run()
        finally:
            self.close()

    def on_pause(self, reason: str) -> None:
        """Called with the reason each time the backfill waits; the CLI shows it."""

    def remaining_estimate(self) -> int:
        """Returns how many rows lie after the checkpoint (a count; for progress and ETA)."""
        return self.reader.count_after(self._require_run().last_key)

    def _require_run(self) -> BackfillRun:
        if self.run is None:
            raise BackfillError("call start() before running chunks")
        return self.run

