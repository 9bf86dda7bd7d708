"""Re-sync: make every stream of a mapped table agree with its legacy row again, after a capture gap.

Two keyset walks, each chunk one write transaction on the event store holding the relay's
checkpoint lock (so no relay batch of the table runs in between):

1. Legacy rows in key order, read with their changelog watermark W in one snapshot (as the
   backfill reads them). A row whose stream is missing or replays to another state gets an
   import event of the row (`source=resync`, `changelog_watermark=W`), appended at the
   stream's version: the relay then applies only changes after W (the watermark rule).
2. Streams of the table's category in stream-id order: a live stream whose legacy row is
   gone gets a delete event (`source=resync`).

A second run finds every stream in agreement and writes nothing. At the end the table's
gaps recorded before the run started are marked resolved (unless another writer appended to a
stream between the comparison and the append: that stream is left for a second run, and the
gaps stay open). Memory holds one chunk.

`run_keys(keys)` does both for chosen keys only (gaps untouched); `source` names who appends
(`migrator repair` re-syncs its keys with `source=repair` and corrections instead of imports).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, column, select, table

from es_app.store import EventStore, NewEvent, write_transaction

from ..backfill.reader import ChunkReader
from ..capture import gaps as capture_gaps
from ..capture.changelog import latest_change_id
from ..capture.offsets import lock_offset, lock_state, offset_name
from ..claims.unique import move_claims
from ..mapping import CompiledMapping, TableMapping, bound, import_metadata, uuid5_text

DEFAULT_CHUNK = 500
SOURCE = "resync"


@dataclasses.dataclass
class ResyncTotals:
    """Returns what a re-sync did: legacy rows and streams compared, imports and deletes appended, gaps resolved."""

    table: str
    rows: int = 0
    streams: int = 0
    imported: int = 0
    deleted: int = 0
    raced: int = 0  # streams another writer appended to meanwhile: left for a second run
    gaps_resolved: int = 0
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return self.imported + self.deleted


class Resync:
    """Re-syncs one mapped legacy table's streams with its rows (see the module's docstring)."""

    def __init__(self, mapping: TableMapping | CompiledMapping, legacy: Engine, store: EventStore, *,
                 chunk_size: int = DEFAULT_CHUNK, source: str = SOURCE):
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.mapping = bound(mapping, legacy)
        self.legacy, self.store, self.chunk_size, self.source = legacy, store, chunk_size, source
        self.reader = ChunkReader(self.mapping, legacy)
        self.name = offset_name(self.mapping.table)

    def run(self, on_chunk: Callable[[ResyncTotals], Any] | None = None) -> ResyncTotals:
        """Returns the totals after both walks; resolves the table's gaps recorded before the start."""
        totals, started = ResyncTotals(self.mapping.table), time.perf_counter()
        with self.store.engine.connect() as conn:
            gap_ids = [g.id for g in capture_gaps.recorded_open(conn, self.mapping.table) if g.id is not None]
        after: Any = None
        while True:
            with write_transaction(self.store.engine) as conn:
                base = lock_state(conn, self.name).id_base  # the relay's ids once changelog ids restarted
                chunk = self.reader.read_after(after, self.chunk_size)
                if not chunk.rows:
                    break
                totals.imported += self._sync_rows(conn, chunk.rows, chunk.watermark + base, totals)
            totals.rows += len(chunk.rows)
            after = chunk.last_key
            if on_chunk is not None:
                on_chunk(totals)
        last_stream = ""
        while True:
            with write_transaction(self.store.engine) as conn:
                lock_offset(conn, self.name)
                stream_ids = self.store.stream_ids_in_category(conn, self.mapping.category, after=last_stream,
                                                               limit=self.chunk_size)
                if not stream_ids:
                    break
                totals.deleted += self._delete_orphans(conn, stream_ids, totals)
            totals.streams += len(stream_ids)
            last_stream = stream_ids[-1]
            if on_chunk is not None:
                on_chunk(totals)
        if not totals.raced:
            with write_transaction(self.store.engine) as conn:
                totals.gaps_resolved = capture_gaps.resolve_gaps(conn, self.mapping.table, gap_ids, SOURCE)
        totals.seconds = time.perf_counter() - started
        return totals

    def run_keys(self, keys: Sequence[Any], on_chunk: Callable[[ResyncTotals], Any] | None = None) -> ResyncTotals:
        """Returns the totals after re-syncing only these legacy keys: each key's row (read now, with its
        watermark) against its stream, and a live stream whose row is gone gets its delete. Gaps stay as they are."""
        totals, started = ResyncTotals(self.mapping.table), time.perf_counter()
        m = self.mapping
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), self.chunk_size):
            part = wanted[start:start + self.chunk_size]
            with self._transaction() as conn:
                base = lock_state(conn, self.name).id_base
                rows, watermark = self.reader.read_keys(part)
                totals.imported += self._sync_rows(conn, rows, watermark + base, totals)
                present = {m.stream_id(m.key_of(row)) for row in rows}
                totals.deleted += self._delete_orphans(
                    conn, [sid for sid in map(m.stream_id, part) if sid not in present], totals)
            totals.rows += len(rows)
            totals.streams += len(part)
            if on_chunk is not None:
                on_chunk(totals)
        totals.seconds = time.perf_counter() - started
        return totals

    # -- the two walks -----------------------------------------------------
    def _sync_rows(self, conn: Connection, rows: Iterable[dict[str, Any]], watermark: int,
                   totals: ResyncTotals) -> int:
        m = self.mapping
        by_stream = {m.stream_id(m.key_of(row)): row for row in rows}
        streams = self._replayed(conn, list(by_stream))
        items = []
        for sid, row in by_stream.items():
            version, state = streams.get(sid, (0, None))
            expected = m.state_from_row(row)
            if state == expected:
                continue
            items.append((sid, self._sync_events(conn, sid, row, version, state, expected, watermark), version))
        synced = self._append(conn, items, totals)
        move_claims(self.store, conn, m, {sid: m.claims_of(by_stream[sid]) for sid in synced})
        return len(synced)

    def _sync_events(self, conn: Connection, stream_id: str, row: dict[str, Any], version: int,
                     state: dict[str, Any] | None, expected: dict[str, Any], watermark: int) -> list[NewEvent]:
        """Returns the events that make a stream at `version` (replaying to `state`) agree with its row:
        the row's import event."""
        m = self.mapping
        data = m.import_data(row)
        meta = import_metadata(self.source, watermark, data["updated_at"])
        return [NewEvent(m.import_event_type, data, meta, self.event_id(stream_id, version + 1))]

    def _delete_orphans(self, conn: Connection, stream_ids: list[str], totals: ResyncTotals) -> int:
        m = self.mapping
        # only streams imported from the table replay to a state: those the new side created are left alone
        live = {sid: version for sid, (version, state) in self._replayed(conn, stream_ids).items() if state is not None}
        if not live:
            return 0
        keys = {sid: m.key_of({m.key: sid[len(m.stream_prefix) + 1:]}) for sid in live}
        legacy_table = table(m.table, column(m.key))
        with self.legacy.begin() as lconn:  # committed: the watermark's numbering (MySQL) stands
            watermark = latest_change_id(lconn)  # first: MySQL's numbering must precede the snapshot's reads
            present = {m.stream_id(m.key_of({m.key: k})) for k in lconn.execute(
                select(legacy_table.c[m.key]).where(legacy_table.c[m.key].in_(list(keys.values())))).scalars()}
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        meta = {"source": self.source, "actor": "migrator", "occurred_at": now, "changelog_watermark": watermark}
        items = [(sid, [m.delete_event(event_id=self.event_id(sid, version + 1), metadata=meta)], version)
                 for sid, version in live.items() if sid not in present]
        deleted = self._append(conn, items, totals)
        move_claims(self.store, conn, m, {sid: () for sid in deleted})  # a deleted row holds no value
        return len(deleted)

    def _append(self, conn: Connection, items: list[tuple[str, list[NewEvent], int]],
                totals: ResyncTotals) -> list[str]:
        """Returns the streams that got their event; one another writer moved meanwhile is counted as raced."""
        if not items:
            return []
        self.store.lock_for_append(conn)
        results = self.store.append_batch(conn, items, skip_mismatched=True)
        done = [sid for (sid, _, _), r in zip(items, results, strict=True) if r is not None]
        totals.raced += len(items) - len(done)
        return done

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """Yields the write transaction of one chunk of `run_keys`."""
        with write_transaction(self.store.engine) as conn:
            yield conn

    def event_id(self, stream_id: str, version: int) -> str:
        """Returns the id of the event this re-sync appends at `version` of a stream (the same on a retry)."""
        return uuid5_text(f"{stream_id}:{version}:{self.source}")

    def _replayed(self, conn: Connection, stream_ids: list[str]) -> dict[str, tuple[int, dict[str, Any] | None]]:
        """Returns {stream id: (version, replayed state)} of the streams that exist."""
        return {sid: (events[-1].version, self.mapping.replay(events))
                for sid, events in self.store.read_streams(conn, stream_ids).items()}
