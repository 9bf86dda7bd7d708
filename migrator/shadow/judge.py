"""Judging one shadowed read: equal, a real mismatch, or lag — and recording every difference.

Two reads that differ through the mapping are lag when the new side is behind for the key (or, for a
search, the table: see `Freshness`) at the moment they are judged. When it is not behind, both sides
are read once more: a difference that is gone once the new side has caught up is lag as well (it was
behind, or legacy changed, between the two reads). One that stays is lag if the new side is behind
again by then (legacy changed after the look: traffic on the key), and is read again, up to RECHECKS
times; a difference that stays each time while the new side is not behind is a `mismatch`. Either way
the difference is recorded with the first pair of values.
"""

from __future__ import annotations

from collections.abc import Callable

from legacy_app.reads import Page, UserReads, UserRecord

from ..mapping import CompiledMapping
from .compare import page_data, page_differences, record_differences, record_row
from .freshness import Freshness
from .mismatches import LAG, MISMATCH, Mismatch

Recorder = Callable[[Mismatch], None]
RECHECKS = 3  # fresh pairs of reads before a difference that stays, the new side not behind, is a mismatch


def _explained_by_lag(differs_again: Callable[[], bool], behind_now: Callable[[], bool]) -> bool:
    """Returns True when a fresh pair of reads agrees, or still differs while the new side is behind."""
    return any(not differs_again() or behind_now() for _ in range(RECHECKS))


class ReadJudge:
    """Returns judgements of reads of one mapped table: the mapping compares, `freshness` (None: an A/A run,
    no new side) tells lag, `record` keeps each difference."""

    def __init__(self, migration: str, mapping: CompiledMapping, legacy: UserReads, candidate: UserReads, *,
                 freshness: Freshness | None, record: Recorder | None):
        self.migration, self.mapping, self.freshness, self.record = migration, mapping, freshness, record
        self.legacy, self.candidate = legacy, candidate

    def get(self, user_id: int, legacy: UserRecord | None, candidate: UserRecord | None) -> str | None:
        """Returns None when the reads of one user agree, else LAG or MISMATCH (recorded)."""
        if legacy == candidate:
            return None
        fields = record_differences(self.mapping, legacy, candidate)
        if not fields:
            return None
        lag = self.freshness.key(user_id) if self.freshness is not None else None
        behind = lag is not None and lag.behind
        if not behind:
            freshness = self.freshness
            behind = _explained_by_lag(
                lambda: bool(record_differences(self.mapping, self.legacy.get(user_id), self.candidate.get(user_id))),
                lambda: freshness is not None and freshness.key(user_id).behind)
        kind = LAG if behind else MISMATCH
        self._keep(Mismatch(self.migration, self.mapping.table, str(user_id), kind, tuple(fields),
                            record_row(legacy), record_row(candidate), lag.position if lag else None,
                            lag.changelog_id if lag else None))
        return kind

    def search(self, query: str | None, limit: int, offset: int, legacy: Page, candidate: Page) -> str | None:
        """Returns None when two pages of one search agree, else LAG or MISMATCH (recorded)."""
        if legacy == candidate:
            return None
        fields = page_differences(self.mapping, legacy, candidate)
        if not fields:
            return None
        lag = self.freshness.feed() if self.freshness is not None else None
        behind = lag is not None and lag.behind
        if not behind:
            freshness = self.freshness
            behind = _explained_by_lag(
                lambda: bool(page_differences(self.mapping, self.legacy.search(query, limit=limit, offset=offset),
                                              self.candidate.search(query, limit=limit, offset=offset))),
                lambda: freshness is not None and freshness.feed().behind)
        kind = LAG if behind else MISMATCH
        key = f"search?q={query or ''}&limit={limit}&offset={offset}"
        self._keep(Mismatch(self.migration, self.mapping.table, key, kind, tuple(fields), page_data(legacy),
                            page_data(candidate), lag.checkpoint if lag else None, lag.relayed_to if lag else None))
        return kind

    def _keep(self, found: Mismatch) -> None:
        if self.record is not None:
            self.record(found)
