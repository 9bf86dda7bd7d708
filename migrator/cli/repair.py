"""`migrator repair --report ID [--apply]`: the events that make the new side agree with a verify run's legacy rows.

Dry run by default: one line per action, nothing written. Exit 0 (1 when streams changed while
they were repaired: run it again), 2 could not run (an unknown run, a bad database: one error line).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text
from sqlalchemy.exc import DatabaseError

from migrator.mapping import MappingError

from .common import (
    BIGINT_MAX,
    CliError,
    EsUrl,
    LegacyUrl,
    MappingFile,
    console,
    es_container,
    legacy_and_mappings,
)


def repair(
    ctx: typer.Context,
    report: Annotated[int, typer.Option("--report", min=1, max=BIGINT_MAX, show_default=False,
                                        help="The verify run to repair (its id: `migrator verify --list`)")],
    apply: Annotated[bool, typer.Option("--apply", help="Write the events (default: print the plan only)")] = False,
    project: Annotated[bool, typer.Option("--project/--no-project",
                                          help="With --apply: run the projections afterwards")] = True,
    mapping: MappingFile = None,
    es_url: EsUrl = None,
    legacy_url: LegacyUrl = None,
) -> None:
    """Turn a verify run's mismatches into correction, import and delete events and read-model rebuilds."""
    from migrator.repair import repair as run_repair
    from migrator.report.document import plain
    from migrator.verify.runs import RunNotFound, load, table_names

    try:
        es = es_container(ctx, es_url, legacy_url)
        try:
            doc = load(es.engine, report)
        except RunNotFound as exc:
            raise CliError(str(exc)) from None
        tables = sorted({str(m.get("table")) for m in doc.get("mismatches") or ()} or set(table_names(doc)))
        if not tables:
            console.print(f"verify run {report} lists no mismatch: nothing to repair", highlight=False)
            return
        legacy, every = legacy_and_mappings(ctx, legacy_url, mapping, None, bind=False, es_url=es_url)
        mappings = [m.bind(legacy) for m in every if m.table in tables]  # a table no longer mapped is skipped
    except MappingError as exc:
        raise CliError(str(exc), code=2) from None
    except CliError as exc:
        raise CliError(str(exc), code=2) from None
    except DatabaseError as exc:
        text = str(getattr(exc, "orig", None) or exc).strip()
        raise CliError(f"database: {text.splitlines()[0] if text else type(exc).__name__}", code=2) from None
    result = run_repair(doc, legacy, es.store, mappings, apply=apply)
    for note in result.notes:
        console.print(note, highlight=False, soft_wrap=True)
    for a in result.actions:
        line = f"{plain(a.table)} {plain(a.key)} ({plain(a.stream_id)}, {plain(a.kind)}): {a.action}"
        if a.events:
            line += f" [{a.events} event{'s' if a.events != 1 else ''}]"
        console.print(Text(f"{line}: {a.detail}" if a.detail else line), highlight=False, soft_wrap=True)
    acting = [a for a in result.actions if a.action in ("correct", "import", "delete", "rebuild")]
    if not apply:
        console.print(f"dry run: {len(acting):,} actions planned, nothing written (pass --apply to write)",
                      highlight=False)
        return
    console.print(f"applied: {result.events:,} events, {sum(a.action == 'rebuild' for a in acting):,} read-model "
                  f"rows rebuilt", highlight=False)
    if project and result.events:
        from es_app.projections import run_projections

        console.print(f"projections applied {run_projections(es):,} events", highlight=False)
    if result.raced:
        raise CliError(f"{result.raced:,} streams changed while they were repaired: run `migrator repair --report "
                       f"{report} --apply` again")


def register(app: typer.Typer) -> None:
    app.command()(repair)
