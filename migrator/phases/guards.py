"""The guards of each phase: small checks over `Facts` (figures read from the databases at one moment).

Each guard returns a `GuardResult` {name, ok, detail}; `guards_for(phase, ...)` lists those a step
into `phase` must pass. The guards are pure: `migrator.phases.facts` gathers what they read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .state import MigrationState


@dataclasses.dataclass(frozen=True)
class GuardResult:
    """Returns one guard's verdict: its name, whether it is met, and what it saw (one line)."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The guards' limits (settings: VERIFY_MAX_AGE_S, SHADOW_MAX_MISMATCH_RATE, SHADOW_MIN_COMPARED,
    READS_SWITCHED_MIN_S, RELAY_MAX_IDLE_S, WRITES_SWITCHED_MIN_S; see docs/runbook.md, docs/decommission.md)."""

    verify_max_age_s: float = 3600.0
    shadow_max_mismatch_rate: float = 0.001
    shadow_min_compared: int = 1000
    reads_switched_min_s: float = 3600.0
    relay_max_idle_s: float = 60.0
    writes_switched_min_s: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Any) -> Thresholds:
        return cls(verify_max_age_s=settings.verify_max_age_s,
                   shadow_max_mismatch_rate=settings.shadow_max_mismatch_rate,
                   shadow_min_compared=settings.shadow_min_compared,
                   reads_switched_min_s=settings.reads_switched_min_s,
                   relay_max_idle_s=settings.relay_max_idle_s,
                   writes_switched_min_s=settings.writes_switched_min_s)


@dataclasses.dataclass(frozen=True)
class RelayFacts:
    """One table's relay: whether it ever ran (its offset exists), where, when it last moved, what waits."""

    ran: bool
    position: int
    moved_at: datetime | None
    backlog: int | None  # None: no changelog to read


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the guards read, gathered at `now` (see migrator.phases.facts.gather)."""

    now: datetime
    tables: tuple[str, ...]
    changelog: bool
    triggers: dict[str, bool]  # table -> capture triggers installed
    relay: dict[str, RelayFacts]
    backfill: dict[str, str]  # table -> the stored run's status ("never" when none ran)
    verify: dict[str, Any] | None  # the newest clean verify run's document covering the tables (None: none)
    shadow: tuple[int, int] | None  # (compared, mismatched) since shadow reads began; None: none recorded
    full_verify: dict[str, Any] | None = None  # the newest `--full` verify run covering the tables, clean or not
    lag: int | None = None  # events the most-behind projection lags the feed's head (None: not read)

    @property
    def backlog(self) -> int | None:
        """Returns the relay backlog over the tables, None when there is no changelog."""
        counts = [r.backlog for r in self.relay.values()]
        return None if not self.changelog or any(c is None for c in counts) else sum(c or 0 for c in counts)


def _age_s(facts: Facts, at: datetime | None) -> float | None:
    return None if at is None else (facts.now - at).total_seconds()


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


# -- dual_write ---------------------------------------------------------------
def capture_installed(facts: Facts, state: MigrationState, limits: Thresholds) -> GuardResult:
    """Capture's changelog exists and every mapped table has its triggers."""
    if not facts.changelog:
        return GuardResult("capture_installed", False, "no changelog: run `migrator capture install`")
    missing = [t for t in facts.tables if not facts.triggers.get(t)]
    if missing:
        return GuardResult("capture_installed", False, f"no capture triggers on {', '.join(missing)}: "
                                                       "run `migrator capture install`")
    return GuardResult("capture_installed", True, f"changelog and triggers on {', '.join(facts.tables)}")


