"""The SQL that differs between database backends, one module per backend.

`dialect_for(bind)` returns the adapter of an engine or connection; callers build
their statements through it instead of branching on the backend themselves.
A new backend is one new module here and one line in `_MODULES`.
"""

from __future__ import annotations

from importlib import import_module

from sqlalchemy import Connection, Engine

from .base import Dialect, DriverTable, UnsupportedBackend

__all__ = ["Dialect", "DriverTable", "UnsupportedBackend", "dialect_for"]

_MODULES = {"sqlite": "es_app.dialect.sqlite", "postgresql": "es_app.dialect.postgres", "mysql": "es_app.dialect.mysql"}
_CACHE: dict[str, Dialect] = {}


def dialect_for(bind: Engine | Connection) -> Dialect:
    """Returns the dialect adapter of an engine or connection; raises UnsupportedBackend for others."""
    name = bind.dialect.name
    found = _CACHE.get(name)
    if found is None:
        module = _MODULES.get(name)
        if module is None:
            raise UnsupportedBackend(f"no dialect adapter for {name!r} (known: {', '.join(sorted(_MODULES))})")
        found = _CACHE[name] = import_module(module).DIALECT
    return found
