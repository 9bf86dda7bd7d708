"""Mappings from files (TOML, JSON or YAML) and their validation against the real database."""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, overload

from sqlalchemy import Engine

from .compiled import CompiledMapping
from .errors import MappingError
from .table import DEFAULT_MAPPINGS, ColumnMap, TableMapping

_TABLE_KEYS = {f.name for f in dataclasses.fields(TableMapping)} - {"columns"}
_COLUMN_KEYS = {f.name for f in dataclasses.fields(ColumnMap)} - {"column"}


def mapping_from_dict(spec: dict[str, Any], *, position: int | None = None) -> TableMapping:
    """Returns a mapping from plain data (one `[[table]]` entry of a mapping file).

    `columns` is a table of column name -> {field, normalize, event, payload_key, true_event,
    false_event} (or just the field name); the other keys are TableMapping's. Raises MappingError
    naming the entry and the key on an unknown key or a value of the wrong type; a single string
    where a list is expected (`exclude = "id"`) is a one-item list.
    """
    if not isinstance(spec, dict):
        raise MappingError(f"mapping #{position or 1}: expected a table of settings, not {_kind(spec)}")
    name = spec.get("table", "?")
    unknown = set(spec) - _TABLE_KEYS - {"columns"}
    if unknown:
        raise MappingError(f"mapping {name}: unknown key {sorted(unknown)[0]!r} "
                           f"(known: {', '.join(sorted(_TABLE_KEYS | {'columns'}))})")
    spec = _typed(spec, typing.get_type_hints(TableMapping), position)
    if not isinstance(spec.get("columns") or {}, dict):
        raise MappingError(f"mapping {name}: 'columns' must be a table of column -> field, "
                           f"not {_kind(spec['columns'])}")
    columns = []
    for column, col_spec in (spec.get("columns") or {}).items():
        if isinstance(col_spec, str):
            col_spec = {"field": col_spec}
        if not isinstance(col_spec, dict):
            raise MappingError(f"mapping {name}: column {column!r} must be a field name or a table of "
                               f"settings, not {_kind(col_spec)}")
        bad = set(col_spec) - _COLUMN_KEYS
        if bad or "field" not in col_spec:
            problem = f"unknown key {sorted(bad)[0]!r}" if bad else "needs a field"
            raise MappingError(f"mapping {name}: column {column!r} {problem}")
        col_spec = _typed(col_spec, typing.get_type_hints(ColumnMap), position, f"mapping {name}: column {column!r}")
        col_spec = dict(col_spec)
        norm = col_spec.pop("normalize", ())
        columns.append(ColumnMap(column, normalize=(norm,) if isinstance(norm, str) else tuple(norm), **col_spec))
    rest = {k: v for k, v in spec.items() if k != "columns"}
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
    except Exception as exc:  # yaml.YAMLError (PyYAML is imported only for YAML files)
        if type(exc).__module__.split(".")[0] != "yaml":
            raise
        raise MappingError(f"mapping file {path}: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise MappingError(f"mapping file {path}: expected a table of settings, not {_kind(data)}")
    tables = data.get("table", data if "key" in data else None)
    tables = [tables] if isinstance(tables, dict) else tables
    if not tables:
        raise MappingError(f"mapping file {path}: no [[table]] entries")
    if not isinstance(tables, list):
        raise MappingError(f"mapping file {path}: 'table' must be a list of tables, not {_kind(tables)}")
    try:
        mappings = [mapping_from_dict(t, position=i) for i, t in enumerate(tables, 1)]
        _check_unique_tables(mappings)
    except MappingError as exc:
        raise MappingError(f"mapping file {path}: {exc}") from None
    return mappings


def _yaml_problem(exc: Exception) -> str:
    """Returns a YAML error as one line: where (line, column) and what."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"YAML syntax error at {where}{problem}"


def _kind(value: Any) -> str:
    """Returns what a value from a file is, for messages: `a number (5)`."""
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "a list",
             dict: "a table", type(None): "nothing"}
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"{names.get(type(value), type(value).__name__)} ({shown})"


def _typed(spec: dict[str, Any], hints: dict[str, Any], position: int | None, where: str | None = None) -> dict:
    """Returns `spec` with each known key checked against its declared type (lists become tuples).

    Raises MappingError naming the entry and the key for a value of the wrong type.
    """
    if where is None:
        name = spec.get("table")
        where = f"mapping {name}" if isinstance(name, str) else f"mapping #{position or 1}"
    out = dict(spec)
    for key, value in spec.items():
        hint = hints.get(key)
        if hint is None or key == "columns":
            continue
        ok, converted = _as_type(value, hint)
        if not ok:
            raise MappingError(f"{where}: {key!r} must be {_describe(hint)}, not {_kind(value)}")
        out[key] = converted
    return out


_SCALARS = {str: "a string", bool: "true or false", int: "a whole number", float: "a number"}


def _as_type(value: Any, hint: Any) -> tuple[bool, Any]:
    """Returns (True, value as `hint`) when a file's value fits the declared type, else (False, None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and args[-1:] == (Ellipsis,):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            return False, None
        converted = [_as_type(v, args[0]) for v in items]
        return (True, tuple(v for _, v in converted)) if all(ok for ok, _ in converted) else (False, None)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None
        for arg in args:
            ok, as_arg = _as_type(value, arg) if arg is not type(None) else (False, None)
            if ok:
                return True, as_arg
        return False, None
    if hint in _SCALARS:
        fits = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
        return (True, value) if fits or (hint is float and isinstance(value, int)
                                         and not isinstance(value, bool)) else (False, None)
    if origin is collections.abc.Callable:
        return False, None  # a function cannot come from a file
    return True, value  # a type not checked here: the mapping checks it


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None) and _describe(a))
    return _SCALARS.get(hint, "")


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


@overload
def load_mappings(path: str | Path | None, engine: Engine,
                  tables: Iterable[str] | None = None) -> list[CompiledMapping]:
    ...


@overload
def load_mappings(path: str | Path | None, engine: None = None,
                  tables: Iterable[str] | None = None) -> list[TableMapping]:
    ...


def load_mappings(path: str | Path | None, engine: Engine | None = None,
                  tables: Iterable[str] | None = None) -> list[TableMapping] | list[CompiledMapping]:
    """Returns the mappings to use: those of the file at `path`, else the built-in ones (users).

    With `engine` each mapping is bound (validated against the database, see `TableMapping.bind`);
    without, they are the declarations. With `tables` only those tables are kept (MappingError for a
    table no mapping names).
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
