"""The phase machine: reading the migration's stream and recording its changes, with optimistic concurrency.

Every change is one append to `migration-<name>` at the version the caller's state was folded
from: two operators acting on the same state cannot both succeed (the second gets
`MigrationChanged`). `advance` records the guards it checked (passed and failed), the force
and its reason, the phase step and the reads/writes modes the new phase puts in place; a
refused advance still records its failed guards, so the history shows the attempt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from es_app.store import ConcurrencyError, EventStore, NewEvent

from .guards import GuardResult
from .state import (
    ADVANCE_FORCED,
    GUARD_FAILED,
    GUARD_PASSED,
    LAST_REVERSIBLE,
    LEGACY_DECOMMISSIONED,
    PAUSED,
    PHASE_ADVANCED,
    PHASE_MODES,
    PHASE_ROLLED_BACK,
    PHASES,
    READS_MODE_CHANGED,
    RESUMED,
    SHADOW_READS_RECORDED,
    THROTTLED,
    WRITES_MODE_CHANGED,
    MigrationState,
    fold,
)

DEFAULT_NAME = "users"
COUNTS_ONLY = frozenset({SHADOW_READS_RECORDED})  # events that record figures, not decisions
COUNTS_RETRIES = 20
DECOMMISSIONED = PHASES[-1]  # reached only through `decommission`, never `advance`
SOURCE = "migrator"


class PhaseError(Exception):
    """A change the machine refuses; the message is one line the operator can act on."""


class MigrationChanged(PhaseError):
    """Someone else changed the migration since its state was read."""


class GuardsUnmet(PhaseError):
    """A step's guards are not all met (and no --force)."""

    def __init__(self, phase: str, unmet: Sequence[GuardResult]):
        super().__init__(f"cannot advance to {phase}: {len(unmet)} guard(s) unmet")
        self.phase, self.unmet = phase, list(unmet)


class DecommissionByCommand(PhaseError):
    """`decommissioned` is not reached by `advance`: `migrator decommission` archives the legacy table first."""

    def __init__(self, name: str):
        super().__init__(f"the migration {name} reaches {DECOMMISSIONED} only through `migrator decommission "
                         "--archive DIR` (it archives the legacy table before dropping it); see `migrator plan`")


def stream_id(name: str) -> str:
    """Returns the id of the migration's stream."""
    return f"migration-{name}"


def load(store: EventStore, name: str = DEFAULT_NAME) -> MigrationState:
    """Returns the migration's state folded from its stream (the `legacy` phase when it has no events)."""
    return fold(name, store.read_stream(stream_id(name)))


def record(store: EventStore, state: MigrationState, events: Sequence[tuple[str, dict[str, Any]]],
           actor: str) -> MigrationState:
    """Returns the state after appending `events` (type, data) with `actor` at the version `state` was folded
    from; MigrationChanged when a decision was recorded meanwhile (counts flushed meanwhile do not conflict)."""
    meta = {"actor": actor, "source": SOURCE}
    sid, expected = stream_id(state.name), state.version
    for _ in range(COUNTS_RETRIES):
        try:
            store.append(sid, [NewEvent(t, data, dict(meta)) for t, data in events], expected)
            return load(store, state.name)
        except ConcurrencyError as exc:
            # shadow-read counts flushed meanwhile by running legacy apps decide nothing: append after them
            later = store.read_stream(sid, from_version=expected + 1)
            if not later or any(e.type not in COUNTS_ONLY for e in later):
                raise MigrationChanged(f"the migration {state.name} changed meanwhile (version {state.version}, "
                                       f"now {exc.actual}): see `migrator status` and try again") from None
            expected = later[-1].version
    raise MigrationChanged(f"the migration {state.name} keeps changing (version {state.version}, now {expected}): "
                           "see `migrator status` and try again")


