"""`migrator relay [--follow]`: turn captured legacy changes into events, report backlog and rate."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from es_app.dialect import dialect_for
from migrator.capture.changelog import CaptureError, require_installed
from migrator.mapping import MappingError
from migrator.phases import LiveControl
from migrator.relay.runner import Relay, RelayTotals, relays_for

from .common import (
    CliError,
    EsUrl,
    LegacyUrl,
    MappingFile,
    Tables,
    check_database_url,
    check_schema,
    console,
    finite,
    settings_for,
    styled,
    warn_gaps,
)


def summary_table(rows: list[tuple[RelayTotals, int]], title: str = "relay summary") -> Table:
    """Returns one line per table: changes read, relayed, skipped, events, offset, rate, backlog left."""
    table = Table(title=title)
    for col in ("table", "changes", "relayed", "skipped", "parked", "events", "offset", "seconds", "changes/s",
                "backlog"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for t, left in rows:
        table.add_row(t.table, f"{t.read:,}", f"{t.relayed:,}", f"{t.skipped:,}", f"{t.parked:,}", f"{t.events:,}",
                      str(t.position),
                      f"{t.seconds:.2f}", f"{t.rate:,.0f}", f"{left:,}")
    return table


def _project(es: Any, follow: bool, position: int | None) -> int:
    """Runs the projections in-process (or, following in servers mode, wakes the workers)."""
    if follow and not es.settings.embedded:
        from es_app.worker import publish_appended

        if position:
            publish_appended(es.settings, position)
        return 0
    from es_app.projections import run_projections

    return run_projections(es)


def _drain(relays: list[Relay], es: Any, project: bool) -> None:
    backlogs = {r.mapping.table: r.backlog() for r in relays}
    results: list[tuple[RelayTotals, int]] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        for r in relays:
            task = progress.add_task(escape(f"relay {r.mapping.table}"), total=backlogs[r.mapping.table] or None,
                                     rate="")
            started = time.perf_counter()

            def advance(batch: Any, task: Any = task, started: float = started) -> None:
                done = progress.tasks[task].completed + batch.read
                rate = done / max(time.perf_counter() - started, 1e-9)
                progress.update(task, completed=done, rate=f"{rate:,.0f} changes/s")

            results.append((r.drain(on_batch=advance), 0))
    results = [(t, r.backlog()) for (t, _), r in zip(results, relays, strict=True)]
    console.print(summary_table(results))
    if any(t.parked for t, _ in results):
        console.print("changes parked (the event store cannot hold them; later changes of their keys wait "
                      "behind them): see `migrator parked list`, then `migrator parked retry` after a fix",
                      highlight=False, markup=False)
    if project and any(t.events for t, _ in results):
        applied = _project(es, False, None)
        console.print(f"projections applied {applied:,} events")


def _follow(relays: list[Relay], legacy: Any, es: Any, project: bool, poll_interval: float,
            warn: Callable[[set], Any]) -> None:
    from migrator.relay.follow import follow

    warned: set = set()
    warn(warned)  # then again whenever a round relayed something: a gap is recorded as capture resumes
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def on_round(totals: list[RelayTotals]) -> None:
        last = max((t.last_event_position or 0 for t in totals), default=0)
        if project and last:
            _project(es, True, last)
        for t, r in zip(totals, relays, strict=True):
            if t.read:
                console.print(f"{r.mapping.table}: {t.read:,} changes → {t.events:,} events "
                              f"({t.rate:,.0f} changes/s), offset {t.position}, backlog {r.backlog():,}",
                              highlight=False)
        if any(t.read for t in totals):
            warn(warned)

    console.print(f"following {', '.join(r.mapping.table for r in relays)} "
                  f"({'LISTEN' if dialect_for(legacy).listens else 'polling'}, "
                  f"every {poll_interval}s at most); "
                  f"backlog {sum(r.backlog() for r in relays):,}", highlight=False)

    def on_pause(reason: str | None) -> None:
        console.print("resumed" if reason is None else styled("[yellow]paused[/yellow]: {why}", why=reason),
                      highlight=False)

    live = LiveControl(es.store, es.settings.migration_name)  # `migrator pause / resume / throttle`
    follow(relays, legacy, stop=stop, poll_interval=poll_interval, on_round=on_round, live=live, on_pause=on_pause)
    console.print("stopped")


def _wake_workers(relays: list[Relay], legacy: Any, es: Any, poll_interval: float) -> None:
    from migrator.relay.follow import wait_loop
    from migrator.relay.tasks import relay as relay_task

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    kwargs = {"es_url": es.settings.es_database_url, "legacy_url": es.settings.legacy_database_url}

    def wake() -> None:
        if any(r.backlog() for r in relays):
            try:
                relay_task.apply_async(kwargs=kwargs, retry=False)
            except Exception as exc:  # noqa: BLE001 - the beat still runs the relay
                console.print(styled("[yellow]wake-up not sent[/yellow]: {exc}", exc=str(exc)), highlight=False)

    console.print(f"waking the relay workers on every legacy commit "
                  f"({'LISTEN' if dialect_for(legacy).listens else 'polling'}, every {poll_interval}s at most)",
                  highlight=False)
    wait_loop(legacy, stop=stop, poll_interval=poll_interval, on_wake=wake)
    console.print("stopped")


def relay(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option("--follow", help="Keep relaying new changes until stopped")] = False,
    wake_workers: Annotated[bool, typer.Option("--wake-workers", help="With --follow: relay nothing here; send the "
                                               "relay task to the Celery workers whenever changes wait")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1_000_000,
                                            help="Changelog rows per transaction")] = 1000,
    poll_interval: Annotated[float, typer.Option("--poll-interval", min=0.01, max=3600, callback=finite,
                                                 help="With --follow: seconds between polls (PostgreSQL also "
                                                      "wakes on every legacy commit)")] = 1.0,
    project: Annotated[bool, typer.Option("--project/--no-project", help="Run the projections afterwards")] = True,
    resync: Annotated[bool, typer.Option("--resync", help="After draining, compare every legacy row with its "
                                         "stream and append what makes them agree; resolves capture gaps")] = False,
    tables: Tables = None,
    mapping: MappingFile = None,
    es_url: EsUrl = None,
    legacy_url: LegacyUrl = None,
) -> None:
    """Relay captured legacy changes into events: drain the backlog, project, exit (or --follow)."""
    from es_app.bootstrap import build, engine_for
    from migrator.mapping import load_mappings

    settings = settings_for(ctx, es_url, legacy_url)
    check_schema("es", settings.es_database_url)
    legacy = engine_for(check_database_url(settings.legacy_database_url, "legacy"))
    es = build(settings)
    try:
        mappings = load_mappings(mapping, legacy, tables)
        declared = [m.declaration for m in mappings]
        require_installed(legacy, declared)
    except (MappingError, CaptureError) as exc:
        raise CliError(str(exc)) from None
    relays = relays_for(mappings, legacy, es.store, batch_size=batch_size)
    if resync and follow:
        raise CliError("--resync runs once: drop --follow")
    if wake_workers:
        if not follow:
            raise CliError("--wake-workers needs --follow")
        if settings.embedded:
            raise CliError("--wake-workers needs BROKER_URL (Celery workers to wake)")
        warn_gaps(settings.es_database_url, legacy, declared)  # the workers log them on every run
        _wake_workers(relays, legacy, es, poll_interval)
    elif follow:
        _follow(relays, legacy, es, project, poll_interval,
                lambda seen: warn_gaps(settings.es_database_url, legacy, declared, seen))
    else:
        _drain(relays, es, project and not resync)
        if resync:
            _resync(relays, es, project)
        warn_gaps(settings.es_database_url, legacy, declared)


def _resync(relays: list[Relay], es: Any, project: bool) -> None:
    from migrator.relay.resync import Resync

    table = Table(title="resync summary")
    for col in ("table", "legacy rows", "streams", "imports", "deletes", "gaps resolved", "seconds"):
        table.add_column(col, justify="left" if col == "table" else "right")
    raced = 0
    for r in relays:
        with console.status(f"resync {r.mapping.table}"):
            t = Resync(r.mapping, r.legacy, es.store).run()
        raced += t.raced
        table.add_row(t.table, f"{t.rows:,}", f"{t.streams:,}", f"{t.imported:,}", f"{t.deleted:,}",
                      f"{t.gaps_resolved:,}", f"{t.seconds:.2f}")
    console.print(table)
    if raced:
        console.print(f"[yellow]{raced:,} streams changed while they were compared[/yellow]: run "
                      "`migrator relay --resync` again (the capture gaps stay open until a run without)",
                      highlight=False)
    if project:
        console.print(f"projections applied {_project(es, False, None):,} events")


def register(app: typer.Typer) -> None:
    app.command()(relay)
