"""The migration's phase machine: its state as a stream of events, the guards of each step, live control."""

from .control import LiveControl
from .guards import GUARDS, Facts, GuardResult, RelayFacts, Thresholds, guards_for
from .machine import (
    DEFAULT_NAME,
    GuardsUnmet,
    MigrationChanged,
    PhaseError,
    advance,
    advance_target,
    load,
    pause,
    resume,
    rollback,
    stream_id,
    throttle,
)
from .state import PHASE_MODES, PHASES, HistoryEntry, MigrationState, fold

__all__ = [
    "DEFAULT_NAME", "GUARDS", "PHASES", "PHASE_MODES", "Facts", "GuardResult", "GuardsUnmet", "HistoryEntry",
    "LiveControl", "MigrationChanged", "MigrationState", "PhaseError", "RelayFacts", "Thresholds", "advance",
    "advance_target", "fold", "guards_for", "load", "pause", "resume", "rollback", "stream_id", "throttle",
]
