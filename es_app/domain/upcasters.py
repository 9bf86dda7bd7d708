"""Turn stored old shapes of events into the current one: (type, from_version) -> function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _registered_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["name"] = data.pop("full_name")
    return data


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("UserRegistered", 1): _registered_v1_to_v2,
}
