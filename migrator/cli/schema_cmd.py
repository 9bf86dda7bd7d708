"""`migrator init`: create or upgrade every schema to head (idempotent)."""

from __future__ import annotations

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from es_app.bootstrap import engine_for
from es_app.store.engine import normalize_url
from migrator import schema

from .common import CliError, EsUrl, LegacyUrl, check_database_url, console, settings_for, styled


def init(ctx: typer.Context, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Create or upgrade the event store and legacy schemas to head; safe to run again."""
    settings = settings_for(ctx, es_url, legacy_url)
    urls = {"es": check_database_url(settings.es_database_url, "es", create=True),
            "legacy": check_database_url(settings.legacy_database_url, "legacy", create=True)}
    servers = {name: url for name, url in urls.items() if make_url(normalize_url(url)).get_backend_name() != "sqlite"}
    for name, url in servers.items():  # every server database reachable before anything is created
        engine = engine_for(url)
        try:
            with engine.connect():
                pass
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            raise CliError(f"cannot open the {name} database {engine.url.render_as_string(hide_password=True)}: "
                           f"{reason} (server databases are created by their administrator; "
                           "`migrator init` creates the tables)") from None
    engines = {name: engine_for(url) for name, url in urls.items()}
    for tree in schema.TREES:
        engine = engines[tree.database]
        schema.upgrade(tree, engine)
        current, _ = schema.status(tree, engine)
        console.print(styled("[green]✓[/green] {name:<8} at {heads}  ({url})", name=tree.name,
                             heads=", ".join(sorted(current)), url=engine.url.render_as_string(hide_password=True)),
                      highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(init)
