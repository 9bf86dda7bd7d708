"""`migrator decommission --archive DIR [--dry-run] [--confirm]`: retire the legacy tables once the guards of
`decommissioned` hold: archive, read back, drop, record (migrator.decommission; docs/decommission.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from .common import CliError, EsUrl, LegacyUrl, MappingFile, console, err_console
from .phases import Actor, actor_of, open_migration


def _error(line: str) -> None:
    err_console.print(Text.assemble(("error:", "red"), f" {line}"), highlight=False, soft_wrap=True)


def decommission(ctx: typer.Context,
                 archive: Annotated[Path, typer.Option("--archive", show_default=False,
                                                       help="Directory the archive is written to (new, or without "
                                                            "a manifest.json); created if missing")],
                 dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the steps (also the default "
                                                                         "without --confirm)")] = False,
                 confirm: Annotated[bool, typer.Option("--confirm", help="Archive, then drop the legacy tables, "
                                                                         "their capture triggers and the changelog")]
                 = False,
                 actor: Actor = None, mapping: MappingFile = None,
                 es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Retire the legacy tables: archive each to DIR as compressed JSON Lines with a manifest.json, read the
    archive back, then drop the tables (their capture triggers with them) and the changelog, and record
    `decommissioned`.
    Without --confirm it prints every step and exits 1."""
    from migrator.decommission import ArchiveError, Decommission, DropError
    from migrator.phases import GuardsUnmet, PhaseError

    if not str(archive).strip():
        raise CliError("--archive must name a directory", code=2)
    who = actor_of(actor)
    m = open_migration(ctx, es_url, legacy_url, mapping)
    d = Decommission(m.es.store, m.legacy, m.mappings, m.limits, archive, m.state.name)
    problems = d.problems()
    if problems:
        for line in problems:
            _error(f"cannot decommission: {line}")
        if confirm and not dry_run:
            d.refuse(who)
        raise typer.Exit(1)
    if dry_run or not confirm:
        console.print(f"decommission of the migration {d.state.name} would:", highlight=False, soft_wrap=True)
        for i, step in enumerate(d.steps(), 1):
            console.print(f"  {i}. {step}", highlight=False, soft_wrap=True)
        console.print("nothing was done: run again with --confirm to do it", highlight=False)
        raise typer.Exit(1)
    try:
        done = d.run(who)
    except GuardsUnmet as exc:
        for r in exc.unmet:
            _error(f"cannot decommission: {r.name}: {r.detail}")
        raise typer.Exit(1) from None
    except (ArchiveError, DropError, PhaseError) as exc:
        raise CliError(str(exc)) from None
    for t in done.manifest.tables:
        console.print(f"archived {t.table}: {t.rows:,} rows to {archive / t.file} (sha256 {t.sha256})",
                      highlight=False, soft_wrap=True)
    console.print(f"wrote {archive / 'manifest.json'} (sha256 {done.manifest_sha256}); read back: row counts and "
                  "sha256 match", highlight=False, soft_wrap=True)
    for line in done.dropped.lines():
        console.print(f"done: {line}", highlight=False, soft_wrap=True)
    console.print(f"migration {done.state.name}: {d.state.phase} → {done.state.phase}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(decommission)
