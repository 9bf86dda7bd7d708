"""The reverse projection: keeps a legacy table equal to its streams while writes go to the event store.

It reads the global feed of the mapping's category after its checkpoint and, for every stream an
event touched, sets the legacy row to the state the stream replays to (`mapping.replay`, the fold
verify compares with): inserts it, updates it or deletes it, and writes nothing when the row already
holds that state. So applying an event twice, or an event that came from the legacy table itself
(relay, backfill), changes nothing. Its writes are marked with origin `reverse`
(`migrator_writes`): capture records them so, and the relay never turns them back into events.

Its checkpoint (`migrator_reverse`) and the keys it waits on (`migrator_reverse_waiting`) live in the
legacy database and move in the transaction of the rows written, under a lock, so two catch-ups never
interleave. A key waits instead of being written while the legacy table has a change of it the relay
has not turned into events yet (another program wrote the row directly), or while it has a parked
entry: writing the stream's state then would undo that change. The next catch-up looks at it again,
after the relay. A stream without a legacy key (a user registered through the event-sourced API,
`user-<uuid>`) cannot have a row: it is recorded as a data-quality finding, never dropped silently.

It runs while the migration's writes are switched (`writes` mode `new`), or while keys still wait
(after a rollback, until they are written): `background_catch_up`. docs/switchover.md explains why.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import DataError, IntegrityError

from es_app.dialect import dialect_for
from es_app.store import EventStore, RecordedEvent

from ..capture.changelog import CHANGELOG, LEGACY_ORIGIN, changelog_exists, migrator_writes, pending_since
from ..capture.offsets import get_offset, offset_name, offsets
from ..claims.findings import Finding, findings_table_exists, record_findings
from ..mapping import CompiledMapping
from ..parking.entries import key_text, one_line, parked, waiting_keys
from ..phases.machine import DEFAULT_NAME, load
from ..relay.runner import Relay
from ..verify.replay import storable_key

REVERSE_ORIGIN = "reverse"
LOCK_KEY = 7_045_112_359  # one catch-up at a time per legacy database
NO_LEGACY_KEY = "no_legacy_key"  # the finding of a stream whose id holds no key of the legacy table
BATCH = 500  # events read per round trip

metadata = MetaData()

checkpoints = Table(
    "migrator_reverse",
    metadata,
    Column("table_name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

waiting = Table(
    "migrator_reverse_waiting",
    metadata,
    Column("table_name", String(200), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
)


@dataclasses.dataclass
class ReverseResult:
    """Returns what one catch-up did: events read, rows inserted/updated/deleted, keys waiting, the checkpoint."""

    table: str
    events: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    waiting: int = 0
    unplaceable: int = 0
    position: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.deleted


@dataclasses.dataclass(frozen=True)
class _Target:
    """What one key's row should be: the replayed state (None: no row) and the timestamps of its events."""

    state: dict[str, Any] | None
    created_at: datetime | None
    updated_at: datetime | None
    started: bool = True  # the stream has an import or a registration (else None says nothing about the row)


def ensure_tables(conn: Connection) -> None:
    """Creates the reverse projection's tables in the legacy database when missing."""
    metadata.create_all(conn, checkfirst=True)


def checkpoint(conn: Connection, table: str) -> int:
    """Returns the position up to which the table's rows hold the feed (0 before the first catch-up)."""
    if not inspect(conn).has_table(checkpoints.name):
        return 0
    return int(conn.execute(select(checkpoints.c.position).where(checkpoints.c.table_name == table)).scalar() or 0)


def waiting_count(conn: Connection, table: str | None = None) -> int:
    """Returns how many keys (of one table) wait for the relay before the reverse projection writes them."""
    return len(waiting_keys_of(conn, table))


def waiting_keys_of(conn: Connection, table: str | None = None) -> list[tuple[str, str, str]]:
    """Returns (table, key, reason) of the keys (of one table) that wait, by table and key."""
    if not inspect(conn).has_table(waiting.name):
        return []
    w = waiting.c
    q = select(w.table_name, w.key, w.reason).order_by(w.table_name, w.key)
    if table is not None:
        q = q.where(w.table_name == table)
    return [(r[0], r[1], r[2]) for r in conn.execute(q)]


