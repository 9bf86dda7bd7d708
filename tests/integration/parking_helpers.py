"""Helpers of the parking tests: a SQLite legacy database (it accepts U+0000 in text, as the legacy
app does) beside an event store on the test's backend, and a users mapping without strip_control."""

from __future__ import annotations

import dataclasses
import uuid

from sqlalchemy import text

from es_app.store import make_engine
from migrator import schema
from migrator.capture import changelog as capture
from migrator.mapping import USERS, ColumnMap

# The users mapping as it was before strip_control: a NUL in full_name cannot be stored.
RAW_USERS = dataclasses.replace(USERS, columns=(
    ColumnMap("full_name", "name", ("trim",), event="UserNameChanged"),
    *USERS.columns[1:],
))


def sqlite_legacy(tmp_path):
    """Returns an engine of a fresh SQLite legacy database with capture installed."""
    engine = make_engine(f"sqlite:///{tmp_path / f'legacy-{uuid.uuid4().hex[:6]}.db'}")
    schema.upgrade_all({"legacy": engine})
    capture.install(engine, [USERS])
    return engine


def set_name(engine, key: int, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET full_name = :n WHERE id = :k"), {"n": name, "k": key})
