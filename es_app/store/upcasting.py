"""Apply registered upcasters to stored events at read time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UpcasterRegistry:
    """Holds (event type, from version) -> function; upcasts stored data to each type's latest version."""

    def __init__(self, upcasters: Mapping[tuple[str, int], Upcaster] | None = None):
        self._fns: dict[tuple[str, int], Upcaster] = dict(upcasters or {})
        self._current: dict[str, int] = {}
        for event_type, version in self._fns:
            self._current[event_type] = max(self._current.get(event_type, 1), version + 1)

    def upcast(self, event_type: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Returns (current version, data in the current shape)."""
        target = self._current.get(event_type, version)
        while version < target:
            fn = self._fns.get((event_type, version))
            if fn is None:
                raise LookupError(f"no upcaster for {event_type} v{version}")
            data = fn(data)
            version += 1
        return version, data
