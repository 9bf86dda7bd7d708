"""`migrator backfill`: every row of the mapped legacy tables becomes an import event."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from migrator.backfill.leases import DEFAULT_TTL_S
from migrator.backfill.run import (
    READ_PROCESS_FROM,
    Backfill,
    BackfillError,
    BackfillOptions,
    ChunkResult,
    projection_lag,
    projector_for,
)
from migrator.backfill.runs import BackfillRun
from migrator.backfill.throttle import PauseGate
from migrator.capture import CaptureError
from migrator.mapping import MappingError
from migrator.phases import LiveControl

from .common import (
    BIGINT_MAX,
    MIN_RATE,
    CliError,
    EsUrl,
    LegacyUrl,
    MappingFile,
    Tables,
    check_database_url,
    check_schema,
    console,
    rate_cap,
    settings_for,
)
from .interrupt import StopOnInterrupt


class RateColumn(ProgressColumn):
    """Rows per second, averaged by Rich over the last chunks."""

    def render(self, task: Task) -> Text:
        return Text("-- rows/s" if task.speed is None else f"{task.speed:,.0f} rows/s", style="cyan")


def _projection_lag(container: Any) -> Callable[[], int]:
    return lambda: projection_lag(container)


def _relay_backlog(legacy_engine: Any, container: Any, mappings: list[Any]) -> Callable[[], int]:
    """Returns a callable giving the relay's backlog over the mapped tables."""
    from migrator.relay.runner import backlog

    return lambda: backlog(legacy_engine, container.engine, mappings)


def summary_table(runs: list[tuple[BackfillRun, float]]) -> Table:
    """Returns the final summary: one line per table."""
    table = Table(title="backfill summary")
    for col in ("table", "status", "rows", "imported", "skipped (already a stream)", "parked", "chunks",
                "last watermark", "seconds", "rows/s"):
        table.add_column(col, justify="left" if col in ("table", "status") else "right")
    for run, seconds in runs:
        rate = run.rows_done / seconds if seconds > 0 else 0.0
        table.add_row(run.table_name, run.status, f"{run.rows_done:,}", f"{run.rows_imported:,}",
                      f"{run.rows_skipped:,}", f"{run.rows_parked:,}", str(run.chunks), str(run.watermark or 0),
                      f"{seconds:.1f}", f"{rate:,.0f}")
    return table


MAX_BATCH = 1_000_000


