"""Change capture: triggers write a changelog row in the same transaction as each legacy write.

`install`, `remove` and `status` are idempotent and are what `migrator capture ...` and the
phase machine call. The changelog lives in the legacy database (`migrator_changelog`: a
monotonically increasing `id` in commit order, `table_name`, `op` I/U/D, `pk` as text, the
`old_row` and `new_row` as JSON, `tx_time` and `origin`). Writes made inside
`migrator_writes(conn)` are recorded with origin "migrator" and never relayed (no loops).
The application-level alternative to triggers is `migrator.capture.hook`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, inspect, text

from es_app.dialect import dialect_for

from ..mapping import CompiledMapping, MappingError, TableMapping
from ..mapping import bound as bound_mapping
from . import history, sql
from .backends import capture_backend_for
from .errors import CaptureError, CaptureNotInstalled
from .sql import CHANGELOG, LEGACY_ORIGIN, MIGRATOR_ORIGIN, NOTIFY_CHANNEL

__all__ = [
    "CHANGELOG",
    "LEGACY_ORIGIN",
    "MIGRATOR_ORIGIN",
    "MODES",
    "NOTIFY_CHANNEL",
    "CaptureError",
    "CaptureNotInstalled",
    "CaptureStatus",
    "Change",
    "TableCapture",
    "backlog",
    "changelog_exists",
    "check_mappings",
    "install",
    "latest_change_id",
    "migrator_writes",
    "number_committed",
    "pending_since",
    "read_changes",
    "remove",
    "require_installed",
    "status",
]


@dataclasses.dataclass(frozen=True)
class Change:
    """One changelog row, with the rows decoded from JSON and `tx_time` as an ISO UTC string."""

    id: int
    table: str
    op: str
    pk: str
    old_row: dict[str, Any] | None
    new_row: dict[str, Any] | None
    tx_time: str
    origin: str


@dataclasses.dataclass(frozen=True)
class TableCapture:
    """Returns one mapped table's capture state: triggers present, changelog rows and last id."""

    table: str
    installed: bool
    changes: int  # changelog rows of this table
    last_id: int  # highest changelog id of this table, 0 when none


@dataclasses.dataclass(frozen=True)
class CaptureStatus:
    """Returns what is installed: the changelog table and, per mapped table, its triggers."""

    backend: str
    changelog: bool
    tables: tuple[TableCapture, ...]

    @property
    def installed(self) -> bool:
        return self.changelog and all(t.installed for t in self.tables)


def _begin(engine: Engine) -> Connection:
    return engine.connect().execution_options(**dialect_for(engine).write_options())


MODES = ("triggers", "session")


