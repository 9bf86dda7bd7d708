"""Routes behind the admin bearer token: the global event feed, dead letters, projection status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from es_app.projections import (
    DeadLetterNotFound,
    NotParked,
    dead_letters,
    get_dead_letter,
    list_parked,
    projection_status,
)

from .audit import event_out
from .context import Admin, Container
from .errors import ApiError
from .schemas import ErrorBody, FeedPage

router = APIRouter(dependencies=[Admin], responses={
    401: {"model": ErrorBody, "description": "no bearer token"},
    403: {"model": ErrorBody, "description": "not the admin token, or admin routes disabled (no ADMIN_TOKEN)"}})

MAX_POSITION = 2**63 - 1


class DeadLetterOut(BaseModel):
    id: int
    projection: str
    stream_id: str
    position: int
    version: int
    event_id: str
    event_type: str
    error: str
    attempts: int
    status: str
    parked_at: datetime
    resolved_at: datetime | None


class ProjectionStatusOut(BaseModel):
    name: str
    projection: str
    position: int
    head: int
    lag: int
    rate: float | None
    parked: int
    updated_at: datetime | None
    eta_seconds: float | None


@router.get("/events", response_model=FeedPage, tags=["feed"], summary="The global event feed")
def feed(container: Container,
         after: Annotated[int, Query(ge=0, le=MAX_POSITION, description="Events after this global position")] = 0,
         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Events in position order; continue with `after=next_after`."""
    events = container.store.read_all(after=after, limit=limit)
    return {"events": [event_out(e) for e in events],
            "next_after": events[-1].position if events else after,
            "head_position": container.store.head_position()}


@router.get("/admin/projections", response_model=list[ProjectionStatusOut], tags=["admin"],
            summary="Position, lag and rate of every projection (and shard)")
def projections(container: Container) -> list[dict[str, Any]]:
    return [s.to_dict() for s in projection_status(container)]


LetterId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Status = Literal["parked", "retried", "skipped", "superseded", "all"]


@router.get("/admin/dead-letters", response_model=list[DeadLetterOut], tags=["admin"],
            summary="Parked events (or all dead letters with status=all)")
def list_dead_letters(container: Container,
                      projection: Annotated[str | None, Query(max_length=200, pattern=r"^[\w:/.-]+$")] = None,
                      stream_id: Annotated[str | None, Query(max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]
                      = None,
                      status: Status = "parked",
                      after_id: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    letters = list_parked(container.engine, projection=projection, stream_id=stream_id,
                          status=None if status == "all" else status, after_id=after_id, limit=limit)
    return [d.to_dict() for d in letters]


_LETTER_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such dead letter"},
    409: {"model": ErrorBody, "description": "already retried, skipped or superseded"}}


def _resolve(container: Container, letter_id: int, action: str) -> dict[str, Any]:
    try:
        letter = getattr(dead_letters, action)(container, letter_id)
    except DeadLetterNotFound:
        raise ApiError(404, f"no dead letter with id {letter_id}") from None
    except NotParked as exc:
        raise ApiError(409, str(exc)) from None
    return letter.to_dict()


@router.get("/admin/dead-letters/{letter_id}", response_model=DeadLetterOut, tags=["admin"],
            responses=_LETTER_ERRORS)
def get_letter(container: Container, letter_id: LetterId) -> dict[str, Any]:
    try:
        return get_dead_letter(container.engine, letter_id).to_dict()
    except DeadLetterNotFound:
        raise ApiError(404, f"no dead letter with id {letter_id}") from None


@router.post("/admin/dead-letters/{letter_id}/retry", response_model=DeadLetterOut, tags=["admin"],
             responses=_LETTER_ERRORS, summary="Apply the parked event again, then the ones waiting behind it")
def retry_letter(container: Container, letter_id: LetterId) -> dict[str, Any]:
    """Status becomes `retried`, or stays `parked` with one more attempt if it fails again."""
    return _resolve(container, letter_id, "retry")


@router.post("/admin/dead-letters/{letter_id}/skip", response_model=DeadLetterOut, tags=["admin"],
             responses=_LETTER_ERRORS, summary="Drop the parked event and apply the ones waiting behind it")
def skip_letter(container: Container, letter_id: LetterId) -> dict[str, Any]:
    return _resolve(container, letter_id, "skip")
