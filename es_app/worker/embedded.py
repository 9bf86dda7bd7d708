"""Embedded mode (no broker): one background thread per event-store database runs the same tasks in-process.

`wake()` is what a broker message is in servers mode; the thread coalesces wake-ups,
runs what the projection and notification tasks run (`catch_up_queue`, called directly: Celery's
eager `apply` cost a fifth of a run's CPU on PostgreSQL; retries and parking behave as in a
worker, minus the backoff delay), and also runs them every `catch_up_interval_s` without a
wake-up, like the beat. Unsharded, a run first applies a small batch of every projection in
one write transaction (`run_first_batches`): after a few commands that is the whole run; the
queues with more to do, or a failing handler, then go on as their tasks would.

Coalescing: a wake-up after a quiet spell runs at once; wake-ups that come sooner than
`embedded_coalesce_ms` after the last run started wait for the rest of that time and are
handled by one run. Each run costs at least a write transaction whatever it carries, and on the
API's own interpreter: under a steady stream of commands, one run per command took more
time than the commands themselves.
"""

from __future__ import annotations

import logging
import threading
import time

from es_app.bootstrap import build
from es_app.projections import HandlerFailed, run_first_batches
from es_app.projections.registry import get_projection, names_for_queue
from es_app.settings import Settings
from es_app.store.engine import checkpoint_wal

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
        if self.settings.projection_shards > 1:
            left = [(PROJECTIONS_QUEUE, kw["shard"], kw["shards"], 0) for kw in shard_kwargs(self.settings)]
            left.append((NOTIFICATIONS_QUEUE, None, None, 0))
        else:
            left = self._first_batches()
        for queue, shard, shards, attempt in left:
            self._catch_up(queue, shard, shards, attempt)

    def _first_batches(self) -> list[tuple[str, None, None, int]]:
        """Applies a small first batch of every projection in one write transaction (after a few
        commands, the whole run); returns the queues left to catch up, with the attempt each is at."""
        queues = {queue: names_for_queue(queue) for queue in (PROJECTIONS_QUEUE, NOTIFICATIONS_QUEUE)}
        projections = [get_projection(name) for names in queues.values() for name in names]
        container = self.container
        results = dict(zip((p.name for p in projections),
                           run_first_batches(container.engine, container.store, projections,
                                             park_failures=self.settings.projection_max_retries <= 0),
                           strict=True))
        checkpoint_wal(container.engine)
        left = []
        for queue, names in queues.items():
            failures = [results[name].failure for name in names if results[name].failure is not None]
            for failure in failures:
                log.warning("retrying (attempt 2): %s", failure)
            failed = bool(failures)
            if failed or not all(results[name].at_head for name in names):
                left.append((queue, None, None, 1 if failed else 0))
        return left

    def _catch_up(self, queue: str, shard: int | None = None, shards: int | None = None, attempt: int = 0) -> None:
        """Runs a queue's projections as its task does, retrying a failing handler at once (no backoff)
        until the task's last attempt parks its event."""
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
