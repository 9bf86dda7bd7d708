"""`migrator capture install|remove|status`: change capture in the legacy database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from migrator.capture import changelog as cap
from migrator.mapping import MappingError

from .common import (
    CliError,
    EsUrl,
    LegacyUrl,
    MappingFile,
    Tables,
    check_database_url,
    console,
    err_console,
    settings_for,
    styled,
)



def _engine_and_mappings(ctx: typer.Context, legacy_url: str | None, mapping: Path | None,
                         tables: list[str] | None, bind: bool = True, es_url: str | None = None):  # noqa: ANN202
    from es_app.bootstrap import engine_for
    from migrator.mapping import load_mappings

    engine = engine_for(check_database_url(settings_for(ctx, es_url, legacy_url).legacy_database_url, "legacy"))
    try:
        return engine, load_mappings(mapping, engine if bind else None, tables)
    except MappingError as exc:
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
            mode: Annotated[str, typer.Option("--mode", help="triggers: database triggers; session: only the "
                                                             "changelog, for the SQLAlchemy session hook")] = "triggers",
            mapping: MappingFile = None, tables: Tables = None, legacy_url: LegacyUrl = None,
            es_url: EsUrl = None) -> None:
    """Create the changelog and the capture triggers of every mapped table (idempotent)."""
    if mode not in cap.MODES:
        raise CliError(f"--mode must be one of {', '.join(cap.MODES)}, not {mode!r}")
    engine, mappings = _engine_and_mappings(ctx, legacy_url, mapping, tables, es_url=es_url)
    _show(cap.install(engine, mappings, mode=mode), "capture installed")


def remove(ctx: typer.Context,
           drop_changelog: Annotated[bool, typer.Option("--drop-changelog", help="Also drop the changelog "
                                                        "and everything not yet relayed")] = False,
           mapping: MappingFile = None, tables: Tables = None, legacy_url: LegacyUrl = None,
           es_url: EsUrl = None) -> None:
    """Drop the capture triggers (and, with --drop-changelog, the changelog); idempotent."""
    engine, mappings = _engine_and_mappings(ctx, legacy_url, mapping, tables, bind=False, es_url=es_url)
    _show(cap.remove(engine, mappings, drop_changelog=drop_changelog), "capture removed")


def status(ctx: typer.Context, mapping: MappingFile = None, tables: Tables = None,
           legacy_url: LegacyUrl = None, es_url: EsUrl = None) -> None:
    """Show whether capture is installed, per mapped table, with changelog counts and capture gaps."""
    engine, mappings = _engine_and_mappings(ctx, legacy_url, mapping, tables, bind=False, es_url=es_url)
    _show(cap.status(engine, mappings), "capture status")
    warn_gaps(settings_for(ctx, es_url, legacy_url).es_database_url, engine, mappings)


def warn_gaps(es_url: str, legacy: object, mappings: list, seen: set | None = None) -> int:
    """Prints one warning line per open capture gap (see migrator.capture.gaps); returns how many.

    With `seen`, gaps already in it are not printed again (and those printed are added)."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import OperationalError

    from es_app.bootstrap import engine_for
    from migrator.capture.gaps import gaps, open_gaps

    try:
        check_database_url(es_url, "es")
    except CliError as exc:
        console.print(f"capture gaps: not checked ({exc})", highlight=False)
        return 0
    try:
        es = engine_for(es_url)
        if not inspect(es).has_table(gaps.name):
            console.print("capture gaps: not checked (the event-store schema is older: run `migrator init`)",
                          highlight=False)
            return 0
        found = open_gaps(legacy, es, mappings)  # type: ignore[arg-type]
    except OperationalError as exc:
        console.print(f"capture gaps: not checked ({str(exc.orig).strip().splitlines()[0]})", highlight=False)
        return 0
    for gap in found:
        if seen is not None:
            if (gap.table, gap.reason, gap.until) in seen:
                continue
            seen.add((gap.table, gap.reason, gap.until))
        err_console.print(styled("[yellow]warning[/yellow]: {line}", line=gap.warning()), highlight=False)
    if not found and seen is None:
        console.print("capture gaps: none", highlight=False)
    return len(found)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Change capture: triggers write a changelog row with every legacy write.",
                        no_args_is_help=True)
    group.command()(install)
    group.command()(remove)
    group.command()(status)
    app.add_typer(group, name="capture")
