"""Unique claims taken and released in bulk, inside the caller's write transaction.

`append` takes one stream's claims row by row; importers (the migrator's backfill and relay)
take thousands per transaction: one INSERT ... ON CONFLICT DO NOTHING over all of them (the
dialect's `insert_ignore_many`: one executemany on SQLite, one JSON recordset on PostgreSQL).
When its row count says every claim went in (a first backfill) nothing else is read; otherwise
one look-up of the owners of all of them tells who holds what (re-runs, duplicates).
A value wanted twice goes to the first owner that asks (the order of `claims_by_owner`); every
other asker gets a conflict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, delete, select, tuple_

from es_app.dialect import dialect_for

from .schema import unique_claims as uc
from .types import Claim

_CHUNK = 300  # rows per statement: 3 parameters each stays below SQLite's variable limit


@dataclasses.dataclass(frozen=True)
class ClaimConflict:
    """Returns a claim `wanted_by` did not get because `owner` holds it."""

    claim: Claim
    wanted_by: str
    owner: str


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _owners(conn: Connection, claims: Sequence[Claim]) -> dict[Claim, str]:
    found: dict[Claim, str] = {}
    for chunk in _chunks(claims):
        where = tuple_(uc.c.scope, uc.c.value).in_([(c.scope, c.value) for c in chunk])
        found.update((Claim(s, v), o) for s, v, o in conn.execute(select(uc.c.scope, uc.c.value, uc.c.owner)
                                                                 .where(where)))
    return found


def claim_in(conn: Connection, claims_by_owner: Iterable[tuple[str, Iterable[Claim]]]) -> list[ClaimConflict]:
    """Takes the claims for their owners in the caller's transaction; returns those held by someone else.

    A claim its owner already holds is no conflict (a re-run is a no-op).
    """
    wanted: dict[Claim, str] = {}
    conflicts: list[ClaimConflict] = []
    for owner, claims in claims_by_owner:
        for claim in claims:
            first = wanted.setdefault(claim, owner)
            if first != owner:
                conflicts.append(ClaimConflict(claim, owner, first))
    if not wanted:
        return conflicts
    rows = [{"scope": c.scope, "value": c.value, "owner": o} for c, o in wanted.items()]
    # not an INSERT built with its values: SQLAlchemy compiles such a statement anew on every call
    if dialect_for(conn).insert_ignore_many(conn, uc, ["scope", "value"], rows, {}) == len(rows):
        return conflicts  # every claim went in; a value wanted twice went to its first asker
    holders = _owners(conn, list(wanted))
    taken = [ClaimConflict(c, o, holders[c]) for c, o in wanted.items() if holders.get(c, o) != o]
    later = [dataclasses.replace(c, owner=holders.get(c.claim, c.owner)) for c in conflicts]
    return taken + [c for c in later if c.owner != c.wanted_by]


def claims_of(conn: Connection, owners: Iterable[str]) -> dict[str, set[Claim]]:
    """Returns {owner: claims it holds} for the given owners (owners holding none are left out)."""
    found: dict[str, set[Claim]] = {}
    for chunk in _chunks(list(dict.fromkeys(owners)), 500):
        for s, v, o in conn.execute(select(uc.c.scope, uc.c.value, uc.c.owner).where(uc.c.owner.in_(chunk))):
            found.setdefault(o, set()).add(Claim(s, v))
    return found


def release_in(conn: Connection, owners: Iterable[str], keep: dict[str, Iterable[Claim]] | None = None) -> int:
    """Releases every claim the owners hold except those in `keep[owner]`; returns how many went."""
    keep = {o: set(cs) for o, cs in (keep or {}).items()}
    gone = [(o, c) for o, held in claims_of(conn, owners).items() for c in held if c not in keep.get(o, ())]
    for chunk in _chunks(gone):
        conn.execute(delete(uc).where(tuple_(uc.c.scope, uc.c.value, uc.c.owner).in_(
            [(c.scope, c.value, o) for o, c in chunk])))
    return len(gone)
