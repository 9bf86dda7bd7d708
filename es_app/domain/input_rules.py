"""What the event-sourced side accepts in names, emails and phones (docs/input.md).

The legacy app keeps the same rules in `legacy_app.input_rules` (es_app imports nothing
from it); `tests/integration/test_input_rules.py` sends one table of inputs to both apps
so the two cannot drift. Pure Python: the API checks requests with it, and the User
aggregate checks every name, email and phone it records.
"""

from __future__ import annotations

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

