"""`migrator status [--findings] [--json]`: one overview of the migration, per mapped table.

The overview is a list of sections (`SECTIONS`); each has a JSON key, a `collect` function that
returns plain data (what `--json` prints under that key) and a `render` function that turns the
data into Rich renderables. A new section is one more `Section(...)` in the list. Each section
reads what the command of its own subject computes (`capture status`, `relay`, `backfill`,
`projections status`), so the figures agree with those commands.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from migrator.mapping import MappingError, TableMapping

from .common import (
    CliError,
    EsUrl,
    LegacyUrl,
    MappingFile,
    Tables,
    check_database_url,
    console,
    es_container,
    settings_for,
)


@dataclasses.dataclass
class StatusContext:
    """What every section may read: the legacy engine, the es_app container, the mappings, the options."""

    legacy: Any
    es: Any
    mappings: list[TableMapping]
    show_findings: bool = False
    findings_limit: int = 100

    @property
    def tables(self) -> list[str]:
        return [m.table for m in self.mappings]


@dataclasses.dataclass(frozen=True)
class Section:
    """One part of the overview: `collect(ctx)` returns JSON-able data, `render(data)` what is printed.

    A `top_level` section's data is a dict whose keys go at the top of the JSON (the migration's
    `phase`, `next`, ...); its `render` gets them all."""

    key: str
    collect: Callable[[StatusContext], Any]
    render: Callable[[Any], Iterable[RenderableType]]
    top_level: bool = False


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _table(title: str, columns: Iterable[str], left: tuple[str, ...] = ("table",)) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    return table


# -- capture ---------------------------------------------------------------
def collect_capture(ctx: StatusContext) -> dict[str, Any]:
    """Returns whether the changelog and each table's triggers are installed (as `capture status`)."""
    from migrator.capture import changelog as capture

    st = capture.status(ctx.legacy, ctx.mappings)
    return {"backend": st.backend, "changelog": st.changelog, "installed": st.installed,
            "tables": {t.table: {"installed": t.installed, "changes": t.changes, "last_id": t.last_id}
                       for t in st.tables}}


def render_capture(data: dict[str, Any]) -> Iterable[RenderableType]:
    table = _table(f"capture ({data['backend']}, changelog {'present' if data['changelog'] else 'absent'})",
                   ("table", "triggers", "changelog rows", "last id"), ("table", "triggers"))
    for name, t in data["tables"].items():
        table.add_row(name, Text("installed", style="green") if t["installed"] else Text("absent", style="yellow"),
                      f"{t['changes']:,}", str(t["last_id"]))
    yield table


# -- relay -----------------------------------------------------------------
def collect_relay(ctx: StatusContext) -> dict[str, Any]:
    """Returns each table's relay offset and backlog (None when there is no changelog), as `relay` reports them."""
    from migrator.capture import changelog_exists
    from migrator.capture.offsets import get_offset, offset_name
    from migrator.relay.runner import backlog

    with ctx.legacy.connect() as lconn:
        captured = changelog_exists(lconn)
    out = {}
    with ctx.es.engine.connect() as conn:
        for m in ctx.mappings:
            left = backlog(ctx.legacy, ctx.es.engine, [m]) if captured else None
            out[m.table] = {"offset": get_offset(conn, offset_name(m.table)), "backlog": left}
    return out


def render_relay(data: dict[str, Any]) -> Iterable[RenderableType]:
    table = _table("relay", ("table", "offset", "backlog"))
    for name, r in data.items():
        table.add_row(name, str(r["offset"]), "-" if r["backlog"] is None else f"{r['backlog']:,}")
    yield table


