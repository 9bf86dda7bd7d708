"""How a legacy table becomes streams and events: a declarative mapping, the same for every tool.

A `TableMapping` names the legacy table, its key column (stream id `<prefix>-<key>`), the
columns that become aggregate fields (with normalizers and the event each change produces),
the delete event, a generic event for every other column, and the import event that carries
a whole row. Capture, relay, backfill and verify use nothing but this object, so a second
table needs only a second mapping. `USERS` is the worked example; docs/mapping.md explains
how to write your own (in Python or in a TOML/JSON file, see `migrator.mapping.files`).

Values go through two steps: the column's *coercer* (from its reflected SQL type, see
`bind`) makes SQLite and PostgreSQL values alike, then the field's normalizers apply.

The comparable *state* of a row is `{field: value, ..., "extra": {column: value}}`: the
mapped fields plus every column that is neither the key, a mapped column, a timestamp
column nor excluded. `state_from_row(row)` and `replay(events)` both return it, so a
legacy row and the replay of its stream can be compared with `==`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from es_app.services import EMAIL_SCOPE
from es_app.store import Claim, NewEvent

from .binding import bind_to_database
from .errors import MappingError
from .normalizers import Normalizer, compose, escaped, jsonable, strip_control, timestamp

Converter = Callable[[Any], Any]
ImportPlan = tuple[tuple[tuple[str, Converter], ...], tuple[tuple[str, str, Normalizer], ...]]
RESERVED_FIELDS = frozenset({"extra", "legacy_key", "created_at", "updated_at", "row"})
MAX_CLAIM_VALUE = 320  # the length of unique_claims.value
ORIGINALS = "legacy_originals"  # event metadata: {column: escaped exact legacy value} of values strip_control changed


@dataclasses.dataclass(frozen=True)
class ColumnMap:
    """One legacy column mapped to one aggregate field.

    A change of the field produces `event` with data `{payload_key or field: new value}`;
    or, for a boolean, `true_event` / `false_event` with empty data; with none of them the
    table's generic column event `{column, value}` is used.
    """

    column: str
    field: str
    normalize: tuple[str | Normalizer, ...] = ()
    event: str | None = None
    payload_key: str | None = None
    true_event: str | None = None
    false_event: str | None = None

    @property
    def key_in_event(self) -> str:
        return self.payload_key or self.field


@dataclasses.dataclass(frozen=True)
class TableMapping:
    """A legacy table's mapping to streams and events. Raises MappingError when inconsistent."""

    table: str
    key: str
    stream_prefix: str
    columns: tuple[ColumnMap, ...]
    import_event_type: str
    delete_event_type: str
    column_event_type: str
    created_at: str | None = None
    updated_at: str | None = None
    exclude: tuple[str, ...] = ()
    timestamp_precision: str = "us"
    # field -> claim scope: the field's normalized value is unique in the event store (see `claims_of`)
    unique: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # the event that corrects one field on the new side, data {field, value, reason} (USERS: es_app's
    # UserCorrected); `migrator repair` writes it, and `replay` folds it like a change of the field
    correction_event_type: str | None = None
    # filled by bind(): column -> coercer name (from the SQL type), and the table's columns in order
    coerce: Mapping[str, str] = dataclasses.field(default_factory=dict)
    table_columns: tuple[str, ...] = ()

    if TYPE_CHECKING:  # compiled by __post_init__ (object.__setattr__): not dataclass fields at run time
        _normalizers: dict[str, Normalizer] = dataclasses.field(init=False)
        _coercers: dict[str, Normalizer] = dataclasses.field(init=False)
        _stamp: Normalizer = dataclasses.field(init=False)
        _by_column: dict[str, ColumnMap] = dataclasses.field(init=False)
        _by_field: dict[str, str] = dataclasses.field(init=False)
        _cleaned: tuple[str, ...] = dataclasses.field(init=False)
        _by_event: dict[str, tuple[str, Any]] = dataclasses.field(init=False)
        _import_plan: ImportPlan | None = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "unique", self._unique_spec(self.unique))
        self._check()
        fns: dict[str, Normalizer] = {}
        try:
            for c in self.columns:
                fns[c.column] = compose(c.normalize)
            stamp = timestamp(self.timestamp_precision)
            coercers = {col: _lenient(stamp if name == "timestamp" else compose([name]))
                        for col, name in self.coerce.items()}
            coercers.update({col: stamp for col in (self.created_at, self.updated_at) if col})
        except ValueError as exc:
            raise MappingError(f"mapping {self.table}: {exc}") from None
        self._check_unique()
        object.__setattr__(self, "_normalizers", fns)
        object.__setattr__(self, "_coercers", coercers)
        object.__setattr__(self, "_stamp", stamp)
        object.__setattr__(self, "_by_column", {c.column: c for c in self.columns})
        object.__setattr__(self, "_by_field", {c.field: c.column for c in self.columns})
        object.__setattr__(self, "_cleaned", tuple(c.column for c in self.columns
                                                   if "strip_control" in c.normalize or strip_control in c.normalize))
        object.__setattr__(self, "_by_event", self._events_index())
        object.__setattr__(self, "_import_plan", self._plan_import(self.table_columns) if self.table_columns else None)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickles the declaration only; unpickling compiles it again (the backfill's reader process
        receives its mapping so). Normalizers given as functions must be importable by name."""
        return type(self), tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    # -- validation --------------------------------------------------------
    def _fail(self, problem: str) -> None:
        raise MappingError(f"mapping {self.table}: {problem}")

    def _check(self) -> None:
        if not self.table or not self.key:
            self._fail("a mapping needs a table and a key column")
        if not self.stream_prefix or "-" in self.stream_prefix:
            self._fail(f"stream prefix {self.stream_prefix!r} must be non-empty and contain no '-'")
        seen_columns: set[str] = set()
        owner_of_field: dict[str, str] = {}
        for c in self.columns:
            if c.column in seen_columns:
                self._fail(f"column {c.column!r} is mapped twice")
            seen_columns.add(c.column)
            if c.column in (self.key, self.created_at, self.updated_at) or c.column in self.exclude:
                self._fail(f"column {c.column!r} is the key, a timestamp or excluded and cannot be a field")
            if c.field in owner_of_field:
                self._fail(f"columns {owner_of_field[c.field]!r} and {c.column!r} both map to field {c.field!r}")
            owner_of_field[c.field] = c.column
            if c.field in RESERVED_FIELDS:
                self._fail(f"field name {c.field!r} is reserved ({', '.join(sorted(RESERVED_FIELDS))})")
            if (c.true_event is None) != (c.false_event is None):
                self._fail(f"column {c.column!r} needs both true_event and false_event")
            if c.event and c.true_event:
                self._fail(f"column {c.column!r} has both an event and true/false events")
        if self.key in self.exclude:
            self._fail(f"key column {self.key!r} cannot be excluded")

        if self.timestamp_precision not in ("s", "ms", "us"):
            self._fail("timestamp_precision must be s, ms or us")

    def _check_unique(self) -> None:
        fields = [c.field for c in self.columns]
        for field, scope in self.unique.items():
            if field not in fields:
                self._fail(f"unique field {field!r} is not a mapped field ({', '.join(fields) or 'none'})")
            if not isinstance(scope, str) or not scope:
                self._fail(f"unique field {field!r} needs a claim scope (a non-empty string)")

    def _unique_spec(self, spec: Any) -> dict[str, str]:
        """A list of fields means each in scope `<stream_prefix>-<field>`."""
        if isinstance(spec, str):
            spec = [spec]
        if isinstance(spec, (list, tuple)):
            return {str(f): f"{self.stream_prefix}-{f}" for f in spec}
        if not isinstance(spec, Mapping):
            self._fail("unique must be a table of field = claim scope (or a list of fields)")
        return dict(spec)

    def _events_index(self) -> dict[str, tuple[str, Any]]:
        """event type -> (kind, column map or None); every type has one meaning."""
        index: dict[str, tuple[str, Any]] = {}

        def add(event_type: str | None, kind: str, col: ColumnMap | None) -> None:
            if event_type is None:
                return
            if event_type in index:
                self._fail(f"event type {event_type!r} is used for two things")
            index[event_type] = (kind, col)

        add(self.import_event_type, "import", None)
        add(self.delete_event_type, "delete", None)
        add(self.column_event_type, "column", None)
        add(self.correction_event_type, "correct", None)
        for c in self.columns:
            add(c.event, "set", c)
            add(c.true_event, "true", c)
            add(c.false_event, "false", c)
        return index

    def bind(self, engine: Any) -> TableMapping:
        """Returns this mapping checked against the real table, with coercers from its column types.

        Raises MappingError (one line) for a missing table or column or a key that is not the
        table's single-column primary key.
        """
        return bind_to_database(self, engine)

    # -- keys and streams --------------------------------------------------
    def stream_id(self, key: Any) -> str:
        """Returns the stream id of a legacy key: `<prefix>-<key>`."""
        return f"{self.stream_prefix}-{key}"

    def key_of(self, row: Mapping[str, Any]) -> Any:
        """Returns the row's legacy key, coerced (e.g. 42, or 'acc-1' for a text key)."""
        return self._value(self.key, row.get(self.key))

    @property
    def category(self) -> str:
        """Returns the streams' category (the prefix)."""
        return self.stream_prefix

    @property
    def timestamp_columns(self) -> tuple[str, ...]:
        """Returns the created_at/updated_at columns that are set."""
        return tuple(c for c in (self.created_at, self.updated_at) if c)

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
            elif c.true_event and isinstance(after, bool):
                # arg-type: false_event is set whenever true_event is (`_check`)
                found.append((c.true_event if after else c.false_event, {}, originals))  # type: ignore[arg-type]
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
        """Returns the state the events lead to (as `state_from_row`), None when deleted or never imported.

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


USERS = TableMapping(
    table="users",
    key="id",
    stream_prefix="user",
    columns=(
        ColumnMap("full_name", "name", ("strip_control", "trim"), event="UserNameChanged"),
        ColumnMap("email", "email", ("strip_control", "email"), event="UserEmailChanged"),
        ColumnMap("is_active", "active", ("bool",), true_event="UserReactivated", false_event="UserDeactivated"),
        ColumnMap("phone", "phone", ("strip_control", "trim", "blank_to_none"), event="UserPhoneChanged"),
    ),
    import_event_type="UserImported",
    delete_event_type="UserDeleted",
    column_event_type="UserLegacyColumnChanged",
    created_at="created_at",
    updated_at="updated_at",
    unique={"email": EMAIL_SCOPE},
    correction_event_type="UserCorrected",
)

DEFAULT_MAPPINGS: Sequence[TableMapping] = (USERS,)
