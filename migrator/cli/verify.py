"""`migrator verify`: compare every mapped legacy row with its stream and read-model row, store the run, report.

Exit 0 clean, 1 mismatches, 2 could not run (one error line). `--list` shows the stored runs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import DatabaseError

from migrator.capture.changelog import CaptureError
from migrator.mapping import MappingError

from .common import (
    BIGINT_MAX,
    CliError,
    EsUrl,
    LegacyUrl,
    MappingFile,
    Tables,
    check_schema,
    console,
    err_console,
    finite,
    legacy_and_mappings,
    settings_for,
)

DEFAULT_SAMPLE = 2000
DEFAULT_WAIT_S = 5.0
MAX_WAIT_S = 3600.0


class ReportFormat(str, enum.Enum):
    text = "text"
    json = "json"
    md = "md"
    html = "html"


def verify(
    ctx: typer.Context,
    tables: Tables = None,
    sample: Annotated[int | None, typer.Option(
        "--sample", min=1, max=BIGINT_MAX, show_default=False,
        help=f"Keys per table whose streams are replayed, chosen by hash [default: {DEFAULT_SAMPLE}]")] = None,
    full: Annotated[bool, typer.Option("--full", help="Replay the stream of every key")] = False,
    since_last: Annotated[bool, typer.Option(
        "--since-last",
        help="Only the keys changed since the last clean run (all of them when there is none)")] = False,
    wait: Annotated[float, typer.Option(
        "--wait", min=0, max=MAX_WAIT_S, callback=finite,
        help="Seconds to let the relay and projections catch up on keys in flight before they count as pending")]
        = DEFAULT_WAIT_S,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Report format")] = ReportFormat.text,
    output: Annotated[Path | None, typer.Option("--output", show_default=False,
                                                   help="Write the report to this file instead of stdout")] = None,
    list_: Annotated[bool, typer.Option("--list", help="Show the latest stored runs instead of verifying")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="With --list: how many runs")] = 20,
    mapping: MappingFile = None,
    es_url: EsUrl = None,
    legacy_url: LegacyUrl = None,
) -> None:
    """Compare legacy rows, streams and read models; store the run; exit 0 clean, 1 mismatches, 2 could not run."""
    try:
        if output is not None:
            _check_output(output)
        if list_:
            _list(ctx, es_url, legacy_url, fmt, output, limit)
            return
        if sample is not None and full:
            raise CliError("pass either --sample or --full, not both")
        clean = _verify(ctx, tables, DEFAULT_SAMPLE if sample is None else sample, full, since_last, wait, fmt,
                        output, mapping, es_url, legacy_url)
    except (CliError, MappingError, CaptureError) as exc:
        raise CliError(str(exc), code=2) from None
    except DatabaseError as exc:
        text = str(getattr(exc, "orig", None) or exc).strip()
        raise CliError(f"database: {text.splitlines()[0] if text else type(exc).__name__}", code=2) from None
    except OSError as exc:
        raise CliError(f"{getattr(exc, 'filename', None) or output}: {exc.strerror or exc}", code=2) from None
    if not clean:
        raise typer.Exit(1)


def _check_output(path: Path) -> None:
    if path.is_dir():
        raise CliError(f"--output {path} is a directory")
    if not path.absolute().parent.is_dir():
        raise CliError(f"--output {path}: the directory {path.absolute().parent} does not exist")


def _es_engine(ctx: typer.Context, es_url: str | None, legacy_url: str | None) -> Any:
    from es_app.bootstrap import engine_for

    settings = settings_for(ctx, es_url, legacy_url)
    check_schema("es", settings.es_database_url)  # the runs live there
    return engine_for(settings.es_database_url)


def _list(ctx: typer.Context, es_url: str | None, legacy_url: str | None, fmt: ReportFormat, output: Path | None,
          limit: int) -> None:
    import json

    from migrator.report import runs_table
    from migrator.verify import runs

    if fmt not in (ReportFormat.text, ReportFormat.json):
        raise CliError("--list prints text or json (--format text|json)")
    summaries = runs.latest(_es_engine(ctx, es_url, legacy_url), limit)
    if fmt is ReportFormat.json:
        _write(json.dumps(summaries, indent=2, ensure_ascii=True) + "\n", output)
    else:
        _print(runs_table(summaries), output)


def _verify(ctx: typer.Context, tables: list[str] | None, sample: int, full: bool, since_last: bool, wait: float,
            fmt: ReportFormat, output: Path | None, mapping: Path | None, es_url: str | None,
            legacy_url: str | None) -> bool:
    from migrator.report import render, render_text
    from migrator.verify import runs

    es = _es_engine(ctx, es_url, legacy_url)
    legacy, mappings = legacy_and_mappings(ctx, legacy_url, mapping, tables, es_url=es_url)
    since, since_run = None, None
    if since_last:
        previous = runs.latest_clean(es, [m.table for m in mappings])
        if previous is None:
            err_console.print("no clean verify run of these tables yet: verifying every key", highlight=False)
        else:
            since, since_run = previous.get("watermarks") or {}, previous.get("id")
            err_console.print(f"verifying the keys changed since clean run {since_run}", highlight=False)
    from migrator.verify import verify as run_verify  # type: ignore[attr-defined, unused-ignore]

    with _progress(fmt is ReportFormat.text) as on_progress:
        report = run_verify(legacy, es, mappings, sample=sample, full=full, since=since, wait=wait,
                            on_progress=on_progress)
    doc = report.to_json()
    doc["options"] = {**(doc.get("options") or {}), "since_last": since_last, "since_run": since_run}
    doc["id"] = runs.store(es, doc)
    if fmt is ReportFormat.text:
        _print(render_text(doc), output)
    else:
        _write(render(doc, fmt.value), output)
    if output is not None:
        err_console.print(f"verify run {doc['id']}: report written to {output}", highlight=False)
    return bool(doc.get("clean"))


@contextmanager
def _progress(shown: bool) -> Iterator[Callable[[str, int, int | None], None] | None]:
    """Yields `on_progress(table, done, total)` drawing a Rich progress bar per table on stderr (None: not shown)."""
    if not shown:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(table: str, done: int, total: int | None) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(escape(f"verify {table}"), total=total)
            bar.update(tasks[table], completed=done, total=total)

        yield update


def _print(renderable: Any, output: Path | None) -> None:
    if output is None:
        console.print(renderable)
        return
    with output.open("w", encoding="utf-8") as f:
        Console(file=f, markup=False, width=160, color_system=None, soft_wrap=False).print(renderable)


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def register(app: typer.Typer) -> None:
    app.command()(verify)
