"""`migrator projections run|rebuild|status`: project the feed into the read models, rebuild, watch the lag."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .common import CliError, EsUrl, LegacyUrl, console, es_container, finite, styled

projections_app = typer.Typer(help="Project the event feed into the read models; rebuild; status.",
                              no_args_is_help=True)

MAX_SHARDS = 1024
Shard = Annotated[int | None, typer.Option("--shard", min=0, max=MAX_SHARDS - 1,
                                              help="Run only this shard (0-based)", show_default=False)]
Shards = Annotated[int | None, typer.Option("--shards", min=1, max=MAX_SHARDS,
                                               help="Shard count [default: PROJECTION_SHARDS]", show_default=False)]
BatchSize = Annotated[int | None, typer.Option("--batch-size", min=1, max=100_000,
                                                  help="Events per transaction [default: PROJECTION_BATCH_SIZE]",
                                                  show_default=False)]


def _shard_plan(shard: int | None, shards: int | None, default_shards: int) -> list[tuple[int | None, int | None]]:
    from es_app.projections.checkpoints import check_shard

    n = shards if shards is not None else default_shards
    try:
        if shard is not None:
            return [check_shard(shard, n)]
        return [check_shard(i, n) for i in range(n)] if n > 1 else [(None, None)]
    except ValueError as exc:
        raise CliError(str(exc), code=2) from None


def _names(only: list[str] | None) -> list[str] | None:
    from es_app.projections import REGISTRY

    for name in only or []:
        if name not in REGISTRY:
            raise CliError(f"unknown projection {name!r} (known: {', '.join(sorted(REGISTRY))})", code=2)
    return only or None


@projections_app.command("run")
def run(ctx: typer.Context,
        follow: Annotated[bool, typer.Option("--follow", help="Keep following the feed until interrupted")] = False,
        shard: Shard = None, shards: Shards = None, batch_size: BatchSize = None,
        only: Annotated[list[str] | None, typer.Option("--only", help="Run only this projection (repeatable)",
                                                          show_default=False)] = None,
        poll: Annotated[float, typer.Option("--poll", min=0.05, max=3600, callback=finite,
                                            help="Seconds between polls with --follow")] = 1.0,
        es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Project every registered projection up to the head of the feed and exit (or keep following)."""
    from es_app.projections import read_model_position, run_projections

    es = es_container(ctx, es_url, legacy_url)
    plan = _shard_plan(shard, shards, es.settings.projection_shards)
    names = _names(only)
    size = batch_size or es.settings.projection_batch_size
    while True:
        applied = sum(run_projections(es, shard=s, shards=n, names=names, batch_size=size) for s, n in plan)
        if applied or not follow:
            console.print(f"applied {applied} events; users read model at position "
                          f"{read_model_position(es.engine)} of {es.store.head_position()}", highlight=False)
        if not follow:
            return
        time.sleep(poll)


@projections_app.command("rebuild")
def rebuild(ctx: typer.Context, batch_size: BatchSize = None, shards: Shards = None,
            es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Rebuild the users read model by replay into a fresh table, then swap it in (blue/green)."""
    from es_app.projections.rebuild import RebuildInProgress, rebuild_users

    es = es_container(ctx, es_url, legacy_url)
    head = es.store.head_position()
    with Progress(TextColumn("rebuilding users_view"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task("rebuild", total=max(head, 1))
        try:
            result = rebuild_users(es, shards=shards, batch_size=batch_size or es.settings.projection_batch_size,
                                   on_batch=lambda r: progress.update(task, completed=min(r.position, head)))
        except RebuildInProgress as exc:
            raise CliError(str(exc)) from None
    console.print(styled("[green]rebuilt[/green] users_view: {rows} rows from {applied} events, position "
                         "{position}, {seconds:.1f} s", rows=result.rows, applied=result.applied,
                         position=result.position, seconds=result.seconds), highlight=False)


@projections_app.command("status")
def status(ctx: typer.Context,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
           es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Show each projection's (and shard's) position, lag behind the head, rate and parked events."""
    from es_app.projections import projection_status

    rows = projection_status(es_container(ctx, es_url, legacy_url))
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in rows], default=str))
        return
    table = Table(title="projections")
    for col in ("projection", "position", "head", "lag", "rate (ev/s)", "eta", "parked", "updated"):
        table.add_column(col, justify="left" if col in ("projection", "updated") else "right")
    for r in rows:
        eta = f"{r.eta_seconds:.1f} s" if r.eta_seconds is not None else "-"
        rate = f"{r.rate:,.0f}" if r.rate is not None else "-"
        table.add_row(r.name, f"{r.position:,}", f"{r.head:,}", f"{r.lag:,}", rate, eta, str(r.parked),
                      r.updated_at.isoformat(timespec="seconds") if r.updated_at else "never")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(projections_app, name="projections")
