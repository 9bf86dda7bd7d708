"""`migrator pause`, `migrator resume`, `migrator throttle`: live control of a running backfill or relay
through the migration's state (picked up within about a second, no restart)."""

from __future__ import annotations

from typing import Annotated

import typer

from migrator.phases import PhaseError

from .common import MIN_RATE, CliError, EsUrl, LegacyUrl, console, rate_cap
from .phases import Actor, actor_of, open_migration


def pause(ctx: typer.Context,
          reason: Annotated[str, typer.Option("--reason", help="Why (shown by running work and recorded)")]
          = "paused by an operator",
          actor: Actor = None, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Pause running backfills and relays (they wait until `migrator resume`)."""
    from migrator.phases import pause as pause_migration

    if not reason.strip():
        raise CliError("--reason must not be blank", code=2)
    who = actor_of(actor)
    m = open_migration(ctx, es_url, legacy_url, legacy=False)
    try:
        after = pause_migration(m.es.store, m.state, reason.strip(), who)
    except PhaseError as exc:
        raise CliError(str(exc)) from None
    console.print(f"migration {after.name} paused: {after.pause_note()}", highlight=False, soft_wrap=True)


def resume(ctx: typer.Context, actor: Actor = None, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Let paused backfills and relays go on."""
    from migrator.phases import resume as resume_migration

    who = actor_of(actor)
    m = open_migration(ctx, es_url, legacy_url, legacy=False)
    try:
        after = resume_migration(m.es.store, m.state, who)
    except PhaseError as exc:
        raise CliError(str(exc)) from None
    console.print(f"migration {after.name} resumed", highlight=False, soft_wrap=True)


def throttle(ctx: typer.Context,
             max_rate: Annotated[float, typer.Option("--max-rate", min=0, max=1e9, callback=rate_cap,
                                                     help=f"Rows (backfill) or changes (relay) per second, at least "
                                                          f"{MIN_RATE}; 0 removes the cap")],
             actor: Actor = None, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Cap the rate of running backfills and relays (the lower of this and their own --max-rate applies)."""
    from migrator.phases import throttle as throttle_migration

    who = actor_of(actor)
    m = open_migration(ctx, es_url, legacy_url, legacy=False)
    after = throttle_migration(m.es.store, m.state, max_rate, who)
    shown = "no rate cap" if after.max_rate is None else f"at most {after.max_rate:g} per second"
    console.print(f"migration {after.name} throttled: {shown}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(pause)
    app.command()(resume)
    app.command()(throttle)
