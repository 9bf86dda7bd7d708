"""`migrator reverse [--drain] [--json]`: the reverse projection of the mapped tables, caught up where it has work.

While the migration's writes are switched it catches the legacy tables up to the event store's head (as
each round of the relay does); `--drain` relays and catches up whatever the writes mode (what a rollback
from switched writes runs). Then it prints, per table, the checkpoint, whether events of the table lie
beyond it, and the keys that wait for the relay, with their reasons. Exit 0; 2 when it cannot run (one error line).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from sqlalchemy.exc import DatabaseError

from migrator.mapping import MappingError

from .common import CliError, EsUrl, LegacyUrl, MappingFile, console, es_container, legacy_and_mappings

SHOWN = 20  # waiting keys listed per table in the text output


def reverse(
    ctx: typer.Context,
    drain_all: Annotated[bool, typer.Option("--drain", help="Relay and catch up to the head whatever the writes "
                                                            "mode, until no key waits (as a rollback does)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON")] = False,
    mapping: MappingFile = None,
    es_url: EsUrl = None,
    legacy_url: LegacyUrl = None,
) -> None:
    """Keep the legacy tables equal to the event store while writes are switched, and show how far they are."""
    from migrator.phases import load
    from migrator.switchover.reverse import (
        background_catch_up,
        checkpoint,
        drain,
        projections_for,
        waiting_keys_of,
    )

    try:
        es = es_container(ctx, es_url, legacy_url)
        legacy, mappings = legacy_and_mappings(ctx, legacy_url, mapping, None, es_url=es_url)
        writes = load(es.store, es.settings.migration_name).writes
        projections = projections_for(mappings, legacy, es.store)
        done = {r.table: r for r in (drain(projections) if drain_all
                                     else background_catch_up(projections, es.settings.migration_name))}
        with legacy.connect() as conn:
            tables = [{"table": m.table, "position": (position := checkpoint(conn, m.table)),
                       "caught_up": not es.store.read_all(after=position, limit=1, category=m.category),
                       "written": done[m.table].written if m.table in done else 0,
                       "waiting": [{"key": k, "reason": why} for _, k, why in waiting_keys_of(conn, m.table)]}
                      for m in mappings]
    except MappingError as exc:
        raise CliError(str(exc), code=2) from None
    except DatabaseError as exc:
        text = str(getattr(exc, "orig", None) or exc).strip()
        raise CliError(f"database: {text.splitlines()[0] if text else type(exc).__name__}", code=2) from None
    if as_json:
        console.print_json(json.dumps({"writes": writes, "tables": tables}))
        return
    for t in tables:
        _print_table(writes, t)


def _print_table(writes: str, t: dict[str, Any]) -> None:
    behind = "caught up" if t["caught_up"] else "behind the store"
    console.print(f"{t['table']}: rows hold the events up to position {t['position']:,} ({behind}, writes {writes}); "
                  f"{t['written']:,} row(s) written now, {len(t['waiting']):,} key(s) waiting",
                  highlight=False, soft_wrap=True)
    for w in t["waiting"][:SHOWN]:
        console.print(f"  key {w['key']}: {w['reason']}", highlight=False, soft_wrap=True, markup=False)
    if len(t["waiting"]) > SHOWN:
        console.print(f"  … and {len(t['waiting']) - SHOWN:,} more", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(reverse)
