"""Publishing after commit: a wake-up hint for the projection and notification workers.

Call `publish_appended` only after the append has committed. It never raises: a lost
hint (a dead broker, a full queue) only delays the read model until the beat's
catch-up or the next hint, because the data is read from the store, not the message.
"""

from __future__ import annotations

import contextlib
import logging
import threading

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

    Servers mode sends the wake-up tasks to the `projections` and `notifications` queues;
    embedded mode (no BROKER_URL) wakes this process's background worker thread.
    """
    try:
        if settings.embedded:
            embedded_worker(settings).wake()
        else:
            send_wakeups(settings, position, connection=_connection(settings))
    except Exception as exc:  # noqa: BLE001 - a lost hint only delays the read model
        if not settings.embedded:
            _drop_connection(settings)
        log.warning("wake-up for position %s not sent (the beat will catch up): %s", position, exc)


__all__ = ["app", "publish_appended"]
