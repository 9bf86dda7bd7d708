"""Value normalizers and type coercers used by table mappings.

A *coercer* turns a column value as either backend hands it over (a Python value from a
SELECT, or a JSON value from a changelog row: SQLite booleans arrive as 0/1, timestamps as
text) into one canonical JSON-able value. A *normalizer* then applies the mapping's
cosmetic rules (trimming, email case, timestamp precision). Both leave None alone.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

Normalizer = Callable[[Any], Any]

_PRECISIONS = {"s": 0, "ms": 3, "us": 6}
_ZERO = timedelta(0)


def _none_safe(fn: Normalizer) -> Normalizer:
    def wrapped(value: Any) -> Any:
        return None if value is None else fn(value)

    wrapped.__name__ = fn.__name__
    return wrapped


def timestamp(precision: str = "us") -> Normalizer:
    """Returns a normalizer to an ISO-8601 UTC string truncated to `precision` (s, ms or us).

    Naive values are taken as UTC (SQLite stores timestamps without an offset).
    """
    if precision not in _PRECISIONS:
        raise ValueError(f"timestamp precision must be one of {', '.join(_PRECISIONS)}")
    digits = _PRECISIONS[precision]
    canonical_length = 25 + (digits + 1 if digits else 0)  # 2026-01-02T03:04:05[.ffffff]+00:00

    spec = {0: "seconds", 3: "milliseconds", 6: "microseconds"}[digits]
    cut = 10 ** (6 - digits)

    def to_timestamp(value: Any) -> str:
        if isinstance(value, str):
            if len(value) == canonical_length and value[10] == "T" and value.endswith("+00:00"):
                return value  # already normalized (the common case when values pass through twice)
            if value.startswith("0000-00-00"):
                raise ValueError(f"zero date {value!r}: MySQL/MariaDB allows it where sql_mode has no NO_ZERO_DATE, "
                                 "but it is no point in time (set the column to NULL or a real date)")
            t = datetime.fromisoformat(value)  # checks the text in any case
            if digits == 6 and len(value) == 26 and value[19] == ".":  # naive with microseconds, as SQLite
                return f"{value[:10]}T{value[11:]}+00:00"  # stores them: only the separator and offset differ
        elif isinstance(value, datetime):
            t = value
        else:
            raise ValueError(f"not a timestamp: {value!r}")
        if cut > 1 and t.microsecond % cut:
            t = t.replace(microsecond=t.microsecond - t.microsecond % cut)
        if t.tzinfo is None:  # naive: taken as UTC
            return t.isoformat(timespec=spec) + "+00:00"
        if t.utcoffset() != _ZERO:
            t = t.astimezone(UTC)
        return t.isoformat(timespec=spec)  # an offset of zero prints as +00:00

    to_timestamp.__name__ = f"timestamp_{precision}"
    return _none_safe(to_timestamp)


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "t", "true", "y", "yes", "on"):
            return True
        if text in ("0", "f", "false", "n", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


def _to_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _email(value: Any) -> Any:
    return _lower(_trim(value))


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def strip_control(value: Any) -> Any:
    """Returns text without C0 control characters (U+0000-U+001F but tab, newline and carriage
    return) and DEL, and with lone surrogates replaced by U+FFFD: what an event store (PostgreSQL)
    cannot hold, or a name should not carry. Other values are returned unchanged."""
    if type(value) is not str or value.isprintable():
        return value
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", value))


def escaped(value: Any) -> str:
    """Returns the value as ASCII JSON text (`\\u0000` for NUL, `\\ud800` for a lone surrogate), which
    any backend stores and `json.loads` turns back into exactly the value."""
    return json.dumps(value, ensure_ascii=True, default=str)


def _to_date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return date.fromisoformat(str(value)[:10]).isoformat()


def _to_decimal(value: Any) -> str:
    return str(Decimal(str(value)))


def _decimal_places(places: int) -> Normalizer:
    quantum = Decimal(1).scaleb(-places)

    def to_decimal(value: Any) -> str:
        return str(Decimal(str(value)).quantize(quantum))

    return to_decimal


def _to_bytes(value: Any) -> str:
    """Base64 of the bytes; hex text as changelogs carry it (PostgreSQL `\\x…`, SQLite hex()) is decoded first."""
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value[2:] if value.startswith("\\x") else value)
        except ValueError:
            return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return str(value)


NORMALIZERS: dict[str, Normalizer] = {
    "trim": _trim,
    "lower": _lower,
    "email": _email,
    "blank_to_none": _blank_to_none,
    "strip_control": strip_control,
    "bool": _none_safe(_to_bool),
    "int": _none_safe(int),
    "float": _none_safe(float),
    "text": _none_safe(_to_text),
    "date": _none_safe(_to_date),
    "decimal": _none_safe(_to_decimal),
    "bytes": _none_safe(_to_bytes),
    "timestamp": timestamp("us"),
    "timestamp_ms": timestamp("ms"),
    "timestamp_s": timestamp("s"),
}


def compose(specs: Iterable[str | Normalizer]) -> Normalizer:
    """Returns one function applying the named or given normalizers left to right.

    Besides the names of NORMALIZERS, `decimal:N` rounds to N decimal places.

    Raises ValueError naming the unknown normalizer.
    """
    fns: list[Normalizer] = []
    for spec in specs:
        if callable(spec):
            fns.append(spec)
        elif spec in NORMALIZERS:
            fns.append(NORMALIZERS[spec])
        elif isinstance(spec, str) and spec.startswith("decimal:") and spec[8:].isdigit():
            fns.append(_none_safe(_decimal_places(int(spec[8:]))))
        else:
            raise ValueError(f"unknown normalizer {spec!r} (known: {', '.join(sorted(NORMALIZERS))})")
    if len(fns) == 1:
        return fns[0]

    def normalize(value: Any) -> Any:
        for fn in fns:
            value = fn(value)
        return value

    return normalize


def jsonable(value: Any, precision: str = "us") -> Any:
    """Returns `value` as plain JSON data: timestamps as UTC ISO strings, decimals as text."""
    if isinstance(value, datetime):
        return timestamp(precision)(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _to_bytes(value)
    return value


def _tinyint_1(sqltype: Any) -> bool:
    """Returns whether a reflected type is MySQL's TINYINT(1), its BOOLEAN (SQLAlchemy reflects it as TINYINT)."""
    from sqlalchemy.dialects.mysql import TINYINT

    return isinstance(sqltype, TINYINT) and getattr(sqltype, "display_width", None) == 1


def coercer_for_type(sqltype: Any) -> str | None:
    """Returns the coercer name for a reflected SQLAlchemy column type, None to keep values as they come."""
    from sqlalchemy import types as t

    if isinstance(sqltype, t.Boolean) or _tinyint_1(sqltype):
        return "bool"
    if isinstance(sqltype, t.DateTime):
        return "timestamp"
    if isinstance(sqltype, t.Date):
        return "date"
    if isinstance(sqltype, t.Integer):
        return "int"
    if isinstance(sqltype, t.Float):
        return "float"
    if isinstance(sqltype, t.Numeric):
        scale = getattr(sqltype, "scale", None)
        return "decimal" if scale is None else f"decimal:{scale}"
    if isinstance(sqltype, (t.LargeBinary, t.BINARY, t.VARBINARY)):  # MySQL's BINARY/VARBINARY are no LargeBinary
        return "bytes"
    if isinstance(sqltype, (t.String, t.Text)):
        return "text"
    return None
