"""A user (any mapped row) three ways — legacy row, read-model row, replayed state — and its event timeline with
the state replayed at every version."""

from __future__ import annotations

import json
from typing import Any

from migrator.mapping import CompiledMapping
from migrator.verify.compare import differing_fields, legacy_rows, users_read_model
from migrator.verify.readmodel import read_model_for

from .source import Source


class BadKey(ValueError):
    """The key is not one of the mapped table's keys (wrong type)."""


class NoSuchKey(LookupError):
    """Neither a legacy row nor a stream has this key."""


def parse_key(mapping: CompiledMapping, text: str) -> Any:
    """Returns `text` as the table's key (coerced like the legacy column); BadKey when it cannot be one."""
    try:
        key = mapping.key_of({mapping.key: text.strip()})
    except (ValueError, TypeError, ArithmeticError):
        key = None
    integer = mapping.binding.coerce.get(mapping.key) == "int"
    if key is None or not text.strip() or (integer and not (isinstance(key, int) and abs(key) < 2 ** 63)):
        raise BadKey(f"{text!r} is not a key of {mapping.table} (its key column is {mapping.key})")
    return key


def _fields(*states: dict[str, Any] | None) -> list[str]:
    return list(dict.fromkeys(f for s in states if s for f in s))


def side_by_side(source: Source, mapping: CompiledMapping, key: Any) -> dict[str, Any]:
    """Returns the legacy row's state, the read-model row, the replayed state and the fields that differ from the
    legacy row (per view); NoSuchKey when neither a row nor a stream exists."""
    row = legacy_rows(source.legacy, mapping, [key]).get(key)
    sid = mapping.stream_id(key)
    events = source.es.store.read_stream(sid)
    if row is None and not events:
        raise NoSuchKey(f"{mapping.table} has no row and the event store no stream for key {key!r} ({sid})")
    legacy = mapping.state_from_row(row) if row is not None else None
    replayed = mapping.replay(events)
    model = read_model_for(mapping)
    view = users_read_model(source.es.engine).states([sid]).get(sid) if model is not None else None
    wanted_view = None if legacy is None or model is None else {f: legacy.get(f) for f in model.fields}
    return {
        "table": mapping.table, "key": key, "stream_id": sid, "version": len(events),
        "fields": _fields(legacy, replayed, view),
        "legacy": legacy, "read_model": view, "replayed": replayed, "has_read_model": model is not None,
        "differ": {"replayed": differing_fields(legacy, replayed) if legacy != replayed else [],
                   "read_model": differing_fields(wanted_view, view)
                   if model is not None and wanted_view != view else []},
    }


def highlighted(differ: list[str]) -> set[str]:
    """Returns the state's top-level fields to highlight for differing fields (`extra.<column>` → `extra`)."""
    return {f.split(".", 1)[0] for f in differ}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def timeline(source: Source, mapping: CompiledMapping, key: Any) -> dict[str, Any]:
    """Returns the stream's events (version, type, when, actor, data) and the state after each version (version 0:
    before the first event); NoSuchKey when the stream has no event."""
    sid = mapping.stream_id(key)
    events = source.es.store.read_stream(sid)
    if not events:
        raise NoSuchKey(f"the event store has no stream {sid} (key {key!r} of {mapping.table})")
    states: list[dict[str, Any] | None] = [None]
    for i in range(1, len(events) + 1):
        states.append(mapping.replay(events[:i]))
    return {
        "table": mapping.table, "key": key, "stream_id": sid,
        "events": [{"version": e.version, "type": e.type, "at": e.recorded_at.isoformat(timespec="seconds"),
                    "actor": e.metadata.get("actor"), "source": e.metadata.get("source"),
                    "data": _jsonable(e.data)} for e in events],
        "states": _jsonable(states),
        "fields": _fields(*states),
    }
