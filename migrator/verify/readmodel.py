"""The read models verify knows: which table holds a category's streams, its compared fields, its checkpoint.

es_app has one, `users_view` (stream id in `id`, the legacy key in `legacy_key`, `deleted`, and the
global `position` of the last event applied) kept by the `users` projection. A mapping uses the read
model of its category when the read model's fields are all fields of the mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from es_app.projections.tables import projection_checkpoints as cp
from es_app.projections.tables import users_view

from ..mapping import TableMapping

_CHUNK = 500


@dataclasses.dataclass(frozen=True)
class ReadModelTable:
    """A read-model table: one row per stream, with some of the mapping's fields in columns of the same name."""

    table: str
    projection: str  # the checkpoint name of the projection that keeps it
    fields: tuple[str, ...]
    booleans: frozenset[str] = frozenset()  # fields held in boolean columns (SQLite hands them back as 0/1)
    id_column: str = "id"
    key_column: str = "legacy_key"
    deleted_column: str = "deleted"
    position_column: str = "position"

    def convert(self, field: str, value: Any) -> Any:
        """Returns a column's value as the compared value (booleans as bool on every backend)."""
        return bool(value) if field in self.booleans and value is not None else value

    def rows(self, conn: Connection, stream_ids: Sequence[str]) -> dict[str, tuple[dict[str, Any] | None, int]]:
        """Returns {stream id: ({field: value} or None when deleted, position)} of the streams that have a row."""
        t = users_view if self.table == users_view.name else None
        if t is None:
            raise ValueError(f"no table definition for read model {self.table}")
        cols = [t.c[self.id_column], t.c[self.deleted_column], t.c[self.position_column],
                *(t.c[f] for f in self.fields)]
        out: dict[str, tuple[dict[str, Any] | None, int]] = {}
        ids = list(stream_ids)
        for i in range(0, len(ids), _CHUNK):
            for r in conn.execute(select(*cols).where(t.c[self.id_column].in_(ids[i:i + _CHUNK]))).mappings():
                state = None if r[self.deleted_column] else {f: self.convert(f, r[f]) for f in self.fields}
                out[r[self.id_column]] = (state, int(r[self.position_column]))
        return out

    def checkpoint(self, conn: Connection) -> int:
        """Returns the position the projection has applied every event up to (the lowest of its shards), 0 if none."""
        q = select(func.min(cp.c.position)).where((cp.c.name == self.projection)
                                                  | cp.c.name.like(f"{self.projection}:%"))
        return int(conn.execute(q).scalar() or 0)


USERS_VIEW = ReadModelTable("users_view", "users", ("name", "email", "active", "phone"), frozenset({"active"}))
READ_MODELS: Mapping[str, ReadModelTable] = {"user": USERS_VIEW}  # by stream category


def read_model_for(mapping: TableMapping) -> ReadModelTable | None:
    """Returns the read model of the mapping's streams, None when its category has none."""
    found = READ_MODELS.get(mapping.category)
    mapped = {c.field for c in mapping.columns}
    return found if found is not None and set(found.fields) <= mapped else None
