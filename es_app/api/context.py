"""Per-request context: the wired container, the actor, correlation and causation ids, admin auth."""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import threading
import uuid
from typing import Annotated, Callable

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from es_app.bootstrap import EsContainer, build
from es_app.settings import Settings
from es_app.store import category_of

from .errors import ApiError, error_response

CORRELATION_HEADER = "X-Correlation-ID"
_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_HEADER_TEXT = r"^[^\x00-\x1f\x7f]{1,200}$"

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <ADMIN_TOKEN>` for /events and /admin")


class LazyContainer:
    """Builds the container on first use (never at import time), once."""

    def __init__(self, settings: Settings, factory: Callable[[Settings], EsContainer] = build):
        self.settings, self._factory = settings, factory
        self._container: EsContainer | None = None
        self._lock = threading.Lock()

    def get(self) -> EsContainer:
        if self._container is None:
            with self._lock:
                if self._container is None:
                    self._container = self._factory(self.settings)
        return self._container


async def get_container(request: Request) -> EsContainer:
    """Returns the app's wired event-sourced side (async: no thread-pool hop; built once, on first use)."""
    return request.app.state.es.get()


Container = Annotated[EsContainer, Depends(get_container)]


def _new_id() -> str:
    """Returns a random UUID4 string without a urandom call on the event loop (slow on some VMs)."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


class CorrelationMiddleware:
    """Takes X-Correlation-ID from the request (or makes one) and echoes it on every response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope["headers"] if k == b"x-correlation-id"), None)
        cid = raw.decode("latin-1") if raw is not None else _new_id()
        if not _ID.match(cid):
            response = error_response(422, f"{CORRELATION_HEADER} must be 1-128 characters of "
                                           "letters, digits and ._:@/+=-")
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["correlation_id"] = cid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[CORRELATION_HEADER] = cid
            await send(message)

        await self.app(scope, receive, send_with_id)


def is_user_id(stream_id: str) -> bool:
    """Returns True when `stream_id` can name a user stream (category `user`, printable)."""
    return (category_of(stream_id) == "user" and stream_id.isprintable()
            and len(stream_id) <= 255 and "-" in stream_id)


def actor_of(x_actor: str | None, credentials: HTTPAuthorizationCredentials | None, settings: Settings) -> str:
    """Returns who acts: the X-Actor header, else who the bearer token stands for, else `anonymous`."""
    if x_actor:
        return x_actor.strip() or "anonymous"
    if credentials is not None:
        if secrets.compare_digest(credentials.credentials.encode(), settings.admin_token.encode()):
            return "admin"
        return "token:" + hashlib.sha256(credentials.credentials.encode()).hexdigest()[:16]
    return "anonymous"


ActorHeader = Annotated[str | None, Header(alias="X-Actor", pattern=_HEADER_TEXT,
                                           description="Who issues the command (stored in event metadata)")]
CausationHeader = Annotated[str | None, Header(alias="X-Causation-ID", pattern=_ID.pattern,
                                               description="Id of the message that caused this command; "
                                                           "default: a new id per request")]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def require_admin(request: Request, credentials: Credentials) -> None:
    """Refuses the request unless it carries `Authorization: Bearer <settings.admin_token>`."""
    if credentials is None:
        raise ApiError(401, "this route needs Authorization: Bearer <admin token>",
                       headers={"WWW-Authenticate": "Bearer"})
    token = request.app.state.es.settings.admin_token
    if not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
        raise ApiError(403, "the bearer token is not the admin token")


Admin = Depends(require_admin)
