"""The three-way comparison of a set of keys: legacy row, stream replay and read-model row, into a mismatch kind.

For each key: the legacy state (`mapping.state_from_row`), the state its stream replays to
(`mapping.replay`) and, with a read model, its read-model row. The kind, when they disagree:

- `missing_in_new`: a legacy row whose stream is not live (never imported, or deleted);
- `missing_in_legacy`: a live stream without a legacy row;
- `field_differs`: the stream replays to other values than the legacy row holds;
- `replay_differs`: the stream agrees with the legacy row (or both are absent) but the read model does not
  agree with the stream: a projection bug, which a rebuild of the key's read-model rows repairs.

A key that differs while it is in flight is marked `pending` (to be compared again), never taken for a
mismatch: it has a legacy change the relay had not passed (above the relay's offset read before
anything else), or an event the projection had not applied (above its checkpoint, read first too). Reads
go legacy rows, then streams, then read-model rows, so that a key written while it is compared shows
either as a changelog row above the changelog head read before the legacy rows, or as a read-model row
ahead of the events read: pending as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, bindparam, inspect, text

from es_app.store import EventStore, RecordedEvent

from ..capture.changelog import CHANGELOG, changelog_exists, latest_change_id, number_committed
from ..capture.offsets import get_offset, offset_name, offsets
from ..mapping import CompiledMapping
from .compare import differing_fields, legacy_rows
from .readmodel import ReadModelTable
from .report import FIELD_DIFFERS, MISSING_IN_LEGACY, MISSING_IN_NEW, REPLAY_DIFFERS, FieldValues

CHUNK = 500  # keys compared per round trip


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One key whose views disagree: its kind, the fields with the three values, what explains it."""

    key: Any
    stream_id: str
    kind: str
    fields: Mapping[str, FieldValues]
    last_event: RecordedEvent | None
    read_model_position: int | None  # of the key's read-model row
    # in flight when compared: {"changelog_id": its last change not yet relayed (or written while compared),
    # "read_model_position": the projection's checkpoint}; None when settled
    pending: Mapping[str, Any] | None


@dataclasses.dataclass
class Compared:
    """The result of comparing a chunk of keys: the outcomes that differ and what was seen."""

    outcomes: list[Outcome] = dataclasses.field(default_factory=list)
    seen: list[Any] = dataclasses.field(default_factory=list)  # the keys compared
    keys: int = 0
    legacy_rows: int = 0
    live_streams: int = 0


@dataclasses.dataclass(frozen=True)
class Views:
    """What the comparison reads a table through."""

    legacy: Engine
    es: Engine
    store: EventStore
    mapping: CompiledMapping
    read_model: ReadModelTable | None
    has_changelog: bool
    has_offsets: bool

    @classmethod
    def of(cls, legacy: Engine, es: Engine, store: EventStore, mapping: CompiledMapping,
           read_model: ReadModelTable | None) -> Views:
        with legacy.connect() as conn:
            has_changelog = changelog_exists(conn)
        with es.connect() as conn:
            has_offsets = inspect(conn).has_table(offsets.name)
        return cls(legacy, es, store, mapping, read_model, has_changelog, has_offsets)

    def frontier(self) -> tuple[int, int]:
        """Returns (the relay's changelog offset of the table, the read model's checkpoint position)."""
        with self.es.connect() as conn:
            offset = get_offset(conn, offset_name(self.mapping.table)) if self.has_offsets else 0
            checkpoint = self.read_model.checkpoint(conn) if self.read_model is not None else 0
        return offset, checkpoint

    def changelog_head(self) -> int:
        if not self.has_changelog:
            return 0
        with self.legacy.begin() as conn:  # committed: MySQL's numbering in it stands
            return latest_change_id(conn, self.mapping.table)

    def last_changes(self, keys: Sequence[Any], *, after: int = 0,
                     legacy_only: bool = False) -> dict[str, tuple[int, str, Any, str]]:
        """Returns {key text: (id, op, tx_time, origin)} of each key's last changelog row above `after`."""
        if not self.has_changelog or not keys:
            return {}
        origin = " AND origin = 'legacy'" if legacy_only else ""
        q = text(f"SELECT c.pk, c.id, c.op, c.tx_time, c.origin FROM {CHANGELOG} c JOIN "
                 f"(SELECT pk, max(id) AS last FROM {CHANGELOG} WHERE table_name = :t AND id > :after{origin} "
                 f"AND pk IN :pks GROUP BY pk) x ON c.pk = x.pk AND c.id = x.last "
                 f"WHERE c.table_name = :t").bindparams(bindparam("pks", expanding=True))
        out: dict[str, tuple[int, str, Any, str]] = {}
        texts = list(dict.fromkeys(str(k) for k in keys))
        with self.legacy.connect() as conn:
            # every committed change has its id (MySQL): numbered on this connection, in a transaction of its own
            # that waits for a pass in progress, so a change the legacy rows just read hold is never a NULL the
            # query skips (with an engine, a pass already running would be left to finish on its own)
            number_committed(conn)
            for i in range(0, len(texts), CHUNK):
                for r in conn.execute(q, {"t": self.mapping.table, "after": after, "pks": texts[i:i + CHUNK]}):
                    out[r[0]] = (int(r[1]), r[2], r[3], r[4])
        return out


