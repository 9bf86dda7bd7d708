"""Parked legacy rows and changes: what the event store cannot hold waits here, per key, with its reason.

A backfill row whose import the mapping cannot build or the store cannot hold (U+0000 in a
column without `strip_control`, a value its coercer refuses, ...) is parked and the chunk goes
on without it. The relay parks such a change, and every later change of the same key behind
it, so each key keeps its order; the other keys flow on. Entries live in the event-store
database (`migrator_parked`), written in the transaction of the chunk or batch that parked
them; `migrator parked list` shows them, `migrator parked retry` applies them after a fix
(see `migrator.parking.retry`), `counts` gives the figures for status.

The legacy value stays reproducible: `row` holds the row (or the change) as ASCII JSON, so
U+0000 and lone surrogates survive as `\\u0000`, `\\ud800` (`json.loads` gives them back).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)

from es_app.store import StoreError

from ..mapping.normalizers import escaped, strip_control

metadata = MetaData()

parked = Table(
    "migrator_parked",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("table_name", String(200), nullable=False),
    Column("key", Text, nullable=False),  # the legacy key as its stream id shows it (`key_text`)
    Column("source", String(20), nullable=False),  # "backfill" or "relay"
    Column("changelog_id", BigInteger, nullable=True),  # the relay's change; None for a backfill row
    Column("reason", Text, nullable=False),  # one line
    Column("row", Text, nullable=False),  # ASCII JSON: the legacy row, or the change (op, old_row, new_row, ...)
    Column("parked_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
)

BACKFILL, RELAY = "backfill", "relay"
MAPPING_ERRORS = (ValueError, TypeError, ArithmeticError, KeyError)  # a value the mapping cannot turn into data
REASON_MAX = 1000


@dataclasses.dataclass(frozen=True)
class ToPark:
    """A row or change to park: its key (as `key_text`), reason, the row as JSON-able data and, for
    the relay, the changelog id."""

    key: str
    reason: str
    row: Any
    changelog_id: int | None = None


@dataclasses.dataclass(frozen=True)
class ParkedEntry:
    """Returns one parked row or change as stored; `row` is parsed back (exact legacy values)."""

    id: int
    table_name: str
    key: str
    source: str
    changelog_id: int | None
    reason: str
    row: Any
    parked_at: datetime
    attempts: int
    resolved_at: datetime | None

    @property
    def status(self) -> str:
        return "parked" if self.resolved_at is None else "resolved"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "row": escaped(self.row), "status": self.status}


@dataclasses.dataclass(frozen=True)
class ParkedCount:
    """Returns what waits in one table: keys, backfill rows and relay changes still parked, and
    entries resolved so far."""

    table: str
    keys: int
    backfill: int
    relay: int
    resolved: int

    @property
    def waiting(self) -> int:
        return self.backfill + self.relay


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    """Returns whether a backend can hold the text (no U+0000, no lone surrogate)."""
    return _UNSTORABLE.search(text) is None


def key_text(key: Any) -> str:
    """Returns the legacy key as stored with its parked entries: as its stream id shows it, or
    `escaped` when that text holds control characters (U+0000 is not storable); see `key_of_text`."""
    text = str(key)
    return escaped(text) if strip_control(text) != text else text


def key_of_text(text: str) -> str:
    """Returns the legacy key's text that `key_text` stored as `text`."""
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if isinstance(value, str) and key_text(value) == text:
            return value
    return text


def one_line(problem: Any) -> str:
    """Returns an error's message as one storable line (at most REASON_MAX characters)."""
    text = " ".join(strip_control(str(problem)).split()) or type(problem).__name__
    return text if len(text) <= REASON_MAX else text[:REASON_MAX - 3] + "..."


def reason_of(table: str, exc: BaseException) -> str:
    """Returns why a row or change is parked: the store's one line, or the mapping's error."""
    if isinstance(exc, StoreError):
        return str(exc)
    return f"mapping {table}: {type(exc).__name__}: {exc}"


def _now() -> datetime:
    return datetime.now(UTC)


