"""The three-way comparison of legacy rows with the event store, through a mapping.

For each key: the state of its legacy row (`mapping.state_from_row`, None when there is no row), the
state its stream replays to (`mapping.replay`, None when deleted or never imported) and, when a
`ReadModel` is given, what the read model holds for it (None when absent or deleted). The result
says, per key that differs, which views differ from the legacy row and in which fields. Nothing here
is specific to users: any compiled mapping works (integer or text keys); the read model is the
only table-specific part, and `users_read_model` is the one es_app has.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Engine, column, literal_column, select, table

from es_app.store import EventStore

from ..mapping import CompiledMapping

STREAM = "stream"
READ_MODEL = "read_model"
_CHUNK = 500  # keys per `IN` list


class ReadModel(Protocol):
    """What a read model holds for a mapping's streams: some of the mapped fields."""

    @property
    def fields(self) -> tuple[str, ...]:
        """Returns the mapped fields the read model holds."""
        ...

    def states(self, stream_ids: Sequence[str] | None) -> dict[str, dict[str, Any] | None]:
        """Returns {stream id: {field: value}, or None when deleted} of the given streams (all with None)."""
        ...


@dataclasses.dataclass(frozen=True)
class KeyDifference:
    """One key whose views disagree: `views` differ from the legacy row (`stream`, `read_model`), in `fields`.

    `legacy`, `stream` and `read_model` are the three states (None: no row / deleted / absent); `fields`
    are the state's fields that differ (`extra.<column>` for unmapped columns), all of them when one side is None.
    """

    key: Any
    stream_id: str
    views: tuple[str, ...]
    fields: tuple[str, ...]
    legacy: dict[str, Any] | None
    stream: dict[str, Any] | None
    read_model: dict[str, Any] | None = None

    def lines(self) -> list[str]:
        """Returns one line per differing view: `<stream id>: legacy <state> != <view> <state>`."""
        out = []
        if STREAM in self.views:
            if self.legacy is None:
                out.append(f"{self.stream_id}: no legacy row, but the stream is not deleted")
            else:
                out.append(f"{self.stream_id}: legacy {self.legacy} != replay {self.stream}")
        if READ_MODEL in self.views:
            out.append(f"{self.stream_id}: legacy {self.legacy} != read model {self.read_model}")
        return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Returns what one comparison saw: legacy rows and streams compared, and the keys that differ."""

    table: str
    rows: int
    streams: int
    differences: tuple[KeyDifference, ...]

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def keys(self) -> list[Any]:
        """Returns the keys that differ, in the order compared."""
        return [d.key for d in self.differences]

    def lines(self) -> list[str]:
        """Returns every difference as one line (empty = none)."""
        return [line for d in self.differences for line in d.lines()]


def compare(legacy: Engine, store: EventStore, mapping: CompiledMapping, keys: Iterable[Any] | None = None, *,
            read_model: ReadModel | None = None) -> Comparison:
    """Returns the three-way comparison of `keys` (None: every legacy row and every stream of the mapping's
    category) between the legacy table, the replay of their streams and, if given, `read_model`.

    `mapping` is best bound (`TableMapping.bind(legacy)`): its coercers make both backends' values alike."""
    if keys is None:
        rows = legacy_rows(legacy, mapping)
        streams = streams_of(store, mapping)
        wanted = list(rows)
        live = {mapping.stream_id(k) for k in rows}
        wanted += [mapping.key_of({mapping.key: sid[len(mapping.stream_prefix) + 1:]})
                   for sid in streams if sid not in live]
    else:
        wanted = list(dict.fromkeys(keys))
        rows = legacy_rows(legacy, mapping, wanted)
        streams = {sid: evs for k in wanted if (evs := store.read_stream(sid := mapping.stream_id(k)))}
    views = read_model.states(None if keys is None else [mapping.stream_id(k) for k in wanted]) if read_model else {}
    found = []
    for key in wanted:
        sid = mapping.stream_id(key)
        row = rows.get(key)
        expected = mapping.state_from_row(row) if row is not None else None
        replayed = mapping.replay(streams.get(sid, []))
        differ, fields = [], []
        if replayed != expected:
            differ.append(STREAM)
            fields += differing_fields(expected, replayed)
        seen = None
        if read_model is not None:
            seen = views.get(sid)
            wanted_view = {f: expected[f] for f in read_model.fields} if expected is not None else None
            if seen != wanted_view:
                differ.append(READ_MODEL)
                fields += [f for f in differing_fields(wanted_view, seen) if f not in fields]
        if differ:
            found.append(KeyDifference(key, sid, tuple(differ), tuple(fields), expected, replayed, seen))
    if keys is None and read_model is not None:  # live in the read model, with neither a legacy row nor a stream
        compared = {mapping.stream_id(k) for k in wanted}
        found += [KeyDifference(sid[len(mapping.stream_prefix) + 1:], sid, (READ_MODEL,), tuple(state), None, None,
                                state) for sid, state in views.items() if sid not in compared and state is not None]
    return Comparison(mapping.table, len(rows), len(streams), tuple(found))


