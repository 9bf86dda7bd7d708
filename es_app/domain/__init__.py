"""Pure domain: the User aggregate, its events and rules. Imports nothing but itself."""

from .errors import (
    DomainError,
    InvalidCommand,
    NothingToChange,
    UserIsDeleted,
)
from .events import EVENT_TYPES, DomainEvent, event_from_data
from .user import User, UserState
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
from .upcasters import UPCASTERS

__all__ = [
    "DomainError",
    "DomainEvent",
    "EVENT_TYPES",
    "InvalidCommand",
    "NothingToChange",
    "UPCASTERS",
    "User",
    "UserCorrected",
    "UserDeactivated",
    "UserDeleted",
    "UserEmailChanged",
    "UserImported",
    "UserIsDeleted",
    "UserLegacyColumnChanged",
    "UserNameChanged",
    "UserPhoneChanged",
    "UserReactivated",
    "UserRegistered",
    "UserState",
    "event_from_data",
]
