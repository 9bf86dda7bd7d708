"""What the legacy API accepts in text and numbers (docs/input.md).

The event-sourced side keeps the same rules in `es_app.domain.input_rules` (legacy_app
imports nothing from it); `tests/integration/test_input_rules.py` sends one table of
inputs to both apps so the two cannot drift. Only HTTP input is checked: rows already in
the legacy table are read as they are.
"""

from __future__ import annotations

MAX_INT64 = 2**63 - 1  # the largest integer both databases hold (BIGINT, SQLite INTEGER)

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def control_problem(value: str) -> str | None:
    """Returns why `value` cannot be stored or compared (a control character, a lone surrogate), or None."""
    for char in value:
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return f"must not contain control characters (U+{code:04X})"
        if 0xD800 <= code <= 0xDFFF:
            return f"must not contain lone surrogates (U+{code:04X})"
    return None


def text_problem(value: str) -> str | None:
    """Returns why `value` is refused as a name, email or phone, or None when it is accepted."""
    problem = control_problem(value)
    if problem is None:
        bidi = next((c for c in value if c in BIDI_CONTROLS), None)
        if bidi is not None:
            problem = f"must not contain bidirectional override characters (U+{ord(bidi):04X})"
    return problem


def checked_text(value: object) -> object:
    """Returns `value`; raises ValueError with the reason when it is a string `text_problem` refuses.

    A pydantic "before" validator: it sees the value as sent (untrimmed), and leaves other types to
    the field's own validation.
    """
    problem = text_problem(value) if isinstance(value, str) else None
    if problem is not None:
        raise ValueError(problem)
    return value


def checked_search(value: object) -> object:
    """Returns `value`; raises ValueError when it is a string with a control character or a lone surrogate."""
    problem = control_problem(value) if isinstance(value, str) else None
    if problem is not None:
        raise ValueError(problem)
    return value
