"""The users read model (`users_view`): one row per user stream, folded with the domain's own rules.

Each event is applied by the User aggregate itself (so the read model equals a replay
of the stream), on a copy of the row's state: a failing event leaves nothing half
applied. Rows carry the stream version and the global position of the last event;
an event whose version is not above the row's is skipped, so a replay changes nothing.
A deleted user keeps its row with `deleted` = true.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table

from es_app.dialect import DriverTable, dialect_for
from es_app.domain import User, UserImported, UserState, event_from_data
from es_app.store import RecordedEvent
from es_app.store.driver import driver_cursor, dumps, loads

from .tables import users_view

_LIMITS = {"name": 200, "email": 320, "phone": 40, "legacy_key": 255, "created_at": 40, "updated_at": 40}


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
_KINDS = ("text", "text", "text", "text", "boolean", "boolean", "integer", "bigint", "text", "text", "text", "json")
_LOOKUP_COLUMNS = ("id", "name", "email", "phone", "active", "deleted", "version", "created_at", "updated_at",
                   "legacy_key", "extra")


IMPORTED = UserImported.__name__
_IMPORT_REQUIRED = frozenset(f.name for f in dataclasses.fields(UserImported)
                             if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def imported_state(event: RecordedEvent) -> UserState | None:
    """Returns the state a replay of `event`, a stream's UserImported, gives from a blank state (the
    backfill's fast path: the row built straight from the import's data, without the domain event and
    the aggregate); None when the data lacks a field, for the replay to refuse it as it would.

    The same fold as `User._apply`; tests/unit/test_imported_state.py holds the two equal."""
    data = event.data
    if not data.keys() >= _IMPORT_REQUIRED:
        return None
    return UserState(id=event.stream_id, name=data["name"], email=data["email"], phone=data["phone"],
                     active=data["active"], deleted=False, version=event.version,
                     created_at=data.get("created_at"),
                     updated_at=data.get("updated_at") or event.metadata.get("occurred_at"),
                     legacy_key=data["legacy_key"])


@cache
def _driver_table(name: str) -> DriverTable:
    """Returns users_view (or a rebuild's fresh table of its shape) for the dialect's driver-level statements."""
    return DriverTable(name, _COLUMNS, _KINDS, key="id", version="version", dumps=dumps, loads=loads)


def _lookup(conn: Connection, table: str, ids: list[str]) -> dict[str, UserState]:
    """Returns the states of these rows, read on the driver's cursor (the dialect's select_in)."""
    with driver_cursor(conn) as cur:
        rows = dialect_for(conn).select_in(cur, _driver_table(table), ids, _LOOKUP_COLUMNS)
    return {r[0]: UserState(id=r[0], name=r[1], email=r[2], phone=r[3], active=r[4], deleted=r[5], version=r[6],
                            created_at=r[7], updated_at=r[8], legacy_key=r[9], extra=dict(r[10] or {}))
            for r in rows}


class UsersBatch:
    """Folds a batch of events into rows of `table`.

    The caller holds the projection's checkpoint lock for the whole transaction, so a row
    that the lookup did not find (or of a stream started in this transaction) is not written
    by anyone else before `flush`: the dialect's upsert_newer may bulk-copy such rows
    (PostgreSQL: COPY, from a hundred of them), and upserts the others.
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
        if state is None and event.type == IMPORTED:  # a backfill's import of a new row: no fold needed
            imported = imported_state(event)
            if imported is not None:
                _check(imported)
                self.states[event.stream_id] = imported
                self.absent.add(event.stream_id)
                self.dirty[event.stream_id] = event.position
                return True
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
        with driver_cursor(self.conn) as cur:
            dialect_for(self.conn).upsert_newer(cur, _driver_table(self.table.name), rows, absent)


class UsersProjection:
    """Returns batches that fold user events into `table` (users_view, or a rebuild's fresh table)."""

    category = "user"
    shardable = True
    queue = "projections"

    def __init__(self, name: str = "users", table: Table = users_view):
        self.name, self.table = name, table

    def open(self, conn: Connection, events: Sequence[RecordedEvent]) -> UsersBatch:
        return UsersBatch(conn, self.table, events)
