"""The A/A run: shadow reads of legacy against legacy, through the same sampling, background pool, timeout and
judge as the real ones, to measure the noise floor — the mismatches, lag, timeouts and skips the harness
itself produces (e.g. writes landing between the two reads) — before trusting the A/B rate."""

from __future__ import annotations

import dataclasses
import random
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from legacy_app.db import Database
from legacy_app.models import User
from legacy_app.reads import LegacyTableReads

from ..mapping import CompiledMapping
from .judge import ReadJudge
from .lab import Lab
from .metrics import ReadMetrics
from .mismatches import Mismatch
from .reads import ShadowReads

MAX_KEYS = 100_000  # the legacy keys read from (the lowest ones)
SEARCH_EVERY = 10  # one read in this many is a search (a page of users)


@dataclasses.dataclass(frozen=True)
class AaResult:
    """Returns what an A/A run saw: reads made, shadow outcomes, and the differences found."""

    reads: int
    counts: dict[str, int]
    differences: tuple[Mismatch, ...]

    @property
    def mismatch_rate(self) -> float | None:
        """Returns mismatched / compared: the noise floor of the mismatch rate (None: nothing compared)."""
        compared = self.counts["compared"]
        return self.counts["mismatched"] / compared if compared else None

    def to_dict(self) -> dict[str, object]:
        return {"reads": self.reads, **self.counts, "mismatch_rate": self.mismatch_rate,
                "differences": [d.to_dict() for d in self.differences]}


def run_aa(database: Database, mapping: CompiledMapping, *, reads: int, threads: int = 4, percent: float = 100.0,
           pool: int = 4, queue: int = 64, timeout_s: float = 0.1, seed: int | None = None) -> AaResult:
    """Returns the outcome of `reads` legacy reads (gets of random existing users, one in SEARCH_EVERY a
    search), made by `threads` threads and shadowed by a second legacy read for `percent` of the users."""
    with database.read_session() as session:
        keys = list(session.scalars(select(User.id).order_by(User.id).limit(MAX_KEYS)))
    metrics = ReadMetrics()
    found: list[Mismatch] = []
    legacy, twin = LegacyTableReads(database), LegacyTableReads(database)
    lab = Lab(metrics, pool=pool, queue=queue, timeout_s=timeout_s)
    judge = ReadJudge(f"{mapping.table}:aa", mapping, legacy, twin, freshness=None, record=found.append)
    shadow = ShadowReads(legacy, twin, lab, judge, percent)
    rng = random.Random(seed)
    plan = [(rng.choice(keys) if keys else 1, i % SEARCH_EVERY == SEARCH_EVERY - 1) for i in range(reads)]

    def one(step: tuple[int, bool]) -> None:
        key, search = step
        if search:
            shadow.search(None, limit=20, offset=key % max(len(keys), 1))
        else:
            shadow.get(key)

    try:
        with ThreadPoolExecutor(max_workers=threads) as workers:
            list(workers.map(one, plan))
    finally:
        lab.close()
    return AaResult(reads, metrics.totals(), tuple(found))
