"""Comparing a legacy read with its candidate through the mapping, as verify compares a row with the read model.

A record (`legacy_app.reads.UserRecord`: the legacy table's columns) becomes the mapping's comparable
state (`CompiledMapping.state_from_row`: normalized fields plus unmapped columns; timestamps are not
compared), and `migrator.verify.compare.differing_fields` names the fields that differ. A page
differs in `total`, in `ids` (which users, in which order) or in `<id>.<field>` of a user on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from legacy_app.reads import Page, UserRecord

from ..mapping import CompiledMapping
from ..verify.compare import differing_fields


def record_row(record: UserRecord | None) -> dict[str, Any] | None:
    """Returns the record as a legacy row {column: value} (None stays None)."""
    return None if record is None else dataclasses.asdict(record)


def record_state(mapping: CompiledMapping, record: UserRecord | None) -> dict[str, Any] | None:
    """Returns the record's comparable state through the mapping (None: no user)."""
    row = record_row(record)
    return None if row is None else mapping.state_from_row(row)


def record_differences(mapping: CompiledMapping, legacy: UserRecord | None,
                       candidate: UserRecord | None) -> list[str]:
    """Returns the fields in which the two reads of one user differ (all of them when one is missing)."""
    return differing_fields(record_state(mapping, legacy), record_state(mapping, candidate))


def page_differences(mapping: CompiledMapping, legacy: Page, candidate: Page) -> list[str]:
    """Returns how two pages of one search differ: `total`, `ids`, or `<id>.<field>` per user on both."""
    out = ["total"] if legacy.total != candidate.total else []
    if [r.id for r in legacy.items] != [r.id for r in candidate.items]:
        return [*out, "ids"]
    for a, b in zip(legacy.items, candidate.items, strict=True):
        out += [f"{a.id}.{f}" for f in record_differences(mapping, a, b)]
    return out


def page_data(page: Page) -> dict[str, Any]:
    """Returns a page as JSON-able data (what a mismatch stores)."""
    return {"total": page.total, "limit": page.limit, "offset": page.offset,
            "items": [record_row(r) for r in page.items]}
