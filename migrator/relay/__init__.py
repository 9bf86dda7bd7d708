"""The relay: changelog rows become events; the follow loop, the re-sync and the Celery task (`relay.tasks`)."""

from .follow import wait_loop
from .resync import (
    DEFAULT_CHUNK,
    SOURCE,
    Resync,
    ResyncTotals,
)
from .runner import (
    DEFAULT_BATCH_SIZE,
    Relay,
    RelayBatch,
    RelayTotals,
    backlog,
    relays_for,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHUNK",
    "SOURCE",
    "Relay",
    "RelayBatch",
    "RelayTotals",
    "Resync",
    "ResyncTotals",
    "backlog",
    "relays_for",
    "wait_loop",
]
