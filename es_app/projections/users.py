"""The users read model (`users_view`): one row per user stream, folded with the domain's own rules.

Each event is applied by the User aggregate itself (so the read model equals a replay
of the stream), on a copy of the row's state: a failing event leaves nothing half
applied. Rows carry the stream version and the global position of the last event;
an event whose version is not above the row's is skipped, so a replay changes nothing.
A deleted user keeps its row with `deleted` = true.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from es_app.domain import User, UserState, event_from_data
from es_app.store import RecordedEvent
from es_app.store.engine import is_sqlite

from .tables import users_view

_LIMITS = {"name": 200, "email": 320, "phone": 40, "legacy_key": 255, "created_at": 40, "updated_at": 40}
_CHUNK = 1000


def state_from_row(row: Any) -> UserState:
    """Returns the UserState a users_view row holds."""
    return UserState(id=row.id, name=row.name, email=row.email, phone=row.phone, active=row.active,
                     deleted=row.deleted, version=row.version, created_at=row.created_at,
                     updated_at=row.updated_at, legacy_key=row.legacy_key, extra=dict(row.extra or {}))


def _check(state: UserState) -> None:
    """Raises ValueError when the state cannot be stored (a poison event, not a database error)."""
    if not isinstance(state.name, str) or not isinstance(state.email, str):
        raise ValueError("name and email must be strings")
    if not isinstance(state.active, bool):
        raise ValueError("active must be true or false")
    for field, limit in _LIMITS.items():
        value = getattr(state, field)
        if value is not None and len(str(value)) > limit:
            raise ValueError(f"{field} is longer than {limit} characters")


def _row(state: UserState, position: int) -> dict[str, Any]:
    return {"id": state.id, "name": state.name, "email": state.email, "phone": state.phone,
            "active": state.active, "deleted": state.deleted, "version": state.version,
            "position": position, "legacy_key": None if state.legacy_key is None else str(state.legacy_key),
            "created_at": state.created_at, "updated_at": state.updated_at, "extra": state.extra or None}


class UsersBatch:
    def __init__(self, conn: Connection, table: Table, events: Sequence[RecordedEvent]):
        self.conn, self.table = conn, table
        ids = list(dict.fromkeys(e.stream_id for e in events))
        self.states: dict[str, UserState] = {}
        for start in range(0, len(ids), _CHUNK):
            for row in conn.execute(select(table).where(table.c.id.in_(ids[start:start + _CHUNK]))):
                self.states[row.id] = state_from_row(row)
        self.dirty: dict[str, dict[str, Any]] = {}

    def apply(self, event: RecordedEvent) -> bool:
        current = self.states.get(event.stream_id)
        if current is not None and current.version >= event.version:
            return False
        state = (dataclasses.replace(current, extra=dict(current.extra)) if current is not None
                 else UserState(id=event.stream_id))
        User.replay(event.stream_id, [(event_from_data(event.type, event.data), event.metadata)], state)
        state.version = event.version  # the stream's own version, even after a skipped dead letter
        _check(state)
        self.states[event.stream_id] = state
        self.dirty[event.stream_id] = _row(state, event.position)
        return True

    def flush(self) -> None:
        if not self.dirty:
            return
        t = self.table
        ins = (sqlite_insert if is_sqlite(self.conn) else pg_insert)(t)
        stmt = ins.on_conflict_do_update(
            index_elements=[t.c.id],
            set_={c: ins.excluded[c] for c in ("name", "email", "phone", "active", "deleted", "version",
                                                "position", "legacy_key", "created_at", "updated_at",
                                                "extra")},
            where=t.c.version < ins.excluded.version,
        )
        self.conn.execute(stmt, list(self.dirty.values()))
        self.dirty = {}


class UsersProjection:
    """Returns batches that fold user events into `table` (users_view, or a rebuild's fresh table)."""

    category = "user"
    shardable = True
    queue = "projections"

    def __init__(self, name: str = "users", table: Table = users_view):
        self.name, self.table = name, table

    def open(self, conn: Connection, events: Sequence[RecordedEvent]) -> UsersBatch:
        return UsersBatch(conn, self.table, events)
