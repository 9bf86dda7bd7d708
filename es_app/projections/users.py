"""The users read model (`users_view`): one row per user stream, folded with the domain's own rules.

Each event is applied by the User aggregate itself (so the read model equals a replay
of the stream), on a copy of the row's state: a failing event leaves nothing half
applied. Rows carry the stream version and the global position of the last event;
an event whose version is not above the row's is skipped, so a replay changes nothing.
A deleted user keeps its row with `deleted` = true.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table

from es_app.domain import User, UserState, event_from_data
from es_app.store import RecordedEvent
from es_app.store.driver import dbapi_of, dumps, loads, translated_errors
from es_app.store.engine import is_sqlite

from .tables import users_view

_LIMITS = {"name": 200, "email": 320, "phone": 40, "legacy_key": 255, "created_at": 40, "updated_at": 40}
_CHUNK = 1000


def _check(state: UserState) -> None:
    """Raises ValueError when the state cannot be stored (a poison event, not a database error)."""
    name, email, phone = state.name, state.email, state.phone
    if (type(name) is str and len(name) <= 200 and type(email) is str and len(email) <= 320
            and type(state.active) is bool and (phone is None or (type(phone) is str and len(phone) <= 40))
            and state.legacy_key is None and _short(state.created_at) and _short(state.updated_at)):
        return  # the common case, checked cheaply
    if type(name) is not str or type(email) is not str:
        raise ValueError("name and email must be strings")
    if type(state.active) is not bool:
        raise ValueError("active must be true or false")
    for field, limit in _LIMITS.items():
        value = getattr(state, field)
        if value is not None and len(str(value)) > limit:
            raise ValueError(f"{field} is longer than {limit} characters")


def _short(value: Any) -> bool:
    return value is None or (type(value) is str and len(value) <= 40)


def _row(state: UserState, position: int) -> tuple:
    """Returns the row of a state in _COLUMNS order (`extra` as a dict, or None when empty)."""
    return (state.id, state.name, state.email, state.phone, state.active, state.deleted, state.version, position,
            None if state.legacy_key is None else str(state.legacy_key), state.created_at, state.updated_at,
            state.extra or None)


_COLUMNS = ("id", "name", "email", "phone", "active", "deleted", "version", "position", "legacy_key",
            "created_at", "updated_at", "extra")
# PostgreSQL types of the columns but the last, `extra`, which stays jsonb (JSON null becoming SQL NULL)
_PG_TYPES = ("text", "text", "text", "text", "boolean", "boolean", "integer", "bigint", "text", "text", "text")


@cache
def _pg_upsert_sql(table: str) -> str:
    """Returns one INSERT .. SELECT FROM jsonb_array_elements(the rows as one JSON array of arrays) .. ON CONFLICT.

    One JSON text for the batch: orjson writes it in C, where psycopg's array dumpers pack
    every element in Python."""
    cols = ", ".join(f'"{c}"' for c in _COLUMNS)
    values = ", ".join(f"(r->>{i})::{t}" for i, t in enumerate(_PG_TYPES)) + f", NULLIF(r->{len(_PG_TYPES)}, 'null')"
    sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in _COLUMNS[1:])
    return (f'INSERT INTO "{table}" ({cols}) SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS r '
            f'ON CONFLICT ("id") DO UPDATE SET {sets} WHERE "{table}"."version" < EXCLUDED."version"')


@cache
def _sqlite_upsert_sql(table: str) -> str:
    """Returns SQLite's upsert of one row (for executemany), keeping a row whose version is not older."""
    cols = ", ".join(f'"{c}"' for c in _COLUMNS)
    sets = ", ".join(f'"{c}" = excluded."{c}"' for c in _COLUMNS[1:])
    return (f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join("?" * len(_COLUMNS))}) '
            f'ON CONFLICT ("id") DO UPDATE SET {sets} WHERE "{table}"."version" < excluded."version"')


def _sqlite_params(row: tuple) -> tuple:
    """Returns a row's values as SQLAlchemy stores them on SQLite (booleans 1/0, `extra` as JSON text)."""
    return (*row[:4], int(row[4]), int(row[5]), *row[6:11], dumps(row[11]))


_LOOKUP_COLUMNS = ("id", "name", "email", "phone", "active", "deleted", "version", "created_at", "updated_at",
                   "legacy_key", "extra")


