"""es_app.store has a deliberate public API: `__all__` is the contract, guarded here (as httpx does)."""

from __future__ import annotations

import inspect
import types

import es_app.store

PUBLIC_API = {
    "AppendResult", "Claim", "ClaimConflict", "ClaimTaken", "ConcurrencyError", "EncodedEvent",
    "EventIdConflict", "EventStore", "Expected", "ExpectedVersion", "InvalidEvent", "NewEvent", "RecordedEvent",
    "Repository", "Snapshot", "SnapshotStore", "StoreError", "UpcasterRegistry", "category_of", "check_events",
    "encode_events", "make_engine",
    "normalize_url", "write_transaction",
}


def test_all_is_the_agreed_public_api():
    assert set(es_app.store.__all__) == PUBLIC_API
    assert len(es_app.store.__all__) == len(PUBLIC_API)  # no duplicates


def test_every_public_name_is_exported_and_every_export_exists():
    public = {name for name, value in vars(es_app.store).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(es_app.store.__all__)
    for name in es_app.store.__all__:
        assert getattr(es_app.store, name) is not None


def test_exports_are_defined_inside_the_store_package():
    for name in es_app.store.__all__:
        obj = getattr(es_app.store, name)
        module = getattr(obj, "__module__", None)
        if module is not None and (inspect.isclass(obj) or inspect.isfunction(obj)):
            assert module.startswith("es_app.store."), f"{name} comes from {module}"


def test_store_errors_share_one_base():
    for name in ("ConcurrencyError", "EventIdConflict", "ClaimTaken", "InvalidEvent"):
        assert issubclass(getattr(es_app.store, name), es_app.store.StoreError)


def test_exported_functions_say_what_they_return():
    for name in es_app.store.__all__:
        obj = getattr(es_app.store, name)
        if inspect.isfunction(obj):
            doc = inspect.getdoc(obj) or ""
            assert doc.startswith(("Returns", "Yields")), f"{name} needs a 'Returns ...' docstring"