# -- backfill --------------------------------------------------------------
def collect_backfill(ctx: StatusContext) -> dict[str, Any]:
    """Returns each table's stored backfill run (status `never` when none ran)."""
    from migrator.backfill.runs import load_run

    out = {}
    with ctx.es.engine.connect() as conn:
        for m in ctx.mappings:
            run = load_run(conn, m.table)
            out[m.table] = ({"status": "never", "rows_done": 0, "rows_imported": 0, "rows_skipped": 0, "chunks": 0,
                             "last_key": None, "watermark": None, "started_at": None, "updated_at": None,
                             "finished_at": None} if run is None else
                            {"status": run.status, "rows_done": run.rows_done, "rows_imported": run.rows_imported,
                             "rows_skipped": run.rows_skipped, "chunks": run.chunks, "last_key": run.last_key,
                             "watermark": run.watermark, "started_at": _iso(run.started_at),
                             "updated_at": _iso(run.updated_at), "finished_at": _iso(run.finished_at)})
    return out


def render_backfill(data: dict[str, Any]) -> Iterable[RenderableType]:
    table = _table("backfill", ("table", "status", "rows", "imported", "skipped", "last key", "updated"),
                   ("table", "status", "updated"))
    colour = {"done": "green", "running": "yellow"}
    for name, b in data.items():
        status = Text(b["status"], style=colour.get(b["status"], ""))
        table.add_row(name, status, f"{b['rows_done']:,}", f"{b['rows_imported']:,}", f"{b['rows_skipped']:,}",
                      Text("-" if b["last_key"] is None else str(b["last_key"])), b["updated_at"] or "-")
    yield table


# -- projections -----------------------------------------------------------
def collect_projections(ctx: StatusContext) -> list[dict[str, Any]]:
    """Returns each projection checkpoint's position, lag and parked events (as `projections status`)."""
    from es_app.projections import projection_status

    return [{**r.to_dict(), "updated_at": _iso(r.updated_at)} for r in projection_status(ctx.es)]


def render_projections(data: list[dict[str, Any]]) -> Iterable[RenderableType]:
    table = _table("projections", ("projection", "position", "head", "lag", "parked", "updated"),
                   ("projection", "updated"))
    for p in data:
        table.add_row(p["name"], f"{p['position']:,}", f"{p['head']:,}", f"{p['lag']:,}", str(p["parked"]),
                      p["updated_at"] or "never")
    yield table


# -- data-quality findings -------------------------------------------------
def collect_findings(ctx: StatusContext) -> dict[str, Any]:
    """Returns the data-quality findings per table and kind, and (with --findings) the findings themselves."""
    from migrator.claims.findings import count_findings, list_findings

    items = None
    with ctx.es.engine.connect() as conn:
        counts = {t: count_findings(conn, table=t) for t in ctx.tables}
        if ctx.show_findings:
            items = [f.to_dict() for t in ctx.tables
                     for f in list_findings(conn, table=t, limit=ctx.findings_limit)]
    return {"total": sum(n for kinds in counts.values() for n in kinds.values()), "counts": counts, "items": items}


def render_findings(data: dict[str, Any]) -> Iterable[RenderableType]:
    table = _table("data-quality findings", ("table", "kind", "findings"), ("table", "kind"))
    for name, kinds in data["counts"].items():
        for kind, n in kinds.items():
            table.add_row(name, kind, f"{n:,}")
        if not kinds:
            table.add_row(name, "-", "0")
    yield table
    if data["items"] is not None:
        listing = _table("findings", ("id", "table", "kind", "key", "other key", "value", "detail"),
                         ("table", "kind", "key", "other key", "value", "detail"))
        for f in data["items"]:
            listing.add_row(str(f["id"]), f["table_name"], f["kind"], Text(f["key"]), Text(f["other_key"] or "-"),
                            Text(f["value"]), Text(f["detail"]))
        yield listing
    elif data["total"]:
        yield Text("list them with `migrator status --findings`")


# -- capture gaps, parked rows, runs going on --------------------------------
def collect_gaps(ctx: StatusContext) -> list[dict[str, Any]]:
    """Returns the open capture gaps (stretches the relay could not see), each with its warning line."""
    from migrator.capture.gaps import open_gaps

    return [{"table": g.table, "reason": g.reason, "since": _iso(g.since), "until": _iso(g.until),
             "detail": g.detail, "warning": g.warning()} for g in open_gaps(ctx.legacy, ctx.es.engine, ctx.mappings)]


