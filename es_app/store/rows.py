"""Named rows of the events table: as the store writes them and as it reads them back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from .codec import event_json
from .limits import check_json
from .types import EncodedEvent, NewEvent, category_of


class EventRow(NamedTuple):
    """One event as inserted (the columns of `statements.INSERT_COLUMNS`, in order); its position
    is handed out by the insert or, for a batch, taken ahead and written in front of it."""

    stream_id: str
    category: str
    version: int
    event_id: str
    event_type: str
    schema_version: int
    data: str  # JSON text
    metadata: str  # JSON text
    recorded_at: Any  # the backend's parameter: text on SQLite, a datetime on PostgreSQL


class StoredRow(NamedTuple):
    """One event as read (the columns of `statements.COLUMNS`, in order); data, metadata and
    recorded_at as the driver returns them (SQLite: text, PostgreSQL: values)."""

    position: int
    stream_id: str
    version: int
    event_id: str
    event_type: str
    schema_version: int
    data: Any
    metadata: Any
    recorded_at: Any


class SnapshotRow(NamedTuple):
    """The first row of a snapshot-and-tail read when the stream has a usable snapshot (part 0);
    the events after it come as part 1 followed by a StoredRow."""

    part: int
    position: None
    stream_id: None
    version: int
    event_id: None
    event_type: None
    schema_version: int
    state: Any
    metadata: None
    recorded_at: None


_new_row = tuple.__new__  # builds an EventRow without its generated __new__: a third of the cost per row


def rows_at(stamps: tuple[str, Any], stream_id: str, current: int,
            new_events: Sequence[NewEvent | EncodedEvent]) -> list[EventRow]:
    """Returns the events as rows at versions current+1.., with the given (occurred_at text,
    recorded_at parameter) stamps; encoded events keep their own text.

    Raises InvalidEvent for JSON a backend cannot hold."""
    occurred, recorded = stamps
    category = category_of(stream_id)
    rows = []
    for i, e in enumerate(new_events, start=1):
        if type(e) is EncodedEvent:
            data, meta = e.data_json, e.metadata_json
            check_json(data, stream_id, e.type, "data")
            check_json(meta, stream_id, e.type, "metadata")
        else:
            # arg-type: not an EncodedEvent, so a NewEvent (`type(e) is` leaves the else branch un-narrowed)
            data, meta = event_json(stream_id, e, occurred)  # type: ignore[arg-type]
        rows.append(_new_row(EventRow, (stream_id, category, current + i, str(e.event_id), e.type,
                                        e.schema_version, data, meta, recorded)))
    return rows
