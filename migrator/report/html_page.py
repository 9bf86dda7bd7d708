"""The HTML report: one self-contained page (inline CSS, no script, no external asset) with the summary,
the per-field breakdown and the mismatch list. Every value is printable text (`shown`) escaped for HTML."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
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

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1.clean { color: #176f2c; } h1.dirty { color: #b3261e; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f3f3f3; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.bad { color: #b3261e; font-weight: bold; }
code, .v { font-family: ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }
""".strip()


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _td(text: str, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(text)}</td>' if cls else f"<td>{_e(text)}</td>"


def _table(head: Sequence[str], rows: Sequence[str]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _count(n: int) -> str:
    return _td(f"{n:,}", "n bad" if n else "n")


def render(doc: Mapping[str, Any]) -> str:
    """Returns the whole report as one HTML page."""
    head = title(doc)
    body = [f'<h1 class="{"clean" if doc.get("clean") else "dirty"}">{_e(head)}</h1>', f"<p>{_e(totals_line(doc))}</p>",
            "<h2>Summary</h2>", _summary(doc), "<h2>Mismatches per field</h2>"]
    breakdown = field_breakdown(doc)
    body.append(_table(["table", "field", "mismatches", "kinds"], [
        "<tr>" + _td(plain(table)) + _td(plain(field)) + _td(f"{sum(by_kind.values()):,}", "n")
        + _td(", ".join(f"{k} {n:,}" for k, n in by_kind.items())) + "</tr>"
        for table, field, by_kind in breakdown]) if breakdown else "<p>None.</p>")
    listed = mismatches(doc)
    body.append("<h2>Mismatches</h2>")
    body.append(_table(["table", "key", "stream", "kind", "fields", "explain"], [
        "<tr>" + _td(plain(m.get("table"))) + _td(plain(m.get("key")), "v") + _td(plain(m.get("stream_id")), "v")
        + _td(plain(m.get("kind"))) + _td("\n".join(field_lines(m)), "v") + _td(explain_line(m)) + "</tr>"
        for m in listed]) if listed else "<p>None.</p>")
    note = listed_note(doc, len(listed))
    if note:
        body.append(f"<p>{_e(note)}</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(head)}</title><style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def _summary(doc: Mapping[str, Any]) -> str:
    rows = []
    for t in tables(doc):
        c = t.get("counts") or {}
        method = plain(t.get("method") or "-")
        if t.get("streamed_fields"):
            method += " (streamed: " + ", ".join(plain(f) for f in t["streamed_fields"]) + ")"
        findings = ", ".join(f"{plain(k)} {number(n)}" for k, n in (t.get("findings") or {}).items()) or "-"
        rows.append("<tr>" + _td(plain(t.get("table"))) + _td(number(t.get("rows_legacy")), "n")
                    + _td(number(t.get("rows_new")), "n") + _td(number(t.get("keys_compared")), "n")
                    + _td(number(t.get("keys_replayed")), "n") + _td(method)
                    + "".join(_count(int(c.get(k) or 0)) for k in KINDS) + _td(number(t.get("rows_per_s")), "n")
                    + _td(number(t.get("duration_s"), 2), "n") + _td(findings) + _td(number(t.get("parked")), "n")
                    + "</tr>")
    total = counts(doc)
    rows.append("<tr><th>total</th>" + "<td></td>" * 5 + "".join(_count(total[k]) for k in KINDS)
                + "<td></td>" + _td(number(doc.get("duration_s"), 2), "n") + "<td></td><td></td></tr>")
    return _table(["table", "legacy rows", "new rows", "compared", "replayed", "method", *KINDS, "rows/s", "seconds",
                   "findings", "parked"], rows)
