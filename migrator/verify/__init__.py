"""Checking the migration: the three-way comparison of legacy rows, streams and read models."""

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

__all__ = [
    "READ_MODEL",
    "STREAM",
    "Comparison",
    "KeyDifference",
    "ReadModel",
    "compare",
    "legacy_rows",
    "streams_of",
    "users_read_model",
]
