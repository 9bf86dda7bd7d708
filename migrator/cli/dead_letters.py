"""`migrator dead-letters list|retry ID|skip ID`: the events a projection parked, per stream."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from .common import BIGINT_MAX, CliError, EsUrl, LegacyUrl, console, es_container, styled

dead_letters_app = typer.Typer(help="List, retry or skip parked events (sequenced per stream).",
                               no_args_is_help=True)

LetterId = Annotated[int, typer.Argument(min=1, max=BIGINT_MAX,
                                         help="Dead letter id (see `migrator dead-letters list`)")]


@dead_letters_app.command("list")
def list_(ctx: typer.Context,
          projection: Annotated[str | None, typer.Option("--projection", help="Only this projection",
                                                            show_default=False)] = None,
          stream: Annotated[str | None, typer.Option("--stream", help="Only this stream id",
                                                        show_default=False)] = None,
          all_: Annotated[bool, typer.Option("--all", help="Include retried, skipped and superseded ones")] = False,
          limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
          es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """List parked events (oldest first): the stream's later events wait behind each one."""
    from es_app.projections import list_parked

    es = es_container(ctx, es_url, legacy_url)
    letters = list_parked(es.engine, projection=projection, stream_id=stream,
                          status=None if all_ else "parked", limit=limit)
    if as_json:
        console.print_json(json.dumps([d.to_dict() for d in letters], default=str))
        return
    table = Table(title=f"dead letters ({len(letters)})")
    for col in ("id", "projection", "stream", "version", "position", "event", "attempts", "status", "error"):
        table.add_column(col, overflow="fold")
    for d in letters:
        table.add_row(str(d.id), d.projection, d.stream_id, str(d.version), str(d.position), d.event_type,
                      str(d.attempts), d.status, d.error)
    console.print(table)


def _resolve(ctx: typer.Context, letter_id: int, action: str, es_url: str | None, legacy_url: str | None) -> None:
    from es_app.projections import DeadLetterNotFound, NotParked, dead_letters

    es = es_container(ctx, es_url, legacy_url)
    try:
        letter = getattr(dead_letters, action)(es, letter_id)
    except (DeadLetterNotFound, NotParked) as exc:
        raise CliError(str(exc)) from None
    if letter.status == "parked":
        raise CliError(f"dead letter {letter_id} failed again (attempt {letter.attempts}): {letter.error}")
    console.print(styled("[green]{status}[/green] dead letter {id} ({type} of {stream} v{version}); the events "
                         "waiting behind it were applied", status=letter.status, id=letter_id,
                         type=letter.event_type, stream=letter.stream_id, version=letter.version), highlight=False)


@dead_letters_app.command("retry")
def retry(ctx: typer.Context, letter_id: LetterId, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Apply a parked event again, then the events of its stream waiting behind it."""
    _resolve(ctx, letter_id, "retry", es_url, legacy_url)


@dead_letters_app.command("skip")
def skip(ctx: typer.Context, letter_id: LetterId, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Drop a parked event for good and apply the events of its stream waiting behind it."""
    _resolve(ctx, letter_id, "skip", es_url, legacy_url)


def register(app: typer.Typer) -> None:
    app.add_typer(dead_letters_app, name="dead-letters")
