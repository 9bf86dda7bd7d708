"""`migrator demo`: the whole walk, legacy → decommissioned, under live traffic, on fresh SQLite files under
var/demo/, or fresh server databases: PostgreSQL with `--servers`, a MySQL/MariaDB legacy database with
`--mysql-url` (the walk itself is `migrator.demo`)."""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.text import Text

from es_app.bootstrap import dispose_engines
from es_app.settings import VAR_DIR

from .common import CliError, check_database_url, console, styled

DEMO_DIR = VAR_DIR / "demo"
ES_DB, LEGACY_DB = "migrator_demo_es", "migrator_demo_legacy"  # --servers: on the PostgreSQL server
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
MAX_USERS = 1_000_000


def _users(value: int) -> int:
    if not 10 <= value <= MAX_USERS:
        raise typer.BadParameter(f"{value} users: the demo seeds between 10 and {MAX_USERS:,}")
    return value


def _mysql(value: str | None) -> str | None:
    if value is not None and not value.startswith(("mysql://", "mysql+pymysql://", "mariadb://")):
        raise typer.BadParameter(f"{value!r} is not a MySQL/MariaDB URL (mysql://user@host:port/)")
    return value


def _postgres(value: str) -> str:
    if not value.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        raise typer.BadParameter(f"{value!r} is not a PostgreSQL URL (postgresql://user@host:port/db)")
    return value


def _run_cli(es_url: str, legacy_url: str) -> Callable[..., tuple[int, str]]:
    """Returns a runner of one `migrator` command on the demo's databases: (exit code, its output)."""
    from . import main

    def run(*argv: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*argv, "--es-url", es_url, "--legacy-url", legacy_url])
        return code, out.getvalue() + err.getvalue()

    return run


def _pauser(step: bool) -> Callable[[], object]:
    """Returns what the walk calls between phases: wait for Enter (`--step` on a terminal) or nothing."""
    if step and not sys.stdin.isatty():
        console.print("--step: stdin is not a terminal, so the demo does not wait between phases", highlight=False)
    if not step or not sys.stdin.isatty():
        return lambda: None
    return lambda: console.input(Text("press Enter for the next phase ", "bold"))


