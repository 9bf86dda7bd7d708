"""The deployable worker: es_app's Celery app with the migrator's tasks registered.

    celery -A migrator.worker worker -Q projections,notifications,relay -B

(`-B` embeds the beat, which also runs the relay every RELAY_INTERVAL_S seconds.)
"""

from es_app.worker import app

from .relay import tasks  # noqa: F401 - registers the migrator.relay task and its beat entry

__all__ = ["app"]
