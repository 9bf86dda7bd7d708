"""Values and errors of the event store's public API."""

from __future__ import annotations

import dataclasses
import enum
import os
import time
from datetime import UTC, datetime
from typing import Any


class ExpectedVersion(str, enum.Enum):
    """The non-numeric expected-version modes; an `int` means exactly that version."""

    ANY = "any"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"


Expected = ExpectedVersion | int


def new_event_id() -> str:
    """Returns a time-ordered (version 7, RFC 9562) UUID as text: 48 bits of Unix milliseconds, 12 bits of
    the millisecond's fraction, then 62 random bits.

    The events table's unique index on event_id then grows at its right edge, as the position
    index does, instead of taking each new id at a random page (on SQLite that random insert
    was most of an append's own cost: docs/benchmarks.md, "Write paths"). Built from integers
    without a UUID object; every event of a command or an append gets one.
    """
    ms, fraction = divmod(time.time_ns(), 1_000_000)
    rand = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000  # RFC variant
    h = f"{ms << 80 | (0x7000 | fraction * 4096 // 1_000_000) << 64 | rand:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclasses.dataclass(frozen=True)
class NewEvent:
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    event_id: str = dataclasses.field(default_factory=new_event_id)
    schema_version: int = 1


@dataclasses.dataclass(frozen=True)
class EncodedEvent:
    """A NewEvent made ready for a batch append ahead of time (`encode_events`), possibly in another
    process: its JSON as it will be stored (metadata with its `occurred_at`), and — when asked
    for — its data and metadata as a read of that JSON returns them (None otherwise).

    `EventStore.append_batch` and `append_batch_recorded` take it in place of a NewEvent and
    write the text as it is, so the work stays out of the write transaction."""

    type: str
    event_id: str
    schema_version: int
    data_json: str
    metadata_json: str
    data: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class RecordedEvent:
    position: int
    stream_id: str
    version: int
    event_id: str
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime

    def __post_init__(self) -> None:
        # The store writes UTC; SQLite hands the time back without its offset.
        if self.recorded_at.tzinfo is None:
            object.__setattr__(self, "recorded_at", self.recorded_at.replace(tzinfo=UTC))


_new_object, _set_attribute = object.__new__, object.__setattr__


def recorded_event(position: int, stream_id: str, version: int, event_id: str, type: str,
                   schema_version: int, data: dict[str, Any], metadata: dict[str, Any],
                   recorded_at: datetime) -> RecordedEvent:
    """Returns RecordedEvent(...) (equal, same class) made without the frozen dataclass's __init__, which
    sets each of the nine fields through object.__setattr__: half the cost of an event on the feed's reads."""
    if recorded_at.tzinfo is None:
        recorded_at = recorded_at.replace(tzinfo=UTC)
    event = _new_object(RecordedEvent)
    _set_attribute(event, "__dict__", {
        "position": position, "stream_id": stream_id, "version": version, "event_id": event_id, "type": type,
        "schema_version": schema_version, "data": data, "metadata": metadata, "recorded_at": recorded_at})
    return event


@dataclasses.dataclass(frozen=True)
class AppendResult:
    """Returns where the batch landed; `written` is False when it was an idempotent retry."""

    stream_id: str
    version: int
    position: int
    positions: tuple[int, ...]
    written: bool = True


@dataclasses.dataclass(frozen=True)
class Claim:
    """A unique value (e.g. an email) held by one stream, checked in the append's transaction."""

    scope: str
    value: str


class StoreError(Exception):
    pass


class ConcurrencyError(StoreError):
    def __init__(self, stream_id: str, expected: Expected, actual: int):
        exp = expected.value if isinstance(expected, ExpectedVersion) else expected
        super().__init__(f"stream {stream_id!r}: expected version {exp}, actual {actual}")
        self.stream_id, self.expected, self.actual = stream_id, expected, actual


class EventIdConflict(StoreError):
    """An event id is already stored with other content or at another place."""


class InvalidEvent(StoreError):
    """An event (or its stream id) that a backend cannot store: too long, or text holding U+0000 or
    a lone surrogate. Raised before anything is written, the same on every backend."""

    def __init__(self, stream_id: str | None, problem: str):
        shown = stream_id if stream_id is None or len(stream_id) <= 80 else stream_id[:80] + "..."
        where = f"stream {shown!r}: " if shown is not None else ""
        super().__init__(f"{where}{problem}, which the event store cannot hold")
        self.stream_id, self.problem = stream_id, problem


class ClaimTaken(StoreError):
    def __init__(self, claim: Claim, owner: str):
        super().__init__(f"{claim.scope} {claim.value!r} is already taken by {owner}")
        self.claim, self.owner = claim, owner


def category_of(stream_id: str) -> str:
    """Returns the category of a stream id: the part before the first '-' (`user-42` -> `user`)."""
    return stream_id.split("-", 1)[0]
