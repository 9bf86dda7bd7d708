"""The phase actions of the dashboard — advance, rollback, pause, resume, reads mode — through the same functions
as the CLI (`migrator advance`, `rollback`, `pause`, `resume`, `reads`): guards checked, the actor recorded."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from migrator.phases import (
    PHASES,
    DecommissionByCommand,
    GuardResult,
    GuardsUnmet,
    MigrationState,
    PhaseError,
    Thresholds,
    guards_for,
    load,
)
from migrator.phases.state import READ_MODES

from .source import Source


class Refused(Exception):
    """An action refused: `status` (409 or 422) with one line, and the unmet guards when they are the reason."""

    def __init__(self, status: int, detail: str, unmet: list[GuardResult] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.unmet = status, detail, unmet or []


def _phase(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value not in PHASES:
        raise Refused(422, f"{value!r} is not a phase: choose one of {', '.join(PHASES)}")
    return value


def _text(body: dict[str, Any], name: str, default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value.strip():
        raise Refused(422, f"{name} must be a non-blank text")
    return value.strip()


def _state(source: Source) -> MigrationState:
    return load(source.es.store, source.es.settings.migration_name)


def _guards_of(source: Source, state: MigrationState) -> Callable[[str, MigrationState], list[GuardResult]]:
    from migrator.phases.facts import gather

    es = source.es
    facts = gather(source.legacy, es.engine, source.declarations, state,
                   catch_up_wait_s=es.settings.relay_catch_up_wait_s)
    limits = Thresholds.from_settings(es.settings)
    return lambda phase, st: guards_for(phase, facts, st, limits)


def advance(source: Source, body: dict[str, Any], actor: str) -> str:
    """Returns what changed after advancing to the next phase (or `to`); Refused 409 with the unmet guards."""
    from migrator.phases import advance as advance_to
    from migrator.phases import advance_target

    to = _phase(body.get("to"))
    before = _state(source)
    try:
        advance_target(before, to)
        after = advance_to(source.es.store, before, to, _guards_of(source, before), actor)
    except GuardsUnmet as exc:
        raise Refused(409, f"cannot advance to {exc.phase}: {len(exc.unmet)} guard(s) unmet", exc.unmet) from None
    except DecommissionByCommand as exc:
        raise Refused(409, str(exc)) from None
    except PhaseError as exc:
        raise Refused(409, str(exc)) from None
    return f"{before.phase} → {after.phase}; reads {after.reads}, writes {after.writes}"


def rollback(source: Source, body: dict[str, Any], actor: str) -> str:
    """Returns what changed after rolling back to the previous phase (or `to`); a rollback from switched writes
    runs the reverse projection first, as `migrator rollback` does."""
    from migrator.phases import rollback as rollback_to

    to = _phase(body.get("to"))
    before = _state(source)
    try:  # the machine runs the drain only when the rollback takes writes back to legacy
        after = rollback_to(source.es.store, before, to, actor, drain=_reverse_drain(source))
    except PhaseError as exc:
        raise Refused(409, str(exc)) from None
    return f"{before.phase} → {after.phase} (rolled back); reads {after.reads}, writes {after.writes}"


def _reverse_drain(source: Source) -> Callable[[], None]:
    from migrator.mapping import load_mappings
    from migrator.switchover.reverse import drain, projections_for

    def run() -> None:
        mappings = load_mappings(source.settings.mapping_file or None, source.legacy)
        drain(projections_for(mappings, source.legacy, source.es.store))

    return run


def pause(source: Source, body: dict[str, Any], actor: str) -> str:
    """Returns the pause note after pausing running backfills and relays."""
    from migrator.phases import pause as pause_migration

    reason = _text(body, "reason", "paused from the dashboard")
    try:
        after = pause_migration(source.es.store, _state(source), reason, actor)
    except PhaseError as exc:
        raise Refused(409, str(exc)) from None
    return f"paused: {after.pause_note()}"


def resume(source: Source, body: dict[str, Any], actor: str) -> str:
    """Returns "resumed" after letting paused backfills and relays go on."""
    from migrator.phases import resume as resume_migration

    try:
        resume_migration(source.es.store, _state(source), actor)
    except PhaseError as exc:
        raise Refused(409, str(exc)) from None
    return "resumed"


def reads(source: Source, body: dict[str, Any], actor: str) -> str:
    """Returns the reads mode after setting it (`mode`, `percent` of the users)."""
    from migrator.shadow.modes import set_reads

    mode = body.get("mode")
    if mode not in READ_MODES:
        raise Refused(422, f"{mode!r} is not a reads mode: choose one of {', '.join(READ_MODES)}")
    percent = body.get("percent", 100.0)
    if isinstance(percent, bool) or not isinstance(percent, int | float) or math.isnan(percent) \
            or not 0 < percent <= 100:
        raise Refused(422, f"percent must be a number above 0 and at most 100, not {percent!r}")
    before = _state(source)
    try:
        after = set_reads(source.es.store, before, mode, float(percent), actor)
    except PhaseError as exc:
        raise Refused(409, str(exc)) from None
    share = "" if after.reads_percent == 100.0 else f" for {after.reads_percent:g}% of users"
    return f"reads {before.reads} → {after.reads}{share}"


ACTIONS: dict[str, Callable[[Source, dict[str, Any], str], str]] = {
    "advance": advance, "rollback": rollback, "pause": pause, "resume": resume, "reads": reads,
}
