"""`migrator serve <app>`: run an HTTP API with uvicorn (`serve es`: the event-sourced command/query API;
`serve dashboard`: the migration dashboard)."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from .common import (
    CliError,
    EsUrl,
    LegacyUrl,
    check_database_url,
    check_schema,
    console,
    es_container,
    settings_for,
)

serve_app = typer.Typer(help="Run an HTTP API with uvicorn.", no_args_is_help=True)

Host = Annotated[str, typer.Option("--host", help="Interface to bind")]
Port = Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port")]


class LogLevel(str, enum.Enum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


LogLevelOpt = Annotated[LogLevel, typer.Option("--log-level", help="uvicorn log level")]


def run_uvicorn(app: object, host: str, port: int, log_level: str) -> None:
    """Serves `app` until interrupted; a port already in use ends with uvicorn's one-line error and exit 1."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=True)  # type: ignore[arg-type]


@serve_app.command("es")
def serve_es(ctx: typer.Context, host: Host = "127.0.0.1", port: Port = 8000,
             log_level: LogLevelOpt = LogLevel.info,
             es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Serve the event-sourced API (es_app.api:app): commands, queries, audit, admin, /docs."""
    from es_app.api import create_app

    settings = settings_for(ctx, es_url, legacy_url)
    check_schema("es", settings.es_database_url)
    mode = "embedded" if settings.embedded else f"broker {settings.broker_url}"
    console.print(f"es API on http://{host}:{port}  (docs at /docs, {mode})", highlight=False)
    run_uvicorn(create_app(settings), host, port, log_level.value)


@serve_app.command("legacy")
def serve_legacy(ctx: typer.Context, host: Host = "127.0.0.1", port: Port = 8001,
                 log_level: LogLevelOpt = LogLevel.info, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Serve the legacy CRUD API (legacy_app.api:app): /users, /docs, /metrics. Reads and writes follow the
    migration's modes (`migrator reads`, the phases) while the event-store database is at its schema head;
    without it, reads per LEGACY_READ_MODE."""
    from legacy_app.api import create_app
    from legacy_app.db import Database, SchemaMissing
    from legacy_app.reads import ReadModeError, available_mode

    settings = settings_for(ctx, es_url, legacy_url)
    url = check_database_url(settings.legacy_database_url, "legacy")
    try:
        mode = available_mode()
        Database.connect(url).dispose()  # refuses a missing SQLite file without creating it
    except ReadModeError as exc:
        raise CliError(f"{exc} (with the event store, set reads with `migrator reads --mode`)") from None
    except SchemaMissing as exc:
        raise CliError(str(exc)) from None
    check_schema("legacy", url)
    where = f"http://{host}:{port}"
    try:
        check_schema("es", settings.es_database_url)
    except CliError as exc:
        console.print(f"legacy API on {where}  (docs at /docs, reads: {mode.value}; fixed routes: {exc})",
                      highlight=False, soft_wrap=True)
        run_uvicorn(create_app(url, read_mode=mode.value), host, port, log_level.value)
        return
    from migrator.phases import load
    from migrator.switchover.app import create_switchable_app

    es = es_container(ctx, es_url, legacy_url)
    state = load(es.store, settings.migration_name)
    share = "" if state.reads_percent == 100.0 else f" for {state.reads_percent:g}%"
    console.print(f"legacy API on {where}  (docs at /docs, metrics at /metrics, reads: {state.reads}{share}, "
                  f"writes: {state.writes}; live routes following migration {state.name})",
                  highlight=False, soft_wrap=True)
    run_uvicorn(create_switchable_app(url, settings), host, port, log_level.value)


@serve_app.command("dashboard")
def serve_dashboard(ctx: typer.Context, host: Host = "127.0.0.1", port: Port = 8002,
                    log_level: LogLevelOpt = LogLevel.info,
                    es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Serve the migration dashboard (migrator.dashboard:app): the migration live, a user three ways and in time,
    the verify reports; the phase actions need DASHBOARD_TOKEN (without it the dashboard is read-only)."""
    from migrator.dashboard import create_app
    from migrator.dashboard.source import Source

    settings = settings_for(ctx, es_url, legacy_url)
    check_schema("es", settings.es_database_url)
    check_database_url(settings.legacy_database_url, "legacy")
    actions = "phase actions with the dashboard token" if Source(settings).token else \
        "read-only: set DASHBOARD_TOKEN for the phase actions"
    console.print(f"dashboard on http://{host}:{port}  (migration {settings.migration_name}; {actions})",
                  highlight=False, soft_wrap=True)
    run_uvicorn(create_app(settings), host, port, log_level.value)


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
