"""The User aggregate: decides on commands, records events, folds events into state."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any, ClassVar

from .errors import InvalidCommand, NothingToChange, UserIsDeleted
from .events import DomainEvent
from .input_rules import text_problem
from .user_events import (
    UserCorrected,
    UserDeactivated,
    UserDeleted,
    UserEmailChanged,
    UserImported,
    UserLegacyColumnChanged,
    UserNameChanged,
    UserPhoneChanged,
    UserReactivated,
    UserRegistered,
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CORRECTABLE = ("name", "email", "phone", "active")


def _refuse_unsafe(field: str, value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise InvalidCommand(f"{field} {problem}")
    return value


def normalize_email(email: str) -> str:
    value = _refuse_unsafe("email", (email or "").strip().lower())
    if len(value) > 254 or not _EMAIL.match(value):
        raise InvalidCommand(f"invalid email: {email!r}")
    return value


def normalize_name(name: str) -> str:
    value = _refuse_unsafe("name", (name or "").strip())
    if not value:
        raise InvalidCommand("name must not be empty")
    if len(value) > 200:
        raise InvalidCommand("name must be at most 200 characters")
    return value


def normalize_phone(phone: str | None) -> str | None:
    if phone is None:
        return None
    value = _refuse_unsafe("phone", phone.strip())
    if len(value) > 40:
        raise InvalidCommand("phone must be at most 40 characters")
    return value or None


@dataclasses.dataclass
class UserState:
    """Returns what a user is at some version; `version` 0 means no events yet."""

    id: str
    name: str = ""
    email: str = ""
    phone: str | None = None
    active: bool = False
    deleted: bool = False
    version: int = 0
    created_at: str | None = None
    updated_at: str | None = None
    legacy_key: Any = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.version > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserState:
        return cls(**data)


class User:
    """Load with `User.replay(...)` or create with `User.register(...)`; commands append to `pending`."""

    category: ClassVar[str] = "user"
    snapshot_schema_version: ClassVar[int] = 1

    def __init__(self, state: UserState):
        self.state = state
        self.pending: list[DomainEvent] = []

    # -- loading -----------------------------------------------------------
    @classmethod
    def replay(cls, stream_id: str, events: Iterable[tuple[DomainEvent, dict[str, Any]]],
               state: UserState | None = None) -> User:
        """Returns the aggregate after applying (event, metadata) pairs to `state` (or a blank one)."""
        user = cls(state or UserState(id=stream_id))
        for event, metadata in events:
            user._apply(event, metadata.get("occurred_at"))
        return user

    @property
    def version(self) -> int:
        return self.state.version

    # -- commands ----------------------------------------------------------
    @classmethod
    def register(cls, stream_id: str, name: str, email: str, phone: str | None = None, *,
                 legacy_key: Any = None) -> User:
        user = cls(UserState(id=stream_id))
        user._record(UserRegistered(name=normalize_name(name), email=normalize_email(email),
                                    phone=normalize_phone(phone), legacy_key=legacy_key))
        return user

    def change_name(self, name: str) -> None:
        self._require_live()
        name = normalize_name(name)
        if name == self.state.name:
            raise NothingToChange("name is unchanged")
        self._record(UserNameChanged(name=name))

    def change_email(self, email: str) -> None:
        self._require_live()
        email = normalize_email(email)
        if email == self.state.email:
            raise NothingToChange("email is unchanged")
        self._record(UserEmailChanged(email=email))

    def change_phone(self, phone: str | None) -> None:
        self._require_live()
        phone = normalize_phone(phone)
        if phone == self.state.phone:
            raise NothingToChange("phone is unchanged")
        self._record(UserPhoneChanged(phone=phone))

    def deactivate(self, reason: str | None = None) -> None:
        self._require_live()
        if not self.state.active:
            raise NothingToChange("user is already inactive")
        self._record(UserDeactivated(reason=reason))

    def reactivate(self) -> None:
        self._require_live()
        if self.state.active:
            raise NothingToChange("user is already active")
        self._record(UserReactivated())

    def delete(self) -> None:
        self._require_live()
        self._record(UserDeleted())

    def correct(self, field: str, value: Any, reason: str) -> None:
        self._require_live()
        if field not in CORRECTABLE:
            raise InvalidCommand(f"field must be one of {', '.join(CORRECTABLE)}")
        if not (reason or "").strip():
            raise InvalidCommand("a correction needs a reason")
        value = _normalize_field(field, value)
        if getattr(self.state, field) == value:
            raise NothingToChange(f"{field} already has that value")
        self._record(UserCorrected(field=field, value=value, reason=reason.strip()))

    # -- internals ---------------------------------------------------------
    def _require_live(self) -> None:
        if not self.state.exists:
            raise InvalidCommand("user does not exist")
        if self.state.deleted:
            raise UserIsDeleted("user is deleted")

    def _record(self, event: DomainEvent) -> None:
        self._apply(event, None)
        self.pending.append(event)

    def _apply(self, event: DomainEvent, occurred_at: str | None) -> None:
        s = self.state
        match event:
            case UserRegistered(name=name, email=email, phone=phone):
                s.name, s.email, s.phone, s.active = name, email, phone, True
                s.legacy_key = event.legacy_key
                s.created_at = occurred_at
            case UserImported():
                s.name, s.email, s.phone, s.active = event.name, event.email, event.phone, event.active
                s.legacy_key, s.created_at = event.legacy_key, event.created_at
                s.deleted = False
            case UserNameChanged(name=name):
                s.name = name
            case UserEmailChanged(email=email):
                s.email = email
            case UserPhoneChanged(phone=phone):
                s.phone = phone
            case UserDeactivated():
                s.active = False
            case UserReactivated():
                s.active = True
            case UserDeleted():
                s.deleted = True
            case UserCorrected(field=field, value=value):
                setattr(s, field, value)
            case UserLegacyColumnChanged(column=column, value=value):
                s.extra[column] = value
            case _:
                raise TypeError(f"User cannot apply {type(event).__name__}")
        s.version += 1
        if isinstance(event, UserImported) and event.updated_at:
            s.updated_at = event.updated_at
        elif occurred_at is not None:
            s.updated_at = occurred_at


def _normalize_field(field: str, value: Any) -> Any:
    if field in ("name", "email") and not isinstance(value, str):
        raise InvalidCommand(f"{field} must be a string")
    if field == "phone" and not (value is None or isinstance(value, str)):
        raise InvalidCommand("phone must be a string or null")
    if field == "name":
        return normalize_name(value)
    if field == "email":
        return normalize_email(value)
    if field == "phone":
        return normalize_phone(value)
    if not isinstance(value, bool):
        raise InvalidCommand("active must be true or false")
    return value
