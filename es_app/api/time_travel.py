"""Time travel over a user's stream: versions at a time, states as of a version, field-by-field diffs."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from es_app.domain import User, UserState, event_from_data
from es_app.store import RecordedEvent

from .errors import ApiError

TRACKED = ("name", "email", "phone", "active", "deleted")


def parse_time(text: str, name: str = "at") -> datetime:
    """Returns the ISO-8601 time `text` (UTC when it has no offset); ApiError 422 when it is not one."""
    try:
        t = datetime.fromisoformat(text.strip())
    except (ValueError, TypeError):
        raise ApiError(422, f"{name} must be an ISO-8601 time such as 2026-11-28T09:00:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def occurred_at(event: RecordedEvent) -> datetime:
    """Returns when the event happened (its metadata's occurred_at, else when it was recorded)."""
    raw = event.metadata.get("occurred_at")
    if isinstance(raw, str):
        try:
            t = datetime.fromisoformat(raw)
            return t if t.tzinfo else t.replace(tzinfo=UTC)
        except ValueError:
            pass
    t = event.recorded_at
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def version_at(events: Sequence[RecordedEvent], at: datetime) -> int:
    """Returns the stream's version at time `at`: the last event that had occurred by then (0: none)."""
    version = 0
    for e in events:
        if occurred_at(e) > at:
            break
        version = e.version
    return version


def resolve_version(events: Sequence[RecordedEvent], text: str | None, default: int, name: str) -> int:
    """Returns the version a `from`/`to` parameter means: digits are a version, anything else a time.

    A version beyond the stream's last is the last; no value means `default`.
    """
    if text is None:
        return default
    latest = events[-1].version if events else 0
    if re.fullmatch(r"[0-9]{1,18}", text.strip()):
        return min(int(text.strip()), latest)
    return version_at(events, parse_time(text, name))


def _apply(state: UserState, event: RecordedEvent) -> UserState:
    pairs = [(event_from_data(event.type, event.data), event.metadata)]
    return User.replay(state.id, pairs, copy.deepcopy(state)).state


def replay(stream_id: str, events: Sequence[RecordedEvent], to_version: int) -> UserState:
    """Returns the state after the events up to `to_version`."""
    state = UserState(id=stream_id)
    for e in events:
        if e.version > to_version:
            break
        state = _apply(state, e)
    return state


def _fields(state: UserState) -> dict[str, Any]:
    values = {f: getattr(state, f) for f in TRACKED}
    values.update({f"extra.{k}": v for k, v in sorted(state.extra.items())})
    return values


def _ref(e: RecordedEvent) -> dict[str, Any]:
    return {"event_id": e.event_id, "type": e.type, "version": e.version, "position": e.position,
            "occurred_at": occurred_at(e).isoformat(), "actor": e.metadata.get("actor")}


def steps(stream_id: str, events: Sequence[RecordedEvent]) -> Iterator[tuple[RecordedEvent, UserState, UserState]]:
    """Yields (event, state before, state after) along the stream."""
    state = UserState(id=stream_id)
    for e in events:
        after = _apply(state, e)
        yield e, state, after
        state = after


def diff(stream_id: str, events: Sequence[RecordedEvent], from_version: int, to_version: int) -> dict[str, Any]:
    """Returns the fields touched between the two versions: before, after and the events that changed each."""
    if from_version > to_version:
        raise ApiError(422, f"from (version {from_version}) is after to (version {to_version})")
    before = after = UserState(id=stream_id)
    touched: dict[str, list[dict[str, Any]]] = {}
    for event, prev, nxt in steps(stream_id, events):
        if event.version > to_version:
            break
        if event.version <= from_version:
            before = after = nxt
            continue
        old, new = _fields(prev), _fields(nxt)
        for field in sorted(set(old) | set(new)):
            if old.get(field) != new.get(field):
                touched.setdefault(field, []).append(_ref(event))
        after = nxt
    end = _fields(after)
    start = _fields(before) if from_version > 0 else dict.fromkeys(end)  # no user yet: nothing to show
    changes = [{"field": f, "before": start.get(f), "after": end.get(f), "events": refs}
               for f, refs in touched.items()]
    return {"id": stream_id, "from_version": from_version, "to_version": to_version, "changes": changes}
