"""Publishing after commit: a wake-up hint for the projection and notification workers.

Call `publish_appended` only after the append has committed. It never raises: a lost
hint (a dead broker, a full queue) only delays the read model until the beat's
catch-up or the next hint, because the data is read from the store, not the message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from kombu import Connection

from es_app.settings import Settings

from .app import app, transport_options
from .embedded import embedded_worker
from .tasks import send_wakeups

log = logging.getLogger(__name__)


_local = threading.local()


def _connection(settings: Settings) -> Connection:
    """Returns this thread's publishing connection: one attempt to connect, no retry loop."""
    key = (settings.broker_url, settings.broker_key_prefix)
    cache: dict = _local.__dict__.setdefault("connections", {})
    if key not in cache:
        options = {**transport_options(settings), "max_retries": 0, "socket_timeout": 2}
        cache[key] = Connection(settings.broker_url, transport_options=options, connect_timeout=2)
    return cache[key]


def _drop_connection(settings: Settings) -> None:
    conn = _local.__dict__.get("connections", {}).pop((settings.broker_url, settings.broker_key_prefix), None)
    if conn is not None:
        with contextlib.suppress(Exception):  # it is broken anyway
            conn.release()


def close_publishers() -> None:
    """Closes this thread's publishing connections (tests, shutdown)."""
    for settings_key in list(_local.__dict__.get("connections", {})):
        conn = _local.connections.pop(settings_key)
        with contextlib.suppress(Exception):  # closing anyway: a broken connection is dropped
            conn.release()


def publish_appended(settings: Settings, position: int) -> None:
    """Wakes the workers after events up to `position` were committed; logs (never raises) on failure.

    Servers mode hands the hint to this process's sender of that broker (`_Hints`), which sends the
    wake-up tasks to the `projections` and `notifications` queues; embedded mode (no BROKER_URL)
    wakes this process's background worker thread.
    """
    if not settings.embedded:
        _hints(settings).offer(position)
        return
    try:
        embedded_worker(settings).wake()
    except Exception as exc:  # noqa: BLE001 - a lost hint only delays the read model
        log.warning("wake-up for position %s not sent (the beat will catch up): %s", position, exc)


def _send(settings: Settings, position: int) -> None:
    try:
        send_wakeups(settings, position, connection=_connection(settings))
    except Exception as exc:  # noqa: BLE001 - a lost hint only delays the read model
        _drop_connection(settings)
        log.warning("wake-up for position %s not sent (the beat will catch up): %s", position, exc)


class _Hints:
    """Sends one broker's wake-up hints from a thread of its own, coalesced: the first hint after a
    quiet spell goes at once, those offered while it is sent or in the `HINT_COALESCE_MS` after it go
    as one, with the highest position. So a busy API sends at most one set of wake-up tasks per
    spell, the workers run one batch for many commands, and no caller waits on the broker (a dead
    one costs the sender its connect timeout, not the command)."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._spacing_s = settings.hint_coalesce_ms / 1000
        self._ready = threading.Condition()
        self._pending: int | None = None
        threading.Thread(target=self._run, name="wake-up hints", daemon=True).start()

    def offer(self, position: int) -> None:
        with self._ready:
            self._pending = position if self._pending is None else max(self._pending, position)
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while self._pending is None:
                    self._ready.wait()
                position, self._pending = self._pending, None
            _send(self._settings, position)
            time.sleep(self._spacing_s)


_HINTS: dict[tuple[str, str, int, float], _Hints] = {}
_HINTS_LOCK = threading.Lock()


def _hints(settings: Settings) -> _Hints:
    """Returns this process's hint sender for the settings' broker and shards (started on first use)."""
    key = (settings.broker_url, settings.broker_key_prefix, settings.projection_shards, settings.hint_coalesce_ms)
    found = _HINTS.get(key)
    if found is None:
        with _HINTS_LOCK:
            found = _HINTS.get(key) or _HINTS.setdefault(key, _Hints(settings))
    return found


def _after_fork() -> None:
    """A forked child (a Celery prefork worker publishing after the relay) has none of its parent's threads."""
    global _HINTS_LOCK
    _HINTS_LOCK = threading.Lock()
    _HINTS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


__all__ = ["app", "publish_appended"]
