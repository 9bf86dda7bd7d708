"""The User's events. Timestamps travel as ISO-8601 strings so events stay plain JSON."""

from __future__ import annotations

import dataclasses
from typing import Any

from .events import DomainEvent


@dataclasses.dataclass(frozen=True)
class UserRegistered(DomainEvent):
    # v1 stored the name under "full_name" (the legacy column name); see upcasters.py
    schema_version = 2
    name: str
    email: str
    phone: str | None = None
    # the legacy key of a user registered through the legacy app after the write switchover (None otherwise,
    # and then left out of the data, so registrations through the es API are as they always were)
    legacy_key: Any = None

    def to_data(self) -> dict[str, Any]:
        data = super().to_data()
        if data["legacy_key"] is None:
            del data["legacy_key"]
        return data


@dataclasses.dataclass(frozen=True)
class UserNameChanged(DomainEvent):
    name: str


@dataclasses.dataclass(frozen=True)
class UserEmailChanged(DomainEvent):
    email: str


@dataclasses.dataclass(frozen=True)
class UserPhoneChanged(DomainEvent):
    phone: str | None


@dataclasses.dataclass(frozen=True)
class UserDeactivated(DomainEvent):
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class UserReactivated(DomainEvent):
    pass


@dataclasses.dataclass(frozen=True)
class UserDeleted(DomainEvent):
    pass


@dataclasses.dataclass(frozen=True)
class UserCorrected(DomainEvent):
    """Fixes a field's value without rewriting history; `reason` says why."""

    field: str
    value: Any
    reason: str


@dataclasses.dataclass(frozen=True)
class UserImported(DomainEvent):
    """A whole state taken from a legacy row by the migrator."""

    name: str
    email: str
    active: bool
    phone: str | None
    legacy_key: Any
    created_at: str | None = None
    updated_at: str | None = None
    row: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class UserLegacyColumnChanged(DomainEvent):
    """A legacy column with no field of its own in the aggregate changed."""

    column: str
    value: Any
