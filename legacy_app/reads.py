"""The one read seam of the legacy app: every read of users goes through `UserReads`.

The switchover routes reads later (legacy / shadow / new). Only "legacy" is built in;
another mode works only once something registers it with `register_read_mode`
(legacy_app imports nothing from the migrator), otherwise selecting it is an error.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from sqlalchemy import func, or_, select

from .db import Database, unicode_lower
from .models import User

READ_MODE_ENV = "LEGACY_READ_MODE"
MAX_PAGE = 500


class ReadMode(str, enum.Enum):
    LEGACY = "legacy"  # read the legacy table
    SHADOW = "shadow"  # read legacy, compare with the new read model (switchover issue)
    NEW = "new"  # read the new read model (switchover issue)


class ReadModeError(RuntimeError):
    """An unknown read mode, or one nothing provides yet."""


@dataclasses.dataclass(frozen=True)
class UserRecord:
    id: int
    email: str
    full_name: str
    is_active: bool
    phone: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, user: User) -> UserRecord:
        """Returns the record of an ORM user."""
        return cls(user.id, user.email, user.full_name, user.is_active, user.phone,
                   user.created_at, user.updated_at)


@dataclasses.dataclass(frozen=True)
class Page:
    items: list[UserRecord]
    total: int
    limit: int
    offset: int


class UserReads(Protocol):
    mode: ReadMode

    def get(self, user_id: int) -> UserRecord | None: ...

    def search(self, query: str | None = None, *, limit: int = 50, offset: int = 0) -> Page: ...


class LegacyTableReads:
    """Reads users from the legacy table."""

    mode = ReadMode.LEGACY

    def __init__(self, database: Database):
        self._sessions = database.read_session

    def get(self, user_id: int) -> UserRecord | None:
        """Returns the user, or None when there is no such row."""
        with self._sessions() as session:
            user = session.get(User, user_id)
            return UserRecord.of(user) if user is not None else None

    def search(self, query: str | None = None, *, limit: int = 50, offset: int = 0) -> Page:
        """Returns one page, ordered by id, of users whose name or email contains `query` (any case)."""
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise ValueError(f"limit must be 1..{MAX_PAGE} and offset >= 0")
        where = []
        if query:
            needle = query.lower()
            where.append(or_(unicode_lower(User.full_name).contains(needle, autoescape=True),
                             unicode_lower(User.email).contains(needle, autoescape=True)))
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(User).where(*where))
            rows = session.scalars(select(User).where(*where).order_by(User.id).limit(limit).offset(offset))
            return Page([UserRecord.of(u) for u in rows], total or 0, limit, offset)


_PROVIDERS: dict[ReadMode, Callable[[Database], UserReads]] = {ReadMode.LEGACY: LegacyTableReads}


def register_read_mode(mode: ReadMode, factory: Callable[[Database], UserReads]) -> None:
    """Makes `mode` selectable: `factory(database)` returns its UserReads (used by the switchover)."""
    _PROVIDERS[ReadMode(mode)] = factory


def parse_mode(value: str | ReadMode | None) -> ReadMode:
    """Returns the mode named by `value` (default: LEGACY_READ_MODE, else legacy)."""
    raw = value if value is not None else (os.environ.get(READ_MODE_ENV) or ReadMode.LEGACY.value)
    try:
        return ReadMode(raw)
    except ValueError:
        choices = ", ".join(m.value for m in ReadMode)
        raise ReadModeError(f"unknown read mode {raw!r}: choose one of {choices}") from None


def available_mode(mode: str | ReadMode | None = None) -> ReadMode:
    """Returns the selected mode; raises ReadModeError when it is unknown or nothing provides it."""
    selected = parse_mode(mode)
    if selected not in _PROVIDERS:
        raise ReadModeError(f"read mode {selected.value!r} is not available yet: only 'legacy' is "
                            f"implemented until the read switchover provides it")
    return selected


def reads_for(database: Database, mode: str | ReadMode | None = None) -> UserReads:
    """Returns the reads of the selected mode; raises ReadModeError when that mode is not available."""
    return _PROVIDERS[available_mode(mode)](database)
