"""The events that correct a stream field by field, so that it replays to its legacy row's state.

A mapped field that differs gets the mapping's correction event (`correction_event_type`, data
`{field, value, reason}`); for USERS that is es_app's own `UserCorrected`, decided by the User
aggregate's `correct` command, as the API's corrections route does, so a value the domain refuses
is never written as a correction. An unmapped column that differs gets the generic column event
`{column, value}`. A mapping without a correction event corrects its fields with the column event
too (the reason in the metadata). When a field cannot be corrected so (the domain refuses the
value, the columns themselves differ), `None` tells the caller to restate the whole row instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from es_app.domain import DomainError, NothingToChange, User, UserCorrected, event_from_data
from es_app.store import NewEvent, RecordedEvent

from ..mapping import CompiledMapping

EXTRA = "extra"


def differing_fields(state: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Returns the fields whose values differ (`extra.<column>` for unmapped columns), in the state's order."""
    out = [f for f in expected if f != EXTRA and state.get(f) != expected.get(f)]
    extra, wanted = state.get(EXTRA) or {}, expected.get(EXTRA) or {}
    out += [f"{EXTRA}.{c}" for c in dict.fromkeys([*wanted, *extra]) if extra.get(c) != wanted.get(c)]
    return out


def correction_events(mapping: CompiledMapping, stream_id: str, recorded: Sequence[RecordedEvent],
                      state: Mapping[str, Any], expected: Mapping[str, Any], *, reason: str,
                      metadata: Mapping[str, Any], event_id: Callable[[int], str]) -> list[NewEvent] | None:
    """Returns one event per differing field (`event_id(i)` the id of the i-th), [] when none differs, or None
    when the stream cannot be corrected field by field (see the module)."""
    extra, wanted = state.get(EXTRA) or {}, expected.get(EXTRA) or {}
    if set(extra) != set(wanted):
        return None  # columns came or went: only the whole row says which
    fields = [f for f in differing_fields(state, expected) if not f.startswith(f"{EXTRA}.")]
    columns = [c for c in wanted if extra.get(c) != wanted.get(c)]
    meta = {**metadata, "reason": reason}
    found: list[tuple[str, dict[str, Any], int]] = []
    if fields and mapping.correction_event_type is not None:
        decided = _domain_corrections(mapping, mapping.correction_event_type, stream_id, recorded, expected, fields,
                                      reason)
        if decided is None:
            return None
        found += decided
    elif fields:
        by_field = {c.field: c.column for c in mapping.columns}
        found += [(mapping.column_event_type, {"column": by_field[f], "value": expected[f]}, 1) for f in fields]
    found += [(mapping.column_event_type, {"column": c, "value": wanted[c]}, 1) for c in columns]
    return [NewEvent(t, data, dict(meta), event_id=event_id(i), schema_version=v)
            for i, (t, data, v) in enumerate(found)]


def _domain_corrections(mapping: CompiledMapping, event_type: str, stream_id: str, recorded: Sequence[RecordedEvent],
                        expected: Mapping[str, Any], fields: list[str],
                        reason: str) -> list[tuple[str, dict[str, Any], int]] | None:
    """Returns (type, data, schema version) of the correction of each field, or None when one cannot be made."""
    if not (mapping.category == User.category and event_type == UserCorrected.__name__):
        return [(event_type, {"field": f, "value": expected[f], "reason": reason}, 1) for f in fields]
    try:
        user = User.replay(stream_id, [(event_from_data(e.type, e.data), e.metadata) for e in recorded])
        for field in fields:
            try:
                user.correct(field, expected[field], reason)
            except NothingToChange:
                continue
    except (DomainError, KeyError, TypeError, ValueError):
        return None  # the domain refuses the value (dirty legacy data) or cannot replay the stream
    events = user.pending
    if len(events) != len(fields) or any(isinstance(e, UserCorrected) and e.value != expected[e.field] for e in events):
        return None  # the domain sees no change, or would store another value: restate the row instead
    return [(e.type_name, e.to_data(), e.schema_version) for e in events]