def demo(
    ctx: typer.Context,
    users: Annotated[int, typer.Option("--users", callback=_users,
                                       help="Legacy users to seed (10 to 1,000,000)")] = 2000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="Backfill rows per chunk")] = 250,
    step: Annotated[bool, typer.Option("--step", help="Wait for Enter between phases (for a talk); when stdin is "
                                                      "not a terminal, says so and does not wait")] = False,
    servers: Annotated[bool, typer.Option("--servers", help=f"Run on PostgreSQL (fresh databases {ES_DB} and "
                                                            f"{LEGACY_DB}), Redis and Celery workers the demo starts "
                                                            "and stops")] = False,
    postgres_url: Annotated[str, typer.Option("--postgres-url", callback=_postgres,
                                              help="With --servers: the PostgreSQL server (any database on it)")
                            ] = POSTGRES_URL,
    redis_url: Annotated[str, typer.Option("--redis-url", help="With --servers: the Redis broker")] = REDIS_URL,
    mysql_url: Annotated[str | None, typer.Option("--mysql-url", callback=_mysql,
                                                  help=f"Legacy database on this MySQL/MariaDB server (any database "
                                                       f"on it): a fresh database {LEGACY_DB} the demo creates; the "
                                                       f"event store stays SQLite (PostgreSQL with --servers)")
                         ] = None,
) -> None:
    """Walk a live legacy user database into the event store, every phase, on fresh databases (var/demo/).

    Seed; live traffic through the legacy app (a writer and two readers) the whole time.
    Capture, backfill, verify, shadow reads, read switchover (10%, 50%, then all).
    Write switchover with the reverse projection, then archive and decommission.
    After each phase: the same users as legacy row, read-model row and replayed state, side by side.
    Time travel through one user's history, with a correction event that fixes a dirty value.
    Ends with the final consistency report: exit 1 on any difference or on any 5xx the traffic saw.
    """
    from migrator.demo import Walk, WalkOptions
    from migrator.demo.walk import WalkFailed, demo_environment

    if ctx.find_root().params.get("es_url") or ctx.find_root().params.get("legacy_url"):
        raise CliError("the demo always runs on fresh databases (SQLite files under var/demo/, with --servers "
                       "its own PostgreSQL databases, with --mysql-url its own MySQL/MariaDB legacy database); "
                       "drop --es-url/--legacy-url")
    legacy_server = check_database_url(mysql_url, "legacy") if mysql_url is not None else None
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    workers = None
    if servers:
        from migrator.demo.servers import CeleryWorkers, broker_prefix, fresh_databases

        names = (ES_DB,) if legacy_server else (ES_DB, LEGACY_DB)
        es_url, *legacy = fresh_databases(check_database_url(postgres_url, "PostgreSQL server"), names)
        legacy_url = _fresh_mysql(legacy_server) if legacy_server else legacy[0]
        prefix = broker_prefix()
        settings = demo_environment(es_url, legacy_url, BROKER_URL=redis_url, BROKER_KEY_PREFIX=prefix,
                                    RELAY_INTERVAL_S="0.5", CATCH_UP_INTERVAL_S="0.5")
        workers = lambda: CeleryWorkers(DEMO_DIR / "workers", redis_url, prefix)  # noqa: E731
    else:
        es_url = f"sqlite:///{DEMO_DIR / 'es.db'}"
        legacy_url = _fresh_mysql(legacy_server) if legacy_server else f"sqlite:///{DEMO_DIR / 'legacy.db'}"
        settings = demo_environment(es_url, legacy_url)
    pause = _pauser(step)
    started = time.perf_counter()
    where = "PostgreSQL + Redis + Celery workers" if servers else "SQLite files, in-process worker"
    if legacy_server:
        where = f"legacy on MySQL/MariaDB ({LEGACY_DB}), " + ("event store on " + where if servers else
                                                            "event store in an SQLite file, in-process worker")
    console.rule(styled("[bold]legacy CRUD → event sourcing + CQRS: the whole walk, under live traffic ({where})",
                        where=where))
    walk = Walk(console, settings, _run_cli(es_url, legacy_url),
                WalkOptions(users=users, batch_size=batch_size, archive=DEMO_DIR / "archive"), pause, workers)
    try:
        report = walk.run()
    except WalkFailed as exc:
        raise CliError(str(exc)) from None
    finally:
        dispose_engines()
    console.print(report.table())
    elapsed = time.perf_counter() - started
    if not report.clean:
        raise CliError(f"the final report found differences (walk took {elapsed:.0f} s)")
    kept = f"databases {ES_DB} and {LEGACY_DB}, archive in {DEMO_DIR}/" if servers else f"{DEMO_DIR}/"
    if legacy_server:
        kept = (f"database {ES_DB} (PostgreSQL), " if servers else f"{DEMO_DIR}/ (event store), ") + \
            f"database {LEGACY_DB} (MySQL/MariaDB, its table decommissioned), archive in {DEMO_DIR}/"
    console.print(styled("[green]ok[/green]: every phase walked and the final report is clean in {s:.0f} s. "
                         "Kept: {kept}.", s=elapsed, kept=kept), highlight=False)


def _fresh_mysql(server_url: str) -> str:
    """Returns the URL of the demo's legacy database on the MySQL/MariaDB server, dropped and created empty."""
    from sqlalchemy.exc import OperationalError

    from migrator.demo.servers import fresh_mysql_database

    try:
        return fresh_mysql_database(server_url, LEGACY_DB)
    except OperationalError as exc:
        reason = (str(exc.orig or exc).strip().splitlines() or ["unknown"])[0]
        raise CliError(f"the MySQL/MariaDB server: {reason}") from None


def register(app: typer.Typer) -> None:
    app.command()(demo)
