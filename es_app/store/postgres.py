"""The event store on PostgreSQL: its SQL and its append, insert and read steps.

Gap safety: every append takes one transaction-scoped advisory lock (`LOCK_SQL`) before it
reads the stream version and inserts, and holds it until commit, so positions are handed
out in commit order (docs/architecture.md). An append of its own is one call of the server-side
function `es_append` outside any transaction (the `append_functions` migration: the lock, the
version check, releases, claims and the INSERT, committed as the statement ends); an append in
the caller's transaction is pipelined statements, the INSERT reading the version itself and
writing only when it matches (unnest of arrays). A batch takes its positions from the sequence
and COPYs the rows. Array parameters go in binary (`%b`): psycopg's text format escapes every element
with a regex, which made dumping 100 JSON documents cost ~8 ms against ~0.3 ms in binary.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection

from . import statements as sql
from .codec import event_json
from .driver import dbapi_connection
from .event_store import EventStore, _Mismatch
from .rows import EventRow
from .rules import matches
from .types import AppendResult, Claim, ClaimTaken, Expected, ExpectedVersion, NewEvent, category_of

APPEND_LOCK_KEY = 7_045_112_357  # pg_advisory_xact_lock key shared by every appender
LOCK_SQL = f"SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY})"
STREAM_VERSIONS = ("SELECT u.stream_id, m.version FROM unnest(%b::text[]) AS u(stream_id) CROSS JOIN LATERAL "
                   "(SELECT max(version) AS version FROM events WHERE stream_id = u.stream_id) AS m "
                   "WHERE m.version IS NOT NULL")
"""The versions of the streams that have events: one index probe per stream (a `stream_id = ANY(...)
GROUP BY` form sorts the matches; 1.8 against 0.8 ms for 100 streams). Planned afresh on every
execution (never prepared): a plan cached while the table was small stays a sequential scan as the
table grows (a 100-stream batch took 20 ms at 22,000 events that way)."""
TAKE_POSITIONS = "SELECT nextval(%s::regclass) FROM generate_series(1, %s)"  # parameters: sequence, n
COPY_POSITIONED = f"COPY events (position, {sql.INSERT_COLUMNS}) FROM STDIN"

CLAIM_TAKEN_STATE = "ES409"  # SQLSTATE es_append raises for a claim another stream holds: owner, scope, value
_CALL_PARAMS = ("%s::bigint, %s, %s, %s, %s::int, %b::text[], %b::text[], %b::int[], %b::text[], %b::text[], "
                "%s::timestamptz, %b::text[], %b::text[], %b::text[], %b::text[]")

_CHECKS = {"any": "TRUE", "no_stream": "cur.v = 0", "stream_exists": "cur.v > 0", "exact": "cur.v = %s"}


@cache
def _insert_unnest(checked: str | None) -> str:
    """Returns the bulk insert of one stream's events (arrays of ids, types, schema versions, data
    and metadata) at versions current+1.., RETURNING (version, position).

    `checked` ("any", "no_stream", "stream_exists" or "exact") makes the statement read the
    stream's version itself and insert nothing unless it matches the expected one.
    """
    where = _CHECKS[checked] if checked else "TRUE"
    current = ("(SELECT coalesce(max(version), 0) AS v FROM events WHERE stream_id = %s)" if checked
               else "(SELECT %s::int AS v)")
    return (f"INSERT INTO events ({sql.INSERT_COLUMNS}) "
            "SELECT %s, %s, cur.v + u.n, u.event_id, u.event_type, u.schema_version, u.data::jsonb, "
            f"u.metadata::jsonb, %s FROM {current} AS cur, "
            "unnest(%b::text[], %b::text[], %b::int[], %b::text[], %b::text[]) WITH ORDINALITY "
            "AS u(event_id, event_type, schema_version, data, metadata, n) "
            f"WHERE {where} ORDER BY u.n RETURNING version, position")


@cache
def _if_version(statement: str, checked: str) -> str:
    """Returns a claim statement (`sql.CLAIM` or `sql.RELEASE`) that changes nothing unless the
    stream's version matches the expected one (parameters: its own, the stream id[, expected])."""
    matches = (f"EXISTS (SELECT 1 FROM (SELECT coalesce(max(version), 0) AS v FROM events WHERE stream_id = %s) "
               f"AS cur WHERE {_CHECKS[checked]})")
    if statement == sql.CLAIM:
        return ("INSERT INTO unique_claims (scope, value, owner) SELECT %s, %s, %s "
                f"WHERE {matches} ON CONFLICT DO NOTHING RETURNING owner")
    return f"{statement} AND {matches}"


