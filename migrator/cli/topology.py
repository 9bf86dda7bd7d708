"""`migrator topology list|up`: docker-compose.yml's services as local processes (no Docker needed)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import CliError, EsUrl, LegacyUrl, check_database_url, console, settings_for

topology_app = typer.Typer(help="Run docker-compose.yml's services as local processes.", no_args_is_help=True)

ComposeFile = Annotated[Path, typer.Option("--compose-file", help="The compose file to mirror")]
Only = Annotated[list[str] | None, typer.Option("--only", help="Start only this service (repeatable)",
                                                   show_default=False)]


def _services(compose_file: Path):
    from migrator.topology import load_compose

    if not compose_file.is_file():
        raise CliError(f"no compose file at {compose_file}")
    try:
        return load_compose(compose_file)
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError(f"{compose_file} is not a compose file this can mirror: {exc}") from None


@topology_app.command("list")
def list_services(compose_file: ComposeFile = Path("docker-compose.yml")) -> None:
    """Show the services `up` would start, with their commands."""
    table = Table(title=f"services of {compose_file}")
    for col in ("service", "kind", "command", "ready when"):
        table.add_column(col)
    for s in _services(compose_file):
        ready = f"GET {s.health_path}" if s.health_path else (repr(s.ready_log) if s.ready_log else "exit 0")
        table.add_row(s.name, s.kind, " ".join(s.argv), ready)
    console.print(table)


@topology_app.command("up")
def up(ctx: typer.Context, compose_file: ComposeFile = Path("docker-compose.yml"), only: Only = None,
       workdir: Annotated[Path, typer.Option(
           "--workdir", help="Logs and beat schedule go here")] = Path("var/topology"),
       es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    """Start the compose services locally with this machine's URLs and BROKER_URL; Ctrl-C stops them."""
    from migrator.topology import Topology, TopologyError, local_env

    settings = settings_for(ctx, es_url, legacy_url)
    for role, url in (("es", settings.es_database_url), ("legacy", settings.legacy_database_url)):
        check_database_url(url, role, create=True)  # the services create and migrate them
    if settings.embedded:
        raise CliError("the compose topology runs Celery workers: set BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    env = local_env(settings.es_database_url, settings.legacy_database_url, settings.broker_url,
                    broker_key_prefix=settings.broker_key_prefix, admin_token=settings.admin_token)
    topology = Topology(_services(compose_file), env, workdir)
    try:
        topology.start(only)
        table = Table(title="local topology (Ctrl-C stops it)")
        for col in ("service", "pid", "url", "log"):
            table.add_column(col)
        for name, proc in topology.procs.items():
            url = topology.url(name) if name in topology.ports else ""
            table.add_row(name, str(proc.pid), url, str(topology.log_path(name)))
        console.print(table)
        while all(p.poll() is None for p in topology.procs.values()):
            time.sleep(0.5)
        dead = [n for n, p in topology.procs.items() if p.poll() is not None]
        raise CliError(f"{', '.join(dead)} stopped; see {workdir}")
    except TopologyError as exc:
        raise CliError(str(exc).splitlines()[0]) from None
    finally:
        topology.stop()


def register(app: typer.Typer) -> None:
    app.add_typer(topology_app, name="topology")