def relay_running(facts: Facts, state: MigrationState, limits: Thresholds) -> GuardResult:
    """The relay has run on every table, its backlog is readable, and it is not standing still behind changes
    (a backlog with an offset unmoved for more than RELAY_MAX_IDLE_S)."""
    problems, seen = [], []
    for t in facts.tables:
        r = facts.relay.get(t)
        if r is None or not r.ran:
            problems.append(f"the relay has not run on {t} (start `migrator relay --follow`)")
            continue
        if r.backlog is None:
            problems.append(f"the backlog of {t} cannot be read (no changelog)")
            continue
        idle = _age_s(facts, r.moved_at)
        if r.backlog and (idle is None or idle > limits.relay_max_idle_s):
            shown = "never" if idle is None else f"for {idle:,.0f}s"
            problems.append(f"{t}: {r.backlog:,} changes wait and the relay's offset has not moved {shown} "
                            f"(limit {limits.relay_max_idle_s:g}s)")
            continue
        seen.append(f"{t} at offset {r.position}, backlog {r.backlog:,}")
    if problems:
        return GuardResult("relay_running", False, "; ".join(problems))
    return GuardResult("relay_running", True, "; ".join(seen))


# -- backfilled -----------------------------------------------------------------
def backfill_finished(facts: Facts, state: MigrationState, limits: Thresholds) -> GuardResult:
    """Every mapped table has a finished backfill run."""
    unfinished = [f"{t} ({facts.backfill.get(t, 'never')})" for t in facts.tables if facts.backfill.get(t) != "done"]
    if unfinished:
        return GuardResult("backfill_finished", False, f"no finished backfill of {', '.join(unfinished)}: "
                                                       "run `migrator backfill`")
    return GuardResult("backfill_finished", True, f"finished on {', '.join(facts.tables)}")


def relay_backlog_empty(facts: Facts, state: MigrationState, limits: Thresholds) -> GuardResult:
    """No captured change waits for the relay."""
    backlog = facts.backlog
    if backlog is None:
        return GuardResult("relay_backlog_empty", False, "no changelog: the backlog cannot be read")
    if backlog:
        return GuardResult("relay_backlog_empty", False, f"{backlog:,} changes wait for the relay")
    return GuardResult("relay_backlog_empty", True, "no change waits for the relay")


# -- shadow_reads, reads_switched -----------------------------------------------------
def verify_clean_recent(facts: Facts, state: MigrationState, limits: Thresholds) -> GuardResult:
    """The newest clean verify covering the tables finished at most VERIFY_MAX_AGE_S ago."""
    doc = facts.verify
    if doc is None:
        return GuardResult("verify_clean_recent", False, "no clean verify run: run `migrator verify`")
    finished = _when(doc.get("finished_at"))
    age = _age_s(facts, finished)
    run = f"verify run {doc.get('id', '?')}"
    if age is None:
        return GuardResult("verify_clean_recent", False, f"{run} has no finish time")
    if age > limits.verify_max_age_s:
        return GuardResult("verify_clean_recent", False,
                           f"the latest clean {run} is {age:,.0f}s old (at most {limits.verify_max_age_s:g}s): "
                           "run `migrator verify`")
    return GuardResult("verify_clean_recent", True, f"{run} clean, {max(age, 0):,.0f}s old")


def shadow_mismatch_rate(facts: Facts, state: MigrationState, limits: Thresholds) -> GuardResult:
    """At least SHADOW_MIN_COMPARED shadow reads compared, at most SHADOW_MAX_MISMATCH_RATE of them mismatched."""
    if facts.shadow is None:
        return GuardResult("shadow_mismatch_rate", False, "no shadow reads recorded yet")
    compared, mismatched = facts.shadow
    if compared < limits.shadow_min_compared:
        return GuardResult("shadow_mismatch_rate", False, f"{compared:,} shadow reads compared "
                                                          f"(at least {limits.shadow_min_compared:,} needed)")
    rate = mismatched / compared
    verdict = f"{mismatched:,} of {compared:,} shadow reads mismatched ({rate:.4%}, at most " \
              f"{limits.shadow_max_mismatch_rate:.4%})"
    return GuardResult("shadow_mismatch_rate", rate <= limits.shadow_max_mismatch_rate, verdict)


