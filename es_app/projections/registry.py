"""The registered projections, by name: the users read model and the notifications outbox."""

from __future__ import annotations

from .base import Projection
from .notifications import NotificationsProjection
from .users import UsersProjection

REGISTRY: dict[str, Projection] = {}


def register_projection(projection: Projection) -> Projection:
    """Returns the projection after adding it to the registry (replacing one of the same name)."""
    REGISTRY[projection.name] = projection
    return projection


def get_projection(name: str) -> Projection:
    """Returns the registered projection called `name`; raises KeyError with the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown projection {name!r} (known: {', '.join(sorted(REGISTRY))})") from None


def select_projections(names: list[str] | tuple[str, ...] | None = None) -> list[Projection]:
    """Returns the named projections (all registered ones when `names` is None), in registry order."""
    if names is None:
        return list(REGISTRY.values())
    return [get_projection(n) for n in names]


def names_for_queue(queue: str) -> list[str]:
    """Returns the names of the registered projections run by workers of `queue`."""
    return [name for name, p in REGISTRY.items() if p.queue == queue]


register_projection(UsersProjection())
register_projection(NotificationsProjection())