def differing_fields(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> list[str]:
    """Returns the fields whose values differ (`extra.<column>` inside `extra`); all of them when one is None."""
    if a is None or b is None:
        return list((a or b or {}).keys())
    out = []
    for name in dict.fromkeys([*a, *b]):
        x, y = a.get(name), b.get(name)
        if name == "extra" and isinstance(x, dict) and isinstance(y, dict):
            out += [f"extra.{c}" for c in dict.fromkeys([*x, *y]) if x.get(c) != y.get(c)]
        elif x != y:
            out.append(name)
    return out


def legacy_rows(engine: Engine, mapping: CompiledMapping,
                keys: Sequence[Any] | None = None) -> dict[Any, dict[str, Any]]:
    """Returns {key (as `mapping.key_of` gives it): row} of the legacy table, or of `keys` only."""
    t = table(mapping.table, *(column(c) for c in mapping.table_columns or (mapping.key,)))
    everything = select(t) if mapping.table_columns else select(literal_column("*")).select_from(t)  # not bound
    everything = everything.order_by(t.c[mapping.key])
    out: dict[Any, dict[str, Any]] = {}
    with engine.connect() as conn:
        if keys is None:
            chunks: list[Any] = [everything]
        else:
            chunks = [everything.where(t.c[mapping.key].in_(keys[i:i + _CHUNK])) for i in range(0, len(keys), _CHUNK)]
        for q in chunks:
            for r in conn.execute(q).mappings():
                row = dict(r)
                out[mapping.key_of(row)] = row
    return out


def streams_of(store: EventStore, mapping: CompiledMapping) -> dict[str, list[Any]]:
    """Returns {stream id: [recorded events in version order]} of the mapping's category."""
    streams: dict[str, list[Any]] = {}
    after = 0
    while batch := store.read_all(after=after, limit=5000, category=mapping.category):
        for e in batch:
            streams.setdefault(e.stream_id, []).append(e)
        after = batch[-1].position
    return streams


@dataclasses.dataclass(frozen=True)
class _UsersReadModel:
    engine: Engine
    fields: tuple[str, ...] = ("name", "email", "active", "phone")

    def states(self, stream_ids: Sequence[str] | None) -> dict[str, dict[str, Any] | None]:
        from es_app.projections.tables import users_view as v

        cols = [v.c.id, v.c.deleted, *(v.c[f] for f in self.fields)]
        out: dict[str, dict[str, Any] | None] = {}
        with self.engine.connect() as conn:
            if stream_ids is None:
                queries: list[Any] = [select(*cols)]
            else:
                ids = list(stream_ids)
                queries = [select(*cols).where(v.c.id.in_(ids[i:i + _CHUNK])) for i in range(0, len(ids), _CHUNK)]
            for q in queries:
                for r in conn.execute(q).mappings():
                    out[r["id"]] = None if r["deleted"] else {f: r[f] for f in self.fields}
        return out


def users_read_model(es_engine: Engine) -> ReadModel:
    """Returns es_app's users read model (`users_view`: name, email, active, phone) as a `ReadModel`."""
    return _UsersReadModel(es_engine)