def compare_keys(views: Views, keys: Sequence[Any]) -> Compared:
    """Returns the keys (legacy keys, as `mapping.key_of` gives them) whose views disagree, in chunks of CHUNK."""
    out = Compared()
    for i in range(0, len(keys), CHUNK):
        _compare_chunk(views, out, _rows_of(views, list(dict.fromkeys(keys[i:i + CHUNK]))))
    return out


def _rows_of(views: Views, keys: list[Any]) -> Loader:
    """Returns the loader of the legacy rows of `keys`."""
    def load() -> tuple[list[Any], Mapping[Any, Mapping[str, Any]]]:
        m = views.mapping
        return keys, legacy_rows(views.legacy, m, [k for k in keys if storable_key(m, k)])
    return load


def compare_page(views: Views, after: Any, limit: int) -> tuple[Compared, Any]:
    """Returns the comparison of the first `limit` legacy rows whose key is above `after` (None: from the first),
    in key order, and the raw value of the last key read (None when no row is left)."""
    out = Compared()
    last: list[Any] = [None]

    def load() -> tuple[list[Any], Mapping[Any, Mapping[str, Any]]]:
        m = views.mapping
        q = views.legacy.dialect.identifier_preparer.quote
        cols = ", ".join(q(c) for c in m.table_columns) if m.table_columns else "*"
        where = "" if after is None else f"WHERE {q(m.key)} > :after"
        with views.legacy.connect() as conn:
            sql = f"SELECT {cols} FROM {q(m.table)} {where} ORDER BY {q(m.key)} LIMIT {int(limit)}"
            raw = list(conn.execute(text(sql), {"after": after}).mappings())
        if raw:
            last[0] = raw[-1][m.key]
        rows = {m.key_of(row): row for row in map(dict, raw)}
        return list(rows), rows

    _compare_chunk(views, out, load)
    return out, last[0]


Loader = Callable[[], tuple[list[Any], Mapping[Any, Mapping[str, Any]]]]


