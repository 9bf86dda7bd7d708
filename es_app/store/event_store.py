"""The append-only event store: the rules every backend shares.

`EventStore(engine)` returns the store of the engine's backend (`sqlite.SqliteEventStore` or
`postgres.PostgresEventStore`); this core holds what does not depend on it: the expected-version
rules, the resolution of an idempotent retry, a batch's bookkeeping (its rows, spans and the
savepoint retry), the limits checks, reads through fixed SQL, and the Core queries of rare paths.
The backend classes hold their SQL and the append, insert and read steps that differ.

Gap safety (docs/architecture.md): on PostgreSQL every append takes one transaction-scoped
advisory lock before it reads the stream version and inserts, and holds it until commit, so
positions are handed out in commit order; SQLite serialises writers with BEGIN IMMEDIATE.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from . import claims as _claims
from . import lookups
from . import statements as sql
from .codec import loads
from .driver import dbapi_connection, dbapi_of, driver_cursor, translated_errors
from .limits import check_fields
from .rows import EventRow, SnapshotRow, StoredRow, rows_at
from .rules import check_new_events, matches, refuse_repeated_ids
from .snapshots import Snapshot
from .types import (
    AppendResult,
    Claim,
    ClaimTaken,
    ConcurrencyError,
    EncodedEvent,
    Expected,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    recorded_event,
)
from .upcasting import UpcasterRegistry

BatchItem = tuple[str, Sequence[NewEvent | EncodedEvent], Expected]


class _Span(NamedTuple):
    """Where one item of a batch goes: its rows [start, end) at versions up to `version`, or, for an
    idempotent retry, the result of the events already stored (`stored`)."""

    stream_id: str
    version: int
    start: int
    end: int
    stored: AppendResult | None = None


class _Mismatch(Exception):
    """The stream's version did not match; nothing was written."""

    def __init__(self, current: int | None):
        self.current = current


def _backend_class(dialect_name: str) -> type[EventStore]:
    """Returns the EventStore class of a backend, by SQLAlchemy dialect name."""
    if dialect_name == "sqlite":
        from .sqlite import SqliteEventStore
        return SqliteEventStore
    if dialect_name == "postgresql":
        from .postgres import PostgresEventStore
        return PostgresEventStore
    raise ValueError(f"the event store runs on sqlite or postgresql, not {dialect_name!r}")


