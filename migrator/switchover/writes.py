"""The legacy app's writes once writes are switched: every write becomes events first, through es_app's commands.

`EsWrites` implements `legacy_app.writes.UserWrites` with the command handlers the event-sourced API
uses (`es_app.api.execution.CommandRunner`: retries on races, metadata, the wake-up after commit):
create registers the user on `user-<key>` with a new legacy key (`migrator.switchover.keys`), update
runs one command with the domain's changes of the fields it sets, delete the delete command. Before it
returns, the reverse projection has written the change into the legacy table (it catches up under its
lock), so the record returned is the row the table holds, and reports and a rollback see the write at
once. `es_writes(database, es_container)` is the factory the live routes call.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, select

from es_app.api.context import Actor
from es_app.api.execution import CommandRequest, CommandRunner, Outcome, Publisher
from es_app.bootstrap import EsContainer
from es_app.domain import InvalidCommand, NothingToChange, User, UserIsDeleted
from es_app.services import UserNotFound as StreamNotFound
from es_app.store import ClaimTaken, ConcurrencyError
from es_app.worker import publish_appended
from legacy_app.db import Database
from legacy_app.models import User as UserRow
from legacy_app.reads import UserRecord
from legacy_app.service import EDITABLE, EmailTaken, UserNotFound
from legacy_app.writes import WriteRefused

from ..capture.changelog import changelog_exists
from ..mapping import USERS, CompiledMapping
from ..relay.runner import Relay
from .keys import allocate_key
from .reverse import ReverseProjection

ACTOR = "legacy-api"  # the events' actor: the legacy app's write routes
KEY_ATTEMPTS = 5  # registrations tried when a new key's stream is written by another meanwhile


class EsWrites:
    """Creates, edits and deletes users through the event-sourced commands; raises EmailTaken, UserNotFound or
    WriteRefused (the legacy app's errors) for the domain's refusals."""

    def __init__(self, database: Database, es: EsContainer, *, publish: Publisher = publish_appended,
                 mapping: CompiledMapping | None = None, actor: str = ACTOR):
        self.engine = database.engine
        self.mapping = mapping or USERS.bind(self.engine)
        self.store = es.store
        self.reverse = ReverseProjection(self.mapping, self.engine, es.store)
        self.runner = CommandRunner(es, publish)
        self.actor = actor
        # one legacy transaction around the command and its catch-up, unless both live in one database
        # (SQLite: the command's append would wait on the legacy transaction's own write lock)
        self._hold = self.engine.url.render_as_string() != es.engine.url.render_as_string()

    # -- UserWrites ------------------------------------------------------------
    def create(self, *, email: str, full_name: str, is_active: bool = True, phone: str | None = None) -> UserRecord:
        """Returns the new user as the legacy table holds it; raises EmailTaken or WriteRefused."""
        with self._held() as held:
            key = self._register(held, email, full_name, phone)
            if not is_active:
                self._change(self.mapping.stream_id(key), key, lambda user: user.deactivate(), "DeactivateUser")
            return self._settled(held, key)

    def update(self, user_id: int, changes: dict[str, Any]) -> UserRecord:
        """Returns the user after setting the given fields (nothing is written when none differs); raises
        UserNotFound, EmailTaken or WriteRefused."""
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise WriteRefused(f"not editable: {', '.join(unknown)}")

        def action(user: User) -> None:
            steps: dict[str, Callable[[Any], None]] = {
                "full_name": user.change_name, "email": user.change_email, "phone": user.change_phone,
                "is_active": lambda on: user.reactivate() if on else user.deactivate()}
            changed = 0
            for field, value in changes.items():
                try:
                    steps[field](value)
                    changed += 1
                except NothingToChange:
                    pass
            if not changed:
                raise NothingToChange("nothing to change: the user already has these values")

        with self._held() as held:
            try:
                self._change(self.mapping.stream_id(user_id), user_id, action, "ChangeUser")
            except NothingToChange:
                pass
            except ClaimTaken:
                raise EmailTaken(changes.get("email", "")) from None
            return self._settled(held, user_id)

    def delete(self, user_id: int) -> None:
        """Deletes the user (a UserDeleted event, then the row); raises UserNotFound."""
        with self._held() as held:
            self._change(self.mapping.stream_id(user_id), user_id, lambda user: user.delete(), "DeleteUser")
            self._settle(held)

    # -- the steps -------------------------------------------------------------
    def _held(self) -> AbstractContextManager[Connection | None]:
        return self.reverse.transaction() if self._hold else nullcontext()

    def _new_key(self, held: Connection | None) -> int:
        if held is not None:
            return allocate_key(held, self.mapping)
        with self.reverse.transaction() as conn:
            return allocate_key(conn, self.mapping)

    def _register(self, held: Connection | None, email: str, full_name: str, phone: str | None) -> int:
        """Returns the new user's key once its stream is registered."""
        attempt = 0
        while True:
            attempt += 1
            key = self._new_key(held)
            if self._stream_exists(key):  # a key whose row was deleted and that SQLite numbers again
                continue

            def register(req: CommandRequest, stream: str = self.mapping.stream_id(key), key: int = key) -> Outcome:
                return self.runner.register(req, full_name, email, phone, user_id=stream, legacy_key=key)
            try:
                self._run(register)
                return key
            except ConcurrencyError:  # the same, written meanwhile
                if attempt == KEY_ATTEMPTS:
                    raise
            except ClaimTaken:
                raise EmailTaken(email) from None

    def _change(self, stream: str, key: int, action: Callable[[User], None], command: str) -> None:
        try:
            self._run(lambda req: self.runner.execute(req, stream, command, action))
        except UserIsDeleted:
            raise UserNotFound(key) from None
        except StreamNotFound:
            if self._has_row(key):
                raise WriteRefused(f"user {key} has no stream in the event store (not imported yet, or parked): "
                                   "it cannot be changed while writes are switched") from None
            raise UserNotFound(key) from None

    def _run(self, command: Callable[[CommandRequest], Outcome]) -> Outcome:
        request = CommandRequest(actor=Actor(self.actor), correlation_id=str(uuid.uuid4()))
        try:
            return command(request)
        except InvalidCommand as exc:
            raise WriteRefused(str(exc)) from None

    def _settle(self, held: Connection | None) -> None:
        with self._catching_up(held):
            pass

    def _settled(self, held: Connection | None, key: int) -> UserRecord:
        """Returns the key's row once the reverse projection has caught up (in the held transaction, or a new one)."""
        with self._catching_up(held) as conn:
            row = conn.execute(select(UserRow.__table__).where(UserRow.__table__.c.id == key)).mappings().first()
        if row is None:
            raise UserNotFound(key)
        return UserRecord(row["id"], row["email"], row["full_name"], row["is_active"], row["phone"],
                          row["created_at"], row["updated_at"])

    @contextmanager
    def _catching_up(self, held: Connection | None) -> Iterator[Connection]:
        if held is not None:
            self._catch_up(held)
            yield held
            return
        with self.reverse.transaction() as conn:
            self._catch_up(conn)
            yield conn

    def _catch_up(self, conn: Connection) -> None:
        """Catches the rows up; keys that wait for a direct legacy change are relayed first and caught up again."""
        if self.reverse.catch_up(conn).waiting and changelog_exists(conn):
            Relay(self.mapping, self.engine, self.store).drain()
            self.reverse.catch_up(conn)

    def _stream_exists(self, key: int) -> bool:
        stream = self.mapping.stream_id(key)
        with self.store.engine.connect() as conn:
            return bool(self.store.stream_versions(conn, [stream]))

    def _has_row(self, key: int) -> bool:
        with self.engine.connect() as conn:
            t = UserRow.__table__
            return conn.execute(select(t.c.id).where(t.c.id == key)).first() is not None


_made: dict[tuple[int, int], EsWrites] = {}
_made_lock = threading.Lock()


def es_writes(database: Database, es_container: EsContainer) -> EsWrites:
    """Returns the event-sourced writes of the legacy app's database (the factory the live routes call): made
    once per database and container (it reflects the table), shared by every request (it is thread-safe)."""
    key = (id(database), id(es_container))
    with _made_lock:
        made = _made.get(key)
        if made is None or made.engine is not database.engine:
            made = _made[key] = EsWrites(database, es_container)
        return made
