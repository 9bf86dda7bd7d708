"""The migration's phase machine: its state as a stream of events, the guards of each step, live control."""

from .control import LiveControl
from .guards import GUARDS, Facts, GuardResult, RelayFacts, Thresholds, guards_for
from .machine import (
    DECOMMISSIONED,
    DEFAULT_NAME,
    DecommissionByCommand,
    GuardsUnmet,
    MigrationChanged,
    PhaseError,
    advance,
    advance_target,
    decommission,
    decommission_ready,
    load,
    pause,
    record_refusal,
    resume,
    rollback,
    stream_id,
    throttle,
)
from .state import PHASE_MODES, PHASES, HistoryEntry, MigrationState, fold

__all__ = [
    "DECOMMISSIONED", "DEFAULT_NAME", "GUARDS", "PHASES", "PHASE_MODES", "DecommissionByCommand", "Facts",
    "GuardResult", "GuardsUnmet", "HistoryEntry", "LiveControl", "MigrationChanged", "MigrationState", "PhaseError",
    "RelayFacts", "Thresholds", "advance", "advance_target", "decommission", "decommission_ready", "fold",
    "guards_for", "load", "pause", "record_refusal", "resume", "rollback", "stream_id", "throttle",
]
