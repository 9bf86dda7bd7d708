"""How a legacy table becomes streams and events: the declarative mapping, the same for every tool.

A `TableMapping` names the legacy table, its key column (stream id `<prefix>-<key>`), the
columns that become aggregate fields (with normalizers and the event each change produces),
the delete event, a generic event for every other column, and the import event that carries
a whole row. It is the declaration only, what a user writes (in Python or in a TOML/JSON/YAML
file, see `migrator.mapping.files`), checked when it is made. `bind(engine)` checks it against
the real table and returns the `CompiledMapping` (`migrator.mapping.compiled`) that turns rows
into events and streams back into state; `compile()` does the same without a database. A second
table needs only a second mapping. `USERS` is the worked example; docs/mapping.md explains how
to write your own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine

from es_app.services import EMAIL_SCOPE

from .binding import reflect
from .compiled import CompiledMapping
from .errors import MappingError
from .normalizers import Normalizer, compose

RESERVED_FIELDS = frozenset({"extra", "legacy_key", "created_at", "updated_at", "row"})


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



EventKinds = dict[str, tuple[str, ColumnMap | None]]  # event type -> (kind, the column map of set/true/false)


@dataclasses.dataclass(frozen=True)
class TableMapping:
    """A legacy table's mapping to streams and events, as declared. Raises MappingError when inconsistent."""

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
    # the event the new side starts a stream with (USERS: es_app's UserRegistered, which the write switchover
    # writes for a user created through the legacy API): its data holds the fields by payload key, and a
    # field it does not hold takes its value from `register_defaults` (else None)
    register_event_type: str | None = None
    register_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # the declaration's own values in their canonical form (lists as tuples, unique as {field: scope})
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "unique", self._unique_spec(self.unique))
        object.__setattr__(self, "register_defaults", dict(self.register_defaults))
        self._check()
        try:
            for c in self.columns:
                compose(c.normalize)
        except ValueError as exc:
            raise MappingError(f"mapping {self.table}: {exc}") from None
        self._check_unique()
        unknown = sorted(set(self.register_defaults) - {c.field for c in self.columns})
        if unknown:
            self._fail(f"register_defaults names {unknown[0]!r}, which is not a mapped field")
        self.event_kinds()

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

    def event_kinds(self) -> EventKinds:
        """Returns event type -> (kind, column map or None), kind one of import, delete, column, set, true
        and false. Raises MappingError when a type is used for two things."""
        index: EventKinds = {}

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
        add(self.register_event_type, "register", None)
        for c in self.columns:
            add(c.event, "set", c)
            add(c.true_event, "true", c)
            add(c.false_event, "false", c)
        return index

    # -- what the user wrote, read ------------------------------------------
    @property
    def category(self) -> str:
        """Returns the streams' category (the prefix)."""
        return self.stream_prefix

    @property
    def timestamp_columns(self) -> tuple[str, ...]:
        """Returns the created_at/updated_at columns that are set."""
        return tuple(c for c in (self.created_at, self.updated_at) if c)

    # -- compiling ---------------------------------------------------------
    def bind(self, engine: Engine) -> CompiledMapping:
        """Returns this mapping compiled against the real table, with coercers from its column types.

        Raises MappingError (one line) for a missing table or column or a key that is not the
        table's single-column primary key.
        """
        return CompiledMapping(self, reflect(self, engine))

    def compile(self) -> CompiledMapping:
        """Returns this mapping compiled without a database: values keep their Python types (no
        coercer per column type) and each row's own columns are its columns."""
        return CompiledMapping(self)


def bound(mapping: TableMapping | CompiledMapping, engine: Engine) -> CompiledMapping:
    """Returns `mapping` bound to its table: as it is when it is bound already, else bound to `engine`."""
    if isinstance(mapping, CompiledMapping):
        return mapping if mapping.table_columns else mapping.declaration.bind(engine)
    return mapping.bind(engine)


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
    register_event_type="UserRegistered",
    register_defaults={"active": True},
)

DEFAULT_MAPPINGS: Sequence[TableMapping] = (USERS,)
