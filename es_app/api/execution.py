"""Running a command: If-Match, retries on races, Idempotency-Key, metadata, publish after commit."""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from es_app.bootstrap import EsContainer
from es_app.domain import DomainError, User, UserState
from es_app.services import UserNotFound, UserService
from es_app.settings import Settings
from es_app.store import (
    AppendResult,
    ClaimTaken,
    ConcurrencyError,
    Expected,
    ExpectedVersion,
    Repository,
)

from . import idempotency
from .context import Actor, is_user_id
from .errors import ApiError

log = logging.getLogger(__name__)

RACE_RETRIES = 20  # decide-and-append attempts when concurrent writers keep winning (no If-Match)
_IF_MATCH = re.compile(r'^\s*(?:(?:W/)?"(\d{1,9})"|(\d{1,9}))\s*$')  # "3", W/"3" or a bare 3

Publisher = Callable[[Settings, int], None]


def parse_if_match(value: str | None) -> Expected | None:
    """Returns the expected version an If-Match header asks for (`*` = any existing), or None."""
    if value is None:
        return None
    if value.strip() == "*":
        return ExpectedVersion.STREAM_EXISTS
    m = _IF_MATCH.match(value)
    if m is None:
        raise ApiError(422, 'If-Match must be a version such as 3, "3" or W/"3" (quotes balanced), or *')
    return int(m.group(1) or m.group(2))


@dataclasses.dataclass(frozen=True)
class CommandRequest:
    """What a command carries besides its body: who, why, and under which preconditions."""

    actor: Actor
    correlation_id: str
    causation_id: str | None = None
    expected: Expected | None = None
    idempotency_key: str | None = None
    fingerprint: str = ""

    def metadata(self, command: str) -> dict[str, Any]:
        meta = {**self.actor.metadata(), "correlation_id": self.correlation_id,
                "causation_id": self.causation_id or str(uuid.uuid4()), "command": command}
        if self.idempotency_key:
            meta["idempotency_key"] = self.idempotency_key
        return meta


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Returns the HTTP answer of a command; `replayed` when it is the stored first answer."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    replayed: bool = False


class Stale(Exception):
    def __init__(self, current: int):
        super().__init__(current)
        self.current = current


def _stale(expected: int, current: int) -> ApiError:
    return ApiError(412, f"If-Match {expected} is stale: the user is at version {current}",
                    headers={"ETag": idempotency.etag(current)}, current_version=current)


class CommandRunner:
    """Returns Outcomes of user commands; raises ApiError or domain/store errors for the handlers."""

    def __init__(self, container: EsContainer, publish: Publisher,
                 on_written: Callable[[str, AppendResult], None] | None = None):
        self.es, self.publish, self.on_written = container, publish, on_written

    # -- the two kinds of command -------------------------------------------
    def register(self, req: CommandRequest, name: str, email: str, phone: str | None, *,
                 user_id: str | None = None, legacy_key: Any = None) -> Outcome:
        """Registers a user on a new stream (`user_id`, default: a new `user-<uuid>`), with its legacy key when
        it is registered through the legacy app."""
        def run(service: UserService) -> AppendResult:
            return service.register(name, email, phone, user_id=user_id, legacy_key=legacy_key,
                                    metadata=req.metadata("RegisterUser"))

        return self._run(req, "RegisterUser", run, idempotency.Answer(201, location_prefix="/users/"))

    def execute(self, req: CommandRequest, user_id: str, command: str,
                action: Callable[[User], None]) -> Outcome:
        if not is_user_id(user_id):
            raise UserNotFound(user_id)
        expected = req.expected

        def guarded(user: User) -> None:
            if isinstance(expected, int) and user.version != expected:
                raise Stale(user.version)
            action(user)

        def run(service: UserService) -> AppendResult:
            # `If-Match: *` only asks that the user exists: decide on the loaded version, as without it
            return service.execute(user_id, guarded, metadata=req.metadata(command),
                                   expected_version=expected if isinstance(expected, int) else None)

        return self._run(req, command, run, idempotency.Answer(200))

    # -- the machinery -------------------------------------------------------
    def _run(self, req: CommandRequest, command: str, run: Callable[[UserService], AppendResult],
             respond: idempotency.Responder) -> Outcome:
        # A keyed retry is found by KeyedStore.append's lookup, in the write transaction, before anything
        # is written; a retry the domain now refuses (stale, nothing to change, taken, gone) by
        # _done_by_another. First tries, the common case, so pay no lookup of their own.
        for attempt in range(1, RACE_RETRIES + 1):
            try:
                result = run(self._service(req, respond))
            except idempotency.KeyReplay as replay:
                return self._replay(req, replay.stored)
            except Stale as exc:
                if (done := self._done_by_another(req)) is not None:
                    return done
                raise _stale(req.expected, exc.current) from None  # type: ignore[arg-type]
            except ConcurrencyError as exc:
                if (done := self._done_by_another(req)) is not None:
                    return done
                if isinstance(req.expected, int):
                    raise _stale(req.expected, exc.actual) from None
                if attempt < RACE_RETRIES:  # a concurrent writer won: decide again on the latest version
                    time.sleep(random.uniform(0, 0.002 * attempt))
                    continue
                raise
            except (DomainError, ClaimTaken, UserNotFound):
                if (done := self._done_by_another(req)) is not None:
                    return done
                raise
            break
        status, body, headers = respond(result)
        self._after_commit(command, result)
        return Outcome(status, body, headers)

    def _service(self, req: CommandRequest, respond: idempotency.Responder) -> UserService:
        if not req.idempotency_key:
            return self.es.user_service
        keyed = idempotency.KeyedStore(self.es.store, req.idempotency_key, req.fingerprint, respond)
        # arg-type: KeyedStore wraps an EventStore with the same methods (no common protocol yet).
        repo = Repository(keyed, self.es.snapshots, User, UserState,  # type: ignore[arg-type]
                          snapshot_every=self.es.settings.snapshot_every)
        return UserService(repo)

    def _done_by_another(self, req: CommandRequest) -> Outcome | None:
        """Returns the stored response when a concurrent request with the same key won the race."""
        if req.idempotency_key:
            earlier = idempotency.lookup(self.es.engine, req.idempotency_key)
            if earlier is not None:
                return self._replay(req, earlier)
        return None

    def _replay(self, req: CommandRequest, stored: idempotency.StoredResponse) -> Outcome:
        if stored.request_hash != req.fingerprint:
            raise ApiError(422, "this Idempotency-Key was already used for a different request; "
                                "use a new key for a new command", error="key-reused")
        return Outcome(stored.status_code, stored.body, stored.headers, replayed=True)

    def _after_commit(self, command: str, result: AppendResult) -> None:
        if self.on_written is not None:
            self.on_written(command, result)
        try:
            self.publish(self.es.settings, result.position)
        except Exception:  # the events are committed; the beat schedule catches up
            log.warning("could not publish position %s after %s", result.position, command, exc_info=True)

