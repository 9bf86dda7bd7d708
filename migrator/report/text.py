"""The text report: Rich tables for a terminal (summary per table and kind, per-field breakdown, first mismatches),
and the table of stored runs `migrator verify --list` prints. Every value is a Text taken literally."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .document import (
    KINDS,
    counts,
    explain_line,
    field_breakdown,
    field_lines,
    listed_note,
    mismatches,
    number,
    plain,
    tables,
    title,
    totals_line,
)

FIRST_MISMATCHES = 20


def render(doc: Mapping[str, Any], *, first: int = FIRST_MISMATCHES) -> RenderableType:
    """Returns the report as one Rich renderable: title, summary per table, counts per kind, per-field breakdown,
    the first mismatches."""
    parts: list[RenderableType] = [
        Text(title(doc), style="bold green" if doc.get("clean") else "bold red"),
        Text(totals_line(doc)),
        summary_table(doc),
        *(Text(line) for line in streamed_lines(doc)),
        kinds_table(doc),
    ]
    breakdown = field_breakdown(doc)
    if breakdown:
        parts.append(breakdown_table(breakdown))
    listed = mismatches(doc)[:first]
    if listed:
        parts.append(mismatch_table(listed))
    note = listed_note(doc, len(listed))
    if note:
        parts.append(Text(note))
    return Group(*parts)


def summary_table(doc: Mapping[str, Any]) -> Table:
    """Returns one line per table: rows on each side, keys compared and replayed, method, mismatches, rate,
    duration, findings and parked rows."""
    out = Table(title="verify summary")
    for col in ("table", "legacy", "new", "compared", "replayed", "method", "mismatches", "rows/s", "seconds",
                "findings", "parked"):
        out.add_column(col, justify="left" if col in ("table", "method", "findings") else "right")
    for t in tables(doc):
        c = {k: int((t.get("counts") or {}).get(k) or 0) for k in KINDS}
        findings = ", ".join(f"{plain(k)} {number(n)}" for k, n in (t.get("findings") or {}).items()) or "-"
        out.add_row(Text(plain(t.get("table"))), number(t.get("rows_legacy")), number(t.get("rows_new")),
                    number(t.get("keys_compared")), number(t.get("keys_replayed")), Text(plain(t.get("method") or "-")),
                    _count(sum(n for k, n in c.items() if k != "pending")), number(t.get("rows_per_s")),
                    number(t.get("duration_s"), 2), Text(findings), number(t.get("parked")))
    return out


def streamed_lines(doc: Mapping[str, Any]) -> list[str]:
    """Returns one line per table with fields compared by streaming (their normalizer has no SQL form)."""
    return [f"{plain(t.get('table'))}: compared by streaming (no SQL form of their normalizer): "
            + ", ".join(plain(f) for f in t["streamed_fields"]) for t in tables(doc) if t.get("streamed_fields")]


def kinds_table(doc: Mapping[str, Any]) -> Table:
    """Returns the mismatches per kind: one column per table and the total."""
    entries = list(tables(doc))
    out = Table(title="mismatches per kind")
    out.add_column("kind")
    for t in entries:
        out.add_column(Text(plain(t.get("table"))), justify="right")
    out.add_column("total", justify="right")
    total = counts(doc)
    for kind in KINDS:
        out.add_row(kind, *(_count(int((t.get("counts") or {}).get(kind) or 0)) for t in entries), _count(total[kind]))
    return out


def _count(n: int) -> Text:
    return Text(f"{n:,}", style="red" if n else "")


def breakdown_table(rows: Sequence[tuple[str, str, dict[str, int]]]) -> Table:
    """Returns the per-field breakdown: how many listed mismatches name each field, by kind."""
    out = Table(title="mismatches per field")
    for col in ("table", "field", "mismatches", "kinds"):
        out.add_column(col, justify="right" if col == "mismatches" else "left")
    for table, field, by_kind in rows:
        out.add_row(Text(plain(table)), Text(plain(field)), f"{sum(by_kind.values()):,}",
                    Text(", ".join(f"{k} {n:,}" for k, n in by_kind.items())))
    return out


def mismatch_table(listed: Sequence[Mapping[str, Any]]) -> Table:
    """Returns the mismatches given: table, key, kind, fields (every side's value) and the explanation."""
    out = Table(title=f"first {len(listed):,} mismatches")
    for col in ("table", "key", "kind", "fields", "explain"):
        out.add_column(col, overflow="fold")
    for m in listed:
        out.add_row(Text(plain(m.get("table"))), Text(plain(m.get("key"))), Text(plain(m.get("kind"))),
                    Text("\n".join(field_lines(m))), Text(explain_line(m)))
    return out


def runs_table(summaries: Sequence[Mapping[str, Any]]) -> Table:
    """Returns the stored runs (newest first): id, start, duration, clean, tables, counts per kind, options."""
    out = Table(title=f"verify runs ({len(summaries)})")
    for col in ("id", "started", "seconds", "clean", "tables", *KINDS, "options"):
        out.add_column(col, justify="right" if col in ("id", "seconds", *KINDS) else "left")
    for s in summaries:
        c = {k: int((s.get("counts") or {}).get(k) or 0) for k in KINDS}
        opts = s.get("options") or {}
        mode = "full" if opts.get("full") else f"sample {number(opts.get('sample'))}"
        if opts.get("since_last"):
            mode += f", since run {plain(opts.get('since_run'))}" if opts.get("since_run") is not None else \
                ", since-last"
        out.add_row(str(s.get("id")), Text(plain(s.get("started_at"))), number(s.get("duration_s"), 2),
                    Text("yes", style="green") if s.get("clean") else Text("no", style="red"),
                    Text(", ".join(plain(t) for t in s.get("tables") or ())), *(_count(c[k]) for k in KINDS),
                    Text(mode))
    return out