def render_gaps(data: list[dict[str, Any]]) -> Iterable[RenderableType]:
    if not data:
        yield Text("capture gaps: none")
    for gap in data:
        yield Text.assemble(("warning", "yellow"), ": ", gap["warning"])


def collect_parked(ctx: StatusContext) -> dict[str, Any]:
    """Returns, per table, the legacy rows and changes parked because the event store cannot hold them."""
    from migrator.parking.entries import counts

    found = {c.table: c for c in counts(ctx.es.engine)}
    return {t: ({"keys": c.keys, "backfill": c.backfill, "relay": c.relay, "waiting": c.waiting,
                 "resolved": c.resolved} if (c := found.get(t)) else
                {"keys": 0, "backfill": 0, "relay": 0, "waiting": 0, "resolved": 0}) for t in ctx.tables}


def render_parked(data: dict[str, Any]) -> Iterable[RenderableType]:
    table = _table("parked rows and changes (`migrator parked list`)",
                   ("table", "keys", "backfill rows", "relay changes", "resolved"))
    for name, p in data.items():
        table.add_row(name, f"{p['keys']:,}", f"{p['backfill']:,}", f"{p['relay']:,}", f"{p['resolved']:,}")
    yield table


def collect_runs(ctx: StatusContext) -> list[dict[str, Any]]:
    """Returns the runs going on now (their leases): job, host, pid, since, lease expiry."""
    from migrator.backfill.leases import current

    return [{"name": lease.name, "host": lease.host, "pid": lease.pid, "since": _iso(lease.acquired_at),
             "expires_at": _iso(lease.expires_at)} for lease in current(ctx.es.engine)]


def render_runs(data: list[dict[str, Any]]) -> Iterable[RenderableType]:
    if not data:
        yield Text("runs going on: none")
        return
    table = _table("runs going on", ("run", "host", "pid", "since", "lease expires"), ("run", "host"))
    for r in data:
        table.add_row(r["name"], r["host"], str(r["pid"]), r["since"], r["expires_at"])
    yield table


# -- the migration: phase, guards of the next step, live control, history -------------------------
HISTORY_SHOWN = 20  # the latest events of the migration's stream in the text form


def collect_migration(ctx: StatusContext) -> dict[str, Any]:
    """Returns the migration's phase, the next phase and its guards, relay backlog, projection lag, latest
    verify, shadow counts, pause, and (under `migration`) its modes, throttle and history."""
    from migrator.backfill.run import projection_lag
    from migrator.phases import Thresholds, guards_for, load
    from migrator.phases.facts import gather, last_verify

    state = load(ctx.es.store, ctx.es.settings.migration_name)
    facts = gather(ctx.legacy, ctx.es.engine, ctx.mappings, state)
    nxt = state.next_phase
    guards = [] if nxt is None else guards_for(nxt, facts, state, Thresholds.from_settings(ctx.es.settings))
    shadow = None if facts.shadow is None else {
        "compared": facts.shadow[0], "mismatched": facts.shadow[1],
        "rate": facts.shadow[1] / facts.shadow[0] if facts.shadow[0] else None}
    return {"phase": state.phase, "next": nxt, "guards": [g.to_dict() for g in guards], "backlog": facts.backlog,
            "lag": projection_lag(ctx.es), "last_verify": last_verify(ctx.es.engine), "shadow": shadow,
            "paused": state.paused,
            "migration": {"name": state.name, "version": state.version, "reads": state.reads, "writes": state.writes,
                          "phase_since": _iso(state.phase_since), "pause_reason": state.pause_reason,
                          "paused_by": state.paused_by, "max_rate": state.max_rate,
                          "throttled_by": state.throttled_by, "history": [h.to_dict() for h in state.history]}}


