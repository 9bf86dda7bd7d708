"""The SQL event store: append-only events, global feed, snapshots, unique claims, upcasting."""

from .claims import ClaimConflict
from .codec import encode_events
from .engine import make_engine, normalize_url, write_transaction
from .event_store import EventStore
from .limits import check_events
from .repository import Repository
from .snapshots import Snapshot, SnapshotStore
from .types import (
    AppendResult,
    Claim,
    ClaimTaken,
    ConcurrencyError,
    EncodedEvent,
    EventIdConflict,
    Expected,
    ExpectedVersion,
    InvalidEvent,
    NewEvent,
    RecordedEvent,
    StoreError,
    category_of,
)
from .upcasting import UpcasterRegistry

__all__ = [
    "AppendResult", "Claim", "ClaimConflict", "ClaimTaken", "ConcurrencyError", "EncodedEvent",
    "EventIdConflict", "EventStore", "Expected", "ExpectedVersion", "InvalidEvent", "NewEvent", "RecordedEvent",
    "Repository", "Snapshot", "SnapshotStore", "StoreError", "UpcasterRegistry", "category_of", "check_events",
    "encode_events", "make_engine",
    "normalize_url", "write_transaction",
]
