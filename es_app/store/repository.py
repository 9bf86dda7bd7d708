"""Load and save event-sourced aggregates: latest valid snapshot + tail, time travel, snapshots every N."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from es_app.domain.events import DomainEvent, event_from_data

from .event_store import EventStore
from .snapshots import Snapshot, SnapshotStore
from .types import AppendResult, Claim, Expected, NewEvent, RecordedEvent


class Aggregate(Protocol):
    category: ClassVar[str]
    snapshot_schema_version: ClassVar[int]
    state: Any
    pending: list[DomainEvent]

    @classmethod
    def replay(cls, stream_id: str, events: Iterable[tuple[DomainEvent, dict[str, Any]]],
               state: Any = None) -> Self: ...


A = TypeVar("A", bound=Aggregate)


def _parse_time(value: str | datetime) -> datetime:
    """Returns an aware datetime; a naive one is taken as UTC (as the API and the store's clock do)."""
    t = datetime.fromisoformat(value) if isinstance(value, str) else value
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _pairs(recorded: Iterable[RecordedEvent]) -> Iterable[tuple[DomainEvent, dict[str, Any]]]:
    return ((event_from_data(r.type, r.data), r.metadata) for r in recorded)


class Repository(Generic[A]):
    """Returns aggregates of one class from the store; saves their pending events."""

    def __init__(self, store: EventStore, snapshots: SnapshotStore, aggregate: type[A],
                 state_type: type[Any], snapshot_every: int = 100):
        self.store, self.snapshots = store, snapshots
        self.aggregate, self.state_type = aggregate, state_type
        self.snapshot_every = snapshot_every

    def load(self, stream_id: str, *, version: int | None = None) -> A:
        """Returns the aggregate at its latest version, or as of `version`; version 0 = no events."""
        snap, tail = self.store.read_from_snapshot(stream_id, self.aggregate.snapshot_schema_version, version)
        state = self.state_type.from_dict(snap.state) if snap is not None else None  # freshly decoded: ours
        return self.aggregate.replay(stream_id, _pairs(tail), state)

    def load_as_of(self, stream_id: str, at: str | datetime) -> A:
        """Returns the aggregate as it was at time `at` (by each event's occurred_at)."""
        cutoff = _parse_time(at)
        kept = []
        for r in self.store.read_stream(stream_id):
            if _parse_time(r.metadata["occurred_at"]) > cutoff:
                break
            kept.append(r)
        return self.aggregate.replay(stream_id, _pairs(kept))

    def save(self, agg: A, *, expected_version: Expected | None = None,
             metadata: dict[str, Any] | None = None, claims: Iterable[Claim] = (),
             releases: Iterable[Claim] = (), event_ids: list[str] | None = None) -> AppendResult:
        """Appends the aggregate's pending events; expected version defaults to the loaded one."""
        if not agg.pending:
            raise ValueError("nothing to save")
        before = agg.state.version - len(agg.pending)
        meta = dict(metadata or {})
        new = [NewEvent(type=e.type_name, data=e.to_data(), metadata=meta,
                        schema_version=e.schema_version,
                        **({"event_id": event_ids[i]} if event_ids else {}))
               for i, e in enumerate(agg.pending)]
        result = self.store.append(agg.state.id, new, before if expected_version is None else expected_version,
                                   claims=claims, releases=releases)
        agg.pending = []
        if result.written and result.version // self.snapshot_every > before // self.snapshot_every:
            self.snapshot(agg.state.id)
        return result

    def snapshot(self, stream_id: str) -> Snapshot:
        """Takes a snapshot of the stream's current state (replayed, so timestamps are exact)."""
        agg = self.load(stream_id)
        snap = Snapshot(stream_id, agg.state.version, self.aggregate.snapshot_schema_version,
                        agg.state.to_dict())
        self.snapshots.save(snap)
        return snap
