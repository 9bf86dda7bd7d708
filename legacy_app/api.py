"""FastAPI CRUD over the legacy `users` table: `legacy_app.api:app`.

The database comes from LEGACY_DATABASE_URL (or `create_app(database_url=...)`) and
is connected on the first request, never at import time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from sqlalchemy.exc import OperationalError

from .db import Database, SchemaMissing
from .input_rules import MAX_INT64, checked_search, checked_text
from .reads import MAX_PAGE, ReadModeError, UserReads, UserRecord
from .routing import FixedRoutes, Routes
from .service import EmailTaken, UserNotFound
from .writes import UserWrites, WriteRefused

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

Email = Annotated[str, Field(min_length=3, max_length=254, pattern=EMAIL_PATTERN), BeforeValidator(checked_text)]
FullName = Annotated[str, Field(min_length=1, max_length=200), BeforeValidator(checked_text)]
Phone = Annotated[str, Field(min_length=1, max_length=40), BeforeValidator(checked_text)]
UserId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the legacy primary key")]


class UserIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    email: Email
    full_name: FullName
    is_active: bool = True
    phone: Phone | None = None


class UserPatch(BaseModel):
    """A PUT body: any subset of the fields; `phone: null` clears the phone."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    email: Email | None = None
    full_name: FullName | None = None
    is_active: bool | None = None
    phone: Phone | None = None

    @field_validator("email", "full_name", "is_active")
    @classmethod
    def _not_null(cls, value):
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


class UserOut(BaseModel):
    id: int
    email: str
    full_name: str
    is_active: bool
    phone: str | None
    created_at: datetime
    updated_at: datetime


class UserPage(BaseModel):
    items: list[UserOut]
    total: int
    limit: int
    offset: int


class _AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped, so an echoed lone surrogate renders as `\\ud800`."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class _Services:
    """What one request uses: the reads and the writes its routes chose for it."""

    def __init__(self, database: Database, routes: Routes):
        self.database = database
        self.reads: UserReads = routes.reads()
        self.users: UserWrites = routes.writes()


def _services(request: Request) -> _Services:
    return request.app.state.services()


Svc = Annotated[_Services, Depends(_services)]

RoutesFactory = Callable[[Database], Routes]


def create_app(database_url: str | None = None, *, read_mode: str | None = None,
               routes: RoutesFactory | None = None, require_schema: bool = True) -> FastAPI:
    """Returns the legacy CRUD app; its database (default LEGACY_DATABASE_URL) connects on first use.

    `routes(database)` chooses the reads and writes of each request (default: `FixedRoutes`, the
    table, reads per `read_mode` or LEGACY_READ_MODE); it is built once, on the first request. With
    `require_schema` False a database without the `users` table is accepted: the routes decide what to
    serve (the migrator's, once the table is decommissioned).
    """
    lock = threading.Lock()
    box: dict[str, tuple[Database, Routes]] = {}
    make_routes: RoutesFactory = routes or (lambda database: FixedRoutes(database, read_mode))

    def services() -> _Services:
        if "s" not in box:
            with lock:
                if "s" not in box:
                    database = Database.connect(database_url, check_schema=require_schema)
                    try:
                        box["s"] = (database, make_routes(database))
                    except Exception:
                        database.dispose()
                        raise
        database, chosen = box["s"]
        return _Services(database, chosen)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        if "s" in box:
            database, chosen = box.pop("s")
            close = getattr(chosen, "close", None)
            if close is not None:
                close()
            database.dispose()

    app = FastAPI(title="legacy users (CRUD)", version="1.0", lifespan=lifespan)
    app.state.services = services

    @app.exception_handler(SchemaMissing)
    @app.exception_handler(ReadModeError)
    async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(WriteRefused)
    async def _refused(_request: Request, exc: WriteRefused) -> JSONResponse:
        return _AsciiJSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _AsciiJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    @app.exception_handler(OperationalError)
    async def _database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        reason = (str(exc.orig or exc).strip().splitlines() or ["unknown"])[0]
        return JSONResponse({"detail": f"legacy database unavailable: {reason}"},
                            status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
    def create_user(body: UserIn, svc: Svc) -> UserRecord:
        try:
            return svc.users.create(**body.model_dump())
        except EmailTaken:
            raise HTTPException(status.HTTP_409_CONFLICT, f"email already in use: {body.email}") from None

    @app.get("/users/{user_id}", response_model=UserOut)
    def get_user(user_id: UserId, svc: Svc) -> UserRecord:
        record = svc.reads.get(user_id)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id}")
        return record

    @app.get("/users", response_model=UserPage)
    def list_users(svc: Svc,
                   search: Annotated[str | None, Query(max_length=200,
                                                          description="substring of name or email"),
                                     BeforeValidator(checked_search)] = None,
                   limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
                   offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0):
        page = svc.reads.search(search.strip() if search else None, limit=limit, offset=offset)
        return {"items": page.items, "total": page.total, "limit": page.limit, "offset": page.offset}

    @app.put("/users/{user_id}", response_model=UserOut)
    def update_user(user_id: UserId, body: UserPatch, svc: Svc) -> UserRecord:
        changes = body.model_dump(exclude_unset=True)
        try:
            return svc.users.update(user_id, changes)
        except UserNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id}") from None
        except EmailTaken:
            raise HTTPException(status.HTTP_409_CONFLICT, f"email already in use: {changes['email']}") from None

    @app.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_user(user_id: UserId, svc: Svc) -> Response:
        try:
            svc.users.delete(user_id)
        except UserNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id}") from None
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return app


app = create_app()