# -- writes_switched, decommissioned ----------------------------------------------------
def reads_switched_long_enough(facts: Facts, state: MigrationState, limits: Thresholds) -> GuardResult:
    """Reads have been served by the new system for at least READS_SWITCHED_MIN_S."""
    if state.reads != "new":
        return GuardResult("reads_switched_for", False, f"reads are in {state.reads} mode, not new")
    age = _age_s(facts, state.reads_since) or 0.0  # None: switched in this very advance
    return GuardResult("reads_switched_for", age >= limits.reads_switched_min_s,
                       f"reads switched {age:,.0f}s ago (at least {limits.reads_switched_min_s:g}s)")


def full_verify_clean_recent(facts: Facts, state: MigrationState, limits: Thresholds) -> GuardResult:
    """The newest `--full` verify covering the tables is clean and finished at most VERIFY_MAX_AGE_S ago
    (a sampled verify does not count; a newer dirty full verify makes it unmet)."""
    name, doc = "full_verify_clean_recent", facts.full_verify
    if doc is None:
        return GuardResult(name, False, "no --full verify run: run `migrator verify --full`")
    run = f"--full verify run {doc.get('id', '?')}"
    if not doc.get("clean"):
        return GuardResult(name, False, f"the latest {run} is not clean: repair, then run `migrator verify --full`")
    age = _age_s(facts, _when(doc.get("finished_at")))
    if age is None:
        return GuardResult(name, False, f"{run} has no finish time")
    if age > limits.verify_max_age_s:
        return GuardResult(name, False, f"the latest {run} is {age:,.0f}s old (at most {limits.verify_max_age_s:g}s): "
                                        "run `migrator verify --full`")
    return GuardResult(name, True, f"{run} clean, {max(age, 0):,.0f}s old")


def projections_caught_up(facts: Facts, state: MigrationState, limits: Thresholds) -> GuardResult:
    """Every projection checkpoint is at the feed's head (lag 0)."""
    if facts.lag is None:
        return GuardResult("projections_caught_up", False, "the projection lag was not read")
    if facts.lag:
        return GuardResult("projections_caught_up", False, f"the projections lag {facts.lag:,} events behind the "
                                                           "feed: run `migrator projections run` or start a worker")
    return GuardResult("projections_caught_up", True, "every projection is at the feed's head")


def writes_switched_long_enough(facts: Facts, state: MigrationState, limits: Thresholds) -> GuardResult:
    """Reads and writes have both been `new` for at least WRITES_SWITCHED_MIN_S (writes switch after reads)."""
    name = "writes_switched_for"
    if state.reads != "new" or state.writes != "new" or state.reads_percent != 100.0:
        share = "" if state.reads_percent == 100.0 else f" for {state.reads_percent:g}% of users"
        return GuardResult(name, False, f"reads are {state.reads}{share}, writes {state.writes}: both must be new")
    since = max((t for t in (state.reads_since, state.writes_since) if t is not None), default=None)
    age = max(_age_s(facts, since) or 0.0, 0.0)  # None: switched in this very advance
    return GuardResult(name, age >= limits.writes_switched_min_s,
                       f"reads and writes new for {age:,.0f}s (at least {limits.writes_switched_min_s:g}s)")


Guard = Callable[[Facts, MigrationState, Thresholds], GuardResult]

GUARDS: dict[str, tuple[Guard, ...]] = {
    "legacy": (),
    "dual_write": (capture_installed, relay_running),
    "backfilled": (backfill_finished, relay_backlog_empty),
    "shadow_reads": (verify_clean_recent,),
    "reads_switched": (verify_clean_recent, shadow_mismatch_rate),
    "writes_switched": (reads_switched_long_enough,),
    "decommissioned": (full_verify_clean_recent, relay_backlog_empty, projections_caught_up,
                       writes_switched_long_enough),
}


def guards_for(phase: str, facts: Facts, state: MigrationState, limits: Thresholds) -> list[GuardResult]:
    """Returns the verdicts of the guards a step into `phase` must pass."""
    return [guard(facts, state, limits) for guard in GUARDS[phase]]