def _compare_chunk(views: Views, out: Compared, load: Loader) -> None:
    """Compares the keys `load` returns with their legacy rows (it reads them after the frontier and the head)."""
    m, rm = views.mapping, views.read_model
    offset, checkpoint = views.frontier()  # read first: what is in flight is measured against them
    head = views.changelog_head()
    keys, rows = load()
    sids = [m.stream_id(k) for k in keys]
    with views.es.connect() as conn:
        streams = views.store.read_streams(conn, sids)
        seen = rm.rows(conn, sids) if rm is not None else {}
    out.keys += len(keys)
    out.seen += keys
    out.legacy_rows += len(rows)
    found: list[tuple[Any, str, str, dict[str, FieldValues], RecordedEvent | None, int | None, bool]] = []
    for key, sid in zip(keys, sids, strict=True):
        events = streams.get(sid, [])
        row = rows.get(key)
        legacy = _state(m, row) if row is not None else None
        replayed = m.replay(events)
        if replayed is not None:
            out.live_streams += 1
        view, position = seen.get(sid, (None, None))
        last = events[-1] if events else None
        kind, fields = classify(legacy, replayed, view, rm)
        if kind is None:
            continue
        unprojected = rm is not None and last is not None and (
            last.position > checkpoint or (position is not None and position > last.position))  # read model ahead
        found.append((key, sid, kind, fields, last, position, unprojected))
    if not found:
        return
    differing = [f[0] for f in found]
    raced = views.last_changes(differing, after=head)  # written while compared
    unrelayed = views.last_changes(differing, after=offset, legacy_only=True)
    for key, sid, kind, fields, last, position, unprojected in found:
        change = unrelayed.get(str(key)) or raced.get(str(key))
        pending = None
        if change is not None or unprojected:
            pending = {"changelog_id": None if change is None else change[0],
                       "read_model_position": checkpoint if rm is not None else None}
        out.outcomes.append(Outcome(key, sid, kind, fields, last, position, pending))


def storable_key(mapping: CompiledMapping, key: Any) -> bool:
    """Returns False for a key the legacy key column cannot hold (a read-model key that is not an integer)."""
    kind = mapping.coerce.get(mapping.key)
    return kind != "int" or (isinstance(key, int) and not isinstance(key, bool))


def _state(mapping: CompiledMapping, row: Mapping[str, Any]) -> dict[str, Any]:
    """Returns the legacy row's state; a value the mapping cannot read is kept as it is (it differs)."""
    try:
        return mapping.state_from_row(row)
    except (ValueError, TypeError, ArithmeticError):
        return {**{c.field: row.get(c.column) for c in mapping.columns}, "extra": {}}


def classify(legacy: dict[str, Any] | None, replayed: dict[str, Any] | None, view: dict[str, Any] | None,
             read_model: ReadModelTable | None) -> tuple[str | None, dict[str, FieldValues]]:
    """Returns (kind or None when the views agree, {field: values}) of one key (see the module's docstring)."""
    def new_of(field: str) -> Any:
        if read_model is not None and field in read_model.fields:
            return None if view is None else view.get(field)
        return _get(replayed, field)

    def values(names: Sequence[str]) -> dict[str, FieldValues]:
        return {f: FieldValues(_get(legacy, f), new_of(f), _get(replayed, f)) for f in names}

    if legacy is not None and replayed is None:
        return MISSING_IN_NEW, values(_names(legacy))
    if legacy is None and replayed is not None:
        return MISSING_IN_LEGACY, values(_names(replayed))
    if legacy is not None and replayed is not None and legacy != replayed:
        return FIELD_DIFFERS, values(_differing(legacy, replayed))
    if read_model is None:
        return None, {}
    expected = None if replayed is None else {f: replayed.get(f) for f in read_model.fields}
    if view != expected:
        return REPLAY_DIFFERS, values(_differing(expected, view) if expected and view else read_model.fields)
    return None, {}


def _get(state: Mapping[str, Any] | None, field: str) -> Any:
    if state is None:
        return None
    if field.startswith("extra."):
        return (state.get("extra") or {}).get(field[6:])
    return state.get(field)


def _names(state: Mapping[str, Any]) -> list[str]:
    """Returns every field of a state, `extra.<column>` for its unmapped columns."""
    return [n for n in state if n != "extra"] + [f"extra.{c}" for c in state.get("extra") or {}]


def _differing(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> list[str]:
    """Returns the fields whose values differ (`extra.<column>` inside `extra`); a missing state has no values."""
    return differing_fields(a or {}, b or {})
