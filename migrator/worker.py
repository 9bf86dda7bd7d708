"""The deployable worker: es_app's Celery app with the migrator's tasks registered.

    celery -A migrator.worker worker -Q projections,notifications,relay -B

(`-B` embeds the beat, which also runs the relay every RELAY_INTERVAL_S seconds.)
"""

from es_app.worker import app

from . import tasks  # noqa: F401 - registers migrator.relay and its beat entry

__all__ = ["app"]
