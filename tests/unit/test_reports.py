"""Verify reports (migrator.report) from hand-built documents: every format shows the summary, the per-field
breakdown and the mismatches, and hostile legacy values (NUL, lone surrogates, markup, bidi) stay inert."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from migrator.report import FORMATS, field_breakdown, ordered, render, render_text, runs_table, shown
from migrator.report.document import title

HOSTILE = "x\x00y \ud800 <script>alert('x')</script> | **b** `c` \u202egnp.exe [red]r[/red] &amp;"


def _doc(**changes) -> dict:
    doc = {
        "mismatches": [
            {"table": "users", "key": 42, "stream_id": "user-42", "kind": "field_differs",
             "fields": {"email": {"legacy": "a@x.org", "new": "b@x.org", "replay": "b@x.org"},
                        "name": {"legacy": HOSTILE, "new": "Ann", "replay": "Ann"}},
             "explain": {"changelog": {"id": 5001, "op": "update", "at": "2026-12-06T20:00:00+00:00"},
                         "event": {"type": "UserEmailChanged", "position": 88000, "version": 3, "source": "relay",
                                   "at": "2026-12-06T19:00:00+00:00"},
                         "pending": None, "summary": "a write that bypassed capture"}},
            {"table": "accounts", "key": HOSTILE, "stream_id": f"account-{HOSTILE}", "kind": "missing_in_new",
             "fields": {"owner": {"legacy": "Bob", "new": None, "replay": None}},
             "explain": {"changelog": None, "event": None, "pending": None, "summary": HOSTILE}},
            {"table": "users", "key": 7, "stream_id": "user-7", "kind": "pending",
             "fields": {"email": {"legacy": "c@x.org", "new": "d@x.org", "replay": "d@x.org"}},
             "explain": {"changelog": {"id": 5011, "op": "update", "at": "t"}, "event": None,
                         "pending": {"changelog_id": 5011, "read_model_position": 88100}, "summary": "in flight"}},
        ],
        "format": 1, "clean": False, "id": 12,
        "started_at": "2026-12-06T20:30:00.123456+00:00", "finished_at": "2026-12-06T20:30:04.000000+00:00",
        "duration_s": 3.88,
        "options": {"tables": ["users", "accounts"], "sample": 2000, "full": False, "since_last": True,
                    "since_run": 11, "wait_s": 5.0},
        "counts": {"missing_in_new": 1, "missing_in_legacy": 0, "field_differs": 1, "replay_differs": 0,
                   "pending": 1},
        "tables": [
            {"table": "users", "category": "user", "rows_legacy": 1000, "rows_new": 1000, "keys_compared": 1000,
             "keys_replayed": 2000, "method": "checksum", "streamed_fields": [],
             "counts": {"missing_in_new": 0, "missing_in_legacy": 0, "field_differs": 1, "replay_differs": 0,
                        "pending": 1},
             "duration_s": 1.2, "rows_per_s": 833.3, "findings": {"duplicate_email": 3}, "parked": 0},
            {"table": "accounts", "category": "account", "rows_legacy": 5, "rows_new": 4, "keys_compared": 5,
             "keys_replayed": 5, "method": "stream", "streamed_fields": ["owner"],
             "counts": {"missing_in_new": 1, "missing_in_legacy": 0, "field_differs": 0, "replay_differs": 0,
                        "pending": 0},
             "duration_s": 0.1, "rows_per_s": 50.0, "findings": {}, "parked": 2},
        ],
        "watermarks": {"users": {"changelog_id": 5012, "position": 88211}},
        "mismatches_total": 4,
        "mismatches_truncated": True,
    }
    doc.update(changes)
    return doc


def _text(renderable) -> str:
    console = Console(file=io.StringIO(), width=400, record=True, markup=False, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_values_become_printable_text_with_escapes():
    assert shown(None) == "null" and shown(True) == "true" and shown(3) == "3" and shown(1.5) == "1.5"
    assert shown("a\x00\ud800\u202e\"\\") == '"a\\u0000\\ud800\\u202e\\"\\\\"'
    assert shown({"k": [1, "\n"]}) == '{"k": [1, "\\u000a"]}'
    assert shown(HOSTILE).isprintable()


def test_the_per_field_breakdown_counts_listed_mismatches_per_field_and_kind():
    assert field_breakdown(_doc()) == [("users", "email", {"field_differs": 1, "pending": 1}),
                                       ("accounts", "owner", {"missing_in_new": 1}),
                                       ("users", "name", {"field_differs": 1})]
    assert field_breakdown(_doc(mismatches=[])) == []


def test_json_is_the_document_in_the_documented_key_order_and_parses_back():
    doc = _doc()
    out = render(doc, "json")
    assert out.isascii() and out.endswith("\n")
    assert json.loads(out) == doc
    assert list(json.loads(out)) == ["format", "id", "clean", "started_at", "finished_at", "duration_s", "options",
                                     "counts", "tables", "watermarks", "mismatches_total", "mismatches_truncated",
                                     "mismatches"]
    assert list(ordered({"zeta": 1, **doc, "alpha": 2}))[-2:] == ["alpha", "zeta"]
    assert json.loads(render(_doc(duration_s=float("inf")), "json"))["duration_s"] is None
    assert render(dict(reversed(list(doc.items()))), "json") == out  # stable whatever order it was built in


def test_markdown_has_every_section_and_no_live_markup():
    out = render(_doc(), "md")
    out.encode("utf-8")  # no lone surrogate left
    assert "\x00" not in out and "\u202e" not in out
    assert out.startswith("# verify run 12: 2 mismatches, 1 pending\n")
    assert "## Summary" in out and "## Mismatches per field" in out and "## Mismatches" in out
    assert "<script" not in out and "&lt;script&gt;" in out
    assert "**b**" not in out and "\\*\\*b\\*\\*" in out
    for line in out.splitlines():
        if line.startswith("| "):  # every table row keeps its column count: `|` inside values is escaped
            assert len(re.findall(r"(?<!\\)\|", line)) in (5, 7, 16)
    assert "| users | email | 2 | field\\_differs 1, pending 1 |" in out
    assert "1 more mismatches not shown (of 4)" in out


def test_html_is_one_self_contained_page_with_every_value_escaped():
    out = render(_doc(), "html")
    out.encode("utf-8")
    assert out.startswith("<!DOCTYPE html>") and "<style>" in out
    assert "\x00" not in out and "\u202e" not in out
    lowered = out.lower()
    assert "<script" not in lowered and "&lt;script&gt;" in out
    for external in ("http:", "https:", "src=", "<link", "@import", "url("):
        assert external not in lowered
    assert "<h2>Summary</h2>" in out and "<h2>Mismatches per field</h2>" in out and "<h2>Mismatches</h2>" in out
    assert "duplicate_email 3" in out and "streamed: owner" in out
    assert "&quot;a@x.org&quot;" in out and "\\u0000" in out and "\\ud800" in out
    clean = render(_doc(clean=True, mismatches=[], mismatches_total=0, mismatches_truncated=False), "html")
    assert 'class="clean"' in clean and clean.count("<p>None.</p>") == 2


def test_text_shows_the_summary_breakdown_and_first_mismatches():
    out = _text(render_text(_doc()))
    assert "verify run 12: 2 mismatches, 1 pending" in out
    assert "verify summary" in out and "mismatches per kind" in out and "mismatches per field" in out
    assert "first 3 mismatches" in out and "accounts: compared by streaming (no SQL form of their normalizer): owner" in out
    assert re.search(r"│ missing_in_new\s+│\s+0 │\s+1 │\s+1 │", out)
    assert "1,000" in out and "833" in out and "checksum" in out and "duplicate_email 3" in out
    assert "since run 11" in out
    assert '\\u0000' in out and '\\ud800' in out and "[red]r[/red]" in out  # taken literally
    assert "last change #5001 update" in out and "last event UserEmailChanged v3 @88000 from relay" in out
    assert "waiting: changelog #5011, read model at 88100" in out
    assert "1 more mismatches not shown (of 4)" in out
    assert "first 1 mismatches" in _text(render_text(_doc(), first=1))


def test_the_runs_table_lists_each_run():
    out = _text(runs_table([{"id": 3, "started_at": "2026-12-06T20:30:00+00:00", "duration_s": 1.5, "clean": False,
                             "tables": ["users", HOSTILE], "counts": {"field_differs": 2},
                             "options": {"full": True, "since_last": True, "since_run": 2}}]))
    assert "verify runs (1)" in out and "full, since run 2" in out and "\\u0000" in out
    assert re.search(r"│\s+3\s+│", out)


def test_every_format_renders_an_empty_clean_document():
    doc = {"format": 1, "id": None, "clean": True, "counts": {}, "tables": [], "mismatches": []}
    assert title(doc) == "verify: clean"
    for fmt in FORMATS[1:]:
        assert render(doc, fmt)
    assert "verify: clean" in _text(render_text(doc))
    with pytest.raises(ValueError, match="unknown report format"):
        render(doc, "pdf")
