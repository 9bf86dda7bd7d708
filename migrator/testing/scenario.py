"""The comparison of a scenario's two paths: legacy CRUD (+ capture, relay, projections) and event-sourced.

Per key the scenario touched, the legacy row's state (through the mapping's normalizers) is the truth,
and each view must equal it: the replay of the relay's stream, the read model the relay's events
projected to, the replay of the commands' stream and the commands' read model. On any difference an
AssertionError carries a diff: the operations, then per key and view each differing field with both
values, and the events of both streams.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from es_app.store import EventStore

from ..verify.compare import differing_fields
from .operations import Operation
from .paths import CommandRefused

if TYPE_CHECKING:
    from .world import MigratorWorld

RELAY_REPLAY = "relay replay"
RELAY_READ_MODEL = "relay read model"
COMMANDS_REPLAY = "commands replay"
COMMANDS_READ_MODEL = "commands read model"


def compare(world: MigratorWorld, operations: Sequence[Operation]) -> None:
    """Runs `operations` through the legacy path and the event-sourced path, then compares every key they
    touched; raises AssertionError whose message is the field-level diff (or the command that was refused)."""
    for i, op in enumerate(operations, 1):
        world.legacy_path.apply(op)
        try:
            world.commands.apply(op)
        except CommandRefused as exc:
            raise AssertionError(_header(operations) + f"\noperation {i} {op}: the event-sourced path refused it "
                                 f"({exc}), the legacy path accepted it") from None
    world.catch_up()
    lines = [line for key in dict.fromkeys(op.key for op in operations) for line in _key_diff(world, key)]
    if lines:
        raise AssertionError("\n".join([_header(operations), *lines]))


def _header(operations: Sequence[Operation]) -> str:
    listed = [f"  {i}. {op}" for i, op in enumerate(operations, 1)]
    return "\n".join([f"the legacy path and the event-sourced path disagree after {len(operations)} operations:",
                      *listed])


def _views(world: MigratorWorld, stream_id: str) -> dict[str, dict[str, Any] | None]:
    m = world.mapping
    views = {RELAY_REPLAY: m.replay(world.es.store.read_stream(stream_id)),
             COMMANDS_REPLAY: m.replay(world.commands_es.store.read_stream(stream_id))}
    if world.read_model is not None:
        views[RELAY_READ_MODEL] = world.read_model(world.es.engine).states([stream_id]).get(stream_id)
        views[COMMANDS_READ_MODEL] = world.read_model(world.commands_es.engine).states([stream_id]).get(stream_id)
    return views


def _key_diff(world: MigratorWorld, key: Any) -> list[str]:
    m = world.mapping
    sid = m.stream_id(key)
    row = world.row(key)
    legacy = m.state_from_row(row) if row is not None else None
    found: list[str] = []
    for view, state in _views(world, sid).items():
        expected = legacy
        if world.read_model is not None and view in (RELAY_READ_MODEL, COMMANDS_READ_MODEL) and legacy is not None:
            expected = {f: legacy[f] for f in world.read_model(world.es.engine).fields}
        if state == expected:
            continue
        if expected is None:
            found.append(f"  {view}: has the key, but the legacy table has no row ({state})")
        elif state is None:
            found.append(f"  {view}: has no live state, but the legacy row is {expected}")
        else:
            found += [f"  {view}: field {f!r}: legacy {_get(expected, f)!r} != {_get(state, f)!r}"
                      for f in differing_fields(expected, state)]
    if not found:
        return []
    return [f"key {key!r} ({sid}):", *found, *_events("events (relay)", world.es.store, sid),
            *_events("events (commands)", world.commands_es.store, sid)]


def _get(state: dict[str, Any], field: str) -> Any:
    if field.startswith("extra."):
        return state.get("extra", {}).get(field[len("extra."):])
    return state.get(field)


def _events(title: str, store: EventStore, stream_id: str) -> list[str]:
    events = store.read_stream(stream_id)
    shown = [f"    {e.version}. {e.type} {_data(e.data)}" for e in events]
    return [f"  {title}:", *(shown or ["    (none)"])]


def _data(data: dict[str, Any]) -> dict[str, Any]:
    """The event's data without the import's whole-row copy (its fields are there already)."""
    return {k: v for k, v in data.items() if k != "row"}
