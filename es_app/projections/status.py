"""Where each projection (and each shard of it) stands: position, lag behind the head, rate, parked events."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import select

from .dead_letters import parked_count
from .registry import REGISTRY
from .tables import projection_checkpoints as cp


@dataclasses.dataclass(frozen=True)
class ProjectionStatus:
    """Returns one checkpoint's progress; `rate` is events/s of its last batch (None if unknown)."""

    name: str  # checkpoint name: the projection, or `projection:shard/shards`
    projection: str
    position: int
    head: int
    lag: int
    rate: float | None
    parked: int
    updated_at: datetime | None

    @property
    def eta_seconds(self) -> float | None:
        return self.lag / self.rate if self.rate else None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "eta_seconds": self.eta_seconds}


def projection_status(container: Any) -> list[ProjectionStatus]:
    """Returns the status of every checkpoint of the registered projections (position 0 if never run)."""
    head = container.store.head_position()
    with container.engine.connect() as conn:
        rows = conn.execute(select(cp).order_by(cp.c.name)).all()
        parked = parked_count(conn)
    out = []
    for name in REGISTRY:
        mine = [r for r in rows if r.name == name or r.name.startswith(f"{name}:")]
        if not mine:
            out.append(ProjectionStatus(name, name, 0, head, head, None, parked.get(name, 0), None))
        for r in mine:
            out.append(ProjectionStatus(r.name, name, r.position, head, max(head - r.position, 0), r.rate,
                                        parked.get(name, 0), r.updated_at))
    return out