class EventStore:
    """Append to streams and read streams or the global feed.

    `EventStore(engine)` makes the store of the engine's backend; the public methods are all
    defined here, the backend classes override private steps only. `serialize_appends=False`
    turns the PostgreSQL append lock off; it exists only so tests and benchmarks can show
    what the lock prevents and what it costs. The hot paths run driver-level SQL (see
    driver.py); the rare ones use SQLAlchemy Core.
    """

    def __new__(cls, engine: Engine | None = None, *args: Any, **kwargs: Any) -> EventStore:
        if cls is EventStore and engine is not None:
            cls = _backend_class(engine.dialect.name)
        return super().__new__(cls)

    def __init__(self, engine: Engine, upcasters: UpcasterRegistry | None = None,
                 *, serialize_appends: bool = True):
        self.engine = engine
        self.upcasters = upcasters or UpcasterRegistry()
        self.serialize_appends = serialize_appends

    # -- the steps each backend implements ----------------------------------
    def _append_own(self, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                    claims: tuple[Claim, ...], releases: tuple[Claim, ...]) -> AppendResult:
        """Returns where the events landed, appended in a transaction of its own; raises _Mismatch."""
        raise NotImplementedError

    def _append_checked(self, cur: Any, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                        claims: tuple[Claim, ...], releases: tuple[Claim, ...]) -> AppendResult:
        """Returns where the events landed, appended in the cursor's transaction; raises _Mismatch."""
        raise NotImplementedError

    def _lock_and_read_versions(self, db: Any, stream_ids: list[str]) -> dict[str, int]:
        """Returns the streams' versions after taking the append lock (where there is one)."""
        raise NotImplementedError

    def _insert_positioned(self, cur: Any, rows: list[EventRow], savepoint: str | None = None,
                           lock: bool = False) -> list[int]:
        """Returns the positions of `rows`, inserted in order with positions taken ahead (after
        `savepoint` is set, when given; after the append lock is taken first, with `lock`)."""
        raise NotImplementedError

    def _q(self, statement: str) -> str:
        """Returns a shared statement (written with %s) in this driver's parameter style."""
        return statement

    def _time_param(self, now: datetime) -> Any:
        return now

    def _recorded_time(self, stored: Any) -> datetime:
        return stored

    def _json_value(self, raw: Any) -> Any:
        return raw

    def _recorded(self, row: StoredRow | tuple, upcast: Any) -> RecordedEvent:
        position, stream_id, version, event_id, event_type, schema_version, data, meta, recorded_at = row
        schema_version, data = upcast(event_type, schema_version, data)
        return recorded_event(position, stream_id, version, event_id, event_type, schema_version, data, meta,
                              recorded_at)

    def _in(self, column: str, values: list[str], params: list[Any]) -> str:
        """Returns the condition " AND `column` is one of `values`", its parameters added to `params`."""
        raise NotImplementedError

    def analyze(self) -> None:
        """Refreshes the planner's statistics of the events table (PostgreSQL; a no-op on SQLite,
        whose planner does without them). Bulk writers call it as the table grows: planned on the
        statistics of an empty table, a feed read sorts every remaining event for each page."""
        self._analyze()

    def lock_for_append(self, conn: Connection) -> None:
        """Takes the append lock in the caller's transaction (PostgreSQL; SQLite's write
        transaction already excludes other writers)."""
        self._lock_in(conn)

    def _analyze(self) -> None:
        """Refreshes the planner's statistics where the backend has them."""

    def _lock_in(self, conn: Connection) -> None:
        """Takes the append lock in `conn`'s transaction where the backend has one."""

    # -- writing -----------------------------------------------------------
    def append(self, stream_id: str, new_events: Sequence[NewEvent],
               expected_version: Expected = ExpectedVersion.ANY, *,
               claims: Iterable[Claim] = (), releases: Iterable[Claim] = ()) -> AppendResult:
        """Returns where the events landed. Raises ConcurrencyError, EventIdConflict, ClaimTaken, InvalidEvent."""
        claims, releases = tuple(claims), tuple(releases)
        check_new_events(stream_id, new_events, claims, releases)
        try:
            return self._append_own(stream_id, new_events, expected_version, claims, releases)
        except (_Mismatch, IntegrityError):
            return self._resolve_failed_append(stream_id, new_events, expected_version)

    def append_in(self, conn: Connection, stream_id: str, new_events: Sequence[NewEvent],
                  expected_version: Expected = ExpectedVersion.ANY, *,
                  claims: Iterable[Claim] = (), releases: Iterable[Claim] = ()) -> AppendResult:
        """Appends inside the caller's write transaction (see `write_transaction`)."""
        claims, releases = tuple(claims), tuple(releases)
        check_new_events(stream_id, new_events, claims, releases)
        try:
            with driver_cursor(conn) as cur:
                return self._append_checked(cur, stream_id, new_events, expected_version, claims, releases)
        except _Mismatch as mismatch:
            return self._retry_or_refuse(conn, stream_id, new_events, expected_version, mismatch)

    def append_call(self, function: str, leading: Sequence[Any], stream_id: str, new_events: Sequence[NewEvent],
                    expected_version: Expected = ExpectedVersion.ANY, *, claims: Iterable[Claim] = (),
                    releases: Iterable[Claim] = ()) -> tuple[Any, ...] | None:
        """Runs an append as one call of a server-side function, outside any transaction (one round
        trip, committed when it returns), and returns the function's row; None where the backend has
        no such functions (SQLite), for the caller to append otherwise.

        `function` takes `leading`'s values, then `es_append`'s parameters (the append lock, the
        stream, the expected version, the encoded events, the claims and releases: see the
        `append_functions` migration) and returns at least `es_append`'s (outcome, version,
        positions): outcome "appended", or "mismatch" with the stream's version, when nothing was
        written. Raises ClaimTaken (nothing written), InvalidEvent, and IntegrityError for an event
        id stored before.
        """
        claims, releases = tuple(claims), tuple(releases)
        check_new_events(stream_id, new_events, claims, releases)
        return self._call_append(function, leading, stream_id, new_events, expected_version, claims, releases)

    def _call_append(self, function: str, leading: Sequence[Any], stream_id: str, new_events: Sequence[NewEvent],
                     expected: Expected, claims: tuple[Claim, ...],
                     releases: tuple[Claim, ...]) -> tuple[Any, ...] | None:
        """`append_call` where the backend has server-side functions; None elsewhere."""
        return None

    def append_probed_in(self, conn: Connection, stream_id: str, new_events: Sequence[NewEvent],
                         expected_version: Expected = ExpectedVersion.ANY, *, probe: tuple[str, Sequence[Any]],
                         claims: Iterable[Claim] = (),
                         releases: Iterable[Claim] = ()) -> tuple[AppendResult | None, list[tuple[Any, ...]]]:
        """Takes the append lock, runs `probe` (a driver-level read written with %s placeholders,
        and its parameters) and appends unless the probe found rows; returns (where the events landed,
        or None when the probe found rows, the probe's rows). On PostgreSQL it is all one round trip.

        For a caller that owns the write transaction and rolls it back unless it got a result: on
        PostgreSQL the events may have gone in when the probe found rows, and a claim someone else
        holds is found after they did (ClaimTaken). A version that does not match changes nothing
        (ConcurrencyError, or the stored result of an exact retry, as `append_in`).
        """
        claims, releases = tuple(claims), tuple(releases)
        check_new_events(stream_id, new_events, claims, releases)
        try:
            with driver_cursor(conn) as cur:
                return self._append_probed(cur, stream_id, new_events, expected_version, claims, releases, probe)
        except _Mismatch as mismatch:
            return self._retry_or_refuse(conn, stream_id, new_events, expected_version, mismatch), []

    def _retry_or_refuse(self, conn: Connection, stream_id: str, new_events: Sequence[NewEvent],
                         expected: Expected, mismatch: _Mismatch) -> AppendResult:
        """Returns the stored result when these exact events are stored already; else raises ConcurrencyError."""
        retried = self._stored_retry(conn, stream_id, new_events)
        if retried is not None:
            return retried
        current = mismatch.current if mismatch.current is not None else lookups.stream_version(conn, stream_id)
        raise ConcurrencyError(stream_id, expected, current) from None

    def _append_probed(self, cur: Any, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                       claims: tuple[Claim, ...], releases: tuple[Claim, ...],
                       probe: tuple[str, Sequence[Any]]) -> tuple[AppendResult | None, list[tuple[Any, ...]]]:
        """One statement after the other (SQLite: the write transaction is the lock)."""
        found = cur.execute(self._q(probe[0]), probe[1]).fetchall()
        if found:
            return None, found
        return self._append_checked(cur, stream_id, new_events, expected, claims, releases), []

    def _stamps(self) -> tuple[str, Any]:
        """Returns (default occurred_at text, recorded_at parameter) of rows written now; a bulk append
        takes them once for all its streams."""
        now = datetime.now(UTC)
        return now.isoformat(), self._time_param(now)

    def _release_claim_rows(self, cur: Any, stream_id: str, claims: tuple[Claim, ...],
                            releases: tuple[Claim, ...]) -> None:
        for claim in releases:
            cur.execute(self._q(sql.RELEASE), (claim.scope, claim.value, stream_id))
        for claim in claims:
            if cur.execute(self._q(sql.CLAIM), (claim.scope, claim.value, stream_id)).fetchone() is not None:
                continue  # taken now: the common case, one statement
            owner = cur.execute(self._q(sql.CLAIM_OWNER), (claim.scope, claim.value)).fetchone()[0]
            if owner != stream_id:
                raise ClaimTaken(claim, owner)

    def claim_in(self, conn: Connection,
                 claims_by_owner: Iterable[tuple[str, Iterable[Claim]]]) -> list[_claims.ClaimConflict]:
        """Takes many owners' claims in the caller's write transaction (set-based, for importers);
        returns a ClaimConflict for each claim someone else holds (the first owner asking wins)."""
        return _claims.claim_in(conn, claims_by_owner)

    def release_in(self, conn: Connection, owners: Iterable[str],
                   keep: dict[str, Iterable[Claim]] | None = None) -> int:
        """Releases the owners' claims except `keep[owner]` in the caller's transaction; returns how many."""
        return _claims.release_in(conn, owners, keep)

    def claims_of(self, conn: Connection, owners: Iterable[str]) -> dict[str, set[Claim]]:
        """Returns {owner: the claims it holds}."""
        return _claims.claims_of(conn, owners)


    def append_batch(self, conn: Connection,
                     items: Sequence[BatchItem],
                     *, skip_mismatched: bool = False) -> list[AppendResult | None]:
        """Appends to many streams in the caller's write transaction with one bulk insert.

        Returns one result per item; with `skip_mismatched`, an item whose expected
        version does not match is left out (None) instead of raising. Events may come
        encoded ahead (`encode_events`): their text is written as it is. Like `append`,
        an item whose events are already stored exactly (same ids, stream, order, type and
        data) is a no-op (`written=False`); an id stored with other content, or repeated in
        the batch, raises EventIdConflict.
        """
        spans, _rows, positions = self._append_rows(conn, items, skip_mismatched)
        return [None if span is None else span.stored if span.stored is not None else
                AppendResult(span.stream_id, span.version, positions[span.end - 1],
                             tuple(positions[span.start:span.end]))
                for span in spans]

    def append_batch_recorded(self, conn: Connection,
                              items: Sequence[BatchItem],
                              *, skip_mismatched: bool = False) -> list[list[RecordedEvent] | None]:
        """Appends like `append_batch`; returns the events as recorded (None for a skipped item),
        for a caller that hands them to projections in the same transaction. The data and
        metadata are what a read returns: parsed back from the stored JSON (an encoded event's
        own `data`/`metadata` when `encode_events(parsed=True)` made them)."""
        spans, rows, positions = self._append_rows(conn, items, skip_mismatched)
        upcast = self.upcasters.upcast
        recorded_at = self._recorded_time(rows[0].recorded_at) if rows else None  # one time for the whole batch
        out: list[list[RecordedEvent] | None] = []
        for (_, batch, _), span in zip(items, spans, strict=True):
            if span is None:
                out.append(None)
                continue
            if span.stored is not None:  # an idempotent retry: the events as stored before
                out.append(self.read_stream(span.stream_id, span.version - len(batch) + 1, span.version, conn=conn))
                continue
            recorded = []
            for n, e in zip(range(span.start, span.end), batch, strict=True):
                stream_id, _, version, event_id, event_type, schema_version, data_text, meta_text, _ = rows[n]
                if type(e) is EncodedEvent and e.data is not None and e.metadata is not None:
                    data, meta = e.data, e.metadata  # already read back from this very text
                else:
                    data, meta = loads(data_text), loads(meta_text)
                schema_version, data = upcast(event_type, schema_version, data)
                # arg-type: recorded_at is None only when no row was written, and then no span reaches here
                recorded.append(recorded_event(positions[n], stream_id, version, event_id, event_type, schema_version,
                                               data, meta, recorded_at))  # type: ignore[arg-type]
            out.append(recorded)
        return out

    def _append_rows(self, conn: Connection, items: Sequence[BatchItem],
                     skip_mismatched: bool) -> tuple[list[_Span | None], list[EventRow], list[int]]:
        """Returns (span per item, or None when skipped), the rows written, their positions.

        The insert runs under a savepoint: when an event id is already stored (a retried
        batch), it is rolled back, the stored items are resolved as `append` does, and the
        rest goes in again. The common path pays one savepoint and no lookups.

        A batch of new streams only (every item NO_STREAM, none to skip) is first inserted without
        reading the streams' versions: version 1 of a stream that exists breaks the unique
        (stream, version) key, and then the batch is planned again on the versions read.
        """
        if any(not batch for _, batch, _ in items):
            raise ValueError("append_batch needs at least one event per stream")
        for stream_id, batch, _ in items:
            check_fields(stream_id, batch)
        refuse_repeated_ids(e for _, batch, _ in items for e in batch)
        db = dbapi_of(conn)
        if not skip_mismatched and all(expected is ExpectedVersion.NO_STREAM for _, _, expected in items):
            spans, rows = self._plan_rows(conn, items, {}, skip_mismatched, stored={})  # reads nothing
            try:
                with translated_errors(self.engine.dialect):  # the lock goes with the positions (one round trip)
                    return spans, rows, self._insert_rows(db, rows, savepoint=True, lock=True)
            except IntegrityError:
                pass  # a stream that exists, or an event id stored before: plan on the versions read
        with translated_errors(self.engine.dialect):
            versions = self._lock_and_read_versions(db, [stream_id for stream_id, _, _ in items])
        spans, rows = self._plan_rows(conn, items, versions, skip_mismatched, stored={})
        if not rows:
            return spans, rows, []
        try:
            with translated_errors(self.engine.dialect):
                return spans, rows, self._insert_rows(db, rows, savepoint=True)
        except IntegrityError:
            stored = self._stored_items(conn, [(i, stream_id, batch) for i, ((stream_id, batch, _), span)
                                               in enumerate(zip(items, spans, strict=True)) if span is not None])
            if not stored:
                raise
        spans, rows = self._plan_rows(conn, items, versions, skip_mismatched, stored=stored)
        with translated_errors(self.engine.dialect):
            positions = self._insert_rows(db, rows) if rows else []
        return spans, rows, positions

    def _plan_rows(self, conn: Connection, items: Sequence[BatchItem],
                   stored_versions: dict[str, int], skip_mismatched: bool,
                   stored: dict[int, AppendResult]) -> tuple[list[_Span | None], list[EventRow]]:
        versions = dict(stored_versions)
        rows: list[EventRow] = []
        spans: list[_Span | None] = []
        stamps = self._stamps()
        for i, (stream_id, batch, expected) in enumerate(items):
            if i in stored:
                spans.append(_Span(stream_id, stored[i].version, 0, 0, stored[i]))
                continue
            current = versions.get(stream_id, 0)
            if not matches(expected, current):
                if skip_mismatched:
                    spans.append(None)
                    continue
                retried = self._stored_retry(conn, stream_id, batch)
                if retried is not None:
                    spans.append(_Span(stream_id, retried.version, 0, 0, retried))
                    continue
                raise ConcurrencyError(stream_id, expected, current)
            start = len(rows)
            rows.extend(rows_at(stamps, stream_id, current, batch))
            versions[stream_id] = current + len(batch)
            spans.append(_Span(stream_id, versions[stream_id], start, len(rows)))
        return spans, rows

    def _insert_rows(self, db: Any, rows: list[EventRow], *, savepoint: bool = False, lock: bool = False) -> list[int]:
        """Returns the positions of `rows`, inserted in order.

        Positions are taken first, under the append lock (PostgreSQL: from the events
        sequence; SQLite: after the highest, under the write lock), then the rows go in with
        them: COPY on PostgreSQL, executemany on SQLite; neither needs RETURNING. With
        `savepoint`, a failed insert leaves the caller's transaction as it was; with `lock`, the
        append lock is taken first (before the savepoint, so a failed insert keeps it).
        """
        cur = db.cursor()
        try:
            if not savepoint:
                return self._insert_positioned(cur, rows, lock=lock)
            try:
                positions = self._insert_positioned(cur, rows, savepoint="es_append_batch", lock=lock)
            except BaseException:
                cur.execute("ROLLBACK TO SAVEPOINT es_append_batch")
                cur.execute("RELEASE SAVEPOINT es_append_batch")
                raise
            cur.execute("RELEASE SAVEPOINT es_append_batch")
            return positions
        finally:
            cur.close()


    def _resolve_failed_append(self, stream_id: str, new_events: Sequence[NewEvent],
                               expected: Expected) -> AppendResult:
        """Returns the stored result of an idempotent retry; else raises ConcurrencyError."""
        with self.engine.connect() as conn:
            retried = self._stored_retry(conn, stream_id, new_events)
            if retried is not None:
                return retried
            raise ConcurrencyError(stream_id, expected, lookups.stream_version(conn, stream_id))

    def _stored_retry(self, conn: Connection, stream_id: str,
                      new_events: Sequence[NewEvent | EncodedEvent]) -> AppendResult | None:
        """Returns the original result if these exact events are already stored, else None."""
        return self._stored_items(conn, [(0, stream_id, new_events)]).get(0)

    def _stored_items(self, conn: Connection,
                      items: Sequence[tuple[int, str, Sequence[NewEvent | EncodedEvent]]]) -> dict[int, AppendResult]:
        return lookups.stored_results(conn, items)

    # -- reading -----------------------------------------------------------
    def stream_version(self, stream_id: str) -> int:
        """Returns the stream's last version, 0 when it has no events."""
        with self.engine.connect() as conn:
            return lookups.stream_version(conn, stream_id)

    def stream_versions(self, conn: Connection, stream_ids: Sequence[str]) -> dict[str, int]:
        """Returns {stream id: last version} of those streams that have events (read in `conn`)."""
        return lookups.stream_versions(conn, stream_ids)

    def existing_event_ids(self, conn: Connection, event_ids: Iterable[str]) -> set[str]:
        """Returns those of the event ids that are stored (read in `conn`)."""
        return lookups.existing_event_ids(conn, event_ids)

    def stream_ids_in_category(self, conn: Connection, category: str, *, after: str = "",
                               limit: int = 1000) -> list[str]:
        """Returns up to `limit` ids of the category's streams that sort after `after`, in order."""
        return lookups.stream_ids_in_category(conn, category, after, limit)

    def last_metadata_of_type(self, conn: Connection, stream_ids: Iterable[str],
                              event_type: str) -> dict[str, dict[str, Any]]:
        """Returns {stream id: metadata of its latest event of `event_type`} of the streams having one."""
        return lookups.last_metadata_of_type(conn, stream_ids, event_type)

    def first_recorded_at(self, conn: Connection, category: str) -> datetime | None:
        """Returns when the category's first event was recorded (in UTC), None when it has none."""
        return lookups.first_recorded_at(conn, category)

    def read_streams(self, conn: Connection, stream_ids: Iterable[str]) -> dict[str, list[RecordedEvent]]:
        """Returns {stream id: its events in version order} of the streams that have events (read in `conn`)."""
        found: dict[str, list[RecordedEvent]] = {}
        for chunk in lookups.chunks(list(dict.fromkeys(stream_ids))):
            params: list[Any] = []
            statement = sql.read_streams(self._in("stream_id", list(chunk), params))
            for e in self._fetch(self._q(statement), params, conn):
                found.setdefault(e.stream_id, []).append(e)
        return found

    def read_stream(self, stream_id: str, from_version: int = 1, to_version: int | None = None,
                    limit: int | None = None, backwards: bool = False,
                    conn: Connection | None = None) -> list[RecordedEvent]:
        """Returns the stream's events between the two versions (inclusive), in version order
        or, with `backwards`, from the newest."""
        params: list[Any] = [stream_id, from_version]
        if to_version is not None:
            params.append(to_version)
        if limit is not None:
            params.append(limit)
        return self._fetch(self._q(sql.read_stream(to_version is not None, backwards, limit is not None)),
                           params, conn)

    def read_all(self, after: int = 0, limit: int = 1000, types: Iterable[str] | None = None,
                 category: str | None = None, conn: Connection | None = None,
                 before: int | None = None) -> list[RecordedEvent]:
        """Returns events of the global feed with position > `after` (and < `before`), in position order."""
        statement, params = self.read_all_query(after, limit, types, category, before)
        return self._fetch(statement, params, conn)

    def read_all_query(self, after: int = 0, limit: int = 1000, types: Iterable[str] | None = None,
                       category: str | None = None, before: int | None = None) -> tuple[str, list[Any]]:
        """Returns the statement and parameters of `read_all`, in the driver's parameter style, for a caller
        that sends it with other reads (`Dialect.read_together`); `recorded` turns its rows into events."""
        params: list[Any] = [after]
        if before is not None:
            params.append(before)
        type_filter = "" if types is None else self._in("event_type", list(types), params)
        if category is not None:
            params.append(category)
        params.append(limit)
        return self._read_all_sql(type_filter, category is not None, before is not None), params

    def recorded(self, rows: Iterable[Any]) -> list[RecordedEvent]:
        """Returns the events of rows read by a `read_all_query` statement."""
        upcast, recorded = self.upcasters.upcast, self._recorded
        return [recorded(r, upcast) for r in rows]

    def _read_all_sql(self, type_filter: str, has_category: bool, has_before: bool) -> str:
        return self._q(sql.read_all(type_filter, has_category, has_before))

    def read_from_snapshot(self, stream_id: str, schema_version: int,
                           to_version: int | None = None) -> tuple[Snapshot | None, list[RecordedEvent]]:
        """Returns the stream's latest usable snapshot (same schema version, not past `to_version`)
        and the events after it up to `to_version`, read on one connection."""
        upto = [] if to_version is None else [to_version]
        params = [stream_id, schema_version, *upto, stream_id, stream_id, schema_version, *upto, *upto]
        with dbapi_connection(self.engine, autocommit=True) as db:
            cur = db.cursor()
            try:
                cur.execute(self._q(sql.snapshot_and_tail(to_version is not None)), params)
                rows = cur.fetchall()
            finally:
                cur.close()
        snap = None
        if rows and rows[0][0] == 0:
            first = SnapshotRow(*rows.pop(0))
            snap = Snapshot(stream_id, first.version, first.schema_version, self._json_value(first.state))
        upcast, recorded = self.upcasters.upcast, self._recorded
        return snap, [recorded(r[1:], upcast) for r in rows]

    def head_position(self, conn: Connection | None = None) -> int:
        """Returns the highest position in the feed, 0 when empty."""
        if conn is not None:
            return conn.exec_driver_sql(sql.HEAD).scalar() or 0
        with self.engine.connect() as c:
            return c.exec_driver_sql(sql.HEAD).scalar() or 0

    def _fetch(self, statement: str, params: list[Any], conn: Connection | None) -> list[RecordedEvent]:
        if conn is not None:
            with driver_cursor(conn) as cur:
                cur.execute(statement, params)
                return self.recorded(cur.fetchall())
        with dbapi_connection(self.engine, autocommit=True) as db:
            cur = db.cursor()
            try:
                cur.execute(statement, params)
                return self.recorded(cur.fetchall())
            finally:
                cur.close()
