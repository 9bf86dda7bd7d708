"""Command routes: register, change, deactivate, reactivate, delete and correct users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine
from starlette.background import BackgroundTask

from es_app.domain import NothingToChange, User
from es_app.settings import Settings
from es_app.store.engine import checkpoint_wal

from . import idempotency
from .context import ActorHeader, CausationHeader, Container, Credentials, actor_of
from .execution import CommandRequest, CommandRunner, Outcome, Publisher, parse_if_match
from .schemas import ChangeUser, CommandResult, CorrectUser, DeactivateUser, ErrorBody, NoFields, RegisterUser

router = APIRouter(tags=["commands"])

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", pattern=r"^[\x21-\x7e]{1,255}$",
    description="A retry with the same key returns the first response and writes nothing")]
IfMatch = Annotated[str | None, Header(
    alias="If-Match", max_length=40,
    description="The version the change is based on; 412 with the current version when it is stale")]
UserId = Annotated[str, Path(max_length=255, description="The user's stream id", examples=["user-3f6c2a4e"])]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    reasons = {404: "unknown user", 409: "conflicts with the user's state (or a concurrent change)",
               412: "If-Match is stale; body has current_version", 422: "invalid input or command"}
    return {code: {"model": ErrorBody, "description": reasons[code]} for code in codes}


def _command_request(request: Request, container: Container, x_actor: str | None, credentials: Any,
                     causation: str | None, key: str | None, if_match: str | None,
                     body: dict[str, Any] | None) -> CommandRequest:
    actor = actor_of(request, x_actor, credentials, container.settings)
    who = f"{actor.name}\n{actor.claimed or ''}"
    fingerprint = idempotency.request_hash(who, request.method, request.url.path, [body, if_match]) if key else ""
    return CommandRequest(actor=actor, correlation_id=request.state.correlation_id, causation_id=causation,
                          expected=parse_if_match(if_match), idempotency_key=key, fingerprint=fingerprint)


class _WakeAfterAnswer:
    """A command's wake-up of the projections, held until its answer is sent (a background task of the
    response): sending the Celery hint, or starting the embedded worker's run, which then shares
    the process with the answer being written, costs the answer nothing. On SQLite the write-ahead
    log is then checkpointed too (`checkpoint_wal`: at most every 50 ms), so that no command's commit
    has to, whatever the projections' pace."""

    def __init__(self, publish: Publisher, engine: Engine):
        self._publish, self._engine = publish, engine
        self._held: tuple[Settings, int] | None = None

    def __call__(self, settings: Settings, position: int) -> None:
        self._held = (settings, position)

    def task(self) -> BackgroundTask | None:
        return None if self._held is None else BackgroundTask(self._after_answer, *self._held)

    def _after_answer(self, settings: Settings, position: int) -> None:
        self._publish(settings, position)
        checkpoint_wal(self._engine)


def _respond(outcome: Outcome, wake: _WakeAfterAnswer) -> JSONResponse:
    headers = dict(outcome.headers)
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers, background=wake.task())


def _run(request: Request, container: Container,
         command: Callable[[CommandRunner], Outcome]) -> JSONResponse:
    state = request.app.state
    wake = _WakeAfterAnswer(state.publish, container.engine)
    return _respond(command(CommandRunner(container, wake, state.metrics.on_written)), wake)


@router.post("/users", status_code=201, response_model=CommandResult, responses=_errors(409, 422),
             summary="Register a user")
def register_user(body: RegisterUser, request: Request, container: Container, credentials: Credentials,
                  x_actor: ActorHeader = None, causation: CausationHeader = None,
                  key: IdempotencyKey = None) -> JSONResponse:
    """Emits UserRegistered. 201 with the new stream id, version and global position, and `Location`."""
    req = _command_request(request, container, x_actor, credentials, causation, key, None,
                           body.model_dump(mode="json", exclude_unset=True))
    return _run(request, container, lambda runner: runner.register(req, body.name, body.email, body.phone))


