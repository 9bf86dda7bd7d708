"""The Markdown report: summary, per-field breakdown and the mismatch list, as GitHub-flavoured tables.

Every value is escaped twice over: `shown` makes it printable, `cell` makes it inert in Markdown
(HTML entities for `<`, `>`, `&`; a backslash before Markdown's punctuation; `|` escaped), so a
legacy value such as `<script>` or `**x**` shows as written and never becomes markup."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

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

_PUNCTUATION = "\\`*_[]|~"  # what can start inline markup mid-line (cells never start a line)


def cell(text: str) -> str:
    """Returns printable text made inert in Markdown (and in the HTML a Markdown renderer passes through)."""
    escaped = "".join(f"\\{c}" if c in _PUNCTUATION else c for c in text)
    return html.escape(escaped, quote=False).replace("\n", "<br>")


def _row(values: list[str]) -> str:
    return "| " + " | ".join(values) + " |"


def render(doc: Mapping[str, Any]) -> str:
    """Returns the whole report as Markdown text ending with a newline."""
    out = [f"# {cell(title(doc))}", "", cell(totals_line(doc)), "", "## Summary", ""]
    head = ["table", "legacy rows", "new rows", "compared", "replayed", "method", *KINDS, "rows/s", "seconds",
            "findings", "parked"]
    out += [_row(head), _row(["---"] * len(head))]
    for t in tables(doc):
        c = t.get("counts") or {}
        method = plain(t.get("method") or "-")
        if t.get("streamed_fields"):
            method += " (streamed: " + ", ".join(plain(f) for f in t["streamed_fields"]) + ")"
        findings = ", ".join(f"{plain(k)} {number(n)}" for k, n in (t.get("findings") or {}).items()) or "-"
        out.append(_row([cell(plain(t.get("table"))), number(t.get("rows_legacy")), number(t.get("rows_new")),
                         number(t.get("keys_compared")), number(t.get("keys_replayed")), cell(method),
                         *(number(int(c.get(k) or 0)) for k in KINDS), number(t.get("rows_per_s")),
                         number(t.get("duration_s"), 2), cell(findings), number(t.get("parked"))]))
    total = counts(doc)
    out.append(_row(["**total**", "", "", "", "", "", *(number(total[k]) for k in KINDS), "",
                     number(doc.get("duration_s"), 2), "", ""]))
    breakdown = field_breakdown(doc)
    out += ["", "## Mismatches per field", ""]
    if breakdown:
        out += [_row(["table", "field", "mismatches", "kinds"]), _row(["---"] * 4)]
        out += [_row([cell(plain(table)), cell(plain(field)), number(sum(by_kind.values())),
                      cell(", ".join(f"{k} {n:,}" for k, n in by_kind.items()))])
                for table, field, by_kind in breakdown]
    else:
        out.append("None.")
    listed = mismatches(doc)
    out += ["", "## Mismatches", ""]
    if listed:
        out += [_row(["table", "key", "stream", "kind", "fields", "explain"]), _row(["---"] * 6)]
        out += [_row([cell(plain(m.get("table"))), cell(plain(m.get("key"))), cell(plain(m.get("stream_id"))),
                      cell(plain(m.get("kind"))), cell("\n".join(field_lines(m))), cell(explain_line(m))])
                for m in listed]
    else:
        out.append("None.")
    note = listed_note(doc, len(listed))
    if note:
        out += ["", cell(note)]
    return "\n".join(out) + "\n"
