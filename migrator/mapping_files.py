"""Mappings from files (TOML, JSON or YAML) and their validation against the real database."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any, Iterable, Sequence

from sqlalchemy import Engine, inspect

from .mapping import DEFAULT_MAPPINGS, ColumnMap, MappingError, TableMapping
from .normalizers import coercer_for_type

_TABLE_KEYS = {f.name for f in dataclasses.fields(TableMapping)} - {"columns", "coerce", "table_columns"}
_COLUMN_KEYS = {f.name for f in dataclasses.fields(ColumnMap)} - {"column"}


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


def mapping_from_dict(spec: dict[str, Any]) -> TableMapping:
    """Returns a mapping from plain data (one `[[table]]` entry of a mapping file).

    `columns` is a table of column name -> {field, normalize, event, payload_key, true_event,
    false_event}; the other keys are TableMapping's. Raises MappingError on unknown keys.
    """
    name = spec.get("table", "?")
    unknown = set(spec) - _TABLE_KEYS - {"columns"}
    if unknown:
        raise MappingError(f"mapping {name}: unknown key {sorted(unknown)[0]!r} "
                           f"(known: {', '.join(sorted(_TABLE_KEYS | {'columns'}))})")
    columns = []
    for column, col_spec in (spec.get("columns") or {}).items():
        if isinstance(col_spec, str):
            col_spec = {"field": col_spec}
        bad = set(col_spec) - _COLUMN_KEYS
        if bad or "field" not in col_spec:
            problem = f"unknown key {sorted(bad)[0]!r}" if bad else "needs a field"
            raise MappingError(f"mapping {name}: column {column!r} {problem}")
        col_spec = dict(col_spec)
        norm = col_spec.pop("normalize", ())
        columns.append(ColumnMap(column, normalize=(norm,) if isinstance(norm, str) else tuple(norm), **col_spec))
    rest = {k: v for k, v in spec.items() if k != "columns"}
    rest["exclude"] = tuple(rest.get("exclude", ()))
    missing = [k for k in ("table", "key", "stream_prefix", "import_event_type", "delete_event_type",
                           "column_event_type") if k not in rest]
    if missing:
        raise MappingError(f"mapping {name}: missing required key {missing[0]!r}")
    return TableMapping(columns=tuple(columns), **rest)


def load_mapping_file(path: str | Path) -> list[TableMapping]:
    """Returns the mappings of a .toml, .json or .yaml file: a list under `table` (or one table).

    Raises MappingError for a missing or unreadable file or an invalid mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise MappingError(f"mapping file {path}: use .toml, .json or .yaml")
    except OSError as exc:
        raise MappingError(f"mapping file {path}: {exc.strerror or exc}") from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        if isinstance(exc, MappingError):
            raise
        raise MappingError(f"mapping file {path}: {str(exc).splitlines()[0]}") from None
    except ImportError:
        raise MappingError(f"mapping file {path}: reading YAML needs PyYAML") from None
    if not isinstance(data, dict):
        raise MappingError(f"mapping file {path}: expected a table of settings")
    tables = data.get("table", data if "key" in data else None)
    tables = [tables] if isinstance(tables, dict) else tables
    if not tables:
        raise MappingError(f"mapping file {path}: no [[table]] entries")
    mappings = [mapping_from_dict(t) for t in tables]
    _check_unique_tables(mappings)
    return mappings


def _check_unique_tables(mappings: Sequence[TableMapping]) -> None:
    seen: set[str] = set()
    prefixes: set[str] = set()
    for m in mappings:
        if m.table in seen:
            raise MappingError(f"mapping {m.table}: table mapped twice")
        if m.stream_prefix in prefixes:
            raise MappingError(f"mapping {m.table}: stream prefix {m.stream_prefix!r} is used by another table")
        seen.add(m.table)
        prefixes.add(m.stream_prefix)


def load_mappings(path: str | Path | None, engine: Engine | None = None,
                  tables: Iterable[str] | None = None) -> list[TableMapping]:
    """Returns the mappings to use: those of the file at `path`, else the built-in ones (users).

    With `engine` each mapping is bound (validated against the database); with `tables` only
    those tables are kept (MappingError for a table no mapping names).
    """
    mappings = load_mapping_file(path) if path else list(DEFAULT_MAPPINGS)
    if tables:
        wanted = list(tables)
        known = {m.table: m for m in mappings}
        for t in wanted:
            if t not in known:
                raise MappingError(f"mapping {t}: no mapping for this table (mapped: {', '.join(known)})")
        mappings = [known[t] for t in wanted]
    return [m.bind(engine) for m in mappings] if engine is not None else mappings
