"""`migrator parked list|retry`: legacy rows and changes the event store cannot hold, parked per key."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from .common import CliError, EsUrl, LegacyUrl, MappingFile, check_schema, console, settings_for

parked_app = typer.Typer(help="List or retry the legacy rows and changes parked by the backfill and the relay.",
                         no_args_is_help=True)

TableOpt = Annotated[str | None, typer.Option("--table", help="Only this legacy table", show_default=False)]
KeyOpt = Annotated[str | None, typer.Option("--key", help="Only this legacy key (as its stream id shows it)",
                                               show_default=False)]


@parked_app.command("list")
def list_(ctx: typer.Context, table: TableOpt = None, key: KeyOpt = None,
          all_: Annotated[bool, typer.Option("--all", help="Include resolved ones")] = False,
          limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON (rows as escaped JSON text)")] = False,
          es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """List parked rows and changes (oldest first): a key's later changes wait behind its first one."""
    from es_app.bootstrap import engine_for
    from migrator.parking.entries import list_parked

    settings = settings_for(ctx, es_url, legacy_url)
    check_schema("es", settings.es_database_url)
    entries = list_parked(engine_for(settings.es_database_url), table=table, key=key, include_resolved=all_,
                          limit=limit)
    if as_json:
        console.print_json(json.dumps([e.to_dict() for e in entries], default=str))
        return
    out = Table(title=f"parked ({len(entries)})")
    for col in ("id", "table", "key", "source", "change", "attempts", "status", "parked at", "reason"):
        out.add_column(col, overflow="fold")
    for e in entries:
        out.add_row(str(e.id), Text(e.table_name), Text(e.key), e.source, str(e.changelog_id or ""), str(e.attempts),
                    e.status, f"{e.parked_at:%Y-%m-%d %H:%M:%S}", Text(e.reason))
    console.print(out)


@parked_app.command("retry")
def retry(ctx: typer.Context, table: TableOpt = None, key: KeyOpt = None,
          mapping: MappingFile = None,
          es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Apply parked rows and changes again, per key in order, through the current mapping and legacy rows."""
    from es_app.bootstrap import build, engine_for
    from migrator.mapping import MappingError, load_mappings
    from migrator.parking.retry import retry as retry_parked

    settings = settings_for(ctx, es_url, legacy_url)
    check_schema("es", settings.es_database_url)
    legacy = engine_for(settings.legacy_database_url)
    try:
        mappings = load_mappings(mapping, legacy, [table] if table else None)
    except (MappingError, OSError) as exc:
        raise CliError(str(exc)) from None
    es = build(settings)
    still = 0
    for m in mappings:
        report = retry_parked(es.store, legacy, m, key=key)
        still += report.still_parked
        console.print(f"{m.table}: {report.keys:,} keys tried, {report.resolved:,} entries resolved, "
                      f"{report.still_parked:,} still parked", highlight=False, markup=False)
    if still:
        raise CliError(f"{still:,} entries are still parked: see `migrator parked list` for the reasons")


def register(app: typer.Typer) -> None:
    app.add_typer(parked_app, name="parked")
