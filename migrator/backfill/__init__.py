"""The backfill: legacy rows become import events in chunks, with its runs, lease and throttle."""

from .leases import (
    DEFAULT_TTL_S,
    Lease,
    LeaseHeld,
    LeaseInfo,
    LeaseLost,
    acquire_in,
    current,
    release,
    release_in,
    renew,
    renew_in,
)
from .reader import Chunk, ChunkReader, Item
from .run import (
    Backfill,
    BackfillError,
    BackfillOptions,
    ChunkResult,
    Projector,
    projection_lag,
    projector_for,
)
from .runs import (
    BackfillRun,
    backfill_runs,
    delete_run,
    load_run,
    save_run,
)
from .throttle import (
    Clock,
    PauseGate,
    RateLimiter,
    Sleep,
)

__all__ = [
    "DEFAULT_TTL_S",
    "Backfill",
    "BackfillError",
    "BackfillOptions",
    "BackfillRun",
    "Chunk",
    "ChunkReader",
    "ChunkResult",
    "Clock",
    "Item",
    "Lease",
    "LeaseHeld",
    "LeaseInfo",
    "LeaseLost",
    "PauseGate",
    "Projector",
    "RateLimiter",
    "Sleep",
    "acquire_in",
    "backfill_runs",
    "current",
    "delete_run",
    "load_run",
    "projection_lag",
    "projector_for",
    "release",
    "release_in",
    "renew",
    "renew_in",
    "save_run",
]
