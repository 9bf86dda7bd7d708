"""`migrator plan`, `migrator advance`, `migrator rollback`: the migration's phases and the guards of each step
(migrator.phases)."""

from __future__ import annotations

import dataclasses
import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from migrator.phases import (
    DECOMMISSIONED,
    PHASES,
    DecommissionByCommand,
    GuardResult,
    GuardsUnmet,
    MigrationState,
    PhaseError,
    Thresholds,
    guards_for,
)

from .common import CliError, EsUrl, LegacyUrl, MappingFile, console, err_console, es_container, legacy_and_mappings


def _phase(value: str | None) -> str | None:
    """Option callback: a phase name, one of PHASES."""
    if value is not None and value not in PHASES:
        raise typer.BadParameter(f"{value!r} is not a phase: choose one of {', '.join(PHASES)}")
    return value


Actor = Annotated[str | None, typer.Option("--actor", show_default=False,
                                           help="Who acts, as recorded in the migration's history "
                                                "(default: the OS user)")]


def actor_of(actor: str | None) -> str:
    """Returns the actor recorded: `--actor`, else the OS user; a blank --actor is a usage error (exit 2)."""
    if actor is not None:
        if not actor.strip():
            raise CliError("--actor must not be blank", code=2)
        return actor.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclasses.dataclass
class Migration:
    """What a phase command works on: the es_app container, the legacy engine, the mappings, the state."""

    es: Any
    legacy: Any
    mappings: list[Any]
    state: MigrationState

    @property
    def limits(self) -> Thresholds:
        return Thresholds.from_settings(self.es.settings)

    def guards_of(self) -> Any:
        """Returns guards_of(phase, state) over facts gathered once, now."""
        from migrator.phases.facts import gather

        facts = gather(self.legacy, self.es.engine, self.mappings, self.state,
                       catch_up_wait_s=self.es.settings.relay_catch_up_wait_s)
        return lambda phase, state: guards_for(phase, facts, state, self.limits)


def open_migration(ctx: typer.Context, es_url: str | None, legacy_url: str | None,
                   mapping: Path | None = None, *, legacy: bool = True) -> Migration:
    """Returns the migration named by MIGRATION_NAME, folded from its stream (CliError, one line, otherwise)."""
    from migrator.phases import load

    es = es_container(ctx, es_url, legacy_url)
    engine, mappings = legacy_and_mappings(ctx, legacy_url, mapping, None, bind=False, es_url=es_url) \
        if legacy else (None, [])
    return Migration(es, engine, mappings, load(es.store, es.settings.migration_name))


def _verdict(r: GuardResult) -> Text:
    return Text("ok   ", style="green") if r.ok else Text("unmet", style="red")


def steps_ahead(m: Migration) -> list[dict[str, Any]]:
    """Returns every phase after the current one with its guards' verdicts, checked against the state now."""
    guards_of = m.guards_of()
    return [{"phase": p, "guards": [r.to_dict() for r in guards_of(p, m.state)]}
            for p in PHASES[PHASES.index(m.state.phase) + 1:]]


