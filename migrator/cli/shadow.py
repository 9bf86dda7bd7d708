"""`migrator shadow aa` (legacy against legacy: the noise floor of shadow reads) and `migrator shadow mismatches`
(the differences shadow reads recorded, with both values)."""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from .common import CliError, EsUrl, LegacyUrl, MappingFile, check_database_url, console, es_container, settings_for
from .reads import share_percent

shadow_app = typer.Typer(help="Shadow reads: the A/A run and the recorded mismatches.", no_args_is_help=True)
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]


class Kind(str, enum.Enum):
    mismatch = "mismatch"
    lag = "lag"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


@shadow_app.command("aa")
def aa(ctx: typer.Context,
       reads: Annotated[int, typer.Option("--reads", min=1, max=10_000_000, help="Legacy reads to make")] = 1000,
       threads: Annotated[int, typer.Option("--threads", min=1, max=256, help="Threads reading at once")] = 4,
       percent: Annotated[float, typer.Option("--percent", callback=share_percent,
                                              help="The share of users shadowed (by key hash)")] = 100.0,
       as_json: AsJson = False, mapping: MappingFile = None,
       es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Run shadow reads of legacy against legacy (an A/A run): the mismatch rate it finds is the noise floor."""
    from legacy_app.db import Database, SchemaMissing
    from migrator.mapping import MappingError, load_mappings
    from migrator.shadow.aa import run_aa

    settings = settings_for(ctx, es_url, legacy_url)
    url = check_database_url(settings.legacy_database_url, "legacy")
    try:
        database = Database.connect(url)
    except SchemaMissing as exc:
        raise CliError(str(exc)) from None
    try:
        try:
            users = [m for m in load_mappings(mapping, database.engine) if m.table == "users"]
        except MappingError as exc:
            raise CliError(str(exc)) from None
        if not users:
            raise CliError("no mapping of the users table: the A/A run reads the legacy app's users")
        result = run_aa(database, users[0], reads=reads, threads=threads, percent=percent,
                        pool=settings.shadow_pool, queue=settings.shadow_queue,
                        timeout_s=settings.shadow_timeout_ms / 1000.0)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    c = result.counts
    rate = "-" if result.mismatch_rate is None else f"{result.mismatch_rate:.4%}"
    console.print(f"A/A run: {result.reads:,} legacy reads, {c['compared']:,} compared, {c['mismatched']:,} "
                  f"mismatched (noise floor {rate}), {c['lagged']:,} lagged, {c['timeouts']:,} timeouts, "
                  f"{c['errors']:,} errors, {c['skipped']:,} skipped", highlight=False, soft_wrap=True)
    for d in result.differences[:10]:
        console.print(Text(f"  {d.kind} {d.key}: {', '.join(d.fields)}"), highlight=False)


@shadow_app.command("mismatches")
def list_mismatches(ctx: typer.Context,
                    kind: Annotated[Kind | None, typer.Option("--kind", show_default=False,
                                                              help="Only this kind (default: both)")] = None,
                    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000,
                                                       help="At most this many, newest first")] = 20,
                    as_json: AsJson = False, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """List the differences shadow reads recorded: key, kind (mismatch or lag), fields, both values."""
    from migrator.shadow.mismatches import recent

    es = es_container(ctx, es_url, legacy_url)
    found = recent(es.engine, es.settings.migration_name, kind=kind.value if kind else None, limit=limit)
    if as_json:
        typer.echo(json.dumps([m.to_dict() for m in found], indent=2))
        return
    if not found:
        console.print("no shadow mismatches recorded", highlight=False)
        return
    table = Table(title=f"shadow mismatches of migration {es.settings.migration_name} (newest first)",
                  title_justify="left")
    for col in ("id", "at", "kind", "key", "fields", "legacy", "candidate", "rm position", "changelog id"):
        table.add_column(col)
    for m in found:
        d = m.to_dict()
        table.add_row(str(m.id), d["recorded_at"], m.kind, Text(m.key), Text(", ".join(m.fields)),
                      Text(_show(d["legacy"])), Text(_show(d["candidate"])), str(m.read_model_position or "-"),
                      str(m.changelog_id or "-"))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(shadow_app, name="shadow")