@cache
def _call_sql(function: str, leading: int) -> str:
    """Returns the call of a server-side append function (`leading` parameters first, see `append_call`)."""
    if not function.isidentifier():
        raise ValueError(f"not a function name: {function!r}")
    return f"SELECT * FROM {function}({'%s, ' * leading}{_CALL_PARAMS})"


def _call_params(lock: int | None, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                 claims: tuple[Claim, ...], releases: tuple[Claim, ...]) -> list[Any]:
    """Returns `es_append`'s parameters (the `append_functions` migration), the events encoded and checked
    as `_unnest_params` does it."""
    _, category, now, _, *arrays = _unnest_params(stream_id, new_events, None)
    mode, exact = (expected.value, None) if isinstance(expected, ExpectedVersion) else ("exact", expected)
    return [lock, stream_id, category, mode, exact, *arrays, now,
            [c.scope for c in claims], [c.value for c in claims],
            [c.scope for c in releases], [c.value for c in releases]]


def _unnest_params(stream_id: str, new_events: Sequence[NewEvent], current: Any) -> list[Any]:
    """Returns the parameters of `_insert_unnest` (without the expected version of "exact")."""
    now = datetime.now(UTC)
    occurred = now.isoformat()
    texts = [event_json(stream_id, e, occurred) for e in new_events]
    return [stream_id, category_of(stream_id), now, current,
            [str(e.event_id) for e in new_events], [e.type for e in new_events],
            [e.schema_version for e in new_events], [data for data, _ in texts],
            [meta for _, meta in texts]]


def _checked_insert_params(stream_id: str, new_events: Sequence[NewEvent],
                           expected: Expected) -> tuple[str, list[Any]]:
    params = _unnest_params(stream_id, new_events, stream_id)
    if isinstance(expected, ExpectedVersion):
        return expected.value, params
    return "exact", [*params, expected]


def _landed(stream_id: str, rows: list[tuple[int, int]]) -> AppendResult:
    if not rows:
        raise _Mismatch(None)
    rows.sort()
    positions = tuple(position for _, position in rows)
    return AppendResult(stream_id, rows[-1][0], positions[-1], positions)


