"""Capture gaps: stretches of legacy changes the relay could not see, detected and reported, never skipped.

Before each batch the relay compares its checkpoint (`offsets.OffsetState`: position,
changelog generation read, capture history read up to) with the legacy database's capture
history (`migrator.capture.history`):

- the history shows the table's triggers `removed` then `installed` again → a gap
  `capture_off` from the removal to the reinstall;
- the changelog was dropped and created again (a new generation) → a gap
  `changelog_recreated`, from the relay's last read when rows it had not relayed were
  dropped, else from the drop; the relay moves to the new generation's first id;
- the new changelog's ids start below the relay's position (ids restarted: a changelog
  created without the history, e.g. by an older version) → a gap `ids_restarted`; the relay
  reads it from 0 and adds its old position to every id from then on (`id_base`), so the
  ids it derives event ids and watermarks from stay above every id it used before.

A stretch that ended before anything of the table reached the event store is no gap (the
backfill reads the rows as they are). A gap is recorded in `migrator_capture_gaps`
(event-store database, es revision `migrator_capture_gaps`) in the relay's transaction and
stays open until `migrator relay --resync` (see `migrator.relay.resync`) resolves it.
`open_gaps` returns the open ones, with those the relay has not recorded yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
    update,
)

from es_app.store import EventStore

from ..mapping import TableMapping
from . import history
from .changelog import changelog_exists
from .offsets import OffsetState, get_state, offset_name, offsets, save_capture_state

__all__ = ["CAPTURE_OFF", "CHANGELOG_RECREATED", "IDS_RESTARTED", "CaptureGap", "Decision", "check", "detect",
           "gaps", "open_gaps", "recorded_open", "resolve_gaps"]

metadata = MetaData()

gaps = Table(
    "migrator_capture_gaps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("table_name", String(200), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("since", DateTime(timezone=True), nullable=True),
    Column("until", DateTime(timezone=True), nullable=False),
    Column("detail", String(500), nullable=False),
    Column("detected_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("resolved_by", String(100), nullable=True),
    Index("ix_migrator_capture_gaps_open", "table_name", "resolved_at"),
)

CAPTURE_OFF = "capture_off"
CHANGELOG_RECREATED = "changelog_recreated"
IDS_RESTARTED = "ids_restarted"
_WHY = {CAPTURE_OFF: "capture was off", CHANGELOG_RECREATED: "the changelog was recreated",
        IDS_RESTARTED: "changelog ids restarted below the relay's offset"}


def _utc(t: datetime | None) -> datetime | None:
    return None if t is None else (t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC))


@dataclasses.dataclass(frozen=True)
class CaptureGap:
    """Returns one capture gap: the table, why, from when to when; `id` None when the relay has not recorded it yet."""

    table: str
    reason: str
    since: datetime | None
    until: datetime
    detail: str
    id: int | None = None
    detected_at: datetime | None = None

    def warning(self) -> str:
        """Returns the one-line warning the CLI prints: what happened and how to recover."""
        since = self.since.isoformat(timespec="seconds") if self.since else "?"
        return (f"capture gap on {self.table}: {_WHY.get(self.reason, self.reason)} from {since} to "
                f"{self.until.isoformat(timespec='seconds')} ({self.detail}); legacy changes in between may be "
                f"missing from the event store: run `migrator relay --resync --table {self.table}`")


@dataclasses.dataclass(frozen=True)
class Decision:
    """Returns what the relay does before a batch: read after `position`, remember the rest, record `gaps`."""

    position: int
    generation: str | None
    history_seq: int
    gaps: tuple[CaptureGap, ...]
    id_base: int = 0

    def state(self, before: OffsetState) -> OffsetState:
        """Returns the checkpoint after this decision."""
        return dataclasses.replace(before, position=self.position, generation=self.generation,
                                   history_seq=self.history_seq, id_base=self.id_base)


def detect(table: str, state: OffsetState, entries: Sequence[history.HistoryEntry],
           current: history.Generation | None, high_id: int | None, began_before: Callable[[datetime], bool],
           now: datetime) -> Decision:
    """Returns the relay's decision for one table from its checkpoint and the history rows after it (pure).

    `high_id` is the highest id the changelog handed out (None without a changelog);
    `began_before(t)` answers whether anything of the table was in the event store before `t`.
    """
    position, found = state.position, []
    seq, open_from = state.history_seq, None
    off_since: datetime | None = None
    recreated = lost = False
    removed_last = 0
    for e in entries:
        mine = e.table == table
        if e.action == "removed" and mine:
            removed_last = max(removed_last, e.last_id)
            if off_since is None:
                off_since, open_from = e.at, e.seq
        elif e.action == "changelog_dropped":
            recreated = True
            lost = lost or removed_last > state.position
            if off_since is None:
                off_since, open_from = e.at, e.seq
        elif e.action == "installed" and mine and off_since is not None:
            if state.position > 0 or began_before(e.at):
                since = state.updated_at if lost and state.updated_at and state.updated_at < off_since else off_since
                detail = (f"unrelayed changes after id {state.position} were dropped with the changelog" if lost
                          else "changes made meanwhile were not captured")
                found.append(CaptureGap(table, CHANGELOG_RECREATED if recreated else CAPTURE_OFF, since, e.at, detail))
            off_since, open_from, recreated, lost, removed_last = None, None, False, False, 0
        seq = e.seq
    if open_from is not None:
        seq = open_from - 1  # capture of this table is still off: look at this stretch again next time
    generation, floor = state.generation, None
    if current is not None and current.generation != generation:
        floor = current.starts_after  # a new changelog: read it from its beginning
        generation = current.generation
    if high_id is not None and high_id < position:
        floor = min(floor if floor is not None else high_id, high_id)
    base = state.id_base
    if floor is not None and floor < position:  # ids restarted below what the relay read: shift them past it
        found.append(CaptureGap(table, IDS_RESTARTED, state.updated_at, now,
                                f"offset {position} is above the new changelog's first id {floor + 1}"))
        base, position = base + position, 0
    elif floor is not None and state.generation is not None:
        position = floor
    return Decision(position, generation, max(seq, 0), tuple(found), base)


def _began_before(conn: Connection, category: str):
    first: list[datetime | None] = []

    def began(t: datetime) -> bool:
        if not first:
            first.append(EventStore(conn.engine).first_recorded_at(conn, category))
        return first[0] is not None and first[0] < t
    return began


def _decide(es_conn: Connection, legacy_conn: Connection, mapping: TableMapping, state: OffsetState) -> Decision:
    entries: list[history.HistoryEntry] = []
    current = None
    if history.exists(legacy_conn):
        after = state.history_seq if history.last_seq(legacy_conn) >= state.history_seq else 0  # history recreated
        state = dataclasses.replace(state, history_seq=after)
        entries, current = history.read_history(legacy_conn, after), history.current_generation(legacy_conn)
    high = history.high_id(legacy_conn) if changelog_exists(legacy_conn) else None
    return detect(mapping.table, state, entries, current, high, _began_before(es_conn, mapping.category),
                  datetime.now(UTC))


def check(es_conn: Connection, legacy_conn: Connection, mapping: TableMapping, state: OffsetState) -> OffsetState:
    """Returns the checkpoint the relay reads after; records new gaps and the checkpoint's capture state.

    Call in the relay's write transaction, after locking the checkpoint (`lock_state`).
    """
    d = _decide(es_conn, legacy_conn, mapping, state)
    now = datetime.now(UTC)
    for g in d.gaps:
        es_conn.execute(insert(gaps).values(table_name=g.table, reason=g.reason, since=g.since, until=g.until,
                                            detail=g.detail[:500], detected_at=now))
    name = offset_name(mapping.table)
    if (d.generation, d.history_seq, d.id_base) != (state.generation, state.history_seq, state.id_base):
        save_capture_state(es_conn, name, d.generation, d.history_seq, d.id_base)
    if d.position != state.position:
        es_conn.execute(update(offsets).where(offsets.c.name == name).values(position=d.position, updated_at=now))
    return d.state(state)


def _recorded(conn: Connection, tables: Sequence[str] | None) -> list[CaptureGap]:
    q = select(gaps).where(gaps.c.resolved_at.is_(None)).order_by(gaps.c.id)
    if tables is not None:
        q = q.where(gaps.c.table_name.in_(list(tables)))
    # arg-type: `until` is NOT NULL, so _utc returns a datetime
    return [CaptureGap(r.table_name, r.reason, _utc(r.since), _utc(r.until),  # type: ignore[arg-type]
                       r.detail, r.id, _utc(r.detected_at))
            for r in conn.execute(q)]


def open_gaps(legacy_engine: Engine, es_engine: Engine,
              mappings: Sequence[TableMapping] | None = None) -> list[CaptureGap]:
    """Returns the open capture gaps of the mapped tables (default: the built-in ones), oldest first.

    Recorded gaps come with their `id`; gaps the relay will record on its next run (it has
    not run since) come with `id` None. Reads only; [] when capture was never installed.
    """
    from ..mapping import DEFAULT_MAPPINGS

    mappings = list(mappings or DEFAULT_MAPPINGS)
    with es_engine.connect() as es_conn, legacy_engine.connect() as legacy_conn:
        if not inspect(es_conn).has_table(gaps.name):
            return []  # the event-store schema is older than capture gaps: `migrator init` upgrades it
        found = _recorded(es_conn, [m.table for m in mappings])
        for m in mappings:
            state = get_state(es_conn, offset_name(m.table)) or OffsetState(0)
            found.extend(_decide(es_conn, legacy_conn, m, state).gaps)
    return found


def resolve_gaps(conn: Connection, table: str, ids: Sequence[int], by: str) -> int:
    """Marks the table's gaps `ids` resolved (by `by`, e.g. "resync") in the caller's transaction; returns how many."""
    if not ids:
        return 0
    result = conn.execute(update(gaps).where(gaps.c.table_name == table, gaps.c.id.in_(list(ids)),
                                             gaps.c.resolved_at.is_(None))
                          .values(resolved_at=datetime.now(UTC), resolved_by=by))
    return result.rowcount or 0


def recorded_open(conn: Connection, table: str) -> list[CaptureGap]:
    """Returns the table's recorded open gaps (the relay's transaction or any connection)."""
    return _recorded(conn, [table])
