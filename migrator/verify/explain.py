"""Why a key differs: its last changelog row, its stream's last event, and one sentence an operator can act on."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .replay import Outcome, Views
from .report import (
    FIELD_DIFFERS,
    MISSING_IN_LEGACY,
    MISSING_IN_NEW,
    PENDING,
    REPLAY_DIFFERS,
    Explain,
    Mismatch,
)

_OPS = {"I": "insert", "U": "update", "D": "delete"}
MIGRATION_SOURCES = ("relay", "backfill", "resync")  # events that carry legacy writes over


def mismatches(views: Views, outcomes: Sequence[Outcome], *, pending: bool) -> list[Mismatch]:
    """Returns the outcomes as mismatches with their explanation (`pending`: they are still in flight)."""
    changes = views.last_changes([o.key for o in outcomes])
    out = []
    for o in outcomes:
        change = changes.get(str(o.key))
        changelog = None if change is None else {"id": change[0], "op": _OPS.get(change[1], change[1]),
                                                 "at": _iso(change[2]), "origin": change[3]}
        e = o.last_event
        event = None if e is None else {"type": e.type, "position": e.position, "version": e.version,
                                        "source": e.metadata.get("source"), "at": _iso(e.recorded_at)}
        kind = PENDING if pending else o.kind
        out.append(Mismatch(views.mapping.table, o.key, o.stream_id, kind, dict(o.fields),
                            Explain(changelog, event, dict(o.pending) if pending and o.pending else None,
                                    summary(o, kind, changelog, event))))
    return out


def summary(o: Outcome, kind: str, changelog: dict[str, Any] | None, event: dict[str, Any] | None) -> str:
    """Returns one sentence saying what most likely made the key differ."""
    source = event["source"] if event else None
    if kind == PENDING:
        p = o.pending or {}
        parts = []
        if p.get("changelog_id") is not None:
            parts.append(f"changelog row {p['changelog_id']} is not relayed yet")
        at = p.get("read_model_position")
        if event is not None and at is not None and event["position"] > at:
            parts.append(f"event {event['position']} is not projected yet (read model at {at})")
        return "still in flight: " + ("; ".join(parts) or "the key was written while it was compared")
    if kind == MISSING_IN_NEW:
        if event is None:
            return ("the legacy row has no stream: the backfill has not imported it, its import was parked, "
                    "or it was inserted with capture off")
        return (f"the stream was deleted ({event['type']}, source {source}) but the legacy row exists: "
                "a delete made on the new side only, or a legacy insert that bypassed capture")
    if kind == MISSING_IN_LEGACY:
        if changelog is not None and changelog["op"] == "delete":
            return f"the legacy delete (changelog row {changelog['id']}) never reached the stream: a relay bug"
        return "the stream is live but the legacy row is gone: a delete that bypassed capture"
    if kind == FIELD_DIFFERS:
        if source is not None and source not in MIGRATION_SOURCES:
            return (f"the stream's last event ({event['type'] if event else '?'}, source {source}) changed it "
                    "on the new side only: the legacy row never saw that write")
        return ("the stream and the read model agree with each other but not with the legacy row: "
                "a write that bypassed capture, or a relay bug")
    if kind == REPLAY_DIFFERS:
        return ("the read model disagrees with the replay of its stream: a projection bug "
                "(a rebuild of the key's read-model row repairs it)")
    return kind


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.isoformat(timespec="microseconds")
    return str(value)
