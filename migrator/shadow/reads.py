"""`ShadowReads`: the legacy app's reads in `shadow` mode — legacy serves every read; for the sampled share
of users (by key hash) the candidate reads too, in the background (`Lab`), and `ReadJudge` compares."""

from __future__ import annotations

from legacy_app.reads import Page, ReadMode, UserReads, UserRecord

from .judge import ReadJudge
from .lab import Lab, served
from .sampling import sampled


class ShadowReads:
    """Returns legacy's reads, shadowed for `percent` of the users (searches: by a hash of the query)."""

    mode = ReadMode.SHADOW

    def __init__(self, legacy: UserReads, candidate: UserReads, lab: Lab, judge: ReadJudge, percent: float = 100.0):
        self.legacy, self.candidate, self.lab, self.judge, self.percent = legacy, candidate, lab, judge, percent

    def get(self, user_id: int) -> UserRecord | None:
        """Returns the legacy read of the user."""
        trial = None
        if sampled(user_id, self.percent):
            trial = self.lab.start(lambda: self.candidate.get(user_id),
                                   lambda a, b: self.judge.get(user_id, a, b))
        return served(trial, lambda: self.legacy.get(user_id))

    def search(self, query: str | None = None, *, limit: int = 50, offset: int = 0) -> Page:
        """Returns the legacy page of the search."""
        trial = None
        if sampled(search_key(query, limit, offset), self.percent):
            trial = self.lab.start(lambda: self.candidate.search(query, limit=limit, offset=offset),
                                   lambda a, b: self.judge.search(query, limit, offset, a, b))
        return served(trial, lambda: self.legacy.search(query, limit=limit, offset=offset))


def search_key(query: str | None, limit: int, offset: int) -> str:
    """Returns what a search is sampled (and routed) by: its query, limit and offset."""
    return f"search\x00{query or ''}\x00{limit}\x00{offset}"
