"""The one write seam of the legacy app: every write of users goes through `UserWrites`.

`UserService` (the legacy table) is the built-in implementation. The write switchover gives the
app another one (the event-sourced commands) through `legacy_app.routing.Routes`; legacy_app
imports nothing from it.
"""

from __future__ import annotations

from typing import Any, Protocol

from .reads import UserRecord


class WriteRefused(ValueError):
    """The write is refused for a reason the caller can act on (answered 422 with the reason)."""


class UserWrites(Protocol):
    """Creates, edits and deletes users; raises service.EmailTaken, service.UserNotFound or WriteRefused."""

    def create(self, *, email: str, full_name: str, is_active: bool = True,
               phone: str | None = None) -> UserRecord: ...

    def update(self, user_id: int, changes: dict[str, Any]) -> UserRecord: ...

    def delete(self, user_id: int) -> None: ...
