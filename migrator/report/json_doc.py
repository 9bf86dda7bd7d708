"""The JSON report: the document itself, keys in the documented order, ASCII-escaped (any value survives)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .document import ordered


def render(doc: Mapping[str, Any]) -> str:
    """Returns the document as indented JSON text ending with a newline (non-ASCII and lone surrogates
    as \\u escapes, so the text is valid UTF-8 and parses back to the same document; a number that is
    not finite, which JSON cannot hold, as null)."""
    return json.dumps(_finite(ordered(doc)), indent=2, ensure_ascii=True, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
