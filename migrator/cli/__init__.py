"""The `migrator` command line. Each command module adds its commands with `register(app)`, listed in `COMMANDS`."""

from __future__ import annotations

import logging
import sys
from typing import Any

import typer
from pydantic import ValidationError
from rich.text import Text
from sqlalchemy.exc import ArgumentError, DatabaseError

from . import (
    backfill,
    capture,
    control,
    dead_letters,
    decommission,
    demo,
    parked,
    phases,
    projections,
    reads,
    relay,
    repair,
    reverse,
    schema_cmd,
    seed,
    serve,
    shadow,
    status,
    topology,
    verify,
)
from .common import CliError, EsUrl, LegacyUrl, err_console, settings_for

app = typer.Typer(
    name="migrator",
    help="Walk a live legacy CRUD database into an event-sourced CQRS system, phase by phase.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global_options(ctx: typer.Context, es_url: EsUrl = None, legacy_url: LegacyUrl = None) -> None:
    ctx.obj = settings_for(None, es_url, legacy_url)


# in the order `migrator --help` lists them
COMMANDS = (backfill, capture, control, dead_letters, decommission, demo, parked, phases, projections, reads, relay,
            repair, reverse, schema_cmd, seed, serve, shadow, status, topology, verify)
for _commands in COMMANDS:
    _commands.register(app)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _error(message: str) -> None:
    """Prints `error: <message>` as one line; the message is taken literally (no markup)."""
    err_console.print(Text.assemble(("error:", "red"), " ", " ".join(message.split("\n"))), highlight=False)


def _usage_error(exc: Any) -> None:
    """Prints click's usage error (a bad option or value) as one line with where to look."""
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    _error(" ".join(exc.format_message().split()) + hint)


def interrupted(exc: BaseException | None) -> bool:
    """Returns True when `exc` was raised while handling a Ctrl-C (a KeyboardInterrupt in its context chain):
    a driver interrupted in mid-query may fail again as its connection is cleaned up."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__context__ or exc.__cause__
    return False


class _QuietAfterInterrupt(logging.Filter):
    """Drops the connection pool's tracebacks of a cleanup that failed because Ctrl-C interrupted a query."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and interrupted(record.exc_info[1]))


def _quiet_pool_after_interrupt() -> None:
    pool_logger = logging.getLogger("sqlalchemy.pool")
    if not any(isinstance(f, _QuietAfterInterrupt) for h in pool_logger.handlers for f in h.filters):
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.addFilter(_QuietAfterInterrupt())
        pool_logger.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; known failures print one `error:` line and exit non-zero."""
    _quiet_pool_after_interrupt()
    try:
        # an exit code when a command exits early (typer: 130 on ^C)
        code = app(args=argv, prog_name="migrator", standalone_mode=False)
        if isinstance(code, int) and code:
            if code == 130:
                err_console.print("interrupted")
            return code
    except CliError as exc:
        _error(str(exc))
        return exc.code
    except DatabaseError as exc:
        if interrupted(exc):
            err_console.print("interrupted")
            return 130
        _error(f"database: {_first_line(exc)}")
        return 1
    except ValidationError as exc:  # a setting from the environment that does not hold
        problems = exc.errors()
        if problems:
            where = ".".join(str(p) for p in problems[0]["loc"]).upper()
            _error(f"bad setting {where}: {problems[0]['msg']}")
        else:
            _error(f"bad setting: {_first_line(exc)}")
        return 2
    except ArgumentError as exc:
        _error(f"bad database URL: {_first_line(exc)}")
        return 2
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # click's usage errors
            _usage_error(exc)
            return exc.exit_code
        if interrupted(exc):
            err_console.print("interrupted")
            return 130
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