def plan(ctx: typer.Context,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text")] = False,
         mapping: MappingFile = None, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Show the phases, where the migration stands, and the guards of every step ahead."""
    m = open_migration(ctx, es_url, legacy_url, mapping)
    steps = steps_ahead(m)
    st = m.state
    if as_json:
        typer.echo(json.dumps({"name": st.name, "phase": st.phase, "next": st.next_phase, "reads": st.reads,
                               "writes": st.writes, "steps": steps}, indent=2))
        return
    console.print(f"migration {st.name}: {st.phase} (reads {st.reads}, writes {st.writes})", highlight=False,
                  soft_wrap=True)
    if not steps:
        console.print("no step ahead: the migration is in its last phase")
    for step in steps:
        console.print(Text(f"{step['phase']}:", style="bold"))
        for g in step["guards"]:
            console.print(Text.assemble("  ", _verdict(GuardResult(**g)), f" {g['name']}: {g['detail']}"),
                          highlight=False, soft_wrap=True)


def _check_force(force: bool, reason: str | None) -> str | None:
    if force and reason is None:
        raise CliError("--force needs --reason TEXT (the reason is recorded)", code=2)
    if reason is not None and not force:
        raise CliError("--reason goes with --force", code=2)
    if reason is not None and not reason.strip():
        raise CliError("--reason must not be blank", code=2)
    return reason.strip() if reason is not None else None


def advance(ctx: typer.Context,
            to: Annotated[str | None, typer.Option("--to", callback=_phase, show_default=False,
                                                   help="Advance up to this phase, step by step (default: the next)")]
            = None,
            force: Annotated[bool, typer.Option("--force", help="Advance past unmet guards (needs --reason)")] = False,
            reason: Annotated[str | None, typer.Option("--reason", show_default=False,
                                                       help="With --force: why (recorded)")] = None,
            actor: Actor = None, mapping: MappingFile = None,
            es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Move the migration to the next phase (or --to PHASE) once every guard of each step is met."""
    from migrator.phases import advance as advance_to
    from migrator.phases import advance_target

    force_reason = _check_force(force, reason)
    who = actor_of(actor)
    m = open_migration(ctx, es_url, legacy_url, mapping)
    try:
        advance_target(m.state, to)  # refused before any guard is read
        before = m.state
        after = advance_to(m.es.store, before, to, m.guards_of(), who, force_reason=force_reason)
    except GuardsUnmet as exc:
        for r in exc.unmet:
            err_console.print(Text.assemble(("error:", "red"), f" cannot advance to {exc.phase}: {r.name}: {r.detail}"),
                              highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except DecommissionByCommand as exc:  # the guards are still listed, then where to go
        for r in m.guards_of()(DECOMMISSIONED, m.state):
            if not r.ok:
                err_console.print(Text.assemble(("error:", "red"), f" cannot advance to {DECOMMISSIONED}: {r.name}: "
                                                f"{r.detail}"), highlight=False, soft_wrap=True)
        raise CliError(str(exc)) from None
    except PhaseError as exc:
        raise CliError(str(exc)) from None
    forced = " (forced)" if any(h.type == "AdvanceForced" for h in after.history[len(before.history):]) else ""
    console.print(f"migration {after.name}: {before.phase} → {after.phase}{forced}; reads {after.reads}, "
                  f"writes {after.writes}", highlight=False, soft_wrap=True)


def rollback(ctx: typer.Context,
             to: Annotated[str | None, typer.Option("--to", callback=_phase, show_default=False,
                                                    help="Roll back to this phase (default: the previous)")] = None,
             actor: Actor = None, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Move the migration back to the previous phase (or --to PHASE); reads and writes go back with it,
    capture keeps running."""
    from migrator.phases import rollback as rollback_to

    who = actor_of(actor)
    m = open_migration(ctx, es_url, legacy_url, legacy=False)
    try:  # the machine runs the drain only when the rollback takes writes back to legacy
        after = rollback_to(m.es.store, m.state, to, who, drain=_reverse_drain(ctx, m, legacy_url, es_url))
    except PhaseError as exc:
        raise CliError(str(exc)) from None
    console.print(f"migration {after.name}: {m.state.phase} → {after.phase} (rolled back); reads {after.reads}, "
                  f"writes {after.writes}", highlight=False, soft_wrap=True)


def _reverse_drain(ctx: typer.Context, m: Migration, legacy_url: str | None, es_url: str | None) -> Any:
    """Returns the drain a rollback from switched writes runs: the legacy tables get every event first (the
    legacy database is opened only then)."""
    from migrator.switchover.reverse import drain, projections_for

    def run() -> None:
        legacy, mappings = legacy_and_mappings(ctx, legacy_url, None, None, es_url=es_url)
        for r in drain(projections_for(mappings, legacy, m.es.store)):
            console.print(f"reverse projection {r.table}: rows at position {r.position}, {r.waiting} key(s) "
                          "waiting for the relay", highlight=False, soft_wrap=True)

    return run


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command()(advance)
    app.command()(rollback)
