"""The append-only event store on SQLite or PostgreSQL.

Gap safety: on PostgreSQL every append takes one transaction-scoped advisory
lock before it reads the stream version and inserts, and holds it until commit.
Positions are therefore handed out in commit order, and a reader tailing the
global feed with `after=checkpoint` can never see position N+1 before N
(see docs/architecture.md). SQLite serialises writers with BEGIN IMMEDIATE.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Sequence

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import IntegrityError

from . import claims as _claims
from .driver import Dialect, dbapi_connection, dbapi_of, loads, translated_errors
from .engine import is_sqlite, sqlite_writer_turn
from .limits import check_claims, check_fields
from .schema import events
from .snapshots import Snapshot
from .types import (
    AppendResult,
    Claim,
    ClaimTaken,
    ConcurrencyError,
    EncodedEvent,
    EventIdConflict,
    Expected,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
)
from .upcasting import UpcasterRegistry

APPEND_LOCK_KEY = 7_045_112_357  # pg_advisory_xact_lock key shared by every appender
LOCK_SQL = f"SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY})"


def _matches(expected: Expected, current: int) -> bool:
    if expected is ExpectedVersion.ANY:
        return True
    if expected is ExpectedVersion.NO_STREAM:
        return current == 0
    if expected is ExpectedVersion.STREAM_EXISTS:
        return current > 0
    return current == expected


def _check_new_events(stream_id: str, new_events: Sequence[Any], claims: Sequence[Claim] = (),
                      releases: Sequence[Claim] = ()) -> None:
    if not new_events:
        raise ValueError("append needs at least one event")
    if any(type(e) is EncodedEvent for e in new_events):
        raise TypeError("append and append_in take NewEvent; encoded events go through append_batch")
    check_fields(stream_id, new_events)
    if claims or releases:
        check_claims(stream_id, (*claims, *releases))
    _refuse_repeated_ids(new_events)


def _refuse_repeated_ids(new_events: Iterable[NewEvent | EncodedEvent]) -> None:
    """Raises EventIdConflict when one call carries the same event id twice (nothing is written)."""
    seen: set[str] = set()
    for e in new_events:
        event_id = str(e.event_id)
        if event_id in seen:
            raise EventIdConflict(f"event id {event_id} appears twice in one append")
        seen.add(event_id)


def _data_of(e: NewEvent | EncodedEvent) -> Any:
    if type(e) is EncodedEvent:
        return e.data if e.data is not None else loads(e.data_json)
    return e.data


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


class EventStore:
    """Append to streams and read streams or the global feed.

    `serialize_appends=False` turns the PostgreSQL append lock off; it exists only
    so tests and benchmarks can show what the lock prevents and what it costs.
    The hot paths run driver-level SQL (see driver.py); the rare ones use SQLAlchemy Core.
    """

    def __init__(self, engine: Engine, upcasters: UpcasterRegistry | None = None,
                 *, serialize_appends: bool = True):
        self.engine = engine
        self.upcasters = upcasters or UpcasterRegistry()
        self.serialize_appends = serialize_appends
        self._sql = Dialect(engine.dialect.name)
        self._sequence: str | None = None  # PostgreSQL: the events position sequence, looked up once

    # -- writing -----------------------------------------------------------
    def append(self, stream_id: str, new_events: Sequence[NewEvent],
               expected_version: Expected = ExpectedVersion.ANY, *,
               claims: Iterable[Claim] = (), releases: Iterable[Claim] = ()) -> AppendResult:
        """Returns where the events landed. Raises ConcurrencyError, EventIdConflict, ClaimTaken, InvalidEvent."""
        claims, releases = tuple(claims), tuple(releases)
        _check_new_events(stream_id, new_events, claims, releases)
        try:
            if self._sql.sqlite:
                with sqlite_writer_turn(self.engine), dbapi_connection(self.engine) as db:
                    return self._append_sqlite(db, stream_id, new_events, expected_version, claims, releases)
            with dbapi_connection(self.engine) as db:
                if claims or releases:
                    return self._append_pg_own(db, stream_id, new_events, expected_version, claims, releases)
                return self._append_pg_pipelined(db, stream_id, new_events, expected_version)
        except (_Mismatch, IntegrityError):
            return self._resolve_failed_append(stream_id, new_events, expected_version)

    def append_in(self, conn: Connection, stream_id: str, new_events: Sequence[NewEvent],
                  expected_version: Expected = ExpectedVersion.ANY, *,
                  claims: Iterable[Claim] = (), releases: Iterable[Claim] = ()) -> AppendResult:
        """Appends inside the caller's write transaction (see `write_transaction`)."""
        claims, releases = tuple(claims), tuple(releases)
        _check_new_events(stream_id, new_events, claims, releases)
        try:
            with translated_errors(self.engine.dialect):
                cur = dbapi_of(conn).cursor()
                try:
                    if self._sql.sqlite:
                        return self._append_checked_sqlite(cur, stream_id, new_events, expected_version,
                                                           claims, releases)
                    return self._append_checked_pg(cur, stream_id, new_events, expected_version,
                                                   claims, releases)
                finally:
                    cur.close()
        except _Mismatch as mismatch:
            retried = self._stored_retry(conn, stream_id, new_events)
            if retried is not None:
                return retried
            current = mismatch.current if mismatch.current is not None else self._stream_version(conn, stream_id)
            raise ConcurrencyError(stream_id, expected_version, current) from None

    # SQLite: BEGIN IMMEDIATE serialises writers; read the version, check, insert, commit.
    def _append_sqlite(self, db: Any, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                       claims: tuple[Claim, ...], releases: tuple[Claim, ...]) -> AppendResult:
        cur = db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            result = self._append_checked_sqlite(cur, stream_id, new_events, expected, claims, releases)
            cur.execute("COMMIT")
            return result
        except BaseException:
            if db.in_transaction:
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    def _append_checked_sqlite(self, cur: Any, stream_id: str, new_events: Sequence[NewEvent],
                               expected: Expected, claims: tuple[Claim, ...],
                               releases: tuple[Claim, ...]) -> AppendResult:
        current = cur.execute(self._sql.stream_version, (stream_id,)).fetchone()[0] or 0
        if not _matches(expected, current):
            raise _Mismatch(current)
        self._release_claim_rows(cur, stream_id, claims, releases)
        positions = self._insert_sqlite(cur, self._sql.row_tuples(stream_id, current, new_events))
        return AppendResult(stream_id, current + len(new_events), positions[-1], tuple(positions))

    def _insert_sqlite(self, cur: Any, rows: list[tuple]) -> list[int]:
        """Returns the positions of `rows` (tuples in INSERT_COLUMNS order), inserted in order."""
        if len(rows) == 1:
            cur.execute(self._sql.insert_one, rows[0])
            return [cur.lastrowid]
        landed: dict[tuple[str, int], int] = {}
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            cur.execute(self._sql.insert_values(len(chunk)), [value for row in chunk for value in row])
            landed.update(((stream_id, version), position) for stream_id, version, position in cur.fetchall())
        return [landed[(row[0], row[2])] for row in rows]

    # PostgreSQL: the lock, then one INSERT that reads the version itself and writes only when
    # it matches; pipelined with BEGIN and COMMIT, so an append is one round trip.
    def _append_pg_pipelined(self, db: Any, stream_id: str, new_events: Sequence[NewEvent],
                             expected: Expected) -> AppendResult:
        mode, params = self._checked_insert_params(stream_id, new_events, expected)  # encoded (and checked) first
        lock = db.cursor()
        cur = db.cursor()
        try:
            with db.pipeline():
                if self.serialize_appends:
                    lock.execute(LOCK_SQL, prepare=True)
                cur.execute(self._sql.insert_unnest(mode), params, prepare=True)
                db.commit()
            rows = cur.fetchall()
        except BaseException:
            db.rollback()
            raise
        finally:
            lock.close()
            cur.close()
        return self._landed(stream_id, rows)

    def _append_pg_own(self, db: Any, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                       claims: tuple[Claim, ...], releases: tuple[Claim, ...]) -> AppendResult:
        cur = db.cursor()
        try:
            result = self._append_checked_pg(cur, stream_id, new_events, expected, claims, releases)
            db.commit()
            return result
        except BaseException:
            db.rollback()
            raise
        finally:
            cur.close()

    def _append_checked_pg(self, cur: Any, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                           claims: tuple[Claim, ...], releases: tuple[Claim, ...]) -> AppendResult:
        if self.serialize_appends:
            cur.execute(LOCK_SQL, prepare=True)
        if claims or releases:
            current = cur.execute(self._sql.stream_version, (stream_id,)).fetchone()[0] or 0
            if not _matches(expected, current):
                raise _Mismatch(current)
            self._release_claim_rows(cur, stream_id, claims, releases)
            cur.execute(self._sql.insert_unnest(None), self._sql.unnest_params(stream_id, new_events, current))
        else:
            mode, params = self._checked_insert_params(stream_id, new_events, expected)
            cur.execute(self._sql.insert_unnest(mode), params, prepare=True)
        return self._landed(stream_id, cur.fetchall())

    @staticmethod
    def _landed(stream_id: str, rows: list[tuple[int, int]]) -> AppendResult:
        if not rows:
            raise _Mismatch(None)
        rows.sort()
        positions = tuple(position for _, position in rows)
        return AppendResult(stream_id, rows[-1][0], positions[-1], positions)

    def _checked_insert_params(self, stream_id: str, new_events: Sequence[NewEvent],
                               expected: Expected) -> tuple[str, list[Any]]:
        params = self._sql.unnest_params(stream_id, new_events, stream_id)
        if isinstance(expected, ExpectedVersion):
            return expected.value, params
        return "exact", params + [expected]

    def _release_claim_rows(self, cur: Any, stream_id: str, claims: tuple[Claim, ...],
                            releases: tuple[Claim, ...]) -> None:
        for claim in releases:
            cur.execute(self._sql.release, (claim.scope, claim.value, stream_id))
        for claim in claims:
            cur.execute(self._sql.claim, (claim.scope, claim.value, stream_id))
            owner = cur.execute(self._sql.claim_owner, (claim.scope, claim.value)).fetchone()[0]
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
                     items: Sequence[tuple[str, Sequence[NewEvent | EncodedEvent], Expected]],
                     *, skip_mismatched: bool = False) -> list[AppendResult | None]:
        """Appends to many streams in the caller's write transaction with one bulk insert.

        Returns one result per item; with `skip_mismatched`, an item whose expected
        version does not match is left out (None) instead of raising. Events may come
        encoded ahead (`encode_events`): their text is written as it is. Like `append`,
        an item whose events are already stored exactly (same ids, stream, order, type and
        data) is a no-op (`written=False`); an id stored with other content, or repeated in
        the batch, raises EventIdConflict.
        """
        spans, rows, positions = self._append_rows(conn, items, skip_mismatched)
        return [None if span is None else span.stored if span.stored is not None else
                AppendResult(span.stream_id, span.version, positions[span.end - 1],
                             tuple(positions[span.start:span.end]))
                for span in spans]

    def append_batch_recorded(self, conn: Connection,
                              items: Sequence[tuple[str, Sequence[NewEvent | EncodedEvent], Expected]],
                              *, skip_mismatched: bool = False) -> list[list[RecordedEvent] | None]:
        """Appends like `append_batch`; returns the events as recorded (None for a skipped item),
        for a caller that hands them to projections in the same transaction. The data and
        metadata are what a read returns: parsed back from the stored JSON (an encoded event's
        own `data`/`metadata` when `encode_events(parsed=True)` made them)."""
        spans, rows, positions = self._append_rows(conn, items, skip_mismatched)
        upcast = self.upcasters.upcast
        recorded_at = self._sql.recorded_time(rows[0][8]) if rows else None  # one time for the whole batch
        out: list[list[RecordedEvent] | None] = []
        for (_, batch, _), span in zip(items, spans):
            if span is None:
                out.append(None)
                continue
            if span.stored is not None:  # an idempotent retry: the events as stored before
                out.append(self.read_stream(span.stream_id, span.version - len(batch) + 1, span.version, conn=conn))
                continue
            recorded = []
            for n, e in zip(range(span.start, span.end), batch):
                stream_id, _, version, event_id, event_type, schema_version, data, meta, _ = rows[n]
                if type(e) is EncodedEvent and e.data is not None and e.metadata is not None:
                    data, meta = e.data, e.metadata  # already read back from this very text
                else:
                    data, meta = loads(data), loads(meta)
                schema_version, data = upcast(event_type, schema_version, data)
                recorded.append(RecordedEvent(positions[n], stream_id, version, event_id, event_type, schema_version,
                                              data, meta, recorded_at))
            out.append(recorded)
        return out

    def _append_rows(self, conn: Connection, items: Sequence[tuple[str, Sequence[NewEvent | EncodedEvent], Expected]],
                     skip_mismatched: bool) -> tuple[list[_Span | None], list[tuple], list[int]]:
        """Returns (span per item, or None when skipped), the rows written, their positions.

        The insert runs under a savepoint: when an event id is already stored (a retried
        batch), it is rolled back, the stored items are resolved as `append` does, and the
        rest goes in again. The common path pays one savepoint and no lookups.
        """
        if any(not batch for _, batch, _ in items):
            raise ValueError("append_batch needs at least one event per stream")
        for stream_id, batch, _ in items:
            check_fields(stream_id, batch)
        _refuse_repeated_ids(e for _, batch, _ in items for e in batch)
        db = dbapi_of(conn)
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
                                               in enumerate(zip(items, spans)) if span is not None])
            if not stored:
                raise
        spans, rows = self._plan_rows(conn, items, versions, skip_mismatched, stored=stored)
        with translated_errors(self.engine.dialect):
            positions = self._insert_rows(db, rows) if rows else []
        return spans, rows, positions

    def _plan_rows(self, conn: Connection, items: Sequence[tuple[str, Sequence[NewEvent | EncodedEvent], Expected]],
                   stored_versions: dict[str, int], skip_mismatched: bool,
                   stored: dict[int, AppendResult]) -> tuple[list[_Span | None], list[tuple]]:
        versions = dict(stored_versions)
        rows: list[tuple] = []
        spans: list[_Span | None] = []
        stamps, rows_at = self._sql.stamps(), self._sql.rows_at
        for i, (stream_id, batch, expected) in enumerate(items):
            if i in stored:
                spans.append(_Span(stream_id, stored[i].version, 0, 0, stored[i]))
                continue
            current = versions.get(stream_id, 0)
            if not _matches(expected, current):
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

    def _insert_rows(self, db: Any, rows: list[tuple], *, savepoint: bool = False) -> list[int]:
        """Returns the positions of `rows` (tuples in INSERT_COLUMNS order), inserted in order.

        Positions are taken first, under the append lock (PostgreSQL: from the events
        sequence; SQLite: after the highest, under the write lock), then the rows go in with
        them: COPY on PostgreSQL, executemany on SQLite; neither needs RETURNING. With
        `savepoint`, a failed insert leaves the caller's transaction as it was.
        """
        cur = db.cursor()
        try:
            if not savepoint:
                return self._insert_positioned(cur, rows)
            cur.execute("SAVEPOINT es_append_batch")
            try:
                positions = self._insert_positioned(cur, rows)
            except BaseException:
                cur.execute("ROLLBACK TO SAVEPOINT es_append_batch")
                cur.execute("RELEASE SAVEPOINT es_append_batch")
                raise
            cur.execute("RELEASE SAVEPOINT es_append_batch")
            return positions
        finally:
            cur.close()

    def _insert_positioned(self, cur: Any, rows: list[tuple]) -> list[int]:
        if self._sql.sqlite:
            head = cur.execute(self._sql.head).fetchone()[0] or 0
            positions = list(range(head + 1, head + 1 + len(rows)))
            cur.executemany(self._sql.insert_positioned, [(p, *r) for p, r in zip(positions, rows)])
            return positions
        cur.execute(self._sql.take_positions, (self._position_sequence(cur), len(rows)))
        positions = sorted(p for (p,) in cur.fetchall())
        with cur.copy(self._sql.copy_positioned) as copy:
            for p, r in zip(positions, rows):
                copy.write_row((p, *r))
        return positions

    def _position_sequence(self, cur: Any) -> str:
        if self._sequence is None:
            self._sequence = cur.execute("SELECT pg_get_serial_sequence('events', 'position')").fetchone()[0]
        return self._sequence

    def analyze(self) -> None:
        """Refreshes the planner's statistics of the events table (PostgreSQL; a no-op on SQLite,
        whose planner does without them). Bulk writers call it as the table grows: planned on the
        statistics of an empty table, a feed read sorts every remaining event for each page."""
        if self._sql.sqlite:
            return
        with dbapi_connection(self.engine, autocommit=True) as db:
            db.execute("ANALYZE events")

    def lock_for_append(self, conn: Connection) -> None:
        if self.serialize_appends and not is_sqlite(conn):
            conn.exec_driver_sql(LOCK_SQL)

    def _resolve_failed_append(self, stream_id: str, new_events: Sequence[NewEvent],
                               expected: Expected) -> AppendResult:
        """Returns the stored result of an idempotent retry; else raises ConcurrencyError."""
        with self.engine.connect() as conn:
            retried = self._stored_retry(conn, stream_id, new_events)
            if retried is not None:
                return retried
            raise ConcurrencyError(stream_id, expected, self._stream_version(conn, stream_id))

    def _stored_retry(self, conn: Connection, stream_id: str,
                      new_events: Sequence[NewEvent | EncodedEvent]) -> AppendResult | None:
        """Returns the original result if these exact events are already stored, else None."""
        return self._stored_items(conn, [(0, stream_id, new_events)]).get(0)

    def _stored_items(self, conn: Connection,
                      items: Sequence[tuple[int, str, Sequence[NewEvent | EncodedEvent]]]) -> dict[int, AppendResult]:
        """Returns, by item index, the original results of items whose exact events are stored.

        Raises EventIdConflict when an item's ids are stored only in part, with other
        content, or in another place.
        """
        ids = [str(e.event_id) for _, _, batch in items for e in batch]
        found: dict[str, Any] = {}
        for start in range(0, len(ids), 500):
            found.update((row.event_id, row) for row in conn.execute(
                select(events.c.event_id, events.c.stream_id, events.c.version, events.c.position,
                       events.c.event_type, events.c.data).where(events.c.event_id.in_(ids[start:start + 500]))))
        results: dict[int, AppendResult] = {}
        if not found:
            return results
        for index, stream_id, batch in items:
            rows = [found.get(str(e.event_id)) for e in batch]
            if all(r is None for r in rows):
                continue
            same = all(r is not None for r in rows) and all(
                r.stream_id == stream_id and r.event_type == e.type and r.data == _data_of(e)
                and r.version == rows[0].version + n
                for n, (r, e) in enumerate(zip(rows, batch)))
            if not same:
                raise EventIdConflict(f"event ids {sorted(str(r.event_id) for r in rows if r is not None)} are "
                                      f"already stored with other content or in another place than stream "
                                      f"{stream_id!r}")
            results[index] = AppendResult(stream_id, rows[-1].version, rows[-1].position,
                                          tuple(r.position for r in rows), written=False)
        return results

    # -- reading -----------------------------------------------------------
    def stream_version(self, stream_id: str) -> int:
        """Returns the stream's last version, 0 when it has no events."""
        with self.engine.connect() as conn:
            return self._stream_version(conn, stream_id)

    def stream_versions(self, conn: Connection, stream_ids: Sequence[str]) -> dict[str, int]:
        """Returns {stream id: last version} of those streams that have events (read in `conn`)."""
        unique = list(dict.fromkeys(stream_ids))
        found: dict[str, int] = {}
        for start in range(0, len(unique), 500):
            q = (select(events.c.stream_id, func.max(events.c.version))
                 .where(events.c.stream_id.in_(unique[start:start + 500])).group_by(events.c.stream_id))
            found.update((sid, version) for sid, version in conn.execute(q))
        return found

    @staticmethod
    def _stream_version(conn: Connection, stream_id: str) -> int:
        return conn.execute(select(func.max(events.c.version)).where(
            events.c.stream_id == stream_id)).scalar() or 0

    def _lock_and_read_versions(self, db: Any, stream_ids: list[str]) -> dict[str, int]:
        """Takes the append lock (PostgreSQL) and returns the streams' versions: one round trip."""
        unique = list(dict.fromkeys(stream_ids))
        cur = db.cursor()
        try:
            if self._sql.sqlite:
                found: dict[str, int] = {}
                for start in range(0, len(unique), 900):
                    chunk = unique[start:start + 900]
                    found.update(cur.execute(self._sql.stream_versions(len(chunk)), chunk).fetchall())
                return found
            lock = db.cursor()
            try:
                with db.pipeline():
                    if self.serialize_appends:
                        lock.execute(LOCK_SQL, prepare=True)
                    cur.execute(self._sql.stream_versions(None), [unique], prepare=True)
                return dict(cur.fetchall())
            finally:
                lock.close()
        finally:
            cur.close()

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
        sql = self._sql.read_stream(to_version is not None, backwards, limit is not None)
        return self._fetch(sql, params, conn)

    def read_all(self, after: int = 0, limit: int = 1000, types: Iterable[str] | None = None,
                 category: str | None = None, conn: Connection | None = None,
                 before: int | None = None) -> list[RecordedEvent]:
        """Returns events of the global feed with position > `after` (and < `before`), in position order."""
        params: list[Any] = [after]
        if before is not None:
            params.append(before)
        n_types = None
        if types is not None:
            types = list(types)
            n_types = len(types)
            if self._sql.sqlite:
                params.extend(types)
            else:
                params.append(types)
        if category is not None:
            params.append(category)
        params.append(limit)
        return self._fetch(self._sql.read_all(n_types, category is not None, before is not None), params, conn)

    def read_from_snapshot(self, stream_id: str, schema_version: int,
                           to_version: int | None = None) -> tuple[Snapshot | None, list[RecordedEvent]]:
        """Returns the stream's latest usable snapshot (same schema version, not past `to_version`)
        and the events after it up to `to_version`, read on one connection."""
        upto = [] if to_version is None else [to_version]
        params = [stream_id, schema_version, *upto, stream_id, stream_id, schema_version, *upto, *upto]
        with dbapi_connection(self.engine, autocommit=True) as db:
            cur = db.cursor()
            try:
                cur.execute(self._sql.snapshot_and_tail(to_version is not None), params)
                rows = cur.fetchall()
            finally:
                cur.close()
        snap = None
        if rows and rows[0][0] == 0:
            part, _, _, version, _, _, snap_schema, state, _, _ = rows.pop(0)
            snap = Snapshot(stream_id, version, snap_schema, self._sql.json_value(state))
        upcast, recorded = self.upcasters.upcast, self._sql.recorded
        return snap, [recorded(r[1:], upcast) for r in rows]

    def head_position(self, conn: Connection | None = None) -> int:
        """Returns the highest position in the feed, 0 when empty."""
        if conn is not None:
            return conn.exec_driver_sql(self._sql.head).scalar() or 0
        with self.engine.connect() as c:
            return c.exec_driver_sql(self._sql.head).scalar() or 0

    def _fetch(self, sql: str, params: list[Any], conn: Connection | None) -> list[RecordedEvent]:
        upcast = self.upcasters.upcast
        if conn is not None:
            with translated_errors(self.engine.dialect):
                cur = dbapi_of(conn).cursor()
                try:
                    cur.execute(sql, params)
                    return [self._sql.recorded(r, upcast) for r in cur.fetchall()]
                finally:
                    cur.close()
        with dbapi_connection(self.engine, autocommit=True) as db:
            cur = db.cursor()
            try:
                cur.execute(sql, params)
                return [self._sql.recorded(r, upcast) for r in cur.fetchall()]
            finally:
                cur.close()
