"""Stored verify runs: every `migrator verify` keeps its report in the event-store database.

A run is one row of `migrator_verify_runs`: its times, whether it was clean, the tables it
covered, its options, counts and watermarks (each as JSON text, for queries and `--list`)
and the whole JSON document (`report`). JSON is stored ASCII-escaped, so any value legacy
data brings (NUL, lone surrogates) round-trips through either backend. `--since-last` starts
from the watermarks of `latest_clean`; `migrator repair --report ID` reads a run with `load`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    select,
)

from es_app.store import write_transaction

metadata = MetaData()

verify_runs = Table(
    "migrator_verify_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("clean", Boolean, nullable=False),
    Column("tables", Text, nullable=False),  # the tables verified, comma-separated
    Column("options", Text, nullable=False),  # JSON: the document's "options"
    Column("counts", Text, nullable=False),  # JSON: the document's "counts"
    Column("watermarks", Text, nullable=False),  # JSON: the document's "watermarks"
    Column("report", Text, nullable=False),  # JSON: the whole document
    Index("ix_migrator_verify_runs_clean", "clean", "id"),
)


class RunNotFound(LookupError):
    """No stored verify run has this id."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, default=str)  # a non-finite number as Infinity: Python reads it back


def _time(value: Any) -> datetime:
    """Returns the document's ISO time as an aware datetime (now when absent or unreadable)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def table_names(doc: Mapping[str, Any]) -> list[str]:
    """Returns the tables a document covers: its per-table entries, else its options' tables."""
    names = [t["table"] for t in doc.get("tables") or () if isinstance(t, Mapping) and "table" in t]
    return names or list((doc.get("options") or {}).get("tables") or ())


def store(es: Engine, doc: Mapping[str, Any]) -> int:
    """Stores a verify document as a new run; returns the run's id (the document itself is stored with it)."""
    started = _time(doc.get("started_at"))
    finished = _time(doc.get("finished_at")) if doc.get("finished_at") else started
    values = {
        "started_at": started,
        "finished_at": finished,
        "duration_s": float(doc.get("duration_s") or 0.0),
        "clean": bool(doc.get("clean")),
        "tables": ",".join(table_names(doc)),
        "options": _dumps(doc.get("options") or {}),
        "counts": _dumps(doc.get("counts") or {}),
        "watermarks": _dumps(doc.get("watermarks") or {}),
        "report": "",
    }
    with write_transaction(es) as conn:
        run_id = int(conn.execute(verify_runs.insert().values(**values).returning(verify_runs.c.id)).scalar_one())
        stored = {**doc, "id": run_id}
        conn.execute(verify_runs.update().where(verify_runs.c.id == run_id).values(report=_dumps(stored)))
    return run_id


def load(es: Engine, run_id: int) -> dict[str, Any]:
    """Returns the stored document of run `run_id` (with its "id"); RunNotFound when there is none."""
    with es.connect() as conn:
        report = conn.execute(select(verify_runs.c.report).where(verify_runs.c.id == run_id)).scalar()
    if report is None:
        raise RunNotFound(f"no verify run {run_id} (see `migrator verify --list`)")
    doc: dict[str, Any] = json.loads(report)
    return doc


def latest(es: Engine, limit: int = 20) -> list[dict[str, Any]]:
    """Returns the summaries of the latest runs, newest first: id, times, duration, clean, tables, counts,
    options, mismatches_total."""
    q = (select(verify_runs.c.id, verify_runs.c.started_at, verify_runs.c.finished_at, verify_runs.c.duration_s,
                verify_runs.c.clean, verify_runs.c.tables, verify_runs.c.options, verify_runs.c.counts)
         .order_by(verify_runs.c.id.desc()).limit(limit))
    with es.connect() as conn:
        rows = conn.execute(q).all()
    return [{"id": r.id, "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at),
             "duration_s": r.duration_s, "clean": bool(r.clean),
             "tables": [t for t in r.tables.split(",") if t], "counts": json.loads(r.counts),
             "options": json.loads(r.options)} for r in rows]


def latest_clean(es: Engine, tables: Iterable[str] | None = None) -> dict[str, Any] | None:
    """Returns the document of the newest clean run that covered every one of `tables` (any clean run for
    None), or None when there is none."""
    wanted = set(tables or ())
    q = (select(verify_runs.c.id, verify_runs.c.tables).where(verify_runs.c.clean.is_(True))
         .order_by(verify_runs.c.id.desc()))
    with es.connect() as conn:
        found = next((run_id for run_id, names in conn.execute(q) if wanted <= set(names.split(","))), None)
    return None if found is None else load(es, found)


def _iso(value: datetime) -> str:
    """Returns a stored time as UTC ISO-8601 (SQLite hands it back without its offset)."""
    return (value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)).isoformat(timespec="microseconds")