def park(conn: Connection, table: str, source: str, entries: Sequence[ToPark]) -> int:
    """Stores the entries in the caller's transaction and returns how many were new: a backfill row
    whose key is already parked by the backfill, or a change already parked, is not stored twice."""
    if not entries:
        return 0
    p = parked.c
    if source == BACKFILL:
        wanted = {e.key for e in entries}
        known = set(conn.execute(select(p.key).where(p.table_name == table, p.source == BACKFILL,
                                                     p.resolved_at.is_(None), p.key.in_(wanted))).scalars())
        fresh = [e for e in entries if e.key not in known]
    else:
        wanted_ids = {e.changelog_id for e in entries}
        known_ids = set(conn.execute(select(p.changelog_id).where(
            p.table_name == table, p.source == RELAY, p.resolved_at.is_(None),
            p.changelog_id.in_(wanted_ids))).scalars())
        fresh = [e for e in entries if e.changelog_id not in known_ids]
    if fresh:
        now = _now()
        conn.execute(parked.insert(), [
            {"table_name": table, "key": e.key, "source": source, "changelog_id": e.changelog_id,
             "reason": one_line(e.reason), "row": escaped(e.row), "parked_at": now, "attempts": 1,
             "resolved_at": None} for e in fresh])
    return len(fresh)


def waiting_keys(conn: Connection, table: str, keys: Iterable[str]) -> set[str]:
    """Returns those of `keys` that have a parked entry not yet resolved (later changes wait behind it)."""
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    p = parked.c
    for start in range(0, len(wanted), 500):
        found.update(conn.execute(select(p.key).distinct().where(
            p.table_name == table, p.resolved_at.is_(None), p.key.in_(wanted[start:start + 500]))).scalars())
    return found


def open_entries(conn: Connection, table: str, key: str | None = None) -> list[ParkedEntry]:
    """Returns the table's unresolved entries (of one key), per key in their order: the backfill's
    row first, then the relay's changes by changelog id."""
    p = parked.c
    q = select(parked).where(p.table_name == table, p.resolved_at.is_(None))
    if key is not None:
        q = q.where(p.key == key)
    q = q.order_by(p.key, p.changelog_id.is_not(None), p.changelog_id, p.id)
    return [_entry(r) for r in conn.execute(q).mappings()]


def resolve(conn: Connection, ids: Iterable[int]) -> None:
    """Marks entries resolved (their row or change is now in the event store, or contained in an import)."""
    ids = list(ids)
    if ids:
        conn.execute(parked.update().where(parked.c.id.in_(ids)).values(resolved_at=_now()))


def failed_again(conn: Connection, entry_id: int, reason: str) -> None:
    """Counts one more attempt of an entry and stores why it failed this time."""
    conn.execute(parked.update().where(parked.c.id == entry_id)
                 .values(attempts=parked.c.attempts + 1, reason=one_line(reason)))


def list_parked(engine: Engine, *, table: str | None = None, key: str | None = None,
                include_resolved: bool = False, limit: int = 100) -> list[ParkedEntry]:
    """Returns parked entries, oldest first (only unresolved ones unless `include_resolved`)."""
    p = parked.c
    q = select(parked).order_by(p.id).limit(limit)
    if table is not None:
        q = q.where(p.table_name == table)
    if key is not None:
        q = q.where(p.key == key)
    if not include_resolved:
        q = q.where(p.resolved_at.is_(None))
    with engine.connect() as conn:
        return [_entry(r) for r in conn.execute(q).mappings()]


def counts(es_engine: Engine) -> list[ParkedCount]:
    """Returns, per legacy table with parked entries, the keys waiting, the backfill rows and relay
    changes still parked, and the entries resolved (for `migrator status`)."""
    p = parked.c
    waiting = p.resolved_at.is_(None)
    q = (select(p.table_name,
                func.count(func.distinct(p.key)).filter(waiting),
                func.count().filter(waiting, p.source == BACKFILL),
                func.count().filter(waiting, p.source == RELAY),
                func.count().filter(p.resolved_at.is_not(None)))
         .group_by(p.table_name).order_by(p.table_name))
    with es_engine.connect() as conn:
        return [ParkedCount(t, k or 0, b or 0, r or 0, done or 0) for t, k, b, r, done in conn.execute(q)]


def _entry(r: Any) -> ParkedEntry:
    values = dict(r)
    values["row"] = json.loads(values["row"])
    for stamp in ("parked_at", "resolved_at"):
        if values[stamp] is not None and values[stamp].tzinfo is None:
            values[stamp] = values[stamp].replace(tzinfo=UTC)
    return ParkedEntry(**values)
