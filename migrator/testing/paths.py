"""The two paths a scenario runs through: the legacy CRUD writes, and the event-sourced side's.

`LegacyPath` writes the legacy table with plain SQL (capture's triggers record each change, as they
would for the legacy app). The event-sourced side is a `CommandPath`:

- `UserCommands` (the users mapping): es_app's command handlers (`UserService`): register, change
  name/email/phone, deactivate/reactivate, delete. A key created again after its delete has no command
  (the domain never reuses a stream), so it gets the mapping's import event, as the relay writes it.
- `MappingEvents` (any other table): the events the mapping itself declares, appended straight to the
  store — the import event for a create, `change_events` for an update, the delete event for a delete.
  It proves that capture + relay turn the legacy writes into exactly the events the mapping says.
- Your own: any object with `apply(operation)` that writes through your command handlers, passed as
  `MigratorWorld(..., commands=...)` (see docs/testing.md).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnClause, Engine, Select, column, literal_column, select, table

from es_app.bootstrap import EsContainer
from es_app.domain import InvalidCommand, NothingToChange, User
from es_app.store import EventStore

from ..mapping import CompiledMapping
from .operations import CREATE, DELETE, UPDATE, Operation

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # the legacy path's clock: one second per write
METADATA = {"actor": "migrator-testing", "source": "commands", "changelog_watermark": 0}


class CommandRefused(Exception):
    """The event-sourced side refused an operation the legacy path accepted."""


class CommandPath(Protocol):
    """The event-sourced side of a scenario: applies each operation (raises CommandRefused when it refuses)."""

    def apply(self, operation: Operation) -> None:
        """Applies one operation."""
        ...


class LegacyPath:
    """Writes the legacy table directly (one transaction per operation), stamping its timestamp columns.

    Columns are untyped here: values reach the driver as given, as the legacy code's SQL would pass them."""

    def __init__(self, engine: Engine, mapping: CompiledMapping):
        self.engine = engine
        self.mapping = mapping
        self.clock = START

    def apply(self, operation: Operation) -> None:
        """Applies one operation to the legacy table."""
        self.clock += timedelta(seconds=1)
        stamps = {c: self.clock for c in self.mapping.timestamp_columns}
        names = [self.mapping.key, *stamps, *operation.values]
        t = table(self.mapping.table, *(column(c) for c in dict.fromkeys(names)))
        key: ColumnClause[Any] = column(self.mapping.key)
        with self.engine.begin() as conn:
            if operation.kind == CREATE:
                conn.execute(t.insert().values({self.mapping.key: operation.key, **stamps, **operation.values}))
            elif operation.kind == UPDATE:
                if self.mapping.updated_at:
                    stamps = {self.mapping.updated_at: self.clock}
                conn.execute(t.update().where(key == operation.key).values({**operation.values, **stamps}))
            elif operation.kind == DELETE:
                conn.execute(t.delete().where(key == operation.key))
            else:
                raise ValueError(f"unknown operation {operation.kind!r}")

    def row(self, key: Any) -> dict[str, Any] | None:
        """Returns the key's legacy row, None when there is none."""
        with self.engine.connect() as conn:
            query: Select[Any] = select(literal_column("*")).select_from(table(self.mapping.table))
            found = conn.execute(query.where(column(self.mapping.key) == key)).mappings().first()
        return dict(found) if found is not None else None


def _event_ids(_: int) -> str:
    return str(uuid.uuid4())


class MappingEvents:
    """Appends the mapping's own events for each operation (the event-sourced path of a table without commands)."""

    def __init__(self, store: EventStore, mapping: CompiledMapping):
        self.store = store
        self.mapping = mapping
        self.rows: dict[Any, dict[str, Any]] = {}

    def apply(self, operation: Operation) -> None:
        """Appends the events of one operation to the key's stream."""
        m, key = self.mapping, operation.key
        if operation.kind == CREATE:
            row = {m.key: key, **{c: START for c in m.timestamp_columns}, **operation.values}
            events = [m.import_event(row, event_id=str(uuid.uuid4()), metadata=METADATA)]
        elif operation.kind == UPDATE:
            row = {**self.rows[key], **operation.values}
            events = m.change_events(self.rows[key], row, event_ids=_event_ids, metadata=METADATA)
        else:
            row = {}
            events = [m.delete_event(event_id=str(uuid.uuid4()), metadata=METADATA)]
        self.rows[key] = row
        if events:
            self.store.append(m.stream_id(key), events)


_USER_STEPS: dict[str, Callable[[User, Any], None]] = {
    "full_name": User.change_name,
    "email": User.change_email,
    "phone": User.change_phone,
    "is_active": lambda user, on: user.reactivate() if on else user.deactivate(),
}


class UserCommands:
    """Runs each operation as es_app's user commands (`UserService`) on the stream `user-<key>`."""

    def __init__(self, es: EsContainer, mapping: CompiledMapping):
        self.es = es
        self.mapping = mapping

    def apply(self, operation: Operation) -> None:
        """Runs the commands of one operation; raises CommandRefused with the domain's reason."""
        try:
            self._apply(operation)
        except InvalidCommand as exc:
            raise CommandRefused(str(exc)) from None

    def _apply(self, operation: Operation) -> None:
        key, values, service = operation.key, operation.values, self.es.user_service
        stream = self.mapping.stream_id(key)
        if operation.kind == CREATE:
            if self.es.store.read_stream(stream):
                self._recreate(key, values)
                return
            service.register(values["full_name"], values["email"], values.get("phone"), user_id=stream,
                             legacy_key=key, metadata=dict(METADATA))
            if values.get("is_active") is False:
                service.execute(stream, User.deactivate, metadata=dict(METADATA))
        elif operation.kind == UPDATE:
            unknown = sorted(set(values) - set(_USER_STEPS))
            if unknown:
                raise CommandRefused(f"no user command sets {', '.join(unknown)}")

            def change(user: User) -> None:
                for column, value in values.items():
                    with contextlib.suppress(NothingToChange):
                        _USER_STEPS[column](user, value)
                if not user.pending:
                    raise NothingToChange("the user already has these values")
            with contextlib.suppress(NothingToChange):
                service.execute(stream, change, metadata=dict(METADATA))
        else:
            service.execute(stream, User.delete, metadata=dict(METADATA))

    def _recreate(self, key: Any, values: dict[str, Any]) -> None:
        row = {self.mapping.key: key, **{c: START for c in self.mapping.timestamp_columns}, **values}
        event = self.mapping.import_event(row, event_id=str(uuid.uuid4()), metadata=METADATA)
        self.es.store.append(self.mapping.stream_id(key), [event], claims=self.mapping.claims_of(row))
