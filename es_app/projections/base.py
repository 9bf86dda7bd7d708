"""What the runner needs from a projection: a name, the category it reads, and batches.

A batch is opened inside the runner's transaction for a list of events, applies them
one at a time (an event either applies completely or raises and leaves the batch as it
was), and writes everything applied in one go on `flush()`. A batch's flush is usually the
transaction's last write but its checkpoint's: on PostgreSQL the runner sends them with the
COMMIT in one pipeline (`Dialect.writes_with_commit`), so `flush` writes on the driver's
connection and reads no result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Connection

from es_app.store import RecordedEvent


class Batch(Protocol):
    def apply(self, event: RecordedEvent) -> bool:
        """Returns True if the event changed something, False if it was already applied or ignored."""

    def flush(self) -> None: ...


class Projection(Protocol):
    # Read-only members (a plain class or instance attribute satisfies them).
    @property
    def name(self) -> str:
        """Returns the checkpoint and dead-letter name."""

    @property
    def category(self) -> str | None:
        """Returns the stream category it reads (None: every event)."""

    # Optional: `types`, the event types it handles (a tuple); the runner then reads only those.
    @property
    def shardable(self) -> bool: ...

    @property
    def queue(self) -> str:
        """Returns the Celery queue whose workers run it (read models: "projections")."""

    def open(self, conn: Connection, events: Sequence[RecordedEvent]) -> Batch:
        """Returns a batch that first reads the rows `events` touch. It may then also be given events
        of streams created in the caller's transaction (which can have no row yet)."""
