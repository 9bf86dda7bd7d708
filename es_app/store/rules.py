"""What an append must satisfy before anything is written, the same on every backend."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .limits import check_claims, check_fields
from .types import Claim, EncodedEvent, EventIdConflict, Expected, ExpectedVersion, NewEvent


def matches(expected: Expected, current: int) -> bool:
    """Returns whether a stream at version `current` meets the expected version."""
    if expected is ExpectedVersion.ANY:
        return True
    if expected is ExpectedVersion.NO_STREAM:
        return current == 0
    if expected is ExpectedVersion.STREAM_EXISTS:
        return current > 0
    return current == expected


def check_new_events(stream_id: str, new_events: Sequence[Any], claims: Sequence[Claim] = (),
                     releases: Sequence[Claim] = ()) -> None:
    """Raises ValueError, TypeError, InvalidEvent or EventIdConflict for events `append` must refuse."""
    if not new_events:
        raise ValueError("append needs at least one event")
    if any(type(e) is EncodedEvent for e in new_events):
        raise TypeError("append and append_in take NewEvent; encoded events go through append_batch")
    check_fields(stream_id, new_events)
    if claims or releases:
        check_claims(stream_id, (*claims, *releases))
    refuse_repeated_ids(new_events)


def refuse_repeated_ids(new_events: Iterable[NewEvent | EncodedEvent]) -> None:
    """Raises EventIdConflict when one call carries the same event id twice (nothing is written)."""
    seen: set[str] = set()
    for e in new_events:
        event_id = str(e.event_id)
        if event_id in seen:
            raise EventIdConflict(f"event id {event_id} appears twice in one append")
        seen.add(event_id)
