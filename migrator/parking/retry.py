"""`retry`: parked rows and changes go into the event store after a fix, per key, in order.

For each key with parked entries (the backfill's row first, then the relay's changes by
changelog id), in a write transaction of its own that holds the relay's offset lock (so the
relay does not interleave):

- a relay change runs again through the current mapping, on the stream as it stands now,
  with the relay's own event ids and watermark rule;
- the backfill's row, or a change that still cannot be stored, brings the key from its
  current legacy row instead: one import event of that row, with the changelog watermark W
  read in the same snapshot (as a backfill chunk does; a row gone since becomes a delete).
  Every parked change with an id <= W is contained in it; the later ones follow in order.

When that too fails (the fix is not in yet), the entry stays parked with the new reason and
one more attempt, and the key's later entries stay behind it. Fixes are either a better
mapping (e.g. `strip_control` on the column) or a corrected legacy row.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Connection, Engine

from es_app.store import EventStore, ExpectedVersion, InvalidEvent, NewEvent, check_events, write_transaction

from ..backfill.reader import ChunkReader
from ..capture.changelog import Change
from ..capture.offsets import lock_offset, offset_name
from ..mapping import ORIGINALS, CompiledMapping, import_metadata, uuid5_text
from ..relay.runner import Relay, _Stream
from .entries import MAPPING_ERRORS, RELAY, ParkedEntry, failed_again, key_of_text, open_entries, reason_of, resolve


@dataclasses.dataclass
class RetryReport:
    """Returns what a retry did: entries resolved, entries still parked, keys tried."""

    table: str
    resolved: int = 0
    still_parked: int = 0
    keys: int = 0


def retry(store: EventStore, legacy: Engine, mapping: CompiledMapping, *, key: str | None = None) -> RetryReport:
    """Returns the report of retrying the table's parked entries (of one key, as `parked.key_text`
    shows it), through `mapping` (bound to the legacy database) and the current legacy rows.
    Each key is retried in a transaction of its own."""
    relay = Relay(mapping, legacy, store)
    report = RetryReport(mapping.table)
    with store.engine.connect() as conn:
        keys = list(dict.fromkeys(e.key for e in open_entries(conn, mapping.table, key)))
    for k in keys:
        with write_transaction(store.engine) as conn:
            lock_offset(conn, offset_name(mapping.table))  # the relay waits: it would park behind the key
            store.lock_for_append(conn)
            entries = open_entries(conn, mapping.table, k)
            if entries:
                report.keys += 1
                _KeyRetry(relay, conn, k, entries, report).run()
    return report


class _KeyRetry:
    def __init__(self, relay: Relay, conn: Connection, key: str, entries: list[ParkedEntry], report: RetryReport):
        self.relay, self.conn, self.key, self.entries, self.report = relay, conn, key, entries, report
        self.mapping, self.store = relay.mapping, relay.store
        self.legacy_key = key_of_text(key)
        self.sid = self.mapping.stream_id(self.legacy_key)
        self.stream = relay.streams(conn, [self.sid]).get(self.sid) or _Stream(0, None)

    def run(self) -> None:
        pending = list(self.entries)
        while pending:
            entry = pending.pop(0)
            problem = self._apply(entry) if entry.source == RELAY else "the backfill's row"
            if problem is None:
                self._resolved([entry])
                continue
            watermark, problem = self._from_legacy_row()
            if watermark is None:
                failed_again(self.conn, entry.id, problem)
                self.report.still_parked += 1 + len(pending)
                return
            contained = [e for e in pending if e.changelog_id is not None and e.changelog_id <= watermark]
            self._resolved([entry, *contained])
            pending = [e for e in pending if e not in contained]

    def _resolved(self, entries: list[ParkedEntry]) -> None:
        resolve(self.conn, [e.id for e in entries])
        self.report.resolved += len(entries)

    def _apply(self, entry: ParkedEntry) -> str | None:
        """Appends the change's events; returns None, or why it still cannot be stored."""
        change = Change(**entry.row)
        try:
            new = self.relay.events_for(change, self.stream)
        except (InvalidEvent, *MAPPING_ERRORS) as exc:
            return reason_of(self.mapping.table, exc)
        self._append(new)
        return None

    def _append(self, new: list[NewEvent]) -> None:
        if new:
            expected = self.stream.version or ExpectedVersion.NO_STREAM
            self.store.append_batch(self.conn, [(self.sid, new, expected)])
            self.stream.version += len(new)

    def _from_legacy_row(self) -> tuple[int | None, str]:
        """Brings the stream to the key's current legacy row; returns (its watermark, "") or (None, why not)."""
        m = self.mapping
        reader = ChunkReader(m, self.relay.legacy)
        try:
            row, watermark = reader.read_key(m.key_of({m.key: self.legacy_key}))
            event = self._event_of(row, watermark)
            if event is not None:
                check_events(self.sid, [event])
        except (InvalidEvent, *MAPPING_ERRORS) as exc:
            return None, reason_of(m.table, exc)
        if event is not None:
            self._append([event])
        self.stream.watermark = watermark
        return watermark, ""

    def _event_of(self, row: dict[str, Any] | None, watermark: int) -> NewEvent | None:
        m, name = self.mapping, f"{self.mapping.table}:{self.key}:retry:{watermark}"
        if row is None:  # the row is gone: the stream (if any) ends deleted
            if not self.stream.version:
                return None
            return m.delete_event(event_id=uuid5_text(name), metadata={"source": "retry", "actor": "migrator",
                                                                       "changelog_watermark": watermark})
        data, originals = m.import_payload(row)
        meta = import_metadata("retry", watermark, data["updated_at"])
        if originals is not None:
            meta[ORIGINALS] = originals
        return NewEvent(m.import_event_type, data, meta, event_id=uuid5_text(name))
