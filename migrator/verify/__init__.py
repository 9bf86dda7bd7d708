"""Checking the migration: every key's legacy row, read-model row and stream replay compared (`verify`).

`compare` is the small three-way comparison of a key set that the demo and the tests use.
"""

from .compare import (
    READ_MODEL,
    STREAM,
    Comparison,
    KeyDifference,
    ReadModel,
    compare,
    legacy_rows,
    streams_of,
    users_read_model,
)
from .engine import verify
from .report import (
    FIELD_DIFFERS,
    KINDS,
    MISSING_IN_LEGACY,
    MISSING_IN_NEW,
    PENDING,
    REAL_KINDS,
    REPLAY_DIFFERS,
    Explain,
    FieldValues,
    Mismatch,
    TableReport,
    VerifyReport,
)

__all__ = [
    "FIELD_DIFFERS",
    "KINDS",
    "MISSING_IN_LEGACY",
    "MISSING_IN_NEW",
    "PENDING",
    "READ_MODEL",
    "REAL_KINDS",
    "REPLAY_DIFFERS",
    "STREAM",
    "Comparison",
    "Explain",
    "FieldValues",
    "KeyDifference",
    "Mismatch",
    "ReadModel",
    "TableReport",
    "VerifyReport",
    "compare",
    "legacy_rows",
    "streams_of",
    "users_read_model",
    "verify",
]
