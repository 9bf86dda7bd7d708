"""What every CLI command shares: options (URLs, --mapping, --table), settings, the console, user-facing errors,
and the checks and loaders several commands run (schema at head, the es_app container, mappings, capture gaps)."""

from __future__ import annotations

import math
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, overload

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from es_app.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from migrator.mapping import CompiledMapping, TableMapping

# markup=False: text printed as is (table names, errors, values from files and databases); styles come
# from `styled()` or Text objects, never from brackets inside user text
console = Console(markup=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False)


class CliError(Exception):
    """An error the user can act on; printed as one line, exit code 1 (or `code`)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


EsUrl = Annotated[str | None, typer.Option("--es-url", help="Event store database URL [env: ES_DATABASE_URL]",
                                              show_default=False)]
LegacyUrl = Annotated[str | None, typer.Option("--legacy-url", help="Legacy database URL [env: LEGACY_DATABASE_URL]",
                                                  show_default=False)]


BIGINT_MAX = 2**63 - 1  # ids and counts a database column can hold


def finite(value: float | None) -> float | None:
    """Option callback: refuses nan (click's ranges let it through); returns the value."""
    if value is not None and math.isnan(value):
        raise typer.BadParameter(f"{value} is not a number")
    return value


MIN_RATE = 0.01  # rows (or changes) per second: slower would sleep for days between rows


def rate_cap(value: float | None) -> float | None:
    """Option callback: a --max-rate is 0 (none) or at least MIN_RATE per second."""
    if value is not None and (math.isnan(value) or 0 < value < MIN_RATE):
        raise typer.BadParameter(f"{value} is neither 0 (no cap) nor at least {MIN_RATE} per second")
    return value


def _checked_mapping_file(path: Path | None) -> Path | None:
    """Returns `path` once its mappings read and validate (before any command starts); a usage error otherwise."""
    from migrator.mapping import MappingError, load_mapping_file

    if path is not None:
        try:
            load_mapping_file(path)
        except MappingError as exc:
            raise typer.BadParameter(str(exc)) from None
    return path


MappingFile = Annotated[Path | None, typer.Option(
    "--mapping", show_default=False, callback=_checked_mapping_file,
    help="Mapping file (TOML, JSON or YAML, see docs/mapping.md); default: the built-in users mapping")]


def settings_for(ctx: typer.Context | None = None, es_url: str | None = None,
                 legacy_url: str | None = None) -> Settings:
    """Returns settings with URLs from command options, else global options, else the environment."""
    base: Settings = (ctx.find_root().obj if ctx is not None and ctx.find_root().obj else None) or get_settings()
    updates = {k: v for k, v in (("es_database_url", es_url), ("legacy_database_url", legacy_url)) if v}
    return base.model_copy(update=updates) if updates else base


def styled(template: str, **values: Any) -> Text:
    """Returns `template` (Rich markup written here) with `{name}` fields filled by values taken literally."""
    return Text.from_markup(template.format(**{k: escape(v) if isinstance(v, str) else v
                                               for k, v in values.items()}))


BACKENDS = {"legacy": ("sqlite", "postgresql", "mysql"), "es": ("sqlite", "postgresql")}  # per database role


def check_database_url(url: str, role: str, *, create: bool = False) -> str:
    """Returns `url` once it can name a database this CLI opens; CliError (one line) otherwise.

    Exit 2: an unparseable URL, a backend other than SQLite/PostgreSQL (and MySQL/MariaDB for the legacy
    database), a driver not installed, an
    SQLite path that is a directory or not an SQLite file, a new SQLite file where none can be created.
    Exit 1: an SQLite file that does not exist yet (unless `create`: `migrator init` makes it).
    Nothing is created or written.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from es_app.store.engine import normalize_url

    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError:
        raise CliError(f"the {role} database URL {url!r} is not a database URL (e.g. sqlite:///var/{role}.db, "
                       f"postgresql://user@host/db)", code=2) from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend not in BACKENDS.get(role, ("sqlite", "postgresql")):
        hint = "sqlite:///, postgresql:// or mysql://" if role == "legacy" else "sqlite:/// or postgresql://"
        raise CliError(f"the {role} database URL {shown}: backend {backend!r} is not supported "
                       f"for the {role} database (use {hint})", code=2)
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, ArgumentError) as exc:
        missing = getattr(exc, "name", None) or str(exc).splitlines()[0]
        raise CliError(f"the {role} database URL {shown}: driver {parsed.drivername!r} is not installed "
                       f"({missing})", code=2) from None
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:") and "uri" not in parsed.query:
        _check_sqlite_file(Path(parsed.database), role, create)
    return url


def _check_sqlite_file(path: Path, role: str, create: bool) -> None:
    if path.is_dir():
        raise CliError(f"the {role} database {path} is a directory, not an SQLite file", code=2)
    if path.exists():
        if not os.access(path, os.R_OK):
            raise CliError(f"the {role} database {path} cannot be read: permission denied", code=2)
        # asked through SQLite, never by open() and close() on the file: closing any descriptor of the file
        # drops every POSIX lock this process holds on it, and with connections open here (an in-process
        # `main()`, the demo) another process's WAL checkpoint could then lose this process's commits
        try:
            probe = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise CliError(f"the {role} database {path} cannot be read: {exc}", code=2) from None
        try:
            probe.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise CliError(f"the {role} database {path} is not an SQLite database file", code=2) from None
            raise CliError(f"the {role} database {path} cannot be read: {exc}", code=2) from None
        finally:
            probe.close()
        return
    if not create:
        raise CliError(f"the {role} database {path} does not exist: run `migrator init`")
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise CliError(f"the {role} database {path} cannot be created: {ancestor} is not a writable directory",
                       code=2)


Tables = Annotated[list[str] | None, typer.Option("--table", show_default=False,
                                                     help="Only this mapped table (repeatable)")]


def check_schema(tree_name: str, url: str) -> None:
    """Raises CliError unless the database is reachable and at its schema heads (`migrator init`)."""
    from es_app.bootstrap import engine_for
    from migrator import schema

    tree = next(t for t in schema.TREES if t.name == tree_name)
    check_database_url(url, tree_name)  # a missing SQLite file is refused, not created
    engine = engine_for(url)
    current, heads = schema.status(tree, engine)
    if current != heads:
        shown = engine.url.render_as_string(hide_password=True)
        raise CliError(f"the {tree_name} database at {shown} is not at its schema head: run `migrator init`")


def es_container(ctx: typer.Context, es_url: str | None, legacy_url: str | None):
    """Returns the wired es_app for the command's settings; CliError unless the schema is at head."""
    from es_app.bootstrap import build

    settings = settings_for(ctx, es_url, legacy_url)
    check_schema("es", settings.es_database_url)
    return build(settings)


@overload
def legacy_and_mappings(ctx: typer.Context, legacy_url: str | None, mapping: Path | None, tables: list[str] | None,
                        bind: Literal[True] = True, es_url: str | None = None) -> tuple[Engine, list[CompiledMapping]]:
    ...


@overload
def legacy_and_mappings(ctx: typer.Context, legacy_url: str | None, mapping: Path | None, tables: list[str] | None,
                        bind: Literal[False], es_url: str | None = None) -> tuple[Engine, list[TableMapping]]:
    ...


def legacy_and_mappings(ctx: typer.Context, legacy_url: str | None, mapping: Path | None,
                        tables: list[str] | None, bind: bool = True,
                        es_url: str | None = None) -> tuple[Engine, list[CompiledMapping] | list[TableMapping]]:
    """Returns (legacy engine, mappings) for the command's settings: bound to the legacy tables (compiled
    mappings) unless `bind` is False (the declarations); CliError (one line) for a mapping that cannot work."""
    from es_app.bootstrap import engine_for
    from migrator.mapping import MappingError, load_mappings

    engine = engine_for(check_database_url(settings_for(ctx, es_url, legacy_url).legacy_database_url, "legacy"))
    try:
        return engine, load_mappings(mapping, engine, tables) if bind else load_mappings(mapping, None, tables)
    except MappingError as exc:
        raise CliError(str(exc)) from None


def warn_gaps(es_url: str, legacy: object, mappings: list, seen: set | None = None) -> int:
    """Prints one warning line per open capture gap (see migrator.capture.gaps); returns how many.

    With `seen`, gaps already in it are not printed again (and those printed are added)."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import OperationalError

    from es_app.bootstrap import engine_for
    from migrator.capture.gaps import gaps, open_gaps

    try:
        check_database_url(es_url, "es")
    except CliError as exc:
        console.print(f"capture gaps: not checked ({exc})", highlight=False)
        return 0
    try:
        es = engine_for(es_url)
        if not inspect(es).has_table(gaps.name):
            console.print("capture gaps: not checked (the event-store schema is older: run `migrator init`)",
                          highlight=False)
            return 0
        found = open_gaps(legacy, es, mappings)  # type: ignore[arg-type]
    except OperationalError as exc:
        console.print(f"capture gaps: not checked ({str(exc.orig).strip().splitlines()[0]})", highlight=False)
        return 0
    for gap in found:
        if seen is not None:
            if (gap.table, gap.reason, gap.until) in seen:
                continue
            seen.add((gap.table, gap.reason, gap.until))
        err_console.print(styled("[yellow]warning[/yellow]: {line}", line=gap.warning()), highlight=False)
    if not found and seen is None:
        console.print("capture gaps: none", highlight=False)
    return len(found)
