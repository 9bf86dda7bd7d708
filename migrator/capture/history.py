"""What happened to change capture in a legacy database, kept even when the changelog is dropped.

`migrator_capture_history` (legacy database) gets one row per state change made by
`capture.install` / `capture.remove`: triggers `installed` / `removed` for a table, the
changelog `changelog_created` / `changelog_dropped`. Each changelog has a *generation* (a
uuid made with it). `last_id` is the highest changelog id handed out so far (at a removal,
that table's highest id), so a changelog created again starts its ids after every id ever
used in this database, and the relay can tell what it did not see (see `migrator.capture.gaps`).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, inspect, text

from .backends import capture_backend_for
from .sql import HISTORY, HISTORY_ACTIONS

__all__ = ["HISTORY", "Generation", "HistoryEntry", "changelog_created", "current_generation", "ensure", "exists",
           "high_id", "id_floor", "last_seq", "read_history", "record", "table_state"]


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    """Returns one history row; `at` is a UTC datetime."""

    seq: int
    at: datetime
    action: str
    table: str | None
    generation: str | None
    last_id: int


@dataclasses.dataclass(frozen=True)
class Generation:
    """Returns the changelog now in place: its generation, when it was created and the id it starts after."""

    generation: str
    created_at: datetime
    starts_after: int


def _utc(value: Any) -> datetime:
    t = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def ensure(conn: Connection) -> None:
    """Creates the history table if it is missing (in the caller's transaction)."""
    capture_backend_for(conn).create_history(conn)


def exists(conn: Connection) -> bool:
    """Returns True when the history table exists."""
    return inspect(conn).has_table(HISTORY)


def record(conn: Connection, action: str, table: str | None = None, *, generation: str | None = None,
           last_id: int = 0) -> None:
    """Appends one history row in the caller's transaction."""
    if action not in HISTORY_ACTIONS:
        raise ValueError(f"unknown capture history action {action!r}")
    conn.execute(text(f"INSERT INTO {HISTORY} (action, table_name, generation, last_id) VALUES (:a, :t, :g, :n)"),
                 {"a": action, "t": table, "g": generation, "n": int(last_id)})


def read_history(conn: Connection, after: int = 0) -> list[HistoryEntry]:
    """Returns the history rows with seq > `after`, oldest first (the table must exist: `exists`)."""
    rows = conn.execute(text(f"SELECT seq, at, action, table_name, generation, last_id FROM {HISTORY} "
                             "WHERE seq > :s ORDER BY seq"), {"s": after})
    return [HistoryEntry(r.seq, _utc(r.at), r.action, r.table_name, r.generation, r.last_id or 0) for r in rows]


def last_seq(conn: Connection) -> int:
    """Returns the highest history seq, 0 when empty."""
    return conn.execute(text(f"SELECT max(seq) FROM {HISTORY}")).scalar() or 0


def table_state(conn: Connection, table: str) -> str | None:
    """Returns the last `installed`/`removed` action recorded for the table, None when none."""
    return conn.execute(text(f"SELECT action FROM {HISTORY} WHERE table_name = :t AND action IN "
                             "('installed', 'removed') ORDER BY seq DESC LIMIT 1"), {"t": table}).scalar()


def current_generation(conn: Connection) -> Generation | None:
    """Returns the generation of the changelog in place (the last one created), None when none is recorded."""
    row = conn.execute(text(f"SELECT at, generation, last_id, action FROM {HISTORY} WHERE action IN "
                            "('changelog_created', 'changelog_dropped') ORDER BY seq DESC LIMIT 1")).first()
    if row is None or row.action != "changelog_created":
        return None
    return Generation(row.generation, _utc(row.at), row.last_id or 0)


def high_id(conn: Connection) -> int:
    """Returns the highest id the changelog in place has handed out (its sequence), 0 when none."""
    return capture_backend_for(conn).high_id(conn)


def id_floor(conn: Connection) -> int:
    """Returns the highest changelog id ever recorded in this database's history (0 when none)."""
    return conn.execute(text(f"SELECT max(last_id) FROM {HISTORY}")).scalar() or 0


def changelog_created(conn: Connection) -> Generation:
    """Records a new changelog: a new generation whose ids start after every id used before; returns it.

    Call right after creating the changelog, in the same transaction.
    """
    floor = id_floor(conn)
    capture_backend_for(conn).raise_id_floor(conn, floor)
    generation = str(uuid.uuid4())
    start = max(floor, high_id(conn))
    record(conn, "changelog_created", generation=generation, last_id=start)
    return Generation(generation, datetime.now(UTC), start)
