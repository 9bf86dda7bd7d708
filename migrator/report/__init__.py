"""Verify reports, rendered from the JSON document (a dict): text (Rich), json, md and self-contained html."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import html_page, json_doc, markdown
from .document import KINDS, field_breakdown, ordered, shown
from .text import render as render_text
from .text import runs_table

FORMATS = ("text", "json", "md", "html")


def render(doc: Mapping[str, Any], fmt: str) -> str:
    """Returns the document rendered as json, md or html text (text is a Rich renderable: `render_text`)."""
    if fmt == "json":
        return json_doc.render(doc)
    if fmt == "md":
        return markdown.render(doc)
    if fmt == "html":
        return html_page.render(doc)
    raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})")


__all__ = ["FORMATS", "KINDS", "field_breakdown", "ordered", "render", "render_text", "runs_table", "shown"]
