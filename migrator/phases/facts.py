"""Gathering what the guards and `migrator status` read, from the areas that own it: capture status,
relay offsets and backlog, backfill runs, stored verify runs (the newest clean one, the newest `--full` one),
the projections' lag, and the shadow-read counts."""

from __future__ import annotations

import json
import types
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from es_app.projections import projection_status
from es_app.store import EventStore

from ..backfill.runs import load_run
from ..capture import changelog as capture
from ..capture.offsets import get_state, offset_name
from ..mapping import TableMapping
from ..relay.runner import backlog_at_check
from ..verify.runs import latest, latest_clean, load, verify_runs
from .guards import Facts, RelayFacts
from .state import MigrationState


def shadow_counts(state: MigrationState) -> tuple[int, int] | None:
    """Returns (compared, mismatched) shadow reads since the phase `shadow_reads` was last entered, from the
    migration stream's `ShadowReadsRecorded` events; None when none was recorded (the shadow-read recorder
    writes them)."""
    return (state.shadow_compared, state.shadow_mismatched) if state.shadow_recorded else None


def gather(legacy: Engine, es: Engine, mappings: Sequence[TableMapping], state: MigrationState,
           now: datetime | None = None, *, catch_up_wait_s: float = 0.0) -> Facts:
    """Returns the facts of the mapped tables as they are now; a table's relay backlog counts the changes
    waiting now that are still waiting after at most `catch_up_wait_s` (RELAY_CATCH_UP_WAIT_S for the
    guards: a busy table's relay may catch up with the moment of the check; 0 for a snapshot)."""
    tables = tuple(m.table for m in mappings)
    st = capture.status(legacy, mappings)
    relay: dict[str, RelayFacts] = {}
    backfill: dict[str, str] = {}
    with es.connect() as conn:
        for m in mappings:
            offset = get_state(conn, offset_name(m.table))
            left = backlog_at_check(legacy, es, m, catch_up_wait_s) if st.changelog else None
            relay[m.table] = RelayFacts(offset is not None, offset.position if offset else 0,
                                        offset.updated_at if offset else None, left)
            run = load_run(conn, m.table)
            backfill[m.table] = "never" if run is None else run.status
    return Facts(now or datetime.now(UTC), tables, st.changelog, {t.table: t.installed for t in st.tables},
                 relay, backfill, latest_clean(es, tables), shadow_counts(state), latest_full(es, tables),
                 projection_lag(es))


def latest_full(es: Engine, tables: Iterable[str]) -> dict[str, Any] | None:
    """Returns the document of the newest `--full` verify run (clean or not) that covered every one of
    `tables`, or None when there is none."""
    wanted = set(tables)
    q = select(verify_runs.c.id, verify_runs.c.tables, verify_runs.c.options).order_by(verify_runs.c.id.desc())
    with es.connect() as conn:
        found = next((run_id for run_id, names, options in conn.execute(q)
                      if json.loads(options).get("full") and wanted <= set(names.split(","))), None)
    return None if found is None else load(es, found)


def projection_lag(es: Engine) -> int:
    """Returns how many events the most-behind projection checkpoint lags the feed's head."""
    feed = types.SimpleNamespace(store=EventStore(es), engine=es)
    return max((s.lag for s in projection_status(feed)), default=0)


def last_verify(es: Engine) -> dict[str, Any] | None:
    """Returns the summary of the latest verify run (clean or not): id, finished_at, clean, tables; None if none."""
    runs = latest(es, limit=1)
    if not runs:
        return None
    run = runs[0]
    return {"id": run["id"], "finished_at": run["finished_at"], "clean": run["clean"], "tables": run["tables"]}
