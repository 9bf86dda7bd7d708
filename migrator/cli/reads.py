"""`migrator reads --mode legacy|shadow|new [--percent P]`: where the legacy app's reads go, recorded in the
migration's stream and picked up by running legacy apps (`migrator serve legacy`) within a second or two."""

from __future__ import annotations

import enum
import math
from typing import Annotated

import typer

from .common import CliError, EsUrl, LegacyUrl, console
from .phases import Actor, actor_of, open_migration


class ReadsMode(str, enum.Enum):
    legacy = "legacy"
    shadow = "shadow"
    new = "new"


def share_percent(value: float) -> float:
    """Option callback: a share of users, above 0 and at most 100."""
    if math.isnan(value) or not 0 < value <= 100:
        raise typer.BadParameter(f"{value:g} is not a share of users: it must be above 0 and at most 100")
    return value


def reads(ctx: typer.Context,
          mode: Annotated[ReadsMode, typer.Option("--mode", show_default=False, case_sensitive=False,
                                                  help="legacy: the legacy table; shadow: legacy serves, the read "
                                                       "model is read too and compared; new: the read model serves")],
          percent: Annotated[float, typer.Option("--percent", callback=share_percent,
                                                 help="The share of users (by key hash) the mode applies to: shadow "
                                                      "samples them, new serves them (the rest: legacy)")] = 100.0,
          actor: Actor = None, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Set the legacy app's reads mode; `--mode legacy` is always allowed and switches back at once."""
    from migrator.phases import PhaseError
    from migrator.shadow.modes import set_reads

    who = actor_of(actor)
    m = open_migration(ctx, es_url, legacy_url, legacy=False)
    before = m.state
    try:
        after = set_reads(m.es.store, before, mode.value, percent, who)
    except PhaseError as exc:
        raise CliError(str(exc)) from None
    share = "" if after.reads_percent == 100.0 else f" for {after.reads_percent:g}% of users"
    if after.version == before.version:
        console.print(f"migration {after.name}: reads are already {after.reads}{share}", highlight=False)
        return
    console.print(f"migration {after.name}: reads {before.reads} → {after.reads}{share} (running legacy apps "
                  f"follow within {m.es.settings.routes_poll_s:g}s)", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(reads)
