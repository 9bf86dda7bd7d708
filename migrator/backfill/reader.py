"""Reading a mapped legacy table in keyset chunks, each with its changelog watermark, and building their import
events."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, column, func, select, table

from es_app.dialect import dialect_for
from es_app.store import (
    Claim,
    EncodedEvent,
    ExpectedVersion,
    InvalidEvent,
    NewEvent,
    check_events,
    encode_events,
)

from ..capture.changelog import latest_change_id
from ..claims.unique import claims_by_stream
from ..mapping import ORIGINALS, CompiledMapping, backfill_import_id, import_metadata
from ..parking.entries import MAPPING_ERRORS, ToPark, key_text, reason_of


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Returns one chunk as read from the legacy table: its rows, last key and watermark.

    `size` is how many rows were read; a chunk from the reader process leaves its `rows`
    out (its import items carry what the writer needs). `parked` are the rows whose import
    cannot be built or stored (see migrator.parking.entries), once `ChunkReader.read_and_build` made them."""

    rows: tuple[dict[str, Any], ...]
    last_key: Any
    watermark: int
    size: int = -1
    claims: tuple[tuple[str, tuple[Claim, ...]], ...] = ()  # (stream id, unique claims) per row, in key order
    parked: tuple[ToPark, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.rows))


Item = tuple[str, list[NewEvent] | list[EncodedEvent], ExpectedVersion]


def _fetch_dicts(conn: Connection, query: Any) -> tuple[dict[str, Any], ...]:
    """Returns the rows of a Core query as dicts, fetched on the DB-API cursor (no result objects per row)."""
    compiled = query.compile(dialect=conn.dialect)
    params: Any = compiled.params
    if compiled.positiontup is not None:
        params = [params[name] for name in compiled.positiontup]
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # a live connection holds its own
    try:
        cur.execute(str(compiled), params)
        names = [d[0] for d in cur.description]
        return tuple(dict(zip(names, r, strict=True)) for r in cur.fetchall())
    finally:
        cur.close()


def _first_events(items: list[Item]) -> list[NewEvent]:
    """Returns each item's (only) event, as `ChunkReader.plan` built it: a NewEvent, not yet encoded."""
    return [events[0] for _, events, _ in items]  # type: ignore[misc]


