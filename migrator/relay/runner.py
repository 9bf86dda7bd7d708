"""The relay: changelog rows become events through the mapping, per key in changelog order, idempotently.

One batch is one write transaction on the event store: lock the table's offset, read the
next changelog rows after it, decide the events, append them with one bulk insert and
move the offset — all committed together. Event ids are uuid5 of (table, changelog id,
index), and changes whose ids are already stored are skipped, so a re-run after a crash or
a reset offset writes nothing twice.

Rules (shared with the backfill, see docs/architecture.md):
- An INSERT becomes an import event of the new row (watermark = its changelog id), also
  on a stream that exists (a key inserted again after a delete).
- First touch of a key with no stream: an import event of the change's OLD row
  (watermark = changelog id - 1), then the change.
- On an existing stream a change C is applied only if C > the watermark of the stream's
  last import event: a backfilled row that already contains C does not get it twice.
- Rows written by the migrator itself (origin other than "legacy") are never relayed.
- A change whose events the mapping cannot build or the store cannot hold is parked with its
  reason (migrator.parking.entries), and so is every later change of the same key, behind it: the key
  keeps its order, the other keys flow on. `migrator parked retry` applies them after a fix.

Before reading, `capture_gaps.check` compares the checkpoint with the legacy database's
capture history: a recreated changelog is read from its beginning, and a stretch the relay
could not see is recorded as a capture gap (reported until `migrator relay --resync`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine

from es_app.bulk_gc import bulk_gc
from es_app.store import EventStore, InvalidEvent, NewEvent, check_events, write_transaction

from ..capture import gaps as capture_gaps
from ..capture.backends import capture_backend_for
from ..capture.changelog import LEGACY_ORIGIN, Change, latest_change_id, read_changes
from ..capture.changelog import backlog as changelog_backlog
from ..capture.offsets import get_offset, lock_state, offset_name, save_offset
from ..claims.unique import move_claims
from ..mapping import CompiledMapping, TableMapping, bound, import_metadata, relay_event_id, relay_import_id
from ..parking.entries import MAPPING_ERRORS, RELAY, ToPark, key_text, park, reason_of, storable, waiting_keys

DEFAULT_BATCH_SIZE = 1000


@dataclasses.dataclass(frozen=True)
class RelayBatch:
    """Returns what one batch did: changelog rows read, relayed and skipped, events appended, the new offset."""

    table: str
    read: int
    relayed: int
    skipped: int
    events: int
    position: int
    last_event_position: int | None = None
    parked: int = 0  # changes parked (see migrator.parking.entries), counted in `read`, not in `relayed`/`skipped`


@dataclasses.dataclass
class RelayTotals:
    """Returns the sums over the batches of one drain, with its duration."""

    table: str
    read: int = 0
    relayed: int = 0
    skipped: int = 0
    events: int = 0
    batches: int = 0
    position: int = 0
    last_event_position: int | None = None
    seconds: float = 0.0
    parked: int = 0

    def add(self, batch: RelayBatch) -> None:
        self.read += batch.read
        self.parked += batch.parked
        self.relayed += batch.relayed
        self.skipped += batch.skipped
        self.events += batch.events
        self.batches += 1
        self.position = batch.position
        self.last_event_position = batch.last_event_position or self.last_event_position

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


@dataclasses.dataclass
class _Stream:
    version: int
    watermark: int | None


class Relay:
    """Relays one mapped legacy table's changelog into the event store."""

    def __init__(self, mapping: TableMapping | CompiledMapping, legacy: Engine, store: EventStore, *,
                 batch_size: int = DEFAULT_BATCH_SIZE):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.mapping = bound(mapping, legacy)
        self.legacy, self.store, self.batch_size = legacy, store, batch_size
        self.name = offset_name(self.mapping.table)
        self._capture = capture_backend_for(legacy)

    # -- running -----------------------------------------------------------
    def run_batch(self, *, before_commit: Callable[[], Any] | None = None, limit: int | None = None) -> RelayBatch:
        """Returns the result of relaying the next batch of `limit` changes at most (default: the batch size;
        read == 0 when there was nothing to do).

        `before_commit` runs after the appends and the offset move, just before the commit
        (tests use it to crash there).
        """
        table = self.mapping.table
        self._capture.number_committed(self.legacy)  # before the legacy snapshot below begins: it sees the ids
        with write_transaction(self.store.engine) as conn:
            state = lock_state(conn, self.name)
            with self.legacy.connect() as legacy_conn:
                state = capture_gaps.check(conn, legacy_conn, self.mapping.declaration, state)  # never skip silently
                offset, base = state.position, state.id_base
                changes = read_changes(legacy_conn, table, offset, limit or self.batch_size)
            if not changes:
                return RelayBatch(table, 0, 0, 0, 0, offset)
            if base:  # ids restarted once: shifted past every id used before (see capture_gaps)
                changes = [dataclasses.replace(c, id=c.id + base) for c in changes]
            self.store.lock_for_append(conn)
            items, relayed, skipped, to_park = self._plan(conn, changes)
            results = self.store.append_batch(conn, items) if items else []
            park(conn, table, RELAY, to_park)
            parked_ids = {p.changelog_id for p in to_park}
            self._move_claims(conn, [c for c in changes if c.id not in parked_ids], {sid for sid, _, _ in items})
            save_offset(conn, self.name, changes[-1].id - base)
            if before_commit is not None:
                before_commit()
        appended = sum(len(batch) for _, batch, _ in items)
        last = max((r.position for r in results if r is not None), default=None)
        return RelayBatch(table, len(changes), relayed, skipped, appended, changes[-1].id - base, last, len(to_park))

    def drain(self, *, max_batches: int | None = None,
              on_batch: Callable[[RelayBatch], Any] | None = None,
              before_batch: Callable[[int], int | None] | None = None) -> RelayTotals:
        """Returns the totals after relaying batches until the changelog is exhausted (or `max_batches`).

        `before_batch(batch_size)`, when given, runs before each batch and returns how many changes the
        batch may read now, or None to stop the drain there (live control: a pause, a rate cap)."""
        totals = RelayTotals(self.mapping.table, position=self.position())
        started = time.perf_counter()
        with bulk_gc():
            while max_batches is None or totals.batches < max_batches:
                limit = self.batch_size if before_batch is None else before_batch(self.batch_size)
                if limit is None:
                    break
                batch = self.run_batch(limit=limit)
                if batch.read == 0:
                    break
                totals.add(batch)
                if on_batch is not None:
                    on_batch(batch)
                if batch.read < limit:
                    break
        totals.seconds = time.perf_counter() - started
        return totals

    def position(self) -> int:
        """Returns the last changelog id relayed (0 before the first batch)."""
        with self.store.engine.connect() as conn:
            return get_offset(conn, self.name)

    def backlog(self) -> int:
        """Returns how many changelog rows of the table wait to be relayed."""
        position = self.position()
        with self.legacy.connect() as conn:
            return changelog_backlog(conn, self.mapping.table, position)

    def _move_claims(self, conn: Any, changes: Sequence[Change], relayed: set[str]) -> None:
        """Moves the unique claims of the streams that got events to their rows' state after the batch:
        an insert or update claims the new row's values (releasing the old), a delete releases them."""
        m = self.mapping
        if not m.unique or not relayed:
            return
        desired: dict[str, tuple[Any, ...]] = {}
        for c in changes:  # in changelog order: the last legacy change of a stream is its state
            sid = m.stream_id(c.pk)
            if sid in relayed and c.origin == LEGACY_ORIGIN:
                desired[sid] = () if c.op == "D" else m.claims_of(c.new_row or {})
        move_claims(self.store, conn, m, desired)

    # -- deciding ----------------------------------------------------------
    def _plan(self, conn: Any, changes: Sequence[Change]
              ) -> tuple[list[tuple[str, list[NewEvent], int]], int, int, list[ToPark]]:
        m = self.mapping
        stream_ids = list(dict.fromkeys(m.stream_id(c.pk) for c in changes))
        streams = self._streams(conn, stream_ids)
        already = self._already_relayed(conn, changes, set(streams))
        waiting = waiting_keys(conn, m.table, (key_text(c.pk) for c in changes))
        planned: dict[str, tuple[int, list[NewEvent]]] = {}
        to_park: list[ToPark] = []
        relayed = skipped = 0
        for change in changes:
            if change.origin != LEGACY_ORIGIN or change.id in already:
                skipped += 1
                continue
            key = key_text(change.pk)
            if key in waiting:
                to_park.append(ToPark(key, f"waits behind an earlier parked row or change of key {key}",
                                      dataclasses.asdict(change), change.id))
                continue
            sid = m.stream_id(change.pk)
            stream = streams.setdefault(sid, _Stream(0, None))
            try:
                new = self.events_for(change, stream)
            except (InvalidEvent, *MAPPING_ERRORS) as exc:
                waiting.add(key)
                to_park.append(ToPark(key, reason_of(m.table, exc), dataclasses.asdict(change), change.id))
                continue
            if not new:
                skipped += 1
                continue
            relayed += 1
            planned.setdefault(sid, (stream.version, []))[1].extend(new)
            stream.version += len(new)
        return [(sid, batch, expected) for sid, (expected, batch) in planned.items()], relayed, skipped, to_park

    def events_for(self, c: Change, stream: _Stream) -> list[NewEvent]:
        """Returns the change's events on a stream in that state (an import moves its watermark); raises
        InvalidEvent, or the mapping's error, and leaves the state as it was when they cannot be stored."""
        before = (stream.version, stream.watermark)
        try:
            new = self._events_for(c, stream)
            if new:
                check_events(self.mapping.stream_id(c.pk), new)
            return new
        except BaseException:
            stream.version, stream.watermark = before
            raise

    def streams(self, conn: Any, stream_ids: list[str]) -> dict[str, _Stream]:
        """Returns {stream id: (version, watermark of its last import)} of the streams that exist."""
        return self._streams(conn, stream_ids)

    def _events_for(self, c: Change, stream: _Stream) -> list[NewEvent]:
        m, table = self.mapping, self.mapping.table
        exists = stream.version > 0
        if exists and stream.watermark is not None and c.id <= stream.watermark:
            return []  # the imported row already contains this change
        meta = {"source": "relay", "actor": "legacy", "occurred_at": c.tx_time, "changelog_id": c.id}
        if c.op == "I":
            stream.watermark = c.id
            return [m.import_event(c.new_row or {}, event_id=relay_import_id(table, c.id),
                                   metadata=import_metadata("relay", c.id, c.tx_time, actor="legacy",
                                                            changelog_id=c.id))]
        out: list[NewEvent] = []
        if not exists:  # first touch: the state before this change, then the change
            old = c.old_row or {}
            stream.watermark = c.id - 1
            out.append(m.import_event(old, event_id=relay_import_id(table, c.id),
                                      metadata=import_metadata("relay", c.id - 1,
                                                               m.timestamp_of(old, m.updated_at) or c.tx_time,
                                                               changelog_id=c.id)))
        if c.op == "U":
            out += m.change_events(c.old_row or {}, c.new_row or {}, metadata=meta,
                                   event_ids=lambda i: relay_event_id(table, c.id, i))
        else:
            out.append(m.delete_event(event_id=relay_event_id(table, c.id, 0), metadata=meta))
        return out

    def _streams(self, conn: Any, stream_ids: list[str]) -> dict[str, _Stream]:
        stream_ids = [sid for sid in stream_ids if storable(sid)]  # no stream can have another id
        versions = self.store.stream_versions(conn, stream_ids)
        imports = self.store.last_metadata_of_type(conn, list(versions), self.mapping.import_event_type)
        return {sid: _Stream(version, int(imports[sid].get("changelog_watermark", 0)) if sid in imports else None)
                for sid, version in versions.items()}

    def _already_relayed(self, conn: Any, changes: Sequence[Change], existing: set[str]) -> set[int]:
        """Returns the ids of changes whose events are stored (only streams that exist can hold them).

        The first event a change makes is the import (for an INSERT, or on a first touch) or
        its event 0; a first touch stored both, and checking event 0 alone finds it too unless
        the update changed nothing, which re-applies as nothing.
        """
        table, m = self.mapping.table, self.mapping
        by_id: dict[str, int] = {}
        for c in changes:
            if m.stream_id(c.pk) in existing:
                by_id[relay_import_id(table, c.id) if c.op == "I" else relay_event_id(table, c.id, 0)] = c.id
        return {by_id[i] for i in self.store.existing_event_ids(conn, by_id)}