class ReverseProjection:
    """Writes one mapped legacy table from its streams; `mapping` is bound to the legacy database."""

    def __init__(self, mapping: CompiledMapping, legacy: Engine, store: EventStore):
        self.mapping, self.legacy, self.store = mapping, legacy, store
        self._table = Table(mapping.table, MetaData(), autoload_with=legacy)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Yields a legacy write transaction holding the reverse projection's lock, its tables created."""
        dialect = dialect_for(self.legacy)
        with self.legacy.connect().execution_options(**dialect.write_options()) as conn, conn.begin():
            dialect.lock_for_transaction(conn, LOCK_KEY)  # first: two first catch-ups would both create the tables
            ensure_tables(conn)
            yield conn

    def catch_up(self, conn: Connection | None = None, *, only_waiting: bool = False) -> ReverseResult:
        """Returns what was done bringing the rows up to the store's head: every key touched by an event after
        the checkpoint, and every waiting key. In `conn` (a `transaction()`) all at once; without it, one
        transaction per batch of events. With `only_waiting`, only the waiting keys, and the checkpoint stays."""
        total = ReverseResult(self.mapping.table)
        while True:
            if conn is None:
                with self.transaction() as own:
                    done = self._round(own, only_waiting)
            else:
                done = self._round(conn, only_waiting)
            total = _added(total, done)
            if only_waiting or done.events < BATCH:
                return total

    def _round(self, conn: Connection, only_waiting: bool) -> ReverseResult:
        """Returns what one batch of events (and the waiting keys) did."""
        m = self.mapping
        out = ReverseResult(m.table, position=checkpoint(conn, m.table))
        keys: dict[str, str] = {k: m.stream_id(k) for k in conn.execute(
            select(waiting.c.key).where(waiting.c.table_name == m.table)).scalars()}
        unplaceable: list[str] = []
        batch = [] if only_waiting else self.store.read_all(after=out.position, limit=BATCH, category=m.category)
        for e in batch:
            key = m.key_of({m.key: m.key_from_stream(e.stream_id)})
            if storable_key(m, key) and m.stream_id(key) == e.stream_id:
                keys.setdefault(key_text(key), e.stream_id)
            elif e.stream_id not in unplaceable:
                unplaceable.append(e.stream_id)
        self._apply(conn, keys, out)
        if batch:
            out.events, out.position = len(batch), batch[-1].position
            self._save_checkpoint(conn, out.position)
        out.unplaceable = self._record_unplaceable(unplaceable)
        return out

    # -- writing rows ------------------------------------------------------
    def _apply(self, conn: Connection, keys: Mapping[str, str], out: ReverseResult) -> None:
        if not keys:
            return
        targets = self._targets(list(keys.values()))
        rows = self._rows(conn, list(keys))
        failed = self._held(conn, list(keys))
        for key, sid in keys.items():
            if not targets.get(sid, _NO_ROW).started:
                failed.setdefault(key, f"stream {sid} was never imported nor registered: its row stays as it is")
        refused: dict[str, str] = {}
        resolved: list[str] = []
        with _marked(conn, changelog_exists(conn)):
            for key, sid in keys.items():
                if key in failed:
                    continue
                try:
                    with conn.begin_nested():
                        self._set_row(conn, key, rows.get(key), targets.get(sid, _NO_ROW), out)
                    resolved.append(key)
                except (IntegrityError, DataError) as exc:  # e.g. a unique value another row gives up later
                    refused[key] = one_line(f"the legacy table refused the row: {exc.orig or exc}")
            if refused and self._write_swapped(conn, {k: targets.get(keys[k], _NO_ROW) for k in refused}, out):
                resolved += list(refused)
                refused = {}
        failed.update(refused)
        self._wait(conn, resolved, failed)
        out.waiting = len(failed)

    def _write_swapped(self, conn: Connection, targets: Mapping[str, _Target], out: ReverseResult) -> bool:
        """Returns whether the rows refused once could all be written now that the others are: rows whose unique
        values others still hold (a swap) first give theirs up for placeholders, all in one savepoint."""
        m, t = self.mapping, self._table
        unique_columns = [c.column for c in m.columns if c.field in m.unique]
        done = ReverseResult(m.table)
        try:
            with conn.begin_nested():
                for key in targets:
                    if unique_columns:
                        conn.execute(t.update().where(t.c[m.key] == self._key_value(key)).values(
                            {c: f"reverse-{uuid.uuid4().hex}@invalid" for c in unique_columns}))
                rows = self._rows(conn, list(targets))
                for key, target in targets.items():
                    self._set_row(conn, key, rows.get(key), target, done)
        except (IntegrityError, DataError):
            return False
        out.inserted, out.updated, out.deleted = (out.inserted + done.inserted, out.updated + done.updated,
                                                  out.deleted + done.deleted)
        return True

    def _set_row(self, conn: Connection, key: str, row: Mapping[str, Any] | None, target: _Target,
                 out: ReverseResult) -> None:
        m, t = self.mapping, self._table
        where = t.c[m.key] == self._key_value(key)
        if target.state is None:
            if row is not None:
                conn.execute(t.delete().where(where))
                out.deleted += 1
            return
        if row is not None and _same(m, row, target.state):
            return
        values = {c.column: target.state.get(c.field) for c in m.columns}
        values.update({c: v for c, v in (target.state.get("extra") or {}).items() if c in t.c})
        if m.updated_at and target.updated_at is not None:
            values[m.updated_at] = target.updated_at
        if row is None:
            if m.created_at:
                values[m.created_at] = target.created_at or target.updated_at
            conn.execute(t.insert().values({m.key: self._key_value(key), **values}))
            out.inserted += 1
        else:
            conn.execute(t.update().where(where).values(values))
            out.updated += 1

    def _key_value(self, key: str) -> Any:
        return self.mapping.key_of({self.mapping.key: key})

    # -- reading -----------------------------------------------------------
    def _targets(self, stream_ids: Sequence[str]) -> dict[str, _Target]:
        with self.store.engine.connect() as es:
            streams = self.store.read_streams(es, stream_ids)
        return {sid: _target(self.mapping, events) for sid, events in streams.items()}

    def _rows(self, conn: Connection, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Returns {key text: row} of the keys' legacy rows, locked until the transaction ends (PostgreSQL)."""
        m, t = self.mapping, self._table
        q = dialect_for(conn).lock_rows(select(t).where(t.c[m.key].in_([self._key_value(k) for k in keys])))
        return {key_text(m.key_of(dict(r))): dict(r) for r in conn.execute(q).mappings()}

    def _held(self, conn: Connection, keys: Sequence[str]) -> dict[str, str]:
        """Returns {key: reason} of the keys whose legacy row has a change the relay has not turned into events
        yet, or a parked entry: writing the stream's state now would undo it."""
        m = self.mapping
        found: dict[str, str] = {}
        with self.store.engine.connect() as es:
            has_offsets = inspect(es).has_table(offsets.name)
            offset = get_offset(es, offset_name(m.table)) if has_offsets else 0
            if inspect(es).has_table(parked.name):
                for key in waiting_keys(es, m.table, keys):
                    found[key] = "the key has a parked row or change (see `migrator parked`)"
        if not changelog_exists(conn):
            return found
        q = text(f"SELECT DISTINCT pk FROM {CHANGELOG} WHERE table_name = :t AND {pending_since(conn)} "
                 f"AND origin = :origin AND pk IN :pks").bindparams(bindparam("pks", expanding=True))
        for i in range(0, len(keys), BATCH):
            chunk = list(keys[i:i + BATCH])
            for pk in conn.execute(q, {"t": m.table, "after": offset, "origin": LEGACY_ORIGIN, "pks": chunk}).scalars():
                found.setdefault(pk, "the legacy row has a change the relay has not relayed yet")
        return found

    # -- bookkeeping ---------------------------------------------------------
    def _save_checkpoint(self, conn: Connection, position: int) -> None:
        d = dialect_for(conn)
        values = {"table_name": self.mapping.table, "position": position, "updated_at": datetime.now(UTC)}
        conn.execute(d.upsert(checkpoints, values, ["table_name"], ["position", "updated_at"]))

    def _wait(self, conn: Connection, resolved: Sequence[str], failed: Mapping[str, str]) -> None:
        table = self.mapping.table
        if resolved:
            for i in range(0, len(resolved), BATCH):
                conn.execute(delete(waiting).where(waiting.c.table_name == table,
                                                   waiting.c.key.in_(resolved[i:i + BATCH])))
        if failed:
            d, now = dialect_for(conn), datetime.now(UTC)
            for key, reason in failed.items():
                conn.execute(d.upsert(waiting, {"table_name": table, "key": key, "reason": reason, "since": now},
                                      ["table_name", "key"], ["reason"]))

    def _record_unplaceable(self, stream_ids: Sequence[str]) -> int:
        if not stream_ids:
            return 0
        table = self.mapping.table
        found = [Finding(NO_LEGACY_KEY, table, sid, sid,
                         f"stream {sid} has no key of the legacy table {table} (created through the event-sourced "
                         "API): the reverse projection cannot give it a legacy row") for sid in stream_ids]
        with self.store.engine.begin() as es:
            if not findings_table_exists(es):
                return 0
            record_findings(es, found)
        return len(stream_ids)


_NO_ROW = _Target(None, None, None, started=False)


def _added(a: ReverseResult, b: ReverseResult) -> ReverseResult:
    return ReverseResult(a.table, a.events + b.events, a.inserted + b.inserted, a.updated + b.updated,
                         a.deleted + b.deleted, b.waiting, a.unplaceable + b.unplaceable, max(a.position, b.position))


@contextmanager
def _marked(conn: Connection, capture: bool) -> Iterator[Connection]:
    """Marks the block's legacy writes with the reverse origin where capture is installed."""
    if not capture:
        yield conn
        return
    with migrator_writes(conn, REVERSE_ORIGIN):
        yield conn


def _same(mapping: CompiledMapping, row: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    try:
        return mapping.state_from_row(row) == state
    except (ValueError, TypeError, ArithmeticError):
        return False


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        t = value
    else:
        try:
            t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _target(mapping: CompiledMapping, events: Sequence[RecordedEvent]) -> _Target:
    """Returns the row a stream asks for: its replayed state, created at its import's (or registration's) time
    and updated at its last event's (an import's own `updated_at`)."""
    created = updated = None
    started = False
    for e in events:
        occurred = _time(e.metadata.get("occurred_at")) or _time(e.recorded_at)
        if e.type in (mapping.import_event_type, mapping.register_event_type):
            started = True
        if e.type == mapping.import_event_type:
            created = _time(e.data.get("created_at")) or occurred
            updated = _time(e.data.get("updated_at")) or occurred
        elif e.type == mapping.register_event_type:
            created = updated = occurred
        else:
            updated = occurred
    return _Target(mapping.replay(events), created, updated, started)


def projections_for(mappings: Sequence[CompiledMapping], legacy: Engine, store: EventStore) -> list[ReverseProjection]:
    """Returns one reverse projection per mapping (bound to the legacy database)."""
    return [ReverseProjection(m, legacy, store) for m in mappings]


def background_catch_up(projections: Sequence[ReverseProjection], migration: str = DEFAULT_NAME) -> list[ReverseResult]:
    """Returns what the catch-ups did: up to the store's head while the migration's writes are switched; after a
    rollback only for the keys that still wait; nothing when writes are the legacy app's and no key waits."""
    if not projections:
        return []
    first = projections[0]
    switched = load(first.store, migration).writes == "new"
    if not switched:
        with first.legacy.connect() as conn:
            if not waiting_count(conn):
                return []
    return [p.catch_up(only_waiting=not switched) for p in projections]


def drain(projections: Sequence[ReverseProjection], *, rounds: int = 20) -> list[ReverseResult]:
    """Returns the last round's results once the legacy tables hold every event of the store: relays the
    changelogs and catches up to the head, again while keys wait for the relay (at most `rounds` times).
    The rollback from `writes_switched` runs it before legacy writes go on alone."""
    results: list[ReverseResult] = []
    for _ in range(max(rounds, 1)):
        for p in projections:
            with p.legacy.connect() as conn:
                captured = changelog_exists(conn)
            if captured:
                Relay(p.mapping, p.legacy, p.store).drain()
        results = [p.catch_up() for p in projections]
        if not any(r.waiting for r in results):
            break
    return results