def backfill(
    ctx: typer.Context,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=MAX_BATCH, help="Rows per chunk")] = 1000,
    max_rate: Annotated[float | None, typer.Option("--max-rate", min=0, max=1e9, callback=rate_cap, show_default=False,
                                                      help=f"Rate cap in rows per second, at least {MIN_RATE} "
                                                           "(0 or unset: none)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an unfinished run from its checkpoint")] = False,
    restart: Annotated[bool, typer.Option("--restart", help="Forget the stored run and start over "
                                                            "(rows already imported are skipped)")] = False,
    tables: Tables = None,
    mapping: MappingFile = None,
    pause_file: Annotated[Path | None, typer.Option("--pause-file", show_default=False,
                                                       help="Pause while this file exists")] = None,
    max_relay_backlog: Annotated[int | None, typer.Option("--max-relay-backlog", min=0, max=BIGINT_MAX,
                                                             show_default=False,
                                                             help="Pause while the relay backlog is larger")] = None,
    max_projection_lag: Annotated[int | None, typer.Option("--max-projection-lag", min=0, max=BIGINT_MAX,
                                                              show_default=False,
                                                              help="Pause while a projection lags more events")] = None,
    project: Annotated[bool, typer.Option("--project/--no-project",
                                          help="Project each chunk in its own transaction "
                                               "(--no-project: leave it to the workers)")] = True,
    read_process: Annotated[bool | None, typer.Option(
        "--read-process/--no-read-process", show_default=False,
        help="Read and build chunks ahead in a second process (default: on a SQLite event store "
             f"when at least {READ_PROCESS_FROM:,} rows are left; never with --max-rate)")] = None,
    lease_ttl: Annotated[float, typer.Option(
        "--lease-ttl", min=1, max=86_400,
        help="Seconds a run's lease lives unrenewed: a second run refuses "
             "while it lives; a killed run is taken over after it")] = DEFAULT_TTL_S,
    es_url: EsUrl = None,
    legacy_url: LegacyUrl = None,
) -> None:
    """Import every legacy row as an event, chunk by chunk; resumable, throttled, safe under live writes."""
    from es_app.bootstrap import build, engine_for

    if resume and restart:
        raise CliError("pass either --resume or --restart, not both")
    settings = settings_for(ctx, es_url, legacy_url)
    check_schema("es", settings.es_database_url)  # the checkpoint table lives there
    legacy = engine_for(check_database_url(settings.legacy_database_url, "legacy"))
    es = build(settings)
    try:
        from migrator.mapping import load_mappings

        mappings = load_mappings(mapping, legacy, tables)
    except (MappingError, OSError) as exc:
        raise CliError(str(exc)) from None
    options = BackfillOptions(batch_size=batch_size, max_rate=max_rate, pause_file=pause_file,
                              read_process=read_process, lease_ttl=lease_ttl)
    live = LiveControl(es.store, settings.migration_name)  # `migrator pause / resume / throttle`, while it runs
    gate = PauseGate(pause_file=pause_file, relay_backlog=_relay_backlog(legacy, es, [m.declaration for m in mappings]),
                     max_relay_backlog=max_relay_backlog, projection_lag=_projection_lag(es),
                     max_projection_lag=max_projection_lag, live=live)
    project_fn = projector_for(es) if project else None
    stop = StopOnInterrupt()  # a first Ctrl-C stops after the chunk being written, a second at once
    backfills = [Backfill(m, legacy, es.store, options=options, gate=gate, project=project_fn, sleep=stop.sleep)
                 for m in mappings]
    try:
        for b in backfills:  # check every table before touching any
            _check_startable(b, resume=resume, restart=restart)
        with stop:
            done = [_run_one(b, live, stop, resume=resume, restart=restart) for b in backfills]
    except (BackfillError, CaptureError) as exc:
        raise CliError(str(exc)) from None
    console.print(summary_table(done))
    parked = sum(run.rows_parked for run, _ in done)
    if parked:
        console.print(f"{parked:,} rows parked (the event store cannot hold them): see `migrator parked list`, "
                      "then `migrator parked retry` after a fix", highlight=False, markup=False)


def _check_startable(b: Backfill, *, resume: bool, restart: bool) -> None:
    run = b.stored_run()
    if run is not None and not (resume or restart):
        b.start()  # raises the one-line BackfillError that says what to pass


def _run_one(b: Backfill, live: LiveControl, stop: StopOnInterrupt, *, resume: bool,
             restart: bool) -> tuple[BackfillRun, float]:
    stop.check()
    run = b.start(resume=resume, restart=restart)
    if run.finished:
        console.print(f"{b.name}: already finished, nothing to do")
        return run, 0.0
    total = run.rows_done + b.remaining_estimate()
    started = time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TimeElapsedColumn(), TextColumn("{task.fields[note]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(escape(b.name), total=max(total, run.rows_done), completed=run.rows_done, note="")

        def on_pause(reason: str) -> None:
            progress.update(task, note=f"[yellow]paused: {escape(reason)}")

        def on_chunk(result: ChunkResult) -> None:
            stop.check()  # the chunk is committed: a safe point to stop
            throttled = live.throttle_note()
            progress.update(task, advance=result.rows, note="" if throttled is None else f"[cyan]{escape(throttled)}")

        b.on_pause = on_pause  # type: ignore[method-assign]
        finished = b.run_to_end(on_chunk)
        progress.update(task, total=finished.rows_done, completed=finished.rows_done)
    return finished, time.perf_counter() - started


def register(app: typer.Typer) -> None:
    app.command()(backfill)