class ChunkReader:
    """Reads chunks of a bound mapping's table with their watermarks and builds their import events."""

    def __init__(self, mapping: CompiledMapping, legacy_engine: Engine):
        self.mapping, self.legacy = mapping, legacy_engine
        self._table = table(mapping.table, *(column(c) for c in mapping.table_columns))
        self._key = self._table.c[mapping.key]

    def read_after(self, after: Any, limit: int) -> Chunk:
        """Returns up to `limit` rows with keys above `after` and their watermark (see `Backfill.read_chunk`)."""
        q = select(self._table).order_by(self._key).limit(limit)
        if after is not None:
            q = q.where(self._key > after)
        with self._snapshot() as conn:
            watermark = latest_change_id(conn)  # first: see `_snapshot`
            rows = _fetch_dicts(conn, q)
        last_key = rows[-1][self.mapping.key] if rows else after
        return Chunk(rows, last_key, watermark, claims=claims_by_stream(self.mapping, rows))

    def read_and_build(self, after: Any, limit: int, parsed: bool = False) -> tuple[Chunk, list[Item]]:
        """Returns the chunk and its import items with the events encoded for the append (and, if
        `parsed`, read back for the projections: see `es_app.store.encode_events`). Rows whose
        import cannot be built or stored are left out and come as the chunk's `parked`."""
        chunk = self.read_after(after, limit)
        items, parked = self.plan(chunk)
        try:
            encoded = encode_events(_first_events(items), parsed=parsed)
        except InvalidEvent:  # rare: find the rows the store cannot hold, one by one
            items = self._storable(items, parked)
            encoded = encode_events(_first_events(items), parsed=parsed)
        chunk = dataclasses.replace(chunk, parked=tuple(parked)) if parked else chunk
        return chunk, [(stream_id, [e], expected) for (stream_id, _, expected), e in zip(items, encoded, strict=True)]

    def read_key(self, key: Any) -> tuple[dict[str, Any] | None, int]:
        """Returns the row of one key (None when there is none) and its watermark, read in one snapshot."""
        with self._snapshot() as conn:
            watermark = latest_change_id(conn)
            rows = _fetch_dicts(conn, select(self._table).where(self._key == key))
        return (rows[0] if rows else None), watermark

    def read_keys(self, keys: Sequence[Any]) -> tuple[tuple[dict[str, Any], ...], int]:
        """Returns the rows of these keys (those that exist, in key order) and their watermark, read in one snapshot."""
        with self._snapshot() as conn:
            watermark = latest_change_id(conn)
            q = select(self._table).where(self._key.in_(list(keys))).order_by(self._key)  # an expanding IN
            rows = tuple(dict(r) for r in conn.execute(q).mappings())  # untyped columns: the driver's values
        return rows, watermark

    def count_after(self, after: Any) -> int:
        """Returns how many rows have keys above `after` (all of them for None)."""
        q = select(func.count()).select_from(self._table)
        if after is not None:
            q = q.where(self._key > after)
        with self.legacy.connect() as conn:
            return conn.execute(q).scalar() or 0

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        with self.legacy.connect() as conn:
            options = dialect_for(conn).snapshot_read_options()
            if options:
                conn = conn.execution_options(**options)
            with conn.begin():
                yield conn

    def import_items(self, chunk: Chunk) -> list[Item]:
        """Returns the chunk's appends: (stream id, [import event], NO_STREAM) per row (see `plan`)."""
        return self.plan(chunk)[0]

    def plan(self, chunk: Chunk) -> tuple[list[Item], list[ToPark]]:
        """Returns the chunk's appends, (stream id, [import event], NO_STREAM) per row, and the rows
        whose import the mapping cannot build (parked with the reason)."""
        m, watermark, no_stream = self.mapping, chunk.watermark, ExpectedVersion.NO_STREAM
        items: list[Item] = []
        parked: list[ToPark] = []
        for row in chunk.rows:
            try:
                data, originals = m.import_payload(row)
                key = data["legacy_key"]
                # occurred_at = the row's updated_at, as the event carries it
                meta = import_metadata("backfill", watermark, data["updated_at"])
                if originals is not None:
                    meta[ORIGINALS] = originals
                event = NewEvent(m.import_event_type, data, meta, backfill_import_id(m.table, key))
                items.append((m.stream_id(key), [event], no_stream))
            except MAPPING_ERRORS as exc:
                parked.append(self._unmappable(row, exc))
        return items, parked

    def checked_items(self, chunk: Chunk) -> tuple[list[Item], list[ToPark]]:
        """Returns `plan(chunk)` with the items the event store cannot hold moved to the parked rows."""
        items, parked = self.plan(chunk)
        return self._storable(items, parked), parked

    def _storable(self, items: list[Item], parked: list[ToPark]) -> list[Item]:
        """Returns the items the event store can hold; adds the others to `parked`."""
        kept = []
        for item in items:
            try:
                check_events(item[0], item[1])
                kept.append(item)
            except InvalidEvent as exc:
                parked.append(self._unstorable(item, exc))
        return kept

    def _unmappable(self, row: dict[str, Any], exc: Exception) -> ToPark:
        m = self.mapping
        try:
            key, data = m.key_of(row), m.json_row(row)
        except MAPPING_ERRORS:
            key, data = row.get(m.key), dict(row)
        return ToPark(key_text(key), reason_of(m.table, exc), data)

    @staticmethod
    def _unstorable(item: Item, exc: InvalidEvent) -> ToPark:
        data: dict[str, Any] = item[1][0].data  # type: ignore[assignment]  # a NewEvent: encoded ones are checked already
        return ToPark(key_text(data["legacy_key"]), str(exc), data["row"])
