"""Unique claims of imported rows (a mapping's `unique` fields), taken in the import's transaction.

The backfill and the relay call these right after appending their events, on the same
connection, so events and claims commit together. A value another stream already holds
(dirty legacy data: two rows whose emails differ only by case) does not stop the import:
the row is imported without the claim and a data-quality finding names both keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from es_app.store import Claim, ClaimConflict, EventStore

from ..mapping import CompiledMapping
from .findings import Finding, duplicate_kind, record_findings


def take_claims(store: EventStore, conn: Connection, mapping: CompiledMapping,
                wanted: Iterable[tuple[str, Sequence[Claim]]]) -> int:
    """Takes the streams' claims (first asker wins, in order); returns the number of new findings."""
    conflicts = store.claim_in(conn, [(sid, claims) for sid, claims in wanted if claims])
    return record_findings(conn, [conflict_finding(mapping, c) for c in conflicts]) if conflicts else 0


def move_claims(store: EventStore, conn: Connection, mapping: CompiledMapping,
                desired: Mapping[str, Sequence[Claim]]) -> int:
    """Makes each stream hold exactly its `desired` claims (none: all released, as after a delete),
    releasing every stream's old ones before any new one is taken; returns the number of new findings."""
    if not desired:
        return 0
    store.release_in(conn, list(desired), keep={sid: claims for sid, claims in desired.items()})
    return take_claims(store, conn, mapping, desired.items())


def conflict_finding(mapping: CompiledMapping, conflict: ClaimConflict) -> Finding:
    """Returns the finding of a claim the row of `conflict.wanted_by` did not get."""
    field = mapping.field_of_scope(conflict.claim.scope)
    key, other = mapping.key_from_stream(conflict.wanted_by), mapping.key_from_stream(conflict.owner)
    detail = (f"{field} {conflict.claim.value!r} is held by stream {conflict.owner}; {conflict.wanted_by} "
              f"was imported without it (the event store refuses this {field} to anyone else)")
    return Finding(duplicate_kind(field), mapping.table, key, conflict.claim.value, detail, other)


def claims_by_stream(mapping: CompiledMapping,
                     rows: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, tuple[Claim, ...]], ...]:
    """Returns (stream id, claims) of each row that claims anything, in the rows' order."""
    if not mapping.unique:
        return ()
    out = []
    for row in rows:
        claims = mapping.claims_of(row)
        if claims:
            out.append((mapping.stream_id(mapping.key_of(row)), claims))
    return tuple(out)
