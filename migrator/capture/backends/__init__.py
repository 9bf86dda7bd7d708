"""Change capture's SQL, one module per database backend.

`capture_backend_for(bind)` returns the backend of an engine or connection; the rest of
`migrator.capture` goes through it instead of branching on the backend. A new backend is
one new module here (a `CaptureBackend` subclass as `BACKEND`) and one line in `_MODULES`.
"""

from __future__ import annotations

from importlib import import_module

from sqlalchemy import Connection, Engine

from ..errors import UnsupportedCaptureBackend
from .base import CaptureBackend

__all__ = ["CaptureBackend", "UnsupportedCaptureBackend", "capture_backend_for"]

_MODULES = {"sqlite": "migrator.capture.backends.sqlite", "postgresql": "migrator.capture.backends.postgres",
            "mysql": "migrator.capture.backends.mysql"}
_CACHE: dict[str, CaptureBackend] = {}


def capture_backend_for(bind: Engine | Connection) -> CaptureBackend:
    """Returns the capture backend of an engine or connection; raises UnsupportedCaptureBackend for others."""
    name = bind.dialect.name
    found = _CACHE.get(name)
    if found is None:
        module = _MODULES.get(name)
        if module is None:
            *rest, last = _MODULES
            raise UnsupportedCaptureBackend(f"capture supports {', '.join(rest)} and {last}, not {name}")
        found = _CACHE[name] = import_module(module).BACKEND
    return found