def install(engine: Engine, mappings: Sequence[TableMapping], *, mode: str = "triggers") -> CaptureStatus:
    """Creates the changelog and (re)creates the triggers of every mapped table, in one transaction.

    (On MySQL, whose DDL commits at once: in a sequence of steps, each safe to run again, under
    the same lock.) With mode "session" only the changelog is created (and triggers are dropped), for the
    application-level hook of `migrator.capture.hook`. A new changelog gets a new generation
    and starts its ids after every id used before (`migrator.capture.history`). Safe to run
    again (it also refreshes SQLite triggers after columns were added). Raises MappingError when a mapping does not
    fit the database. Returns the status afterwards.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    backend = capture_backend_for(engine)
    bound = [m.bind(engine) for m in mappings]  # fresh: SQLite triggers list the columns of today
    with _begin(engine) as conn, conn.begin():
        dialect_for(conn).lock_for_transaction(conn, sql.NUMBERING_LOCK_KEY)
        had_changelog = changelog_exists(conn)
        backend.create_changelog(conn)
        history.ensure(conn)
        if not had_changelog or history.current_generation(conn) is None:
            history.changelog_created(conn)  # ids start after every id used before (also adopts an old one)
        generation = history.current_generation(conn)
        for m in bound:
            if mode == "triggers":
                backend.install_triggers(conn, m.table, m.key, m.table_columns)
            else:
                backend.drop_triggers(conn, m.table)
            if history.table_state(conn, m.table) != "installed":
                history.record(conn, "installed", m.table,
                               generation=None if generation is None else generation.generation,
                               last_id=history.high_id(conn))
    return status(engine, mappings)


def remove(engine: Engine, mappings: Sequence[TableMapping], *, drop_changelog: bool = False) -> CaptureStatus:
    """Drops the triggers of the mapped tables; with `drop_changelog` also the changelog itself.

    The capture history (`migrator.capture.history`) is kept and records what was removed,
    so a changelog created again continues its ids and the relay reports the gap. Safe to
    run again. Returns the status afterwards.
    """
    backend = capture_backend_for(engine)
    with _begin(engine) as conn, conn.begin():
        dialect_for(conn).lock_for_transaction(conn, sql.NUMBERING_LOCK_KEY)
        insp = inspect(conn)
        has_changelog = changelog_exists(conn)
        if has_changelog:
            history.ensure(conn)
        keep = history.exists(conn)
        generation = history.current_generation(conn) if keep else None
        gen_id = None if generation is None else generation.generation
        for m in mappings:
            state = history.table_state(conn, m.table) if keep else None
            if not insp.has_table(m.table):
                if state == "installed":  # the table was dropped, its triggers with it (a decommission cut short)
                    last = latest_change_id(conn, m.table) if has_changelog else 0
                    history.record(conn, "removed", m.table, generation=gen_id, last_id=last)
                continue
            was_on = keep and (state == "installed" or (state is None and backend.triggers_installed(conn, m.table)))
            backend.drop_triggers(conn, m.table)  # first: the last change is then known (MySQL commits DDL at once)
            if was_on:
                last = latest_change_id(conn, m.table) if has_changelog else 0
                history.record(conn, "removed", m.table, generation=gen_id, last_id=last)
        if drop_changelog:
            if has_changelog:
                history.record(conn, "changelog_dropped", generation=gen_id, last_id=history.high_id(conn))
            backend.drop_changelog(conn)
    return status(engine, mappings)


def status(engine: Engine, mappings: Sequence[TableMapping]) -> CaptureStatus:
    """Returns whether the changelog and each mapped table's triggers are installed, with row counts."""
    backend = capture_backend_for(engine)
    number_committed(engine)
    with engine.connect() as conn:
        has_changelog = changelog_exists(conn)
        counts: dict[str, tuple[int, int]] = {}
        if has_changelog:
            counts = {r[0]: (r[1], r[2] or 0) for r in conn.execute(text(
                f"SELECT table_name, count(*), max(id) FROM {CHANGELOG} GROUP BY table_name"))}
        tables = tuple(TableCapture(m.table, has_changelog and backend.triggers_installed(conn, m.table),
                                    *counts.get(m.table, (0, 0))) for m in mappings)
    return CaptureStatus(backend.name, has_changelog, tables)


def changelog_exists(conn: Connection) -> bool:
    """Returns True when the changelog table exists in this (legacy) database."""
    return inspect(conn).has_table(CHANGELOG)


def require_installed(engine: Engine, mappings: Sequence[TableMapping]) -> None:
    """Raises CaptureNotInstalled unless the changelog exists (the relay's and the backfill's precondition)."""
    with engine.connect() as conn:
        if not changelog_exists(conn):
            raise CaptureNotInstalled()


# -- the origin marker: the migrator's own legacy writes -----------------------
@contextmanager
def migrator_writes(conn: Connection, origin: str = MIGRATOR_ORIGIN) -> Iterator[Connection]:
    """Marks the writes made on `conn` inside the block as the migrator's (origin `origin`).

    Use inside the caller's write transaction. Their changelog rows carry that origin and
    the relay skips them, so the migrator's writes to the legacy table never loop back.
    The capture backend sets the marker (PostgreSQL: a transaction-local setting; SQLite,
    one writer at a time: a row in `migrator_origin` for the duration of the block).
    """
    if not origin or origin == LEGACY_ORIGIN:
        raise ValueError(f"origin must be a name other than {LEGACY_ORIGIN!r}")
    backend = capture_backend_for(conn)
    backend.set_origin(conn, origin)
    try:
        yield conn
    finally:
        backend.clear_origin(conn)


