"""Command handling for users: load, let the aggregate decide, save with the email claim."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from es_app.domain import User
from es_app.store import AppendResult, Claim, Expected, Repository

EMAIL_SCOPE = "user-email"


def new_user_id() -> str:
    return f"user-{uuid.uuid4()}"


class UserNotFound(LookupError):
    pass


class UserService:
    """Returns append results; raises DomainError, UserNotFound, ConcurrencyError or ClaimTaken."""

    def __init__(self, repository: Repository[User]):
        self.repository = repository

    def register(self, name: str, email: str, phone: str | None = None, *,
                 user_id: str | None = None, legacy_key: Any = None, metadata: dict[str, Any] | None = None,
                 event_ids: list[str] | None = None) -> AppendResult:
        user = User.register(user_id or new_user_id(), name, email, phone, legacy_key=legacy_key)
        return self.repository.save(user, metadata=metadata, event_ids=event_ids,
                                    claims=[Claim(EMAIL_SCOPE, user.state.email)])

    def execute(self, user_id: str, command: Callable[[User], None], *,
                expected_version: Expected | None = None, metadata: dict[str, Any] | None = None,
                event_ids: list[str] | None = None) -> AppendResult:
        """Runs `command` on the latest state; `expected_version` guards against stale writes."""
        user: User = self.repository.load(user_id)
        if not user.state.exists:
            raise UserNotFound(user_id)
        email_before = user.state.email
        command(user)
        s = user.state
        claims, releases = [], []
        if s.deleted:
            releases.append(Claim(EMAIL_SCOPE, email_before))
        elif s.email != email_before:
            claims.append(Claim(EMAIL_SCOPE, s.email))
            releases.append(Claim(EMAIL_SCOPE, email_before))
        return self.repository.save(user, expected_version=expected_version, metadata=metadata,
                                    claims=claims, releases=releases, event_ids=event_ids)