def _mode_events(state: MigrationState, phase: str) -> list[tuple[str, dict[str, Any]]]:
    reads, writes = PHASE_MODES[phase]
    out: list[tuple[str, dict[str, Any]]] = []
    if state.reads != reads or state.reads_percent != 100.0:
        out.append((READS_MODE_CHANGED, {"mode": reads, "previous": state.reads, "percent": 100.0}))
    if state.writes != writes:
        out.append((WRITES_MODE_CHANGED, {"mode": writes, "previous": state.writes}))
    return out


def advance_target(state: MigrationState, to: str | None) -> str:
    """Returns the phase an advance goes to: `to`, or the next one; PhaseError when that is not ahead."""
    if to is None:
        if state.next_phase is None:
            raise PhaseError(f"the migration {state.name} is {state.phase}, the last phase")
        return state.next_phase
    if PHASES.index(to) <= PHASES.index(state.phase):
        raise PhaseError(f"the migration {state.name} is already {state.phase}: {to} is not ahead "
                         "(see `migrator rollback`)")
    return to


def advance(store: EventStore, state: MigrationState, to: str | None,
            guards_of: Callable[[str, MigrationState], list[GuardResult]], actor: str, *,
            force_reason: str | None = None) -> MigrationState:
    """Steps phase by phase up to `to` (default: the next phase), checking each step's guards.

    Returns the new state. All or nothing: when a step's guards are not all met and there is
    no `force_reason`, no step is taken, the verdicts checked so far are recorded and
    GuardsUnmet is raised; with a reason, the force is recorded with it and the unmet guards'
    names, and the steps are taken. A step into `decommissioned` is refused, even forced
    (DecommissionByCommand): `decommission` takes it once the legacy tables are archived.
    """
    target = advance_target(state, to)
    if target == DECOMMISSIONED:
        raise DecommissionByCommand(state.name)
    events: list[tuple[str, dict[str, Any]]] = []
    current = state
    for phase in PHASES[PHASES.index(state.phase) + 1:PHASES.index(target) + 1]:
        results = guards_of(phase, current)
        events += [(GUARD_PASSED if r.ok else GUARD_FAILED, {"phase": phase, "name": r.name, "detail": r.detail})
                   for r in results]
        unmet = [r for r in results if not r.ok]
        if unmet and force_reason is None:  # no step is taken: only the verdicts are recorded
            verdicts = [e for e in events if e[0] in (GUARD_PASSED, GUARD_FAILED)]
            if verdicts:
                record(store, state, verdicts, actor)
            raise GuardsUnmet(phase, unmet)
        if unmet:
            events.append((ADVANCE_FORCED, {"from": current.phase, "to": phase, "reason": force_reason,
                                            "unmet": [r.name for r in unmet]}))
        events += _mode_events(current, phase)
        events.append((PHASE_ADVANCED, {"from": current.phase, "to": phase, "forced": bool(unmet)}))
        current = _stepped(current, phase)
    return record(store, state, events, actor)


def _stepped(state: MigrationState, phase: str) -> MigrationState:
    """Returns a copy of `state` in `phase` with its modes (for the guards of the next step of one advance)."""
    reads, writes = PHASE_MODES[phase]
    return dataclasses.replace(state, phase=phase, reads=reads, writes=writes,
                               reads_since=state.reads_since if reads == "new" == state.reads else None,
                               writes_since=state.writes_since if writes == "new" == state.writes else None,
                               history=list(state.history))


