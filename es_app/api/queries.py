"""Query routes on the read model: GET /users/{id} and GET /users (search, filter, sort, cursor)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from .consistency import MinPositionHeader, MinPositionQuery, wait_for, with_read_model
from .context import Container, is_user_id
from .schemas import ErrorBody, SortKey, UserPage, UserView
from .user_queries import get_user, list_users

router = APIRouter(tags=["queries"])

_TEXT = r"^[^\x00-\x1f\x7f]*$"


_FIELDS = ("id", "name", "email", "phone", "active", "version", "created_at", "updated_at")


def _public(row) -> dict:
    return {k: getattr(row, k) for k in _FIELDS}


@router.get("/users/{user_id}", response_model=UserView, summary="A user, from the read model",
            responses={404: {"model": ErrorBody, "description": "unknown user (or not projected yet: see "
                                                              "read_model.stale)"},
                       410: {"model": ErrorBody, "description": "the user was deleted; history and as-of "
                                                              "still show it"}})
async def get_user_view(user_id: Annotated[str, Path(max_length=255)], container: Container,
                        min_position: MinPositionQuery = None,
                        min_position_header: MinPositionHeader = None) -> JSONResponse:
    """Answers from the read model; `min_position` (or X-Min-Position) waits for read-your-writes."""
    info = await wait_for(container, min_position, min_position_header)
    row = None
    if is_user_id(user_id):
        row = await run_in_threadpool(_one, container, user_id)
    if row is None:
        return with_read_model({"detail": f"unknown user {user_id!r}"}, info, 404)
    if row.deleted:
        return with_read_model({"detail": f"user {user_id!r} was deleted", "id": user_id,
                                "version": row.version}, info, 410)
    return with_read_model(_public(row), info)


def _one(container, user_id: str):
    with container.engine.connect() as conn:
        return get_user(conn, user_id)


@router.get("/users", response_model=UserPage, summary="Search and list users, from the read model",
            responses={422: {"model": ErrorBody, "description": "bad parameter or cursor"}})
async def list_user_views(
        container: Container,
        q: Annotated[str | None, Query(max_length=200, pattern=_TEXT,
                                       description="Substring of the name or email, case-insensitive")] = None,
        active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) users")] = None,
        sort: Annotated[SortKey, Query(description="Sort key; a leading - sorts descending")] = "name",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=2000, description="next_cursor of the previous page")]
        = None,
        min_position: MinPositionQuery = None,
        min_position_header: MinPositionHeader = None) -> JSONResponse:
    """Deleted users are left out. Pages are keyset-paginated: stable under concurrent inserts."""
    info = await wait_for(container, min_position, min_position_header)

    def page():
        with container.engine.connect() as conn:
            return list_users(conn, search=q, active=active, sort=sort, limit=limit, cursor=cursor)

    rows, next_cursor = await run_in_threadpool(page)
    return with_read_model({"items": [_public(r) for r in rows], "next_cursor": next_cursor}, info)