def _execute(request: Request, container: Container, credentials: Any, x_actor: str | None,
             causation: str | None, key: str | None, if_match: str | None, user_id: str, command: str,
             body: BaseModel | None, action: Callable[[User], None]) -> JSONResponse:
    dumped = body.model_dump(mode="json", exclude_unset=True) if body is not None else None
    req = _command_request(request, container, x_actor, credentials, causation, key, if_match, dumped)
    return _run(request, container, lambda runner: runner.execute(req, user_id, command, action))


_USER_ROUTE: dict[str, Any] = dict(response_model=CommandResult, responses=_errors(404, 409, 412, 422))


@router.patch("/users/{user_id}", summary="Change name, email and/or phone", **_USER_ROUTE)
def change_user(user_id: UserId, body: ChangeUser, request: Request, container: Container,
                credentials: Credentials, x_actor: ActorHeader = None, causation: CausationHeader = None,
                key: IdempotencyKey = None, if_match: IfMatch = None) -> JSONResponse:
    """Emits UserNameChanged, UserEmailChanged and/or UserPhoneChanged for the fields that differ."""

    def action(user: User) -> None:
        changes = {"name": user.change_name, "email": user.change_email, "phone": user.change_phone}
        changed = 0
        for field, change in changes.items():
            if field in body.model_fields_set:
                try:
                    change(getattr(body, field))
                    changed += 1
                except NothingToChange:
                    pass
        if not changed:
            raise NothingToChange("nothing to change: the user already has these values")

    return _execute(request, container, credentials, x_actor, causation, key, if_match, user_id,
                    "ChangeUser", body, action)


@router.post("/users/{user_id}/deactivate", summary="Deactivate a user", **_USER_ROUTE)
def deactivate_user(user_id: UserId, request: Request, container: Container, credentials: Credentials,
                    body: DeactivateUser | None = None, x_actor: ActorHeader = None,
                    causation: CausationHeader = None, key: IdempotencyKey = None,
                    if_match: IfMatch = None) -> JSONResponse:
    """Emits UserDeactivated (the body and its reason are optional)."""
    reason = body.reason if body is not None else None
    return _execute(request, container, credentials, x_actor, causation, key, if_match, user_id,
                    "DeactivateUser", body, lambda u: u.deactivate(reason))


@router.post("/users/{user_id}/reactivate", summary="Reactivate a user", **_USER_ROUTE)
def reactivate_user(user_id: UserId, request: Request, container: Container, credentials: Credentials,
                    body: NoFields | None = None, x_actor: ActorHeader = None,
                    causation: CausationHeader = None, key: IdempotencyKey = None,
                    if_match: IfMatch = None) -> JSONResponse:
    """Emits UserReactivated (no body, or `{}`)."""
    return _execute(request, container, credentials, x_actor, causation, key, if_match, user_id,
                    "ReactivateUser", body, lambda u: u.reactivate())


@router.delete("/users/{user_id}", summary="Delete a user", **_USER_ROUTE)
def delete_user(user_id: UserId, request: Request, container: Container, credentials: Credentials,
                body: NoFields | None = None, x_actor: ActorHeader = None,
                causation: CausationHeader = None, key: IdempotencyKey = None,
                if_match: IfMatch = None) -> JSONResponse:
    """Emits UserDeleted (no body, or `{}`). The user then answers 410 on GET but stays in history and as-of."""
    return _execute(request, container, credentials, x_actor, causation, key, if_match, user_id,
                    "DeleteUser", body, lambda u: u.delete())


@router.post("/users/{user_id}/corrections", summary="Correct a field, with a reason", **_USER_ROUTE)
def correct_user(user_id: UserId, body: CorrectUser, request: Request, container: Container,
                 credentials: Credentials, x_actor: ActorHeader = None, causation: CausationHeader = None,
                 key: IdempotencyKey = None, if_match: IfMatch = None) -> JSONResponse:
    """Emits UserCorrected: the value is fixed, history keeps the old one and says who and why."""
    return _execute(request, container, credentials, x_actor, causation, key, if_match, user_id,
                    "CorrectUser", body, lambda u: u.correct(body.field, body.value, body.reason))
