"""SQLite: ON CONFLICT upserts; BEGIN IMMEDIATE serializes writers, so no row or advisory locks."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.sqlite import insert

from .base import OnConflictDialect


class SQLiteDialect(OnConflictDialect):
    name = "sqlite"
    single_writer = True
    _insert = staticmethod(insert)

    def snapshot_read_options(self) -> dict[str, Any]:
        return {}  # a DEFERRED transaction already reads one snapshot

    def write_options(self) -> dict[str, Any]:
        return {"sqlite_begin": "IMMEDIATE"}  # es_app.store.engine's BEGIN hook: writers queue, never upgrade


DIALECT = SQLiteDialect()
