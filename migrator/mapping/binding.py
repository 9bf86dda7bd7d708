"""A mapping checked against its real table: reflected columns, primary key and coercers."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect

from .errors import MappingError
from .normalizers import coercer_for_type

if TYPE_CHECKING:
    from .table import TableMapping


def bind_to_database(mapping: TableMapping, engine: Engine) -> TableMapping:
    """Returns `mapping` checked against its table in `engine`, with coercers and the column list filled in.

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
    return dataclasses.replace(mapping, coerce=coerce, table_columns=tuple(reflected))
