"""What binding a mapping to its real table learns: the table's columns and a coercer per column type."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect

from .errors import MappingError
from .normalizers import coercer_for_type

if TYPE_CHECKING:
    from .table import TableMapping


@dataclasses.dataclass(frozen=True)
class Binding:
    """A mapping's table as the database has it: column -> coercer name (from the SQL type, see
    `coercer_for_type`), and the table's columns in order. Empty: not bound to a database."""

    coerce: Mapping[str, str] = dataclasses.field(default_factory=dict)
    table_columns: tuple[str, ...] = ()


def reflect(mapping: TableMapping, engine: Engine) -> Binding:
    """Returns the binding of `mapping` to its table in `engine`.

    Raises MappingError for a missing table or column, or a key that is not the primary key.
    """
    where = engine.url.render_as_string(hide_password=True)
    insp = inspect(engine)
    if not insp.has_table(mapping.table):
        raise MappingError(f"mapping {mapping.table}: table {mapping.table!r} does not exist in {where}")
    reflected = {c["name"]: c for c in insp.get_columns(mapping.table)}
    wanted = [mapping.key, *(c.column for c in mapping.columns), *mapping.timestamp_columns, *mapping.exclude]
    missing = [c for c in wanted if c not in reflected]
    if missing:
        raise MappingError(f"mapping {mapping.table}: column {missing[0]!r} does not exist in table "
                           f"{mapping.table!r} (columns: {', '.join(reflected)})")
    pk = insp.get_pk_constraint(mapping.table).get("constrained_columns") or []
    if pk != [mapping.key]:
        raise MappingError(f"mapping {mapping.table}: key {mapping.key!r} is not the table's single-column "
                           f"primary key (primary key: {', '.join(pk) or 'none'})")
    coerce = {name: kind for name, col in reflected.items() if (kind := coercer_for_type(col["type"]))}
    return Binding(coerce, tuple(reflected))