def render_migration(data: dict[str, Any]) -> Iterable[RenderableType]:
    m = data["migration"]
    since = f" since {m['phase_since']}" if m["phase_since"] else ""
    yield Text(f"migration {m['name']}: {data['phase']}{since}; reads {m['reads']}, writes {m['writes']}; "
               f"next: {data['next'] or '-'}", no_wrap=False)
    for g in data["guards"]:
        yield Text.assemble("  ", ("ok   ", "green") if g["ok"] else ("unmet", "red"), f" {g['name']}: {g['detail']}")
    yield Text.assemble("paused: ", (f"yes: {m['pause_reason']} (by {m['paused_by']})", "yellow")
                        if data["paused"] else "no",
                        "; throttle: ", "none" if m["max_rate"] is None
                        else f"{m['max_rate']:g}/s (by {m['throttled_by']})")
    backlog = "-" if data["backlog"] is None else f"{data['backlog']:,}"
    verify = data["last_verify"]
    shown_verify = "never" if verify is None else \
        f"run {verify['id']} {'clean' if verify['clean'] else 'not clean'}, finished {verify['finished_at']}"
    shadow = data["shadow"]
    shown_shadow = "none recorded" if shadow is None else \
        f"{shadow['mismatched']:,} of {shadow['compared']:,} mismatched"
    yield Text(f"relay backlog {backlog}; projection lag {data['lag']:,}; latest verify: {shown_verify}; "
               f"shadow reads: {shown_shadow}")
    history = m["history"]
    if history:
        table = _table(f"migration history (stream migration-{m['name']}"
                       + (f", latest {HISTORY_SHOWN} of {len(history)}" if len(history) > HISTORY_SHOWN else "")
                       + ")", ("version", "at", "actor", "event"), ("at", "actor", "event"))
        for h in history[-HISTORY_SHOWN:]:
            table.add_row(str(h["version"]), h["at"], Text(h["actor"]), Text(h["summary"]))
        yield table


SECTIONS: list[Section] = [
    Section("capture", collect_capture, render_capture),
    Section("relay", collect_relay, render_relay),
    Section("backfill", collect_backfill, render_backfill),
    Section("projections", collect_projections, render_projections),
    Section("findings", collect_findings, render_findings),
    Section("parked", collect_parked, render_parked),
    Section("capture_gaps", collect_gaps, render_gaps),
    Section("runs", collect_runs, render_runs),
    Section("migration", collect_migration, render_migration, top_level=True),
]


def collect(ctx: StatusContext, sections: Iterable[Section] = ()) -> dict[str, Any]:
    """Returns the whole overview as plain data: `tables`, then one key per section (a top-level section's
    keys instead of its own)."""
    data: dict[str, Any] = {"tables": ctx.tables}
    for s in sections or SECTIONS:
        collected = s.collect(ctx)
        data.update(collected if s.top_level else {s.key: collected})
    return data


def _context(ctx: typer.Context, es_url: str | None, legacy_url: str | None, mapping: Path | None,
             tables: list[str] | None, show_findings: bool, limit: int) -> StatusContext:
    from es_app.bootstrap import engine_for
    from migrator.mapping import load_mappings


    settings = settings_for(ctx, es_url, legacy_url)
    es = es_container(ctx, es_url, legacy_url)  # one line unless the event store exists at its schema head
    check_database_url(settings.legacy_database_url, "legacy")  # one line for a missing or bad database
    try:
        mappings = load_mappings(mapping, None, tables)
    except MappingError as exc:
        raise CliError(str(exc)) from None
    return StatusContext(engine_for(settings.legacy_database_url), es, mappings, show_findings, limit)


def status(ctx: typer.Context,
           findings: Annotated[bool, typer.Option("--findings", help="List the data-quality findings")] = False,
           limit: Annotated[int, typer.Option("--limit", min=1, max=1_000_000,
                                              help="With --findings: at most this many per table")] = 100,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of tables")] = False,
           mapping: MappingFile = None, tables: Tables = None,
           es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Show the migration per mapped table: capture, relay, backfill, projections, data-quality findings, and its
    phase, the guards of the next step, pause and throttle, and its history."""
    data = collect(_context(ctx, es_url, legacy_url, mapping, tables, findings, limit))
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    for section in SECTIONS:
        for renderable in section.render(data if section.top_level else data[section.key]):
            console.print(renderable)


def register(app: typer.Typer) -> None:
    app.command()(status)
