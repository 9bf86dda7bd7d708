"""The event store on SQLite: its SQL and its append, insert and read steps.

Writers take turns: an in-process lock (`sqlite_writer_turn`), then BEGIN IMMEDIATE, under
which the stream's version is read, checked and the events inserted. Positions of a batch
are taken after the highest one under that write lock, and the rows go in by executemany.
JSON is stored as text and recorded_at as SQLAlchemy's DateTime text, both parsed on read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache, lru_cache
from typing import Any

from . import statements as sql
from .codec import loads
from .driver import dbapi_connection
from .engine import begin_immediate, sqlite_writer_turn
from .event_store import EventStore, _Mismatch
from .rows import EventRow, StoredRow, rows_at
from .rules import matches
from .types import AppendResult, Claim, Expected, NewEvent, RecordedEvent, recorded_event

VARIABLES = 900  # parameters per statement, below SQLite's limit on older builds
INSERT_POSITIONED = f"INSERT INTO events (position, {sql.INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


@cache
def _q(statement: str) -> str:
    return statement.replace("%s", "?")


@lru_cache(maxsize=64)
def _insert_values(n: int) -> str:
    """Returns the insert of `n` rows in one statement, RETURNING (stream_id, version, position)."""
    row = "(" + ", ".join(["?"] * 9) + ")"
    return (f"INSERT INTO events ({sql.INSERT_COLUMNS}) VALUES {', '.join([row] * n)} "
            "RETURNING stream_id, version, position")


@cache
def _stream_versions(n: int) -> str:
    return f"SELECT stream_id, max(version) FROM events WHERE stream_id IN ({', '.join(['?'] * n)}) " \
           "GROUP BY stream_id"


class SqliteEventStore(EventStore):
    """The event store on SQLite (see EventStore)."""

    def _q(self, statement: str) -> str:
        return _q(statement)

    def _time_param(self, now: datetime) -> Any:
        """Returns `now` (UTC) as SQLAlchemy's DateTime stores it on SQLite: 'YYYY-MM-DD HH:MM:SS.ffffff'
        (isoformat: a third of strftime's time, and the year zero-padded as SQLAlchemy pads it)."""
        return now.isoformat(" ", "microseconds")[:26]

    def _recorded_time(self, stored: Any) -> datetime:
        """Returns the recorded_at of a row (text without offset, in UTC)."""
        return datetime.fromisoformat(stored + "+00:00")

    def _json_value(self, raw: Any) -> Any:
        return loads(raw)

    def _recorded(self, row: StoredRow | tuple, upcast: Any) -> RecordedEvent:
        position, stream_id, version, event_id, event_type, schema_version, data, meta, recorded_at = row
        data, meta = loads(data), loads(meta)
        recorded_at = datetime.fromisoformat(recorded_at + "+00:00")
        schema_version, data = upcast(event_type, schema_version, data)
        return recorded_event(position, stream_id, version, event_id, event_type, schema_version, data, meta,
                              recorded_at)

    def _in(self, column: str, values: list[str], params: list[Any]) -> str:
        params.extend(values)
        return f" AND {column} IN ({', '.join(['%s'] * len(values)) or 'NULL'})"

    # -- appending ----------------------------------------------------------
    def _append_own(self, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                    claims: tuple[Claim, ...], releases: tuple[Claim, ...]) -> AppendResult:
        """BEGIN IMMEDIATE serialises writers; read the version, check, insert, commit."""
        with sqlite_writer_turn(self.engine), dbapi_connection(self.engine) as db:
            begin_immediate(db)
            cur = db.cursor()
            try:
                result = self._append_checked(cur, stream_id, new_events, expected, claims, releases)
                cur.execute("COMMIT")
                return result
            except BaseException:
                if db.in_transaction:
                    cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    def _append_checked(self, cur: Any, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                        claims: tuple[Claim, ...], releases: tuple[Claim, ...]) -> AppendResult:
        current = cur.execute(_q(sql.STREAM_VERSION), (stream_id,)).fetchone()[0] or 0
        if not matches(expected, current):
            raise _Mismatch(current)
        self._release_claim_rows(cur, stream_id, claims, releases)
        positions = self._insert(cur, rows_at(self._stamps(), stream_id, current, new_events))
        return AppendResult(stream_id, current + len(new_events), positions[-1], tuple(positions))

    def _insert(self, cur: Any, rows: list[EventRow]) -> list[int]:
        """Returns the positions of `rows`, inserted in order (RETURNING, 500 rows a statement)."""
        if len(rows) == 1:
            cur.execute(_q(sql.INSERT_ONE), rows[0])
            return [cur.lastrowid]
        landed: dict[tuple[str, int], int] = {}
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            cur.execute(_insert_values(len(chunk)), [value for row in chunk for value in row])
            landed.update(((stream_id, version), position) for stream_id, version, position in cur.fetchall())
        return [landed[(row.stream_id, row.version)] for row in rows]

    def _lock_and_read_versions(self, db: Any, stream_ids: list[str]) -> dict[str, int]:
        """Returns the streams' versions (the caller's write transaction is the lock)."""
        unique = list(dict.fromkeys(stream_ids))
        cur = db.cursor()
        try:
            found: dict[str, int] = {}
            for start in range(0, len(unique), VARIABLES):
                chunk = unique[start:start + VARIABLES]
                found.update(cur.execute(_stream_versions(len(chunk)), chunk).fetchall())
            return found
        finally:
            cur.close()

    def _insert_positioned(self, cur: Any, rows: list[EventRow], savepoint: str | None = None,
                           lock: bool = False) -> list[int]:
        # `lock`: nothing to take, the write transaction (BEGIN IMMEDIATE) is the lock
        if savepoint is not None:
            cur.execute(f"SAVEPOINT {savepoint}")
        head = cur.execute(sql.HEAD).fetchone()[0] or 0
        positions = list(range(head + 1, head + 1 + len(rows)))
        cur.executemany(INSERT_POSITIONED, [(p, *r) for p, r in zip(positions, rows, strict=True)])
        return positions
