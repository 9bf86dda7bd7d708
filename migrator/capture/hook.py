"""Application-level capture: an SQLAlchemy session hook writing the same changelog rows as the triggers.

For databases where triggers are not allowed. Attach it to the legacy app's session class
(or a sessionmaker); every ORM flush touching a mapped table then writes one changelog row
per changed row, through the session's own connection, so it commits or rolls back with
the legacy write. Old rows are read in `before_flush` and new rows in `after_flush`, with
the same JSON the triggers produce (the SQL is the capture backend's, `migrator.capture.backends`).
On PostgreSQL the changelog's commit-time numbering applies to these rows too.

Limits: only unit-of-work flushes are seen, not bulk `update()`/`delete()` statements or
raw SQL; use one capture mode per table, never both (every change would be recorded twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.orm import Session

from ..mapping import CompiledMapping
from .backends import capture_backend_for

_PENDING = "migrator_capture_old_rows"


class SessionCapture:
    """The hook itself; `attach(target)` / `detach(target)` on a Session class, sessionmaker or session."""

    def __init__(self, mappings: Sequence[CompiledMapping]):
        missing = [m.table for m in mappings if not m.table_columns]
        if missing:
            raise ValueError(f"bind the mappings first (mapping.bind(engine)): {', '.join(missing)}")
        self.mappings = {m.table: m for m in mappings}
        self._row_exprs: dict[str, str] = {}  # per table: its row as JSON text (the backend's expression)

    def attach(self, target: Any) -> SessionCapture:
        """Returns self after listening on `target`'s flushes."""
        event.listen(target, "before_flush", self._before_flush)
        event.listen(target, "after_flush", self._after_flush)
        return self

    def detach(self, target: Any) -> None:
        event.remove(target, "before_flush", self._before_flush)
        event.remove(target, "after_flush", self._after_flush)

    # -- internals -----------------------------------------------------------
    def _mapping_and_key(self, obj: Any) -> tuple[CompiledMapping | None, Any]:
        mapper = inspect(obj).mapper
        mapping = self.mappings.get(mapper.local_table.name)
        if mapping is None:
            return None, None
        prop = mapper.get_property_by_column(mapper.local_table.c[mapping.key])
        return mapping, getattr(obj, prop.key)

    def _committed_key(self, obj: Any, mapping: CompiledMapping) -> Any:
        identity = inspect(obj).identity
        return identity[0] if identity else self._mapping_and_key(obj)[1]

    def _row_json(self, conn: Connection, mapping: CompiledMapping, key: Any) -> str | None:
        quote = conn.dialect.identifier_preparer.quote  # double quotes, or MySQL's backticks
        t, k = quote(mapping.table), quote(mapping.key)
        expr = self._row_exprs.get(mapping.table)
        if expr is None:
            expr = self._row_exprs[mapping.table] = capture_backend_for(conn).row_json_expr(
                conn, mapping.table, mapping.table_columns, "t")
        return conn.execute(text(f"SELECT {expr} FROM {t} t WHERE t.{k} = :key"), {"key": key}).scalar()

    def _before_flush(self, session: Session, _ctx: Any, _instances: Any) -> None:
        conn = session.connection()
        old: dict[int, tuple[CompiledMapping, Any, str]] = {}
        for obj in [*session.dirty, *session.deleted]:
            mapping, _ = self._mapping_and_key(obj)
            if mapping is None or (obj not in session.deleted and not session.is_modified(obj)):
                continue
            key = self._committed_key(obj, mapping)
            row = self._row_json(conn, mapping, key)
            if row is not None:
                old[id(obj)] = (mapping, key, row)
        session.info[_PENDING] = old

    def _after_flush(self, session: Session, _ctx: Any) -> None:
        conn = session.connection()
        old = session.info.pop(_PENDING, {})
        entries: list[tuple[str, str, str, str | None, str | None]] = []
        for obj in session.new:
            mapping, key = self._mapping_and_key(obj)
            if mapping is not None:
                entries.append((mapping.table, "I", str(key), None, self._row_json(conn, mapping, key)))
        for obj in session.dirty:
            if id(obj) not in old:
                continue
            mapping, old_key, old_row = old[id(obj)]
            _, key = self._mapping_and_key(obj)
            new_row = self._row_json(conn, mapping, key)
            if key == old_key:
                entries.append((mapping.table, "U", str(key), old_row, new_row))
            else:
                entries += [(mapping.table, "D", str(old_key), old_row, None),
                            (mapping.table, "I", str(key), None, new_row)]
        for obj in session.deleted:
            if id(obj) in old:
                mapping, key, old_row = old[id(obj)]
                entries.append((mapping.table, "D", str(key), old_row, None))
        if entries:
            _write(conn, entries)


def _write(conn: Connection, entries: list[tuple[str, str, str, str | None, str | None]]) -> None:
    capture_backend_for(conn).insert_changes(
        conn, [{"t": t, "op": op, "pk": pk, "old": old, "new": new} for t, op, pk, old, new in entries])


def install_session_hook(target: Any, mappings: Sequence[CompiledMapping]) -> SessionCapture:
    """Returns the attached hook: from now on flushes of `target` write changelog rows.

    `mappings` must be bound (`mapping.bind(engine)`) and the changelog must exist: create it
    without triggers with `capture.install(engine, mappings, mode="session")` (CLI:
    `migrator capture install --mode session`).
    """
    return SessionCapture(mappings).attach(target)
