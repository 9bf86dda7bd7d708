"""Whether the new side has caught up with a legacy key (or with everything): what tells lag from a real
difference in a shadow read, and what a read-your-writes read in `new` mode waits for.

A key is behind while the changelog holds a legacy change of it that the relay has not turned into
events yet (id past the relay's offset), or while its read-model row is older than its stream (the
projection has not applied the stream's last event). The feed is behind while the relay has a
backlog or the read model's checkpoint is short of the newest event of its category.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, TextClause, func, select, text
from sqlalchemy.exc import DBAPIError

from es_app.projections.tables import users_view
from es_app.store import EventStore
from es_app.store.schema import events

from ..capture.changelog import changelog_exists, pending_since
from ..capture.offsets import get_offset, offset_name
from ..capture.sql import CHANGELOG, LEGACY_ORIGIN
from ..mapping import CompiledMapping
from ..verify.readmodel import ReadModelTable

RECHECK_CAPTURE_S = 5.0  # how often an absent changelog is looked for again
POLL_S = 0.02  # how often a wait looks again

_Lag = TypeVar("_Lag", "KeyLag", "FeedLag")



def _pending(legacy: Engine) -> TextClause:
    # a committed change not numbered yet (MySQL, before the sequencer's next pass) waits too: as offset + 1
    return text(f"SELECT max(coalesce(id, :after + 1)) FROM {CHANGELOG} WHERE table_name = :t "
                f"AND {pending_since(legacy)} AND pk = :pk AND origin = :origin")


def _backlog(legacy: Engine) -> TextClause:
    return text(f"SELECT count(*) FROM {CHANGELOG} WHERE table_name = :t AND {pending_since(legacy)} "
                "AND origin = :origin")


@dataclasses.dataclass(frozen=True)
class KeyLag:
    """Returns how far the new side is with one key."""

    relayed_to: int  # the relay's offset: changelog ids up to it are events
    pending_change: int | None  # the newest legacy change of the key past the offset (None: none waits)
    stream_version: int  # 0: no stream
    row_version: int | None  # the read model row's version (None: no row)
    position: int | None  # the global position of the last event the row applied
    row: Any = dataclasses.field(default=None, compare=False)  # the read-model row as read (None: no row)

    @property
    def behind(self) -> bool:
        return self.pending_change is not None or self.stream_version > (self.row_version or 0)

    @property
    def changelog_id(self) -> int:
        """Returns the changelog id the new side stands at for the key: its waiting change, else the offset."""
        return self.pending_change if self.pending_change is not None else self.relayed_to


@dataclasses.dataclass(frozen=True)
class FeedLag:
    """Returns how far the new side is with every key: relay backlog, read-model checkpoint and category head."""

    relayed_to: int
    backlog: int
    checkpoint: int
    head: int

    @property
    def behind(self) -> bool:
        return self.backlog > 0 or self.checkpoint < self.head


class Freshness:
    """Reads the lag of keys of one mapped table and its read model (thread-safe: one connection per look)."""

    def __init__(self, legacy: Engine, store: EventStore, mapping: CompiledMapping, read_model: ReadModelTable, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if read_model.table != users_view.name:
            raise ValueError(f"no table definition for read model {read_model.table}")
        self.legacy, self.store, self.mapping, self.read_model = legacy, store, mapping, read_model
        self.clock, self.sleep = clock, sleep
        self._pending, self._backlog = _pending(legacy), _backlog(legacy)
        self._captured = False
        self._looked_at = -RECHECK_CAPTURE_S
        self._lock = threading.Lock()

    def _capture_installed(self) -> bool:
        if self._captured:  # once there, the changelog stays until the decommission drops it (see _changelog)
            return True
        now = self.clock()
        with self._lock:
            if now - self._looked_at >= RECHECK_CAPTURE_S:
                self._looked_at = now
                with self.legacy.connect() as conn:
                    self._captured = changelog_exists(conn)
        return self._captured

    def _changelog(self, query: TextClause, after: int, **params: object) -> int | None:
        if not self._capture_installed():
            return None
        try:
            with self.legacy.connect() as conn:
                return conn.execute(query, {"t": self.mapping.table, "after": after, "origin": LEGACY_ORIGIN,
                                            **params}).scalar()
        except DBAPIError:
            with self.legacy.connect() as conn:
                if changelog_exists(conn):
                    raise
            with self._lock:  # dropped by the decommission: nothing of the legacy side waits any more
                self._captured, self._looked_at = False, self.clock()
            return None

    def key(self, key: object) -> KeyLag:
        """Returns the key's lag now."""
        sid = self.mapping.stream_id(key)
        rm = self.read_model
        with self.store.engine.connect() as conn:
            relayed_to = get_offset(conn, offset_name(self.mapping.table))
            stream_version = self.store.stream_versions(conn, [sid]).get(sid, 0)
            row = conn.execute(select(users_view).where(users_view.c[rm.id_column] == sid)).first()
        pending = self._changelog(self._pending, relayed_to, pk=str(key))
        return KeyLag(relayed_to, None if pending is None else int(pending), stream_version,
                      None if row is None else int(row._mapping["version"]),
                      None if row is None else int(row._mapping[rm.position_column]), row)

    def feed(self) -> FeedLag:
        """Returns the lag of the whole table now."""
        with self.store.engine.connect() as conn:
            relayed_to = get_offset(conn, offset_name(self.mapping.table))
            checkpoint = self.read_model.checkpoint(conn)
            head = conn.execute(select(func.max(events.c.position))
                                .where(events.c.category == self.mapping.category)).scalar() or 0
        backlog = self._changelog(self._backlog, relayed_to) or 0
        return FeedLag(relayed_to, int(backlog), checkpoint, int(head))

    def wait_key(self, key: object, wait_s: float) -> KeyLag:
        """Returns the key's lag once it is not behind, or as it is after `wait_s` seconds."""
        return self._wait(lambda: self.key(key), wait_s)

    def wait_feed(self, wait_s: float) -> FeedLag:
        """Returns the table's lag once it is not behind, or as it is after `wait_s` seconds."""
        return self._wait(self.feed, wait_s)

    def _wait(self, look: Callable[[], _Lag], wait_s: float) -> _Lag:
        deadline = self.clock() + wait_s
        seen = look()
        while seen.behind and self.clock() < deadline:
            self.sleep(POLL_S)
            seen = look()
        return seen