def _lookup(conn: Connection, table: str, ids: list[str]) -> dict[str, UserState]:
    """Returns the states of these rows, read on the driver's cursor.

    PostgreSQL: one array parameter, planned afresh each time, not a prepared statement: a
    plan cached while the table was empty (a catch-up from 0) would stay a sequential scan
    as the table grows, making every batch slower. SQLite: `IN` lists of _CHUNK ids, with
    booleans and JSON converted as SQLAlchemy would.
    """
    cols = ", ".join(f'"{c}"' for c in _LOOKUP_COLUMNS)
    sqlite = is_sqlite(conn)
    with translated_errors(conn.dialect):
        cur = dbapi_of(conn).cursor()
        try:
            if sqlite:
                rows: list[tuple] = []
                for start in range(0, len(ids), _CHUNK):
                    part = ids[start:start + _CHUNK]
                    cur.execute(f'SELECT {cols} FROM "{table}" WHERE "id" IN ({", ".join("?" * len(part))})', part)
                    rows.extend((*r[:4], bool(r[4]), bool(r[5]), *r[6:10], None if r[10] is None else loads(r[10]))
                                for r in cur.fetchall())
            else:
                cur.execute(f'SELECT {cols} FROM "{table}" WHERE "id" = ANY(%s)', (ids,), prepare=False)
                rows = cur.fetchall()
        finally:
            cur.close()
    return {r[0]: UserState(id=r[0], name=r[1], email=r[2], phone=r[3], active=r[4], deleted=r[5], version=r[6],
                            created_at=r[7], updated_at=r[8], legacy_key=r[9], extra=dict(r[10] or {}))
            for r in rows}


class UsersBatch:
    """Folds a batch of events into rows of `table`.

    The caller holds the projection's checkpoint lock for the whole transaction, so a row
    that the lookup did not find (or of a stream started in this transaction) is not written
    by anyone else before `flush`: on PostgreSQL many such rows go in by COPY, the others by
    upsert.
    """

    def __init__(self, conn: Connection, table: Table, events: Sequence[RecordedEvent]):
        self.conn, self.table = conn, table
        ids = list(dict.fromkeys(e.stream_id for e in events))
        self.states: dict[str, UserState] = _lookup(conn, table.name, ids) if ids else {}
        self.dirty: dict[str, int] = {}  # stream id -> position of the last event applied
        self.absent: set[str] = set()  # dirty rows not in the table yet

    def apply(self, event: RecordedEvent) -> bool:
        state = self.states.get(event.stream_id)
        if state is not None and state.version >= event.version:
            return False
        domain_event = event_from_data(event.type, event.data)
        saved = None if state is None else (state.__dict__.copy(), dict(state.extra))  # a new row needs no undo
        if state is None:
            state = UserState(id=event.stream_id)
            self.absent.add(event.stream_id)
        try:
            User.replay(event.stream_id, [(domain_event, event.metadata)], state)
            state.version = event.version  # the stream's own version, even after a skipped dead letter
            _check(state)
        except BaseException:
            if saved is not None:  # an event applies completely or not at all
                state.__dict__.update(saved[0])
                state.extra = saved[1]
            raise
        self.states[event.stream_id] = state
        self.dirty[event.stream_id] = event.position
        return True

    def flush(self) -> None:
        if not self.dirty:
            return
        rows = [_row(self.states[sid], position) for sid, position in self.dirty.items()]
        absent, self.dirty, self.absent = self.absent, {}, set()
        with translated_errors(self.conn.dialect):
            cur = dbapi_of(self.conn).cursor()
            try:
                if is_sqlite(self.conn):
                    cur.executemany(_sqlite_upsert_sql(self.table.name), [_sqlite_params(r) for r in rows])
                    return
                new = [r for r in rows if r[0] in absent] if len(absent) >= COPY_AT_LEAST else []
                if new and _copy_new_rows(cur, self.table.name, new):
                    rows = [r for r in rows if r[0] not in absent]
                if rows:
                    cur.execute(_pg_upsert_sql(self.table.name), (dumps(rows),))
            finally:
                cur.close()


UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE
COPY_AT_LEAST = 100  # new rows in a flush from which COPY beats the upsert (its savepoint costs two round trips)


def _copy_new_rows(cur: Any, table: str, rows: list[tuple]) -> bool:
    """Returns True after COPYing rows that are not in the table (PostgreSQL); False, having written
    nothing, if one of them was there after all (the upsert then writes them all)."""
    cols = ", ".join(f'"{c}"' for c in _COLUMNS)
    cur.execute("SAVEPOINT users_copy")
    try:
        with cur.copy(f'COPY "{table}" ({cols}) FROM STDIN') as copy:
            for r in rows:
                copy.write_row((*r[:11], None if r[11] is None else dumps(r[11])))
    except Exception as exc:
        if getattr(exc, "sqlstate", None) != UNIQUE_VIOLATION:  # only that means "there after all"
            raise
        cur.execute("ROLLBACK TO SAVEPOINT users_copy")
        return False
    cur.execute("RELEASE SAVEPOINT users_copy")
    return True


class UsersProjection:
    """Returns batches that fold user events into `table` (users_view, or a rebuild's fresh table)."""

    category = "user"
    shardable = True
    queue = "projections"

    def __init__(self, name: str = "users", table: Table = users_view):
        self.name, self.table = name, table

    def open(self, conn: Connection, events: Sequence[RecordedEvent]) -> UsersBatch:
        return UsersBatch(conn, self.table, events)
