"""factory-boy factories for legacy rows, and the insert that puts them in the legacy table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import factory
from sqlalchemy import Engine, MetaData, Table

CREATED = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


class LegacyUserRowFactory(factory.DictFactory):
    """A row of the legacy `users` table, as a dict of its columns."""

    id = factory.Sequence(lambda n: n + 1)
    email = factory.Sequence(lambda n: f"user{n + 1}@example.org")
    full_name = factory.Faker("name")
    is_active = True
    phone = None
    created_at = CREATED
    updated_at = CREATED


def insert_rows(engine: Engine, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Returns the number of rows inserted into the legacy `table` (one transaction)."""
    listed = [dict(r) for r in rows]
    if listed:
        t = Table(table, MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(t.insert(), listed)
    return len(listed)
