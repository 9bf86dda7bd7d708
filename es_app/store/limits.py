"""What an event must fit to be stored, checked the same on every backend.

PostgreSQL refuses what SQLite accepts: text longer than its column, `\\u0000` in a JSON
string (jsonb) or in text, a lone surrogate (not UTF-8). The store checks these limits
itself before anything is written, so both backends refuse the same events with the
same error (`InvalidEvent`), one line naming the stream, the event and the place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from .schema import events, unique_claims
from .types import Claim, EncodedEvent, InvalidEvent, NewEvent, category_of


def _length(column: Any) -> int:
    """Returns the declared length of a String column."""
    return column.type.length


STREAM_ID_MAX = _length(events.c.stream_id)
CATEGORY_MAX = _length(events.c.category)
EVENT_TYPE_MAX = _length(events.c.event_type)
EVENT_ID_MAX = _length(events.c.event_id)
CLAIM_SCOPE_MAX = _length(unique_claims.c.scope)
CLAIM_VALUE_MAX = _length(unique_claims.c.value)
SCHEMA_VERSION_MAX = 2**31 - 1  # an INTEGER column

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _char_problem(text: str) -> str | None:
    if text.isascii() and "\x00" not in text:  # the common case, without a regex
        return None
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    return "U+0000 (NUL)" if char == "\x00" else f"a lone surrogate U+{ord(char):04X}"


def _check_text(value: Any, limit: int, what: str, stream_id: str | None) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidEvent(stream_id, f"{what} must be a non-empty string")
    if len(value) > limit:
        raise InvalidEvent(stream_id, f"{what} is {len(value)} characters long (at most {limit})")
    problem = _char_problem(value)
    if problem is not None:
        raise InvalidEvent(stream_id, f"{what} holds {problem}")


def check_stream_id(stream_id: Any) -> None:
    """Raises InvalidEvent when the stream id (or its category) cannot be stored."""
    shown = stream_id if isinstance(stream_id, str) else repr(stream_id)
    _check_text(stream_id, STREAM_ID_MAX, "the stream id", shown)
    category = category_of(stream_id)
    if len(category) > CATEGORY_MAX:
        raise InvalidEvent(stream_id, f"the category {category[:20]!r}... is {len(category)} characters long "
                                      f"(at most {CATEGORY_MAX})")


def check_event_fields(stream_id: str | None, e: NewEvent | EncodedEvent) -> None:
    """Raises InvalidEvent when the event's type, id or schema version cannot be stored."""
    _check_text(e.type, EVENT_TYPE_MAX, "the event type", stream_id)
    _check_text(str(e.event_id), EVENT_ID_MAX, f"the event id of {e.type}", stream_id)
    version = e.schema_version
    if type(version) is not int or not 1 <= version <= SCHEMA_VERSION_MAX:
        raise InvalidEvent(stream_id, f"the schema version of {e.type} must be an integer from 1 to "
                                      f"{SCHEMA_VERSION_MAX}")


def check_fields(stream_id: str, new_events: Sequence[NewEvent | EncodedEvent]) -> None:
    """Raises InvalidEvent when the stream id or an event's type, id or schema version cannot be stored
    (the JSON is checked where it is encoded, see `check_json`; encoded events were checked by
    `encode_events`)."""
    check_stream_id(stream_id)
    for e in new_events:
        if type(e) is not EncodedEvent:
            check_event_fields(stream_id, e)


def check_events(stream_id: str, new_events: Sequence[NewEvent | EncodedEvent]) -> None:
    """Returns None when an append of the events to the stream would store them; raises InvalidEvent
    (the one line the append would raise) when a backend cannot hold them. Nothing is written."""
    from .driver import dumps

    check_stream_id(stream_id)
    for e in new_events:
        check_event_fields(stream_id, e)
        if type(e) is EncodedEvent:
            data, meta = e.data_json, e.metadata_json
        else:
            data, meta = dumps(e.data), dumps(e.metadata)
        check_json(data, stream_id, e.type, "data")
        check_json(meta, stream_id, e.type, "metadata")


def check_claims(stream_id: str, claims: Sequence[Claim]) -> None:
    """Raises InvalidEvent when a claim's scope or value cannot be stored."""
    for claim in claims:
        _check_text(claim.scope, CLAIM_SCOPE_MAX, "a claim's scope", stream_id)
        _check_text(claim.value, CLAIM_VALUE_MAX, f"the {claim.scope} claim", stream_id)


def check_json(text: str, stream_id: str | None, event_type: str, part: str) -> None:
    """Raises InvalidEvent when JSON text as the store encodes it holds a string (a key or a value)
    that a backend cannot store: U+0000 or a lone surrogate.

    Fast for the common case: the store's encoder writes such characters escaped (`\\u....`),
    and text without any escape is parsed no further.
    """
    if "\\u" not in text:
        return
    path = unstorable_path(json.loads(text))
    if path is not None:
        where, problem = path
        raise InvalidEvent(stream_id, f"{event_type} {part} {where} holds {problem}")


def unstorable_path(value: Any, path: str = "$") -> tuple[str, str] | None:
    """Returns (JSON path, problem) of the first string, key or value, that holds U+0000 or a lone
    surrogate; None when every string can be stored."""
    if isinstance(value, str):
        problem = _char_problem(value)
        return None if problem is None else (path, problem)
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                problem = _char_problem(key)
                if problem is not None:
                    return f"a key in {path}", problem
            found = unstorable_path(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            found = unstorable_path(item, f"{path}[{n}]")
            if found is not None:
                return found
    return None
