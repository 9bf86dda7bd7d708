"""Which reads and writes serve a request: fixed (the legacy table, or LEGACY_READ_MODE's provider) unless
the app is given `Routes`, asked again on every request, so a running app follows a switchover without a
restart (the migrator's live routes read the migration's state; legacy_app imports nothing from it)."""

from __future__ import annotations

from typing import Protocol

from .db import Database
from .reads import UserReads, reads_for
from .service import UserService
from .writes import UserWrites


class Routes(Protocol):
    """Returns, for one request, the reads and the writes that serve it."""

    def reads(self) -> UserReads: ...

    def writes(self) -> UserWrites: ...


class FixedRoutes:
    """The legacy app alone: reads of one mode (default: LEGACY_READ_MODE, else the table), writes to the table."""

    def __init__(self, database: Database, read_mode: str | None = None):
        self._reads = reads_for(database, read_mode)
        self._writes = UserService(database)

    def reads(self) -> UserReads:
        return self._reads

    def writes(self) -> UserWrites:
        return self._writes