class PostgresEventStore(EventStore):
    """The event store on PostgreSQL (see EventStore)."""

    _sequence: str | None = None  # the events position sequence, looked up once

    def _in(self, column: str, values: list[str], params: list[Any]) -> str:
        params.append(values)
        return f" AND {column} = ANY(%b::text[])"

    def _analyze(self) -> None:
        with dbapi_connection(self.engine, autocommit=True) as db:
            db.execute("ANALYZE events")

    def _lock_in(self, conn: Connection) -> None:
        if self.serialize_appends:
            conn.exec_driver_sql(LOCK_SQL)

    # -- appending ----------------------------------------------------------
    def _append_own(self, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                    claims: tuple[Claim, ...], releases: tuple[Claim, ...]) -> AppendResult:
        """One call of `es_append` outside any transaction: one statement, one round trip, its COMMIT
        the statement's end (a pipeline of BEGIN, the lock, the statements and COMMIT cost this
        process about twice the CPU per append, docs/benchmarks.md)."""
        outcome, version, positions = self._call_append("es_append", (), stream_id, new_events, expected,
                                                        claims, releases)
        if outcome != "appended":
            raise _Mismatch(version)
        return AppendResult(stream_id, version, positions[-1], tuple(positions))

    def _call_append(self, function: str, leading: Sequence[Any], stream_id: str, new_events: Sequence[NewEvent],
                     expected: Expected, claims: tuple[Claim, ...],
                     releases: tuple[Claim, ...]) -> tuple[Any, ...]:
        lock = APPEND_LOCK_KEY if self.serialize_appends else None
        params = [*leading, *_call_params(lock, stream_id, new_events, expected, claims, releases)]  # checked first
        with dbapi_connection(self.engine, autocommit=True) as db:
            cur = db.cursor()
            try:
                row: tuple[Any, ...] = cur.execute(_call_sql(function, len(leading)), params, prepare=True).fetchone()
                return row
            except Exception as err:
                if getattr(err, "sqlstate", None) == CLAIM_TAKEN_STATE:  # the call wrote nothing
                    diag = err.diag  # type: ignore[attr-defined]  # a psycopg error: it has the diagnostics
                    raise ClaimTaken(Claim(diag.message_detail, diag.message_hint), diag.message_primary) from None
                raise
            finally:
                cur.close()

    def _append_probed(self, cur: Any, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                       claims: tuple[Claim, ...], releases: tuple[Claim, ...],
                       probe: tuple[str, Sequence[Any]]) -> tuple[AppendResult | None, list[tuple[Any, ...]]]:
        """The lock, the probe, the releases and claims (which change nothing unless the version
        matches) and the INSERT that checks the version itself, in one round trip; returns
        (None, the probe's rows) when the probe found any, else (where the events landed, [])."""
        db = cur.connection
        mode, params = _checked_insert_params(stream_id, new_events, expected)  # encoded (and checked) first
        check = [stream_id] if mode != "exact" else [stream_id, expected]
        opened: list[Any] = []

        def send(statement: str, values: Any = None) -> Any:
            opened.append(db.execute(statement, values, prepare=True))
            return opened[-1]

        try:
            with db.pipeline():
                if self.serialize_appends:
                    send(LOCK_SQL)
                found = send(*probe)
                for claim in releases:
                    send(_if_version(sql.RELEASE, mode), [claim.scope, claim.value, stream_id, *check])
                taken = [(claim, send(_if_version(sql.CLAIM, mode), [claim.scope, claim.value, stream_id, *check]))
                         for claim in claims]
                insert = send(_insert_unnest(mode), params)
            rows = found.fetchall()
            if rows:
                return None, rows
            result = _landed(stream_id, insert.fetchall())  # a mismatch first, as when the version is read first
            for claim, claimed in taken:
                if claimed.fetchone() is None:
                    owner = send(sql.CLAIM_OWNER, (claim.scope, claim.value)).fetchone()[0]
                    if owner != stream_id:
                        raise ClaimTaken(claim, owner)
            return result, []
        finally:
            for opened_cur in opened:
                opened_cur.close()

    def _append_checked(self, cur: Any, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                        claims: tuple[Claim, ...], releases: tuple[Claim, ...]) -> AppendResult:
        if self.serialize_appends:
            cur.execute(LOCK_SQL, prepare=True)
        if claims or releases:
            current = cur.execute(sql.STREAM_VERSION, (stream_id,)).fetchone()[0] or 0
            if not matches(expected, current):
                raise _Mismatch(current)
            self._release_claim_rows(cur, stream_id, claims, releases)
            cur.execute(_insert_unnest(None), _unnest_params(stream_id, new_events, current))
        else:
            mode, params = _checked_insert_params(stream_id, new_events, expected)
            cur.execute(_insert_unnest(mode), params, prepare=True)
        return _landed(stream_id, cur.fetchall())

    def _lock_and_read_versions(self, db: Any, stream_ids: list[str]) -> dict[str, int]:
        """Takes the append lock and returns the streams' versions: one round trip."""
        unique = list(dict.fromkeys(stream_ids))
        cur = db.cursor()
        lock = db.cursor()
        try:
            with db.pipeline():
                if self.serialize_appends:
                    lock.execute(LOCK_SQL, prepare=True)
                if unique:
                    cur.execute(STREAM_VERSIONS, [unique], prepare=False)
            return dict(cur.fetchall()) if unique else {}
        finally:
            lock.close()
            cur.close()

    def _insert_positioned(self, cur: Any, rows: list[EventRow], savepoint: str | None = None,
                           lock: bool = False) -> list[int]:
        """Takes the positions from the events sequence (under the append lock), then COPYs the rows;
        the lock (with `lock`), the savepoint and the positions are one round trip."""
        sequence = self._position_sequence(cur)
        with cur.connection.pipeline():
            if lock and self.serialize_appends:
                cur.execute(LOCK_SQL, prepare=True)
            if savepoint is not None:
                cur.execute(f"SAVEPOINT {savepoint}")
            cur.execute(TAKE_POSITIONS, (sequence, len(rows)))
        positions = sorted(p for (p,) in cur.fetchall())
        with cur.copy(COPY_POSITIONED) as copy:
            for p, r in zip(positions, rows, strict=True):
                copy.write_row((p, *r))
        return positions

    def _position_sequence(self, cur: Any) -> str:
        if self._sequence is None:
            self._sequence = cur.execute("SELECT pg_get_serial_sequence('events', 'position')").fetchone()[0]
        return self._sequence
