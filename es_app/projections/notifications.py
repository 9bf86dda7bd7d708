"""Side effects of user events, one handler per event type, written to the `notifications` outbox.

Each notification is keyed by the id of the event that caused it, so running a
handler twice (a redelivered task, a replay, two workers) writes it once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from es_app.dialect import dialect_for
from es_app.store import RecordedEvent
from es_app.store.driver import dumps

from .tables import notifications

Handler = Callable[[RecordedEvent], dict[str, Any]]


def welcome(event: RecordedEvent) -> dict[str, Any]:
    """Returns the welcome notification for a newly registered user."""
    name, email = event.data["name"], event.data["email"]
    return {"kind": "welcome", "recipient": email,
            "payload": {"subject": f"Welcome, {name}!", "name": name, "email": email}}


def email_changed(event: RecordedEvent) -> dict[str, Any]:
    """Returns the confirmation sent to a user's new email address."""
    email = event.data["email"]
    return {"kind": "email-changed", "recipient": email,
            "payload": {"subject": "Your email address was changed", "email": email}}


HANDLERS: dict[str, Handler] = {
    "UserRegistered": welcome,
    "UserEmailChanged": email_changed,
}


class NotificationsBatch:
    def __init__(self, conn: Connection, handlers: dict[str, Handler]):
        self.conn, self.handlers = conn, handlers
        self.rows: list[dict[str, Any]] = []
        self.created_at = datetime.now(UTC)

    def apply(self, event: RecordedEvent) -> bool:
        handler = self.handlers.get(event.type)
        if handler is None:
            return False
        note = handler(event)
        if not self.rows:
            self.created_at = datetime.now(UTC)  # one time for the batch: written as one statement
        self.rows.append({"event_id": event.event_id, "stream_id": event.stream_id, **note})
        return True

    def flush(self) -> None:
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        dialect_for(self.conn).insert_ignore_many(self.conn, notifications, ["event_id"], rows,
                                                  {"created_at": self.created_at}, dumps)


class NotificationsProjection:
    """Returns batches that write one outbox row per handled event, idempotent by event id."""

    name = "notifications"
    category = "user"
    shardable = False
    queue = "notifications"

    def __init__(self, handlers: dict[str, Handler] | None = None):
        self.handlers = dict(HANDLERS if handlers is None else handlers)

    @property
    def types(self) -> tuple[str, ...]:
        """Returns the event types with a handler: the runner reads only those (not every import of a backfill)."""
        return tuple(self.handlers)

    def open(self, conn: Connection, events: Sequence[RecordedEvent]) -> NotificationsBatch:
        return NotificationsBatch(conn, self.handlers)
