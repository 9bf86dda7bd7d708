"""PostgreSQL: ON CONFLICT upserts, SELECT ... FOR UPDATE, pg_try_advisory_lock."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import insert

from .base import OnConflictDialect


class PostgresDialect(OnConflictDialect):
    name = "postgresql"
    listens = True
    _insert = staticmethod(insert)

    def snapshot_read_options(self) -> dict[str, Any]:
        return {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}

    def try_advisory_lock(self, conn: Connection, key: int) -> bool:
        return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())

    def advisory_unlock(self, conn: Connection, key: int) -> None:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    def lock_for_transaction(self, conn: Connection, key: int) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


DIALECT = PostgresDialect()
