"""Reading a verify JSON document for the renderers: key order, per-field breakdown, values as safe text.

The renderers work from the document (a dict, as `migrator verify --format json` prints it and
as runs are stored), never from the engine's objects, so a stored run renders the same later.
Values come from legacy data and may be hostile (NUL, lone surrogates, bidi overrides,
markup): `shown` turns any of them into printable text, escaping what is not printable.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

KINDS = ("missing_in_new", "missing_in_legacy", "field_differs", "replay_differs", "pending")
KEY_ORDER = ("format", "id", "clean", "started_at", "finished_at", "duration_s", "options", "counts", "tables",
             "watermarks", "mismatches_total", "mismatches_truncated", "mismatches")
SIDES = ("legacy", "new", "replay")


def ordered(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Returns the document with its top-level keys in the documented order (others after them, sorted)."""
    first = {k: doc[k] for k in KEY_ORDER if k in doc}
    return {**first, **{k: doc[k] for k in sorted(set(doc) - set(first))}}


def counts(doc: Mapping[str, Any]) -> dict[str, int]:
    """Returns the run's count per kind, every kind present (0 when absent)."""
    given = doc.get("counts") or {}
    return {kind: int(given.get(kind) or 0) for kind in KINDS}


def mismatches(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Returns the listed mismatches (the document may list fewer than it counts)."""
    return [m for m in doc.get("mismatches") or () if isinstance(m, Mapping)]


def field_breakdown(doc: Mapping[str, Any]) -> list[tuple[str, str, dict[str, int]]]:
    """Returns (table, field, {kind: mismatches}) per field named by the listed mismatches, most first."""
    per: dict[tuple[str, str], Counter[str]] = {}
    for m in mismatches(doc):
        for field in m.get("fields") or {}:
            per.setdefault((str(m.get("table")), str(field)), Counter())[str(m.get("kind"))] += 1
    rows = [(table, field, {k: c[k] for k in KINDS if c[k]}) for (table, field), c in per.items()]
    return sorted(rows, key=lambda r: (-sum(r[2].values()), r[0], r[1]))


def shown(value: Any) -> str:
    """Returns a value as one line of printable text: JSON-like (strings quoted, null, true/false), with
    every character that is not printable (controls, NUL, lone surrogates, bidi marks) as an escape."""
    if isinstance(value, str):
        return '"' + "".join(_char(c) for c in value) + '"'
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{shown(str(k))}: {shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return shown(str(value))


def plain(value: Any) -> str:
    """Returns a label (a table or field name, a key) as printable text: unquoted when already printable."""
    text = value if isinstance(value, str) else shown(value)
    return text if text.isprintable() else "".join(_char(c) for c in text)


def _char(c: str) -> str:
    if c == '"':
        return '\\"'
    if c == "\\":
        return "\\\\"
    if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF:
        return c
    code = ord(c)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def field_lines(m: Mapping[str, Any]) -> list[str]:
    """Returns one line per field of a mismatch: `field: legacy <v> | new <v> | replay <v>` (sides present)."""
    out = []
    for field, sides in (m.get("fields") or {}).items():
        if isinstance(sides, Mapping):
            parts = [f"{side} {shown(sides.get(side))}" for side in SIDES if side in sides]
            out.append(f"{plain(field)}: " + " | ".join(parts))
        else:
            out.append(f"{plain(field)}: {shown(sides)}")
    return out


def explain_line(m: Mapping[str, Any]) -> str:
    """Returns a mismatch's explanation in one line: its summary, the last changelog row and the last event."""
    ex = m.get("explain") or {}
    parts = []
    if ex.get("summary"):
        parts.append(plain(ex["summary"]))
    change = ex.get("changelog")
    if isinstance(change, Mapping):
        parts.append(f"last change #{plain(change.get('id'))} {plain(change.get('op'))} at {plain(change.get('at'))}")
    elif "changelog" in ex:
        parts.append("no changelog row")
    event = ex.get("event")
    if isinstance(event, Mapping):
        parts.append(f"last event {plain(event.get('type'))} v{plain(event.get('version'))} "
                     f"@{plain(event.get('position'))} from {plain(event.get('source'))} at {plain(event.get('at'))}")
    elif "event" in ex:
        parts.append("no event")
    pending = ex.get("pending")
    if isinstance(pending, Mapping):
        parts.append(f"waiting: changelog #{plain(pending.get('changelog_id'))}, "
                     f"read model at {plain(pending.get('read_model_position'))}")
    return "; ".join(parts)


def number(value: Any, digits: int = 0) -> str:
    """Returns a count or rate with thousands separators ('-' when absent)."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return plain(value)
    return f"{value:,.{digits}f}"


def title(doc: Mapping[str, Any]) -> str:
    """Returns the report's one-line title: run id, clean or not, the totals."""
    run = f"verify run {doc['id']}" if doc.get("id") is not None else "verify"
    c = counts(doc)
    real = sum(n for k, n in c.items() if k != "pending")
    state = "clean" if doc.get("clean") else f"{real:,} mismatches"
    pending = f", {c['pending']:,} pending" if c["pending"] else ""
    return f"{run}: {state}{pending}"


def totals_line(doc: Mapping[str, Any]) -> str:
    """Returns when the run started, how long it took and which options it ran with."""
    opts = doc.get("options") or {}
    mode = "full replay" if opts.get("full") else f"replay sample {number(opts.get('sample'))}"
    since = ""
    if opts.get("since_last"):
        since = f", since run {plain(opts.get('since_run'))}" if opts.get("since_run") is not None else ", since-last"
    return (f"started {plain(doc.get('started_at'))}, {number(doc.get('duration_s'), 2)} s, {mode}{since}, "
            f"wait {number(opts.get('wait_s'), 1)} s")


def listed_note(doc: Mapping[str, Any], shown_count: int) -> str | None:
    """Returns a line saying how many mismatches are not shown, or None when all are."""
    total = int(doc.get("mismatches_total") or len(mismatches(doc)))
    return None if shown_count >= total else f"{total - shown_count:,} more mismatches not shown (of {total:,})"


def tables(doc: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """Returns the per-table entries."""
    return [t for t in doc.get("tables") or () if isinstance(t, Mapping)]
