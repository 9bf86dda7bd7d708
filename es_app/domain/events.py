"""Base class and registry of domain events (past tense, immutable, plain data)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

EVENT_TYPES: dict[str, type[DomainEvent]] = {}


@dataclasses.dataclass(frozen=True)
class DomainEvent:
    schema_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        EVENT_TYPES[cls.__name__] = cls

    @property
    def type_name(self) -> str:
        return type(self).__name__

    def to_data(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def event_from_data(type_name: str, data: dict[str, Any]) -> DomainEvent:
    """Returns the domain event of that type built from its (current-schema) data."""
    cls = EVENT_TYPES[type_name]
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    if data.keys() <= names:
        return cls(**data)
    return cls(**{k: v for k, v in data.items() if k in names})
