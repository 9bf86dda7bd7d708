"""Unique claims of imported values and the findings (duplicates) recorded when a claim is taken."""

from .findings import (
    Finding,
    count_findings,
    duplicate_kind,
    findings_table_exists,
    list_findings,
    record_findings,
)
from .unique import (
    claims_by_stream,
    conflict_finding,
    move_claims,
    take_claims,
)

__all__ = [
    "Finding",
    "claims_by_stream",
    "conflict_finding",
    "count_findings",
    "duplicate_kind",
    "findings_table_exists",
    "list_findings",
    "move_claims",
    "record_findings",
    "take_claims",
]
