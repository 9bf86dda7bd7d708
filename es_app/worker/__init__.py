"""The Celery side of es_app: one app, the projection/notification tasks, the beat, and publishing.

Run a worker with `celery -A es_app.worker worker -Q projections,notifications -B`
(`-B` embeds the beat; run `celery -A es_app.worker beat` separately in production).
"""

from .app import NOTIFICATIONS_QUEUE, PROJECTIONS_QUEUE, app, celery_config
from .embedded import EmbeddedWorker, embedded_worker, stop_embedded
from .publish import close_publishers, publish_appended
from .tasks import catch_up, container_for, notify, project, send_wakeups

__all__ = [
    "NOTIFICATIONS_QUEUE",
    "PROJECTIONS_QUEUE",
    "EmbeddedWorker",
    "app",
    "catch_up",
    "celery_config",
    "close_publishers",
    "container_for",
    "embedded_worker",
    "notify",
    "project",
    "publish_appended",
    "send_wakeups",
    "stop_embedded",
]
