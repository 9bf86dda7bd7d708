"""Embedded mode (no broker): one background thread per event-store database runs the same tasks in-process.

`wake()` is what a broker message is in servers mode; the thread coalesces wake-ups,
runs the projection and notification tasks eagerly (Celery's `apply`, so retries and
parking behave as in a worker, minus the backoff delay), and also runs them every
`catch_up_interval_s` without a wake-up, like the beat.

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
from es_app.settings import Settings

from .tasks import notify, project, shard_kwargs, use_container

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
        use_container(self.container)
        url = self.settings.es_database_url
        for kwargs in shard_kwargs(self.settings):
            project.apply(kwargs={**kwargs, "es_url": url})
        notify.apply(kwargs={"es_url": url})

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
