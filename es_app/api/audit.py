"""Audit and time travel, replayed from the event store (not the read model): history, as-of, diff."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from es_app.services import UserNotFound
from es_app.store import RecordedEvent

from . import time_travel
from .context import Container, is_user_id
from .errors import ApiError
from .schemas import ErrorBody, HistoryPage, UserDiff, UserState

router = APIRouter(tags=["audit"])

UserId = Annotated[str, Path(max_length=255)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "unknown user (or it did not exist then)"},
    422: {"model": ErrorBody, "description": "bad parameter"}}


def event_out(e: RecordedEvent) -> dict[str, Any]:
    """Returns the JSON shape of a stored event."""
    return {"event_id": e.event_id, "stream_id": e.stream_id, "type": e.type, "version": e.version,
            "position": e.position, "data": e.data, "metadata": e.metadata,
            "recorded_at": _utc(e.recorded_at).isoformat()}


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)  # SQLite hands back naive UTC times


def _stream(container: Container, user_id: str) -> list[RecordedEvent]:
    events = container.store.read_stream(user_id) if is_user_id(user_id) else []
    if not events:
        raise UserNotFound(user_id)
    return events


@router.get("/users/{user_id}/history", response_model=HistoryPage, responses=_NOT_FOUND,
            summary="The user's events, oldest first")
def history(user_id: UserId, container: Container,
            after_version: Annotated[int, Query(ge=0, le=2**31 - 1, description="Continue after this version")]
            = 0,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Events with type, version, position, data and metadata; continue with `after_version=next_after_version`."""
    if not is_user_id(user_id) or container.store.stream_version(user_id) == 0:
        raise UserNotFound(user_id)
    events = container.store.read_stream(user_id, from_version=after_version + 1, limit=limit + 1)
    more = len(events) > limit
    events = events[:limit]
    return {"id": user_id, "events": [event_out(e) for e in events],
            "next_after_version": events[-1].version if more else None}


@router.get("/users/{user_id}/as-of", response_model=UserState, responses=_NOT_FOUND,
            summary="The user as it was at a time or version")
def as_of(user_id: UserId, container: Container,
          at: Annotated[str | None, Query(max_length=64, description="ISO-8601 time (UTC without offset)",
                                          examples=["2026-11-28T09:00:00Z"])] = None,
          version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> dict[str, Any]:
    """Replays the stream up to `version`, or up to the last event that had occurred at `at`."""
    if (at is None) == (version is None):
        raise ApiError(422, "give exactly one of at (an ISO-8601 time) or version")
    if at is not None:
        when = time_travel.parse_time(at)
        events = _stream(container, user_id)
        state = time_travel.replay(user_id, events, time_travel.version_at(events, when))
        if state.version == 0:
            raise ApiError(404, f"user {user_id!r} did not exist at {when.isoformat()}")
    else:
        if not is_user_id(user_id):
            raise UserNotFound(user_id)
        state = container.users.load(user_id, version=version).state
        if state.version == 0:
            raise UserNotFound(user_id)
    return state.to_dict() | {"extra": state.extra or {}}


@router.get("/users/{user_id}/diff", response_model=UserDiff, responses=_NOT_FOUND,
            summary="What changed between two times or versions, field by field")
def diff(user_id: UserId, container: Container,
         from_: Annotated[str | None, Query(alias="from", max_length=64,
                                            description="ISO-8601 time, or a version number; default: before "
                                                        "the first event")] = None,
         to: Annotated[str | None, Query(max_length=64, description="ISO-8601 time, or a version number; "
                                                                     "default: the latest")] = None
         ) -> dict[str, Any]:
    """Each changed field with its value before and after, and the events that changed it."""
    events = _stream(container, user_id)
    start = time_travel.resolve_version(events, from_, 0, "from")
    end = time_travel.resolve_version(events, to, events[-1].version, "to")
    return time_travel.diff(user_id, events, start, end)
