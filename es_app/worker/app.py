"""The one Celery app. Its configuration is read from settings lazily, when first needed.

`BROKER_URL` empty = embedded mode: the app gets the in-memory transport and the task
code runs in-process (see embedded.py). `BROKER_KEY_PREFIX` prefixes every Redis key
the broker uses, so several deployments (or test runs) can share one Redis.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from es_app.settings import Settings, get_settings

PROJECTIONS_QUEUE = "projections"
NOTIFICATIONS_QUEUE = "notifications"


def transport_options(settings: Settings) -> dict[str, Any]:
    """Returns the broker transport options for these settings (key prefix, short connect timeout)."""
    options: dict[str, Any] = {"socket_connect_timeout": 2}
    if settings.broker_key_prefix:
        options["global_keyprefix"] = settings.broker_key_prefix
    return options


def celery_config(settings: Settings) -> dict[str, Any]:
    """Returns the Celery configuration for these settings."""
    return {
        "broker_url": settings.broker_url or "memory://",
        "broker_transport_options": transport_options(settings),
        "broker_connection_timeout": 2,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": PROJECTIONS_QUEUE,
        "task_routes": {
            "es_app.worker.project": {"queue": PROJECTIONS_QUEUE},
            "es_app.worker.catch_up": {"queue": PROJECTIONS_QUEUE},
            "es_app.worker.notify": {"queue": NOTIFICATIONS_QUEUE},
        },
        "beat_schedule": {
            "es-catch-up": {"task": "es_app.worker.catch_up", "schedule": settings.catch_up_interval_s},
        },
        "timezone": "UTC",
    }


app = Celery("es_app", set_as_current=False)
app.add_defaults(lambda: celery_config(get_settings()))
