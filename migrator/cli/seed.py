"""`migrator seed --users N`: fill the legacy database with realistic users."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from sqlalchemy.exc import ArgumentError, OperationalError

from legacy_app.db import Database, SchemaMissing
from migrator.seed import CHUNK_SIZE, default_workers, seed_users

from .common import BIGINT_MAX, CliError, EsUrl, LegacyUrl, check_database_url, console, settings_for, styled


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.0f} rows/s" if task.speed else "… rows/s", style="progress.data.speed")


def _open(url: str) -> Database:
    try:
        return Database.connect(url)
    except SchemaMissing as exc:
        raise CliError(str(exc)) from None
    except ArgumentError as exc:
        raise CliError(f"bad legacy database URL {url!r}: {str(exc).splitlines()[0]}", code=2) from None
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise CliError(f"cannot open the legacy database: {reason}") from None


MAX_USERS = 10_000_000


def seed(
    ctx: typer.Context,
    users: Annotated[int, typer.Option("--users", max=MAX_USERS, help="How many users to add.", show_default=False)],
    legacy_url: LegacyUrl = None,
    es_url: EsUrl = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", max=100_000,
                                            help="Rows per insert and commit.")] = CHUNK_SIZE,
    workers: Annotated[int | None, typer.Option(
        "--workers", max=64, help="Processes building rows (0: none, build in this one) [default: CPUs, at most 4]",
        show_default=False)] = None,
    random_seed: Annotated[int | None, typer.Option(
        "--seed", min=0, max=BIGINT_MAX, help="Random seed, for the same rows again.", show_default=False)] = None,
) -> None:
    """Add N realistic users to the legacy database (appends; emails stay unique)."""
    if users < 1:
        raise CliError(f"--users must be at least 1 (got {users})", code=2)
    if chunk_size < 1:
        raise CliError(f"--chunk-size must be at least 1 (got {chunk_size})", code=2)
    if workers is not None and workers < 0:
        raise CliError(f"--workers must be 0 or more (got {workers})", code=2)
    url = check_database_url(settings_for(ctx, es_url, legacy_url).legacy_database_url, "legacy")
    database = _open(url)
    shown = database.engine.url.render_as_string(hide_password=True)
    try:
        with Progress(TextColumn("[bold]seeding users"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                      TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                      transient=False) as progress:
            task = progress.add_task("seed", total=users)
            report = seed_users(database.engine, users, chunk_size=chunk_size, seed=random_seed,
                                workers=default_workers() if workers is None else workers,
                                on_chunk=lambda n: progress.advance(task, n))
    finally:
        database.dispose()
    console.print(styled("[green]✓[/green] added {rows:,} users in {seconds:.1f}s ({rate:,.0f} rows/s); {total:,} "
                         "users in {shown}", rows=report.rows, seconds=report.seconds, rate=report.rows_per_s,
                         total=report.total_rows, shown=shown), highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(seed)
