"""SQLite: ON CONFLICT upserts; BEGIN IMMEDIATE serializes writers, so no row or advisory locks."""

from __future__ import annotations

from sqlalchemy.dialects.sqlite import insert

from .base import OnConflictDialect


class SQLiteDialect(OnConflictDialect):
    name = "sqlite"
    single_writer = True
    _insert = staticmethod(insert)


DIALECT = SQLiteDialect()
