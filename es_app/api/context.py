"""Per-request context: the wired container, the actor, correlation and causation ids, admin auth."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import Annotated

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


@dataclasses.dataclass(frozen=True)
class Actor:
    """Returns who acts as the server knows it (`name`), and who the caller only said it was (`claimed`)."""

    name: str
    claimed: str | None = None

    def metadata(self) -> dict[str, str]:
        """Returns the event metadata keys: `actor`, and `claimed_actor` when there is a claim."""
        return {"actor": self.name} | ({"claimed_actor": self.claimed} if self.claimed else {})


def _is_admin_token(credentials: HTTPAuthorizationCredentials, settings: Settings) -> bool:
    return settings.admin_disabled_reason is None and secrets.compare_digest(
        credentials.credentials.encode(), settings.admin_token.strip().encode())


def actor_of(request: Request, x_actor: str | None, credentials: HTTPAuthorizationCredentials | None,
             settings: Settings) -> Actor:
    """Returns who acts, from what the server trusts only: the trusted proxy header, else `admin` for
    the admin token, else `anonymous`. X-Actor (or an unknown bearer token) is kept as a claim."""
    claimed = (x_actor.strip() or None) if x_actor else None
    trusted = settings.trusted_actor_header.strip()
    if trusted:
        proxied = request.headers.get(trusted)
        if proxied is not None:
            if not re.match(_HEADER_TEXT, proxied) or not proxied.strip():
                raise ApiError(422, f"{trusted} must be 1-200 printable characters")
            same = trusted.lower() == "x-actor"
            return Actor(proxied.strip(), None if same else claimed)
    if credentials is not None:
        if _is_admin_token(credentials, settings):
            return Actor("admin", claimed)
        token = "token:" + hashlib.sha256(credentials.credentials.encode()).hexdigest()[:16]
        return Actor("anonymous", claimed or token)
    return Actor("anonymous", claimed)


ActorHeader = Annotated[str | None, Header(alias="X-Actor", pattern=_HEADER_TEXT,
                                           description="Who the caller says it is: stored as `claimed_actor` "
                                                       "(the trusted `actor` comes from the admin token or a "
                                                       "trusted proxy header)")]
CausationHeader = Annotated[str | None, Header(alias="X-Causation-ID", pattern=_ID.pattern,
                                               description="Id of the message that caused this command; "
                                                           "default: a new id per request")]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def require_admin(request: Request, credentials: Credentials) -> None:
    """Refuses the request unless it carries `Authorization: Bearer <settings.admin_token>`.

    Without a usable ADMIN_TOKEN (unset, or the example's placeholder) every admin route answers 403
    with the reason: there is no default token.
    """
    settings = request.app.state.es.settings
    if (disabled := settings.admin_disabled_reason) is not None:
        raise ApiError(403, disabled, error="admin-disabled")
    if credentials is None:
        raise ApiError(401, "this route needs Authorization: Bearer <admin token>",
                       headers={"WWW-Authenticate": "Bearer"})
    if not _is_admin_token(credentials, settings):
        raise ApiError(403, "the bearer token is not the admin token")


Admin = Depends(require_admin)