def relays_for(mappings: Sequence[TableMapping | CompiledMapping], legacy: Engine, store: EventStore, *,
               batch_size: int = DEFAULT_BATCH_SIZE) -> list[Relay]:
    """Returns one relay per mapping (binding the mappings to the legacy database)."""
    return [Relay(m, legacy, store, batch_size=batch_size) for m in mappings]


def backlog_at_check(legacy: Engine, es: Engine, mapping: TableMapping, wait_s: float = 0.0, *,
                     clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> int:
    """Returns how many of the table's changes waiting at the call still wait after at most `wait_s` seconds.

    The changelog is taken as it stands at the call (its newest id); changes made while waiting are not
    counted, so a table under constant writes passes as soon as its relay has caught up with the moment of
    the check (what a phase guard asks), where an exact zero might never be seen.
    """
    with legacy.begin() as lconn:  # committed: the numbering (MySQL) stands
        head = latest_change_id(lconn, mapping.table)
    deadline = clock() + wait_s
    while True:
        with es.connect() as conn:
            offset = get_offset(conn, offset_name(mapping.table))
        if offset >= head:
            return 0
        if clock() >= deadline:
            with legacy.connect() as lconn:
                return changelog_backlog(lconn, mapping.table, offset) - changelog_backlog(lconn, mapping.table, head)
        sleep(min(0.05, max(deadline - clock(), 0.0)))


def backlog(legacy: Engine, es: Engine, mappings: Sequence[TableMapping] | None = None) -> int:
    """Returns the changelog rows not yet relayed, over the mapped tables (default: the built-in ones).

    0 when capture is not installed.
    """
    from ..capture.changelog import changelog_exists
    from ..mapping import DEFAULT_MAPPINGS

    with legacy.connect() as lconn:
        if not changelog_exists(lconn):
            return 0
        with es.connect() as conn:
            return sum(changelog_backlog(lconn, m.table, get_offset(conn, offset_name(m.table)))
                       for m in (mappings or DEFAULT_MAPPINGS))
