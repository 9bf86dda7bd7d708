"""Errors as HTTP answers: one `detail` line a client can act on, never a 500 for bad input."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from es_app.domain import DomainError, InvalidCommand
from es_app.services import UserNotFound
from es_app.store import ClaimTaken, ConcurrencyError, EventIdConflict

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Returns as a JSON error: {"detail": ..., **extra} with `status`."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers or {}, extra


def error_response(status: int, detail: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    """Returns the JSON error response every route uses."""
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def _validation_summary(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        if err.get("type") == "json_invalid":
            parts.append("malformed JSON body")
        else:
            parts.append(f"{_location(err.get('loc', ()))}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _unparsable(cause: BaseException) -> str:
    if isinstance(cause, RecursionError):
        return "malformed JSON body: nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return "malformed JSON body: not UTF-8"
    return "malformed JSON body"


def domain_status(exc: DomainError) -> int:
    """Returns 422 for an invalid command, 409 for a command that conflicts with the user's state."""
    return 422 if isinstance(exc, InvalidCommand) else 409


def _operational_errors() -> list[type[Exception]]:
    """Returns SQLAlchemy's OperationalError and the drivers' own (raised when a pool cannot connect)."""
    errors: list[type[Exception]] = [OperationalError, sqlite3.OperationalError]
    try:
        import psycopg
    except ImportError:  # the postgres extra is not installed
        return errors
    return [*errors, psycopg.OperationalError]


def install(app: FastAPI) -> None:
    """Registers the handlers that turn exceptions into JSON errors."""

    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                  for e in exc.errors()]
        return error_response(422, _validation_summary(exc), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, (RecursionError, ValueError)):
            return error_response(422, _unparsable(exc.__cause__))  # FastAPI's 400 for a body json refuses
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(DomainError)
    async def _domain(_req: Request, exc: DomainError) -> JSONResponse:
        return error_response(domain_status(exc), exc.reason, error=exc.status)

    @app.exception_handler(UserNotFound)
    async def _not_found(_req: Request, exc: UserNotFound) -> JSONResponse:
        return error_response(404, f"unknown user {exc.args[0]!r}")

    @app.exception_handler(ClaimTaken)
    async def _claim(_req: Request, exc: ClaimTaken) -> JSONResponse:
        return error_response(409, f"{exc.claim.value} is already used by another user", error="taken")

    @app.exception_handler(ConcurrencyError)
    async def _conflict(_req: Request, exc: ConcurrencyError) -> JSONResponse:
        return error_response(409, "the user changed concurrently; retry", current_version=exc.actual,
                              error="conflict")

    async def _database_down(_req: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", exc)
        return error_response(503, "the database is unavailable; retry later", {"Retry-After": "1"})

    for error in _operational_errors():
        app.add_exception_handler(error, _database_down)

    @app.exception_handler(EventIdConflict)
    async def _event_ids(_req: Request, exc: EventIdConflict) -> JSONResponse:
        return error_response(409, str(exc), error="conflict")
