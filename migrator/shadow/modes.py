"""Setting the migration's reads mode (`migrator reads`): one `ReadsModeChanged` event in its stream, at the
version the state was read at. `legacy` is always allowed (the instant way back); `shadow` and `new` only
from the `backfilled` phase on (before, the read model does not hold every user)."""

from __future__ import annotations

from es_app.store import EventStore

from ..phases.machine import PhaseError, record
from ..phases.state import PHASES, READ_MODES, READS_MODE_CHANGED, MigrationState

FIRST_PHASE_OFF_LEGACY = "backfilled"


def set_reads(store: EventStore, state: MigrationState, mode: str, percent: float, actor: str) -> MigrationState:
    """Returns the state with reads in `mode` for `percent` of the users (by key hash); PhaseError when refused,
    MigrationChanged when the stream moved since `state` was read. Nothing is recorded when nothing changes."""
    if mode not in READ_MODES:
        raise PhaseError(f"{mode!r} is not a reads mode: choose one of {', '.join(READ_MODES)}")
    if not 0 < percent <= 100:
        raise PhaseError(f"the percent must be above 0 and at most 100, not {percent:g}")
    if mode != "legacy" and PHASES.index(state.phase) < PHASES.index(FIRST_PHASE_OFF_LEGACY):
        raise PhaseError(f"reads cannot be {mode} before the {FIRST_PHASE_OFF_LEGACY} phase: the migration "
                         f"{state.name} is {state.phase} (see `migrator plan`)")
    if mode == "legacy":
        percent = 100.0
    if (state.reads, state.reads_percent) == (mode, percent):
        return state
    return record(store, state, [(READS_MODE_CHANGED, {"mode": mode, "previous": state.reads, "percent": percent})],
                  actor)
