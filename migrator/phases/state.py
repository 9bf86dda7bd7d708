"""The migration's phases and its state, folded from the events of its stream (`migration-<name>`).

Pure: no database here. `fold(events)` replays the stream's recorded events (anything with
`version`, `type`, `data`, `metadata` and `recorded_at`, as `es_app.store.RecordedEvent`) into a
`MigrationState`; `events.py` builds the events that change it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

PHASES = ("legacy", "dual_write", "backfilled", "shadow_reads", "reads_switched", "writes_switched",
          "decommissioned")
LAST_REVERSIBLE = "writes_switched"  # every phase up to this one can roll back; `decommissioned` cannot

READ_MODES = ("legacy", "shadow", "new")
WRITE_MODES = ("legacy", "new")

# the reads and writes modes each phase puts in place on entry (advance or rollback)
PHASE_MODES: dict[str, tuple[str, str]] = {
    "legacy": ("legacy", "legacy"),
    "dual_write": ("legacy", "legacy"),
    "backfilled": ("legacy", "legacy"),
    "shadow_reads": ("shadow", "legacy"),
    "reads_switched": ("new", "legacy"),
    "writes_switched": ("new", "new"),
    "decommissioned": ("new", "new"),
}

# event types of the migration stream
PHASE_ADVANCED = "PhaseAdvanced"  # {from, to, forced}
PHASE_ROLLED_BACK = "PhaseRolledBack"  # {from, to}
GUARD_PASSED = "GuardPassed"  # {phase, name, detail}
GUARD_FAILED = "GuardFailed"  # {phase, name, detail}
# written by `migrator decommission` with its step to `decommissioned`: {archive, manifest_sha256, verify_run,
# tables: [{table, file, rows, sha256}]}
LEGACY_DECOMMISSIONED = "LegacyDecommissioned"
ADVANCE_FORCED = "AdvanceForced"  # {from, to, reason, unmet: [guard names]}
READS_MODE_CHANGED = "ReadsModeChanged"  # {mode, previous, percent (of users by key hash; absent = 100)}
WRITES_MODE_CHANGED = "WritesModeChanged"  # {mode, previous}
PAUSED = "MigrationPaused"  # {reason}
RESUMED = "MigrationResumed"  # {}
THROTTLED = "MigrationThrottled"  # {max_rate: rows or changes per second, None = no cap}
# written by the shadow-read recorder (migrator.shadow): {compared, mismatched, lagged, timeouts, errors, skipped}
# more shadow reads since the last such event of its process (the last four may be absent: 0)
SHADOW_READS_RECORDED = "ShadowReadsRecorded"


class Recorded(Protocol):
    """What the fold reads of a recorded event (es_app.store.RecordedEvent has it)."""

    @property
    def version(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    @property
    def recorded_at(self) -> datetime: ...


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    """One event of the migration stream, as `migrator status` lists it."""

    version: int
    type: str
    at: datetime
    actor: str
    data: dict[str, Any]

    def summary(self) -> str:
        """Returns one line saying what the event did."""
        d = self.data
        if self.type == PHASE_ADVANCED:
            return f"advanced {d['from']} → {d['to']}" + (" (forced)" if d.get("forced") else "")
        if self.type == PHASE_ROLLED_BACK:
            return f"rolled back {d['from']} → {d['to']}"
        if self.type in (GUARD_PASSED, GUARD_FAILED):
            verdict = "passed" if self.type == GUARD_PASSED else "failed"
            return f"guard {d['name']} of {d['phase']} {verdict}: {d['detail']}"
        if self.type == ADVANCE_FORCED:
            return f"forced {d['from']} → {d['to']} past {', '.join(d['unmet']) or 'no unmet guard'}: {d['reason']}"
        if self.type == LEGACY_DECOMMISSIONED:
            rows = sum(int(t["rows"]) for t in d["tables"])
            return f"legacy {', '.join(t['table'] for t in d['tables'])} archived to {d['archive']} ({rows:,} rows) " \
                   "and dropped"
        if self.type == READS_MODE_CHANGED:
            share = "" if float(d.get("percent", 100.0)) == 100.0 else f" for {float(d['percent']):g}% of users"
            return f"reads {d['previous']} → {d['mode']}{share}"
        if self.type == WRITES_MODE_CHANGED:
            return f"writes {d['previous']} → {d['mode']}"
        if self.type == PAUSED:
            return f"paused: {d['reason']}"
        if self.type == RESUMED:
            return "resumed"
        if self.type == THROTTLED:
            return "throttle off" if d.get("max_rate") is None else f"throttled to {d['max_rate']:g}/s"
        if self.type == SHADOW_READS_RECORDED:
            return f"shadow reads: {d['compared']} compared, {d['mismatched']} mismatched, {d.get('lagged', 0)} lagged"
        return self.type

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "type": self.type, "at": self.at.isoformat(timespec="seconds"),
                "actor": self.actor, "summary": self.summary()}


@dataclasses.dataclass
class MigrationState:
    """Returns the migration as its stream says now (version 0: nothing recorded, the `legacy` phase)."""

    name: str
    version: int = 0
    phase: str = PHASES[0]
    reads: str = "legacy"
    writes: str = "legacy"
    phase_since: datetime | None = None
    reads_since: datetime | None = None  # when reads became `new` (None while they are not)
    writes_since: datetime | None = None  # when writes became `new` (None while they are not)
    reads_percent: float = 100.0  # the share of users (by key hash) the reads mode applies to; the rest: legacy
    paused: bool = False
    pause_reason: str | None = None
    paused_by: str | None = None
    max_rate: float | None = None
    throttled_by: str | None = None
    shadow_compared: int = 0  # shadow reads recorded since the phase `shadow_reads` was last entered
    shadow_mismatched: int = 0
    shadow_lagged: int = 0  # compared reads whose difference was lag (not counted as mismatched)
    shadow_timeouts: int = 0
    shadow_errors: int = 0
    shadow_skipped: int = 0
    shadow_recorded: bool = False
    history: list[HistoryEntry] = dataclasses.field(default_factory=list)

    @property
    def next_phase(self) -> str | None:
        """Returns the phase after the current one (None in the last)."""
        i = PHASES.index(self.phase)
        return PHASES[i + 1] if i + 1 < len(PHASES) else None

    @property
    def previous_phase(self) -> str | None:
        i = PHASES.index(self.phase)
        return PHASES[i - 1] if i > 0 else None

    def pause_note(self) -> str | None:
        """Returns "<reason> (by <actor>)" while paused, None otherwise."""
        if not self.paused:
            return None
        return f"{self.pause_reason or 'paused'} (by {self.paused_by or 'unknown'})"

    def apply(self, e: Recorded) -> None:
        """Folds one recorded event in."""
        d, actor = e.data, str(e.metadata.get("actor") or "unknown")
        if e.type in (PHASE_ADVANCED, PHASE_ROLLED_BACK):
            self.phase, self.phase_since = d["to"], e.recorded_at
            if e.type == PHASE_ADVANCED and d["to"] == "shadow_reads":
                self.shadow_compared = self.shadow_mismatched = self.shadow_lagged = 0
                self.shadow_timeouts = self.shadow_errors = self.shadow_skipped = 0
                self.shadow_recorded = False
        elif e.type == READS_MODE_CHANGED:
            if d["mode"] != "new" or self.reads != "new":
                self.reads_since = e.recorded_at if d["mode"] == "new" else None
            self.reads = d["mode"]
            self.reads_percent = float(d.get("percent", 100.0))
        elif e.type == WRITES_MODE_CHANGED:
            if d["mode"] != "new" or self.writes != "new":
                self.writes_since = e.recorded_at if d["mode"] == "new" else None
            self.writes = d["mode"]
        elif e.type == PAUSED:
            self.paused, self.pause_reason, self.paused_by = True, d.get("reason"), actor
        elif e.type == RESUMED:
            self.paused, self.pause_reason, self.paused_by = False, None, None
        elif e.type == THROTTLED:
            rate = d.get("max_rate")
            self.max_rate = float(rate) if rate is not None else None
            self.throttled_by = actor if rate is not None else None
        elif e.type == SHADOW_READS_RECORDED:
            self.shadow_compared += int(d["compared"])
            self.shadow_mismatched += int(d["mismatched"])
            self.shadow_lagged += int(d.get("lagged", 0))
            self.shadow_timeouts += int(d.get("timeouts", 0))
            self.shadow_errors += int(d.get("errors", 0))
            self.shadow_skipped += int(d.get("skipped", 0))
            self.shadow_recorded = True
        self.version = e.version
        self.history.append(HistoryEntry(e.version, e.type, e.recorded_at, actor, dict(d)))


def fold(name: str, events: Iterable[Recorded]) -> MigrationState:
    """Returns the state after replaying the stream's events in version order."""
    state = MigrationState(name)
    for e in events:
        state.apply(e)
    return state
