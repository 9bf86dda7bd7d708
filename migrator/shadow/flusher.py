"""Flushing a process's shadow counts into the migration stream: one `ShadowReadsRecorded` event
{compared, mismatched, lagged, timeouts, errors, skipped} every few seconds (and on close) when anything
was counted. Several app processes each append their own counts, at any version of the stream (no
expected version: counts add up, they never conflict); a failed append keeps the counts for the next."""

from __future__ import annotations

import logging
import os
import socket
import threading

from sqlalchemy.exc import SQLAlchemyError

from es_app.store import ConcurrencyError, EventStore, ExpectedVersion, NewEvent

from ..phases.machine import stream_id
from ..phases.state import SHADOW_READS_RECORDED
from .metrics import ReadMetrics

log = logging.getLogger(__name__)
ACTOR = "shadow-reads"
ATTEMPTS = 5


class CountsFlusher:
    """Returns a background thread appending `metrics`' shadow counts to `migration-<name>` every `every_s`."""

    def __init__(self, store: EventStore, name: str, metrics: ReadMetrics, every_s: float = 5.0):
        self.store, self.name, self.metrics, self.every_s = store, name, metrics, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shadow-counts", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.flush()

    def flush(self) -> bool:
        """Returns True when the counts taken were appended (or there were none); else they are kept."""
        counts = self.metrics.take_shadow()
        if not any(counts.values()):
            return True
        event = NewEvent(SHADOW_READS_RECORDED, counts,
                         {"actor": ACTOR, "source": f"legacy-app {socket.gethostname()}:{os.getpid()}"})
        for _ in range(ATTEMPTS):  # ANY appends at the next version; two processes may race for it
            try:
                self.store.append(stream_id(self.name), [event], ExpectedVersion.ANY)
                return True
            except ConcurrencyError:
                continue
            except SQLAlchemyError as exc:
                log.warning("shadow counts: cannot append to the migration stream: %s", exc)
                break
        self.metrics.give_back(counts)
        return False

    def close(self) -> None:
        """Stops the thread and flushes what is left."""
        self._stop.set()
        self._thread.join()
        self.flush()
