"""Helpers of the backfill tests: a second mapped table, legacy writes, and the comparison of legacy rows
with the replay of their streams (`migrator.verify.compare`)."""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, select, text

from es_app.store import EventStore
from es_app.store.schema import events
from migrator.backfill.run import Backfill, BackfillOptions
from migrator.mapping import USERS, ColumnMap, CompiledMapping, TableMapping
from migrator.verify import compare

T0 = datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)

ACCOUNTS = TableMapping(
    table="accounts",
    key="code",
    stream_prefix="account",
    columns=(
        ColumnMap("owner", "owner", ("trim",), event="AccountOwnerChanged"),
        ColumnMap("balance_cents", "balance", event="AccountBalanceChanged"),
        ColumnMap("closed", "closed", ("bool",), true_event="AccountClosedFlagSet", false_event="AccountReopened"),
    ),
    import_event_type="AccountImported",
    delete_event_type="AccountDeleted",
    column_event_type="AccountColumnChanged",
    updated_at="changed_at",
)


def create_accounts(engine: Engine) -> None:
    stamp = {"sqlite": "DATETIME", "mysql": "DATETIME(6)"}.get(engine.dialect.name, "TIMESTAMP WITH TIME ZONE")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE accounts (code VARCHAR(40) PRIMARY KEY, owner VARCHAR(100) NOT NULL, "
                          "balance_cents INTEGER NOT NULL, closed BOOLEAN NOT NULL, note TEXT NULL, "
                          f"changed_at {stamp} NOT NULL)"))


def insert_accounts(engine: Engine, codes: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts (code, owner, balance_cents, closed, note, changed_at) "
                          "VALUES (:code, :owner, :bal, :closed, :note, :t)"),
                     [{"code": c, "owner": f" Owner {c} ", "bal": i * 100, "closed": i % 3 == 0,
                       "note": None if i % 2 else f"note {i}", "t": T0 + timedelta(days=i)}
                      for i, c in enumerate(codes)])


def insert_users(engine: Engine, ids: list[int], *, tag: str = "") -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                          "VALUES (:id, :email, :name, :active, :phone, :c, :u)"),
                     [{"id": i, "email": f"User{i}{tag}@Example.org", "name": f" User {i} ", "active": i % 4 != 0,
                       "phone": None if i % 5 == 0 else f"+1 555 {i:04d}", "c": T0 + timedelta(hours=i),
                       "u": T0 + timedelta(days=1, seconds=i, microseconds=i)} for i in ids])


@dataclasses.dataclass(frozen=True)
class Ev:
    stream_id: str
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]


def streams_of(store: EventStore, mapping: CompiledMapping) -> dict[str, list[Ev]]:
    """Returns {stream id: [events in version order]} of the mapping's category (one query, raw rows)."""
    e = events
    q = (select(e.c.stream_id, e.c.version, e.c.event_type, e.c.data, e.c.meta)
         .where(e.c.category == mapping.category).order_by(e.c.stream_id, e.c.version))
    found: dict[str, list[Ev]] = defaultdict(list)
    with store.engine.connect() as conn:
        for r in conn.execute(q):
            found[r.stream_id].append(Ev(r.stream_id, r.version, r.event_type, r.data, r.meta))
    return dict(found)


def differences(engine: Engine, store: EventStore, mapping: CompiledMapping,
                deleted_keys: set[Any] = frozenset()) -> list[str]:
    """Returns every difference between legacy rows and the replay of their streams (empty = none).

    A stream with no legacy row must replay to None (deleted); keys in `deleted_keys` must have
    a stream (a deleted one).
    """
    out = compare(engine, store, mapping).lines()
    missing = [k for k in deleted_keys if not store.read_stream(mapping.stream_id(k))]
    return out + [f"{mapping.stream_id(k)}: deleted legacy row has no stream" for k in missing]


def import_counts(store: EventStore, mapping: CompiledMapping) -> dict[str, int]:
    """Returns {stream id: number of import events}."""
    return {sid: sum(1 for e in evs if e.type == mapping.import_event_type)
            for sid, evs in streams_of(store, mapping).items()}


def duplicated_changes(store: EventStore, mapping: CompiledMapping) -> list[str]:
    """Returns problems with change events: a changelog id applied twice, or out of order in a stream,
    or at or below the stream's import watermark."""
    out = []
    for sid, evs in streams_of(store, mapping).items():
        mark, last, seen = None, 0, set()
        for e in evs:
            if e.type == mapping.import_event_type:
                mark = int(e.metadata["changelog_watermark"])
                continue
            cid = e.metadata.get("changelog_id")
            if cid is None:
                continue
            if (cid, e.type, str(e.data)) in seen:
                out.append(f"{sid}: change {cid} {e.type} twice")
            seen.add((cid, e.type, str(e.data)))
            if cid < last:
                out.append(f"{sid}: change {cid} after {last}")
            if mark is not None and cid <= mark:
                out.append(f"{sid}: change {cid} applied although the import watermark is {mark}")
            last = cid
    return out


class FakeClock:
    """A clock that only moves when slept on; `sleeps` records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.hooks: list[Any] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        for hook in list(self.hooks):
            hook()


def keys(n: int, start: int = 1) -> list[int]:
    return list(itertools.islice(itertools.count(start), n))


def make_backfill(engine, mapping=USERS, *, es=None, **options) -> Backfill:
    """Returns a backfill of `mapping` from the legacy `engine` into the event store of `es` (default: `engine`)."""
    clock = options.pop("clock", None)
    gate = options.pop("gate", None)
    extra = {"clock": clock, "sleep": clock.sleep} if clock else {}
    return Backfill(mapping.bind(engine), engine, EventStore(es or engine), options=BackfillOptions(**options),
                    gate=gate, **extra)
