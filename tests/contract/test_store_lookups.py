"""The store's look-ups for importers (relay, re-sync): what is stored, read in the caller's connection."""

from __future__ import annotations

from es_app.store import EventStore, NewEvent
from es_app.store.postgres import PostgresEventStore
from es_app.store.sqlite import SqliteEventStore


def _event(event_id: str, type_: str = "Thing", **meta) -> NewEvent:
    return NewEvent(type_, {"n": event_id}, metadata=meta, event_id=event_id)


def test_the_store_of_the_engines_backend_is_made(store, backend):
    assert isinstance(store, EventStore)
    assert type(store) is {"sqlite": SqliteEventStore, "postgres": PostgresEventStore}[backend]


def test_existing_event_ids_names_those_stored(store):
    store.append("thing-1", [_event("e1"), _event("e2")])
    with store.engine.connect() as conn:
        assert store.existing_event_ids(conn, ["e2", "e9", "e1", "e2"]) == {"e1", "e2"}
        assert store.existing_event_ids(conn, []) == set()
        assert store.existing_event_ids(conn, [f"x{i}" for i in range(1200)] + ["e1"]) == {"e1"}


def test_stream_ids_in_category_pages_in_order(store):
    for sid in ("thing-3", "thing-1", "other-1", "thing-2"):
        store.append(sid, [_event(f"{sid}-a"), _event(f"{sid}-b")])
    with store.engine.connect() as conn:
        assert store.stream_ids_in_category(conn, "thing", limit=2) == ["thing-1", "thing-2"]
        assert store.stream_ids_in_category(conn, "thing", after="thing-2") == ["thing-3"]
        assert store.stream_ids_in_category(conn, "none") == []


def test_last_metadata_of_type_is_that_of_the_latest_such_event(store):
    store.append("thing-1", [_event("a1", "Imported", mark=1), _event("a2", "Changed", mark=2),
                             _event("a3", "Imported", mark=3)])
    store.append("thing-2", [_event("b1", "Changed", mark=4)])
    with store.engine.connect() as conn:
        found = store.last_metadata_of_type(conn, ["thing-1", "thing-2", "thing-9"], "Imported")
    assert list(found) == ["thing-1"] and found["thing-1"]["mark"] == 3


def test_first_recorded_at_is_the_categorys_first_event_in_utc(store):
    with store.engine.connect() as conn:
        assert store.first_recorded_at(conn, "thing") is None
    store.append("thing-2", [_event("b1")])
    store.append("thing-1", [_event("a1")])
    first = store.read_stream("thing-2")[0].recorded_at
    with store.engine.connect() as conn:
        found = store.first_recorded_at(conn, "thing")
    assert found == first and found.utcoffset().total_seconds() == 0


def test_read_streams_returns_each_streams_events_as_read_stream_does(store):
    store.append("thing-1", [_event("a1"), _event("a2")])
    store.append("thing-2", [_event("b1")])
    with store.engine.connect() as conn:
        found = store.read_streams(conn, ["thing-2", "thing-1", "thing-9"])
    assert sorted(found) == ["thing-1", "thing-2"]
    assert found["thing-1"] == store.read_stream("thing-1")
    assert found["thing-2"] == store.read_stream("thing-2")
