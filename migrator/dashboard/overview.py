"""The migration page's figures: phase timeline, guards of the next step, relay backlog, projection lag, shadow
mismatch rate, backfill progress and the latest verify run, as `migrator status` computes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from migrator.phases import PHASES, MigrationState, Thresholds, guards_for, load

from .source import Source

TIMELINE_EVENTS = frozenset({"PhaseAdvanced", "PhaseRolledBack", "AdvanceForced", "LegacyDecommissioned"})
HISTORY_SHOWN = 15


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def timeline(state: MigrationState) -> list[dict[str, Any]]:
    """Returns every phase with its state (done, current, ahead) and who moved the migration into it, when."""
    entered: dict[str, dict[str, Any]] = {}
    for h in state.history:
        if h.type in ("PhaseAdvanced", "PhaseRolledBack"):
            entered[h.data["to"]] = {"actor": h.actor, "at": _iso(h.at), "rolled_back": h.type == "PhaseRolledBack"}
    current = PHASES.index(state.phase)
    return [{"phase": p, "state": "done" if i < current else "current" if i == current else "ahead",
             **(entered.get(p) or {"actor": None, "at": None, "rolled_back": False})}
            for i, p in enumerate(PHASES)]


def backfill(source: Source) -> list[dict[str, Any]]:
    """Returns each mapped table's backfill run: status, rows done, imported, skipped, last update."""
    from migrator.backfill.runs import load_run

    out = []
    with source.es.engine.connect() as conn:
        for m in source.declarations:
            run = load_run(conn, m.table)
            out.append({"table": m.table, "status": "never"} if run is None else
                       {"table": m.table, "status": run.status, "rows_done": run.rows_done,
                        "rows_imported": run.rows_imported, "rows_skipped": run.rows_skipped,
                        "updated_at": _iso(run.updated_at)})
    return out


def collect(source: Source) -> dict[str, Any]:
    """Returns the migration as the page shows it (plain data; `lag` and `mismatch_rate` feed the chart)."""
    from migrator.backfill.run import projection_lag
    from migrator.phases.facts import gather, last_verify

    es = source.es
    state = load(es.store, es.settings.migration_name)
    facts = gather(source.legacy, es.engine, source.declarations, state)
    nxt = state.next_phase
    guards = [] if nxt is None else guards_for(nxt, facts, state, Thresholds.from_settings(es.settings))
    compared, mismatched = facts.shadow if facts.shadow is not None else (0, 0)
    return {
        "name": state.name, "version": state.version, "phase": state.phase, "next": nxt,
        "previous": state.previous_phase, "reads": state.reads, "reads_percent": state.reads_percent,
        "writes": state.writes, "phase_since": _iso(state.phase_since), "paused": state.paused,
        "pause_note": state.pause_note(), "max_rate": state.max_rate,
        "timeline": timeline(state), "guards": [g.to_dict() for g in guards],
        "backlog": facts.backlog, "lag": projection_lag(es),
        "shadow": None if facts.shadow is None else {"compared": compared, "mismatched": mismatched},
        "mismatch_rate": mismatched / compared if compared else None,
        "backfill": backfill(source), "last_verify": last_verify(es.engine),
        "history": [h.to_dict() for h in reversed(state.history[-HISTORY_SHOWN:])],
    }
