"""`migrator capture install|remove|status`: change capture in the legacy database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from migrator.capture import changelog as cap

from .common import (
    CliError,
    EsUrl,
    LegacyUrl,
    MappingFile,
    Tables,
    console,
    legacy_and_mappings,
    settings_for,
    warn_gaps,
)


@contextmanager
def _one_line() -> Iterator[None]:
    """Turns a capture error (e.g. a backend without capture) into the CLI's one error line."""
    try:
        yield
    except cap.CaptureError as exc:
        raise CliError(str(exc)) from None


def _show(st: cap.CaptureStatus, title: str) -> None:
    table = Table(title=title)
    for col in ("table", "triggers", "changelog rows", "last id"):
        table.add_column(col, justify="right" if col in ("changelog rows", "last id") else "left")
    for t in st.tables:
        table.add_row(t.table, Text("installed", "green") if t.installed else Text("absent", "yellow"),
                      f"{t.changes:,}", str(t.last_id))
    console.print(table)
    changelog = Text("present", "green") if st.changelog else Text("absent", "yellow")
    console.print(Text.assemble(f"changelog ({cap.CHANGELOG}) on {st.backend}: ", changelog))


def install(ctx: typer.Context,
            mode: Annotated[str, typer.Option(
                "--mode", help="triggers: database triggers; session: only the "
                               "changelog, for the SQLAlchemy session hook")] = "triggers",
            mapping: MappingFile = None, tables: Tables = None, legacy_url: LegacyUrl = None,
            es_url: EsUrl = None) -> None:
    """Create the changelog and the capture triggers of every mapped table (idempotent)."""
    if mode not in cap.MODES:
        raise CliError(f"--mode must be one of {', '.join(cap.MODES)}, not {mode!r}")
    engine, mappings = legacy_and_mappings(ctx, legacy_url, mapping, tables, es_url=es_url)
    with _one_line():
        done = cap.install(engine, [m.declaration for m in mappings], mode=mode)
    _show(done, "capture installed")


def remove(ctx: typer.Context,
           drop_changelog: Annotated[bool, typer.Option("--drop-changelog", help="Also drop the changelog "
                                                        "and everything not yet relayed")] = False,
           mapping: MappingFile = None, tables: Tables = None, legacy_url: LegacyUrl = None,
           es_url: EsUrl = None) -> None:
    """Drop the capture triggers (and, with --drop-changelog, the changelog); idempotent."""
    engine, mappings = legacy_and_mappings(ctx, legacy_url, mapping, tables, bind=False, es_url=es_url)
    with _one_line():
        done = cap.remove(engine, mappings, drop_changelog=drop_changelog)
    _show(done, "capture removed")


def status(ctx: typer.Context, mapping: MappingFile = None, tables: Tables = None,
           legacy_url: LegacyUrl = None, es_url: EsUrl = None) -> None:
    """Show whether capture is installed, per mapped table, with changelog counts and capture gaps."""
    engine, mappings = legacy_and_mappings(ctx, legacy_url, mapping, tables, bind=False, es_url=es_url)
    with _one_line():
        done = cap.status(engine, mappings)
    _show(done, "capture status")
    warn_gaps(settings_for(ctx, es_url, legacy_url).es_database_url, engine, mappings)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Change capture: triggers write a changelog row with every legacy write.",
                        no_args_is_help=True)
    group.command()(install)
    group.command()(remove)
    group.command()(status)
    app.add_typer(group, name="capture")
