"""Pure domain: the User aggregate, its events and rules. Imports nothing but itself."""

from .errors import (
    DomainError,
    InvalidCommand,
    NothingToChange,
    UserIsDeleted,
)
from .events import EVENT_TYPES, DomainEvent, event_from_data
from .upcasters import UPCASTERS
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

__all__ = [
    "EVENT_TYPES",
    "UPCASTERS",
    "DomainError",
    "DomainEvent",
    "InvalidCommand",
    "NothingToChange",
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
