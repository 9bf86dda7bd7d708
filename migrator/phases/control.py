"""Live control of running work (gh-ost style): a running backfill or relay reads pause and max rate from
the migration's state, polling the stream's last version (one indexed look-up) at most every `poll_s`
and folding the stream again only when it moved. No restart, no signal, no file."""

from __future__ import annotations

import time
from collections.abc import Callable

from es_app.store import EventStore

from .machine import DEFAULT_NAME, load, stream_id
from .state import MigrationState


class LiveControl:
    """The migration state as a running job sees it: `pause_reason()` and `max_rate()` (see
    migrator.backfill.throttle.LiveLimits), fresh to within `poll_s` seconds."""

    def __init__(self, store: EventStore, name: str = DEFAULT_NAME, *, poll_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.store, self.name, self.poll_s, self.clock = store, name, poll_s, clock
        self._state = load(store, name)
        self._checked = clock()

    @property
    def state(self) -> MigrationState:
        """Returns the state, read again when the stream moved since the last look (at most every poll_s)."""
        now = self.clock()
        if now - self._checked >= self.poll_s:
            self._checked = now
            sid = stream_id(self.name)
            with self.store.engine.connect() as conn:
                version = self.store.stream_versions(conn, [sid]).get(sid, 0)
            if version != self._state.version:
                self._state = load(self.store, self.name)
        return self._state

    def pause_reason(self) -> str | None:
        """Returns "migration paused: <reason> (by <actor>)" while the migration is paused, else None."""
        note = self.state.pause_note()
        return None if note is None else f"migration paused: {note}"

    def max_rate(self) -> float | None:
        """Returns the migration's rate cap (units per second), None when there is none."""
        return self.state.max_rate

    def throttle_note(self) -> str | None:
        """Returns "throttled to R/s (by <actor>)" while a cap is set, else None."""
        st = self.state
        return None if st.max_rate is None else f"throttled to {st.max_rate:g}/s (by {st.throttled_by})"
