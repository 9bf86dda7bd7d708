"""The classic CRUD service: load the row, mutate it in place, save (the talk's slide 3).

Nothing here records *why* a row changed or what it was before — that is the point
of the "before" system. The app maintains `created_at` / `updated_at` itself.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from .db import Database
from .models import User
from .reads import UserRecord
from .writes import WriteRefused

EDITABLE = ("email", "full_name", "is_active", "phone")


class UserNotFound(LookupError):
    """No user row has that id."""


class EmailTaken(ValueError):
    """Another user row already has that email."""


def utcnow() -> datetime:
    """Returns the current time, aware, in UTC."""
    return datetime.now(UTC)


DEADLOCK_ATTEMPTS = 3
MYSQL_DEADLOCK = 1213  # ER_LOCK_DEADLOCK: row locks, and metadata locks (a trigger created while a row is saved)
POSTGRES_DEADLOCK = "40P01"

_Method = TypeVar("_Method", bound=Callable[..., Any])


def deadlock_victim(exc: DBAPIError) -> bool:
    """Returns True when the database chose this transaction as a deadlock's victim: it is rolled back, and the
    whole unit of work may simply run again (MySQL/MariaDB error 1213, PostgreSQL SQLSTATE 40P01)."""
    orig = exc.orig
    args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
    return getattr(orig, "sqlstate", None) == POSTGRES_DEADLOCK or (len(args) == 2 and args[0] == MYSQL_DEADLOCK)


def _again_after_deadlock(method: _Method) -> _Method:
    """Runs the unit of work again (up to DEADLOCK_ATTEMPTS in all) when its transaction was a deadlock's victim.

    On MySQL a load-then-save transaction holds a shared metadata lock on the table and upgrades it
    at the save: DDL waiting for the table in between (`migrator capture install` creating its
    triggers) makes it the victim of a metadata-lock deadlock. Nothing of it was written, so
    running it again is what the database asks for ("try restarting transaction").
    """
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return method(*args, **kwargs)
            except DBAPIError as exc:
                if attempt == DEADLOCK_ATTEMPTS or not deadlock_victim(exc):
                    raise
                time.sleep(0.02 * attempt)
        raise AssertionError("unreachable")

    return cast(_Method, run)


class UserService:
    """Creates, edits and deletes legacy user rows, one short transaction each (run again when it was a deadlock's
    victim)."""

    def __init__(self, database: Database, clock: Callable[[], datetime] = utcnow):
        self._sessions = database.write_session
        self._clock = clock

    @_again_after_deadlock
    def create(self, *, email: str, full_name: str, is_active: bool = True, phone: str | None = None) -> UserRecord:
        """Returns the new user; raises EmailTaken."""
        now = self._clock()
        with self._sessions() as session:
            user = User(email=email, full_name=full_name, is_active=is_active, phone=phone,
                        created_at=now, updated_at=now)
            session.add(user)
            self._commit(session, email)
            return UserRecord.of(user)

    @_again_after_deadlock
    def change_name(self, user_id: int, full_name: str) -> UserRecord:
        """Returns the renamed user — slide 3, verbatim: load, mutate, save."""
        with self._sessions() as session:
            user = session.get(User, user_id)
            if user is None:
                raise UserNotFound(user_id)
            user.full_name = full_name
            user.updated_at = self._clock()
            self._commit(session, None, user_id)
            return UserRecord.of(user)

    @_again_after_deadlock
    def update(self, user_id: int, changes: dict[str, Any]) -> UserRecord:
        """Returns the user after setting the given fields; raises UserNotFound or EmailTaken.

        `updated_at` moves only when a value really changes; an unchanged save writes nothing.
        """
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
        with self._sessions() as session:
            user = session.get(User, user_id)
            if user is None:
                raise UserNotFound(user_id)
            changed = False
            for field, value in changes.items():
                if getattr(user, field) != value:
                    setattr(user, field, value)
                    changed = True
            if changed:
                user.updated_at = self._clock()
                self._commit(session, changes.get("email"), user_id)
            return UserRecord.of(user)

    @_again_after_deadlock
    def delete(self, user_id: int) -> None:
        """Deletes the row; raises UserNotFound."""
        with self._sessions() as session:
            user = session.get(User, user_id)
            if user is None:
                raise UserNotFound(user_id)
            session.delete(user)
            self._commit(session, None, user_id)

    @staticmethod
    def _commit(session, email: str | None, user_id: int | None = None) -> None:
        try:
            session.commit()
        except StaleDataError:  # another request deleted the row between our load and our save
            session.rollback()
            raise UserNotFound(user_id) from None
        except IntegrityError as exc:
            session.rollback()
            if email is not None and "email" in str(exc.orig).lower():
                raise EmailTaken(email) from None
            raise
        except DataError as exc:  # MySQL (strict): a value the column cannot hold, e.g. emoji in utf8mb3
            session.rollback()
            raise WriteRefused(f"the legacy database cannot store this value: {_reason(exc)}") from None


def _reason(exc: DataError) -> str:
    """Returns the database's own one-line reason (MySQL: `Incorrect string value: ... for column ...`)."""
    orig = exc.orig
    args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
    message = args[-1] if len(args) == 2 else None  # PyMySQL: (code, text)
    text = message if isinstance(message, str) else str(orig or exc)
    return (text.strip().splitlines() or ["refused"])[0]
