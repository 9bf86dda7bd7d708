"""A mapping compiled for use: what `TableMapping.bind(engine)` (or `.compile()`) returns, with the behaviour.

The declaration (`migrator.mapping.table`) says what the user wrote; a `CompiledMapping` holds
it with its binding to the real table and everything worked out from both once: a normalizer per
field, a coercer per column, the meaning of each event type and the import's plan. Capture,
relay, backfill and verify use nothing but this object.

Values go through two steps: the column's *coercer* (from its reflected SQL type, see
`migrator.mapping.binding`) makes SQLite and PostgreSQL values alike, then the field's
normalizers apply.

The comparable *state* of a row is `{field: value, ..., "extra": {column: value}}`: the
mapped fields plus every column that is neither the key, a mapped column, a timestamp
column nor excluded. `state_from_row(row)` and `replay(events)` both return it, so a
legacy row and the replay of its stream can be compared with `==`.

A compiled mapping is not sent to other processes as it is (its functions are made here):
send its `declaration` and `binding`, which pickle, and compile them again there with
`CompiledMapping(declaration, binding)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from es_app.store import Claim, NewEvent

from .binding import Binding
from .errors import MappingError
from .normalizers import Normalizer, compose, escaped, jsonable, strip_control, timestamp

if TYPE_CHECKING:
    from .table import ColumnMap, EventKinds, TableMapping

Converter = Callable[[Any], Any]
ImportPlan = tuple[tuple[tuple[str, Converter], ...], tuple[tuple[str, str, Normalizer], ...]]
MAX_CLAIM_VALUE = 320  # the length of unique_claims.value
ORIGINALS = "legacy_originals"  # event metadata: {column: escaped exact legacy value} of values strip_control changed


class CompiledMapping:
    """A `TableMapping` with its `Binding` (empty: not bound to a database), ready to turn rows into events
    and events back into state. Raises MappingError for a binding whose coercer names are unknown."""

    def __init__(self, declaration: TableMapping, binding: Binding | None = None) -> None:
        d, b = declaration, binding or Binding()
        self.declaration: Final = d
        self.binding: Final = b
        # the declaration's values, read as often as rows are mapped
        self.table: Final = d.table
        self.key: Final = d.key
        self.stream_prefix: Final = d.stream_prefix
        self.category: Final = d.category
        self.columns: Final = d.columns
        self.import_event_type: Final = d.import_event_type
        self.delete_event_type: Final = d.delete_event_type
        self.column_event_type: Final = d.column_event_type
        self.created_at: Final = d.created_at
        self.updated_at: Final = d.updated_at
        self.timestamp_columns: Final = d.timestamp_columns
        self.exclude: Final = d.exclude
        self.timestamp_precision: Final = d.timestamp_precision
        self.unique: Final = d.unique
        self.correction_event_type: Final = d.correction_event_type
        self.register_event_type: Final = d.register_event_type
        self.register_defaults: Final = d.register_defaults
        # the binding's: column -> coercer name, and the table's columns in order (empty: each row's own)
        self.coerce: Final = b.coerce
        self.table_columns: Final = b.table_columns
        try:
            normalizers = {c.column: compose(c.normalize) for c in d.columns}
            stamp = timestamp(d.timestamp_precision)
            coercers = {col: _lenient(stamp if name == "timestamp" else compose([name]))
                        for col, name in b.coerce.items()}
            coercers.update({col: stamp for col in d.timestamp_columns})
        except ValueError as exc:
            raise MappingError(f"mapping {d.table}: {exc}") from None
        self._normalizers: dict[str, Normalizer] = normalizers
        self._coercers: dict[str, Normalizer] = coercers
        self._stamp: Normalizer = stamp
        self._by_column: dict[str, ColumnMap] = {c.column: c for c in d.columns}
        self._by_field: dict[str, str] = {c.field: c.column for c in d.columns}
        self._cleaned: tuple[str, ...] = tuple(c.column for c in d.columns if "strip_control" in c.normalize
                                               or strip_control in c.normalize)
        self._by_event: EventKinds = d.event_kinds()
        self._import_plan: ImportPlan | None = self._plan_import(b.table_columns) if b.table_columns else None

    def __repr__(self) -> str:
        return f"CompiledMapping({self.declaration!r}, {self.binding!r})"

    # -- keys and streams --------------------------------------------------
    def stream_id(self, key: Any) -> str:
        """Returns the stream id of a legacy key: `<prefix>-<key>`."""
        return f"{self.stream_prefix}-{key}"

    def key_of(self, row: Mapping[str, Any]) -> Any:
        """Returns the row's legacy key, coerced (e.g. 42, or 'acc-1' for a text key)."""
        return self._value(self.key, row.get(self.key))

    def extra_columns(self, row: Mapping[str, Any]) -> list[str]:
        """Returns the row's unmapped columns (they change through the generic event), sorted."""
        skip = {self.key, *self._by_column, *self.timestamp_columns, *self.exclude}
        names = self.table_columns or tuple(row.keys())
        return sorted(c for c in names if c not in skip)

    def key_from_stream(self, stream_id: str) -> str:
        """Returns the legacy key (as text) of one of this mapping's streams, else the stream id itself."""
        prefix = f"{self.stream_prefix}-"
        return stream_id[len(prefix):] if stream_id.startswith(prefix) else stream_id

    def claims_of(self, row: Mapping[str, Any]) -> tuple[Claim, ...]:
        """Returns the row's unique claims: (scope, normalized value) per unique field with a value.

        The value is the field's normalized value as text; it must be what the event store's own
        commands claim (USERS: trimmed, lower-case email, as `es_app.domain.normalize_email`).
        Blank values and values a claim cannot hold (longer than 320 characters, NUL) claim nothing.
        """
        out = []
        for field, scope in self.unique.items():
            column = self._by_field[field]
            value = self.field_value(column, row.get(column))
            if value is None:
                continue
            text = value if isinstance(value, str) else str(value)
            if text and len(text) <= MAX_CLAIM_VALUE and "\x00" not in text:
                out.append(Claim(scope, text))
        return tuple(out)

    def field_of_scope(self, scope: str) -> str:
        """Returns the unique field claimed in `scope` (the scope itself when none is)."""
        return next((f for f, s in self.unique.items() if s == scope), scope)

    # -- values ------------------------------------------------------------
    def _value(self, column: str, value: Any) -> Any:
        coerce = self._coercers.get(column)
        return jsonable(coerce(value) if coerce else value, self.timestamp_precision)

    def _converter(self, column: str) -> Converter:
        """Returns `_value` for one column as a function, with a shortcut for values already canonical."""
        coerce, precision = self._coercers.get(column), self.timestamp_precision
        native = _NATIVE.get(self.coerce.get(column, ""))

        def convert(value: Any) -> Any:
            if value is None or type(value) is native:
                return value  # already what the coercer would return
            if coerce is not None:
                value = coerce(value)
            return value if type(value) in _JSON_TYPES else jsonable(value, precision)
        return convert

    def _plan_import(self, columns: Iterable[str]) -> ImportPlan:
        """The import event's work laid out once: (column, converter) of every column it reads, and
        (field, column, normalizer) of every mapped field."""
        names = dict.fromkeys((*columns, self.key, *self._by_column, *self.timestamp_columns))
        return (tuple((c, self._converter(c)) for c in names),
                tuple((c.field, c.column, self._normalizers[c.column]) for c in self.columns))

    def field_value(self, column: str, value: Any) -> Any:
        """Returns a mapped column's value as the field holds it (coerced, then normalized)."""
        return self._normalizers[column](self._value(column, value))

    def fields_of(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Returns {field: normalized value} of a row."""
        return {c.field: self.field_value(c.column, row.get(c.column)) for c in self.columns}

    def extras_of(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Returns {column: value} of the row's unmapped columns."""
        return {c: self._value(c, row.get(c)) for c in self.extra_columns(row)}

    def state_from_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Returns the row's comparable state: normalized fields plus `extra` (unmapped columns)."""
        return {**self.fields_of(row), "extra": self.extras_of(row)}

    def timestamp_of(self, row: Mapping[str, Any], column: str | None) -> str | None:
        """Returns the row's value of a timestamp column as a UTC ISO string (None for no column)."""
        return None if column is None else self._stamp(row.get(column))

    def json_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Returns the whole row as JSON data (coerced, not normalized; excluded columns left out)."""
        names = self.table_columns or tuple(row.keys())
        return {c: self._value(c, row.get(c)) for c in names if c not in self.exclude}

    # -- events ------------------------------------------------------------
    def import_event(self, row: Mapping[str, Any], *, event_id: str,
                     metadata: Mapping[str, Any]) -> NewEvent:
        """Returns the import event: the fields, `legacy_key`, `created_at`, `updated_at` and the whole `row`.

        The caller's metadata must carry `source` and `changelog_watermark` (see docs/architecture.md);
        values `strip_control` changed keep their exact legacy text in metadata `legacy_originals`.
        """
        data, originals = self.import_payload(row)
        meta = dict(metadata) if originals is None else {**metadata, ORIGINALS: originals}
        return NewEvent(self.import_event_type, data, meta, event_id=event_id)

    def import_data(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Returns the data of the row's import event (see `import_event`); each value is coerced once."""
        return self.import_payload(row)[0]

    def import_payload(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str] | None]:
        """Returns the import event's data and, when `strip_control` changed a value of a column that
        names it (in the fields and in `row` alike), {column: exact legacy value, `escaped`}; else None."""
        converters, fields = self._import_plan or self._plan_import(row.keys())  # not bound: the row's columns
        get = row.get
        coerced = {c: convert(get(c)) for c, convert in converters}
        originals = None
        for c in self._cleaned:
            value = coerced.get(c)
            if type(value) is str and not value.isprintable():
                clean = strip_control(value)
                if clean != value:
                    originals = originals or {}
                    originals[c], coerced[c] = escaped(value), clean
        data = {field: normalize(coerced[c]) for field, c, normalize in fields}
        data["legacy_key"] = coerced[self.key]
        data["created_at"] = coerced[self.created_at] if self.created_at else None
        data["updated_at"] = coerced[self.updated_at] if self.updated_at else None
        for c in self.exclude:
            coerced.pop(c, None)
        data["row"] = coerced
        return data, originals

    def change_events(self, old_row: Mapping[str, Any], new_row: Mapping[str, Any], *,
                      event_ids: Callable[[int], str], metadata: Mapping[str, Any]) -> list[NewEvent]:
        """Returns the events for an UPDATE from `old_row` to `new_row`, in a fixed order.

        Mapped fields come first (mapping order), then unmapped columns by name; `event_ids(i)`
        gives the id of the i-th event. Timestamp and excluded columns produce no events.
        """
        found: list[tuple[str, dict[str, Any], dict[str, str] | None]] = []
        for c in self.columns:
            before = self.field_value(c.column, old_row.get(c.column))
            after = self.field_value(c.column, new_row.get(c.column))
            if before == after:
                continue
            originals = self._originals(c.column, new_row.get(c.column))
            if c.event:
                found.append((c.event, {c.key_in_event: after}, originals))
            elif c.true_event and c.false_event is not None and isinstance(after, bool):
                found.append((c.true_event if after else c.false_event, {}, originals))
            else:
                found.append((self.column_event_type, {"column": c.column, "value": after}, originals))
        for col in self.extra_columns(new_row):
            after = self._value(col, new_row.get(col))
            if self._value(col, old_row.get(col)) != after:
                found.append((self.column_event_type, {"column": col, "value": after}, None))
        return [NewEvent(t, data, dict(metadata) if originals is None else {**metadata, ORIGINALS: originals},
                         event_id=event_ids(i)) for i, (t, data, originals) in enumerate(found)]

    def _originals(self, column: str, raw: Any) -> dict[str, str] | None:
        """Returns {column: escaped legacy value} when `strip_control` changes the column's value, else None."""
        if column not in self._cleaned:
            return None
        value = self._value(column, raw)
        return {column: escaped(value)} if strip_control(value) != value else None

    def delete_event(self, *, event_id: str, metadata: Mapping[str, Any]) -> NewEvent:
        """Returns the event recording that the row was deleted."""
        return NewEvent(self.delete_event_type, {}, dict(metadata), event_id=event_id)

    # -- folding streams back into state -----------------------------------
    def replay(self, events: Iterable[Any], *, strict: bool = False) -> dict[str, Any] | None:
        """Returns the state the events lead to (as `state_from_row`), None when deleted or never imported
        (or registered, with the mapping's `register_event_type`).

        `events` are RecordedEvent/NewEvent objects or (type, data) pairs. Types the mapping does
        not know are ignored, or raise ValueError with `strict`.
        """
        state: dict[str, Any] | None = None
        deleted = False
        col: Any  # the ColumnMap of a "set", "true" or "false" event
        for item in events:
            event_type, data = (item if isinstance(item, tuple) else (item.type, item.data))[:2]
            kind, col = self._by_event.get(event_type, (None, None))
            if kind == "import":
                row = data.get("row") or {}
                state = {**{c.field: data.get(c.field) for c in self.columns},
                         "extra": {c: row.get(c) for c in self.extra_columns(row)}}
                deleted = False
            elif kind == "register":
                defaults = self.register_defaults
                state = {**{c.field: data.get(c.key_in_event, defaults.get(c.field)) for c in self.columns},
                         "extra": {c: None for c in self.extra_columns({})}}
                deleted = False
            elif kind == "delete":
                deleted = True
            elif state is None:
                if kind is None and strict:
                    raise ValueError(f"mapping {self.table}: unknown event type {event_type!r}")
                continue
            elif kind == "set":
                state[col.field] = data.get(col.key_in_event)
            elif kind in ("true", "false"):
                state[col.field] = kind == "true"
            elif kind == "correct":
                if data.get("field") in self._by_field:
                    state[data["field"]] = data.get("value")
            elif kind == "column":
                target = self._by_column.get(data.get("column"))
                if target is not None:
                    state[target.field] = data.get("value")
                else:
                    state["extra"][data.get("column")] = data.get("value")
            elif strict:
                raise ValueError(f"mapping {self.table}: unknown event type {event_type!r}")
        return None if state is None or deleted else state

    def import_watermark(self, events: Iterable[Any]) -> int | None:
        """Returns the `changelog_watermark` of the last import event among `events`, None without one."""
        mark = None
        for e in events:
            if e.type == self.import_event_type:
                mark = int(e.metadata.get("changelog_watermark", 0))
        return mark


_NATIVE: dict[str, type] = {"text": str, "int": int, "bool": bool}  # coercers that keep values of this type
_JSON_TYPES = frozenset({str, int, float, bool, type(None)})  # what `jsonable` returns unchanged


def _lenient(coerce: Normalizer) -> Normalizer:
    """A coercer from a reflected type keeps values it cannot read (e.g. SQLite's loose typing)."""

    def lenient(value: Any) -> Any:
        try:
            return coerce(value)
        except (ValueError, TypeError, ArithmeticError):
            return value

    return lenient