def rollback(store: EventStore, state: MigrationState, to: str | None, actor: str, *,
             drain: Callable[[], Any] | None = None) -> MigrationState:
    """Returns the state after rolling back to `to` (default: the previous phase): the phase step and the
    reads/writes modes of the phase rolled back to. Capture, relay and backfill stay as they are.

    When the rollback takes writes back to the legacy app, `drain()` then runs (the reverse projection's
    `migrator.switchover.reverse.drain`): the legacy table gets every event the store holds, and writes
    still in flight through the event store (the live routes follow within a second or two) write their
    own rows before they return."""
    if PHASES.index(state.phase) > PHASES.index(LAST_REVERSIBLE):
        raise PhaseError(f"the migration {state.name} is {state.phase}: there is no rolling back")
    target = to if to is not None else state.previous_phase
    if target is None:
        raise PhaseError(f"the migration {state.name} is {state.phase}, the first phase: nothing to roll back")
    if PHASES.index(target) >= PHASES.index(state.phase):
        raise PhaseError(f"the migration {state.name} is {state.phase}: {target} is not behind it")
    events = [*_mode_events(state, target), (PHASE_ROLLED_BACK, {"from": state.phase, "to": target})]
    after = record(store, state, events, actor)
    if drain is not None and state.writes == "new" and after.writes != "new":
        drain()
    return after


def pause(store: EventStore, state: MigrationState, reason: str, actor: str) -> MigrationState:
    """Returns the state once paused: running backfills and relays wait until `resume`."""
    if state.paused:
        raise PhaseError(f"the migration {state.name} is already paused: {state.pause_note()}")
    return record(store, state, [(PAUSED, {"reason": reason})], actor)


def resume(store: EventStore, state: MigrationState, actor: str) -> MigrationState:
    """Returns the state once resumed."""
    if not state.paused:
        raise PhaseError(f"the migration {state.name} is not paused")
    return record(store, state, [(RESUMED, {})], actor)


def throttle(store: EventStore, state: MigrationState, max_rate: float | None, actor: str) -> MigrationState:
    """Returns the state with the rate cap of running backfills and relays set (None or 0: no cap)."""
    rate = max_rate if max_rate else None
    return record(store, state, [(THROTTLED, {"max_rate": rate})], actor)


def decommission_ready(state: MigrationState, results: Sequence[GuardResult]) -> None:
    """Raises PhaseError unless the migration can step to `decommissioned` now: it is `writes_switched` and every
    guard of the step is met (GuardsUnmet lists the unmet ones); returns None otherwise."""
    if state.phase == DECOMMISSIONED:
        raise PhaseError(f"the migration {state.name} is already {DECOMMISSIONED}")
    unmet = [r for r in results if not r.ok]
    if unmet:
        raise GuardsUnmet(DECOMMISSIONED, unmet)
    if state.phase != LAST_REVERSIBLE:
        raise PhaseError(f"the migration {state.name} is {state.phase}: decommission follows {LAST_REVERSIBLE} "
                         "(see `migrator plan`)")


def record_refusal(store: EventStore, state: MigrationState, results: Sequence[GuardResult],
                   actor: str) -> MigrationState:
    """Returns the state after recording the verdicts of a refused decommission (as a refused advance does)."""
    return record(store, state, [(GUARD_PASSED if r.ok else GUARD_FAILED,
                                   {"phase": DECOMMISSIONED, "name": r.name, "detail": r.detail}) for r in results],
                   actor)


def decommission(store: EventStore, state: MigrationState, results: Sequence[GuardResult], archived: dict[str, Any],
                 actor: str) -> MigrationState:
    """Returns the state after the step to `decommissioned`: the guards' verdicts, a LegacyDecommissioned event
    carrying `archived` (archive, manifest_sha256, verify_run, tables: [{table, file, rows, sha256}]) and the
    phase step. `decommission_ready` must hold (PhaseError otherwise); `migrator.decommission` calls this
    only once the legacy table is archived and dropped."""
    decommission_ready(state, results)
    events: list[tuple[str, dict[str, Any]]] = [
        (GUARD_PASSED, {"phase": DECOMMISSIONED, "name": r.name, "detail": r.detail}) for r in results]
    events += [(LEGACY_DECOMMISSIONED, dict(archived)),
               (PHASE_ADVANCED, {"from": state.phase, "to": DECOMMISSIONED, "forced": False})]
    return record(store, state, events, actor)
