"""Embedded mode (no broker): one background thread per event-store database runs the same tasks in-process.

`wake()` is what a broker message is in servers mode; the thread coalesces wake-ups,
runs what the projection and notification tasks run (`catch_up_queue`, called directly: Celery's
eager `apply` cost a fifth of a run's CPU on PostgreSQL; retries and parking behave as in a
worker, minus the backoff delay), and also runs them every `catch_up_interval_s` without a
wake-up, like the beat.

Coalescing: a wake-up after a quiet spell runs at once; wake-ups that come sooner than
`embedded_coalesce_ms` after the last run started wait for the rest of that time and are
handled by one run. Each run costs two write transactions whatever it carries, and on the
API's own interpreter: under a steady stream of commands, one run per command took more
time than the commands themselves.
"""

from __future__ import annotations

import logging
import threading
import time

from es_app.bootstrap import build
from es_app.projections import HandlerFailed
from es_app.settings import Settings

from .app import NOTIFICATIONS_QUEUE, PROJECTIONS_QUEUE
from .tasks import catch_up_queue, shard_kwargs

log = logging.getLogger(__name__)

_WORKERS: dict[str, EmbeddedWorker] = {}
_LOCK = threading.Lock()


class EmbeddedWorker:
    """Returns a started background projector for one event-store database."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.container = build(settings)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"embedded-worker:{settings.es_database_url}",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    def run_once(self) -> None:
        """Runs every projection shard and the notifications once, up to the head."""
        for kwargs in shard_kwargs(self.settings):
            self._catch_up(PROJECTIONS_QUEUE, kwargs["shard"], kwargs["shards"])
        self._catch_up(NOTIFICATIONS_QUEUE)

    def _catch_up(self, queue: str, shard: int | None = None, shards: int | None = None) -> None:
        """Runs a queue's projections as its task does, retrying a failing handler at once (no backoff)
        until the task's last attempt parks its event."""
        attempt = 0
        while True:
            try:
                catch_up_queue(self.container, queue, shard, shards, attempt=attempt)
                return
            except HandlerFailed as exc:
                attempt += 1
                log.warning("retrying (attempt %d): %s", attempt + 1, exc)

    def wait_idle(self, timeout: float) -> bool:
        """Returns True once the thread has handled every wake-up so far (False on timeout)."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        spacing = self.settings.embedded_coalesce_ms / 1000
        started = -spacing
        while not self._stop.is_set():
            if not self._wake.wait(self.settings.catch_up_interval_s):
                self._idle.clear()
            rest = started + spacing - time.monotonic()
            if rest > 0:  # the last run began a moment ago: the wake-ups of the rest of the spell share one run
                self._stop.wait(rest)
            if self._stop.is_set():
                break
            self._wake.clear()
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:
                log.exception("embedded worker run failed")
            if not self._wake.is_set():
                self._idle.set()


def embedded_worker(settings: Settings) -> EmbeddedWorker:
    """Returns the running embedded worker for the settings' event-store database (starting it once)."""
    with _LOCK:
        worker = _WORKERS.get(settings.es_database_url)
        if worker is None or not worker._thread.is_alive():
            worker = _WORKERS[settings.es_database_url] = EmbeddedWorker(settings)
        return worker


def stop_embedded(timeout: float = 10.0) -> None:
    """Stops every embedded worker of this process (tests, application shutdown)."""
    with _LOCK:
        workers = list(_WORKERS.values())
        _WORKERS.clear()
    for worker in workers:
        worker.stop(timeout)