# -- reading the changelog -----------------------------------------------------
def number_committed(bind: Engine | Connection) -> int:
    """Gives ids to the committed changelog rows without one (MySQL's sequencer; 0 elsewhere); returns how many.

    With an Engine: on a connection of its own, committed on return (call it before the read
    transaction that should see the ids begins; it returns at once when another pass is numbering).
    With a Connection: in the caller's transaction, which must commit (see `latest_change_id`).
    """
    return capture_backend_for(bind).number_committed(bind)


def _json(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    return orjson.loads(value)


def _iso(value: Any) -> str:
    t = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return t.isoformat(timespec="microseconds")


def read_changes(conn: Connection, table: str, after: int, limit: int = 1000) -> list[Change]:
    """Returns the table's changelog rows with id > `after`, in id (= commit) order.

    Where ids are given after commit (MySQL), the committed rows are numbered first, on a
    connection of their own: a read snapshot `conn` has already begun sees them next time.
    """
    number_committed(conn.engine)
    rows = conn.execute(text(
        f"SELECT id, table_name, op, pk, old_row, new_row, tx_time, origin FROM {CHANGELOG} "
        "WHERE table_name = :t AND id > :after ORDER BY id LIMIT :n"), {"t": table, "after": after, "n": limit})
    return [Change(r.id, r.table_name, r.op, r.pk, _json(r.old_row), _json(r.new_row), _iso(r.tx_time), r.origin)
            for r in rows]


def backlog(conn: Connection, table: str, after: int) -> int:
    """Returns how many changelog rows of the table have id > `after` or no id yet (committed, to be numbered)."""
    return conn.execute(text(f"SELECT count(*) FROM {CHANGELOG} WHERE table_name = :t AND {pending_since(conn)}"),
                        {"t": table, "after": after}).scalar() or 0


def pending_since(bind: Engine | Connection, column: str = "id", after: str = ":after") -> str:
    """Returns the SQL condition "this changelog row comes after `after`" on the database of `bind`.

    Its id is above `after` — or, where a committed row can still be without id (MySQL, before
    the sequencer's next pass: it will get an id above every id handed out so far), it has none
    yet. Elsewhere the plain range keeps the (table_name, id) index usable.
    """
    if capture_backend_for(bind).ids_after_commit:
        return f"({column} > {after} OR {column} IS NULL)"
    return f"{column} > {after}"


def latest_change_id(conn: Connection, table: str | None = None) -> int:
    """Returns the highest committed changelog id (of one table, or of all), 0 when there is none.

    The backfill reads it as its watermark in the snapshot of a chunk: call it FIRST in that
    snapshot transaction, then read the rows, and COMMIT. Where ids are given after commit
    (MySQL), the committed rows without id are numbered here, in the caller's transaction, so
    that every change the snapshot holds has an id up to the one returned and every later change
    a higher one. (Called after other reads, it may not number; the rows committed before the
    snapshot but not numbered yet then get ids above it, and the relay applies them once more on
    top of an import that holds them: more events, the same state.)
    """
    number_committed(conn)
    q = f"SELECT max(id) FROM {CHANGELOG}" + (" WHERE table_name = :t" if table else "")
    return conn.execute(text(q), {"t": table} if table else {}).scalar() or 0


def check_mappings(engine: Engine, mappings: Sequence[TableMapping | CompiledMapping]) -> list[CompiledMapping]:
    """Returns the mappings bound to the legacy database; raises CaptureError with MappingError's line."""
    try:
        return [bound_mapping(m, engine) for m in mappings]
    except MappingError as exc:
        raise CaptureError(str(exc)) from None
