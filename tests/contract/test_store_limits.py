"""What a backend cannot hold is refused the same on every backend, before anything is written.

PostgreSQL refuses U+0000 in jsonb and text, lone surrogates, and text longer than its
column; SQLite would store them all. The store checks these limits itself (InvalidEvent).
"""

from __future__ import annotations

import pytest

from es_app.store import (
    Claim,
    ExpectedVersion,
    InvalidEvent,
    NewEvent,
    StoreError,
    check_events,
    encode_events,
    write_transaction,
)

UNSTORABLE = [
    pytest.param("s-1", NewEvent("Named", {"name": "Ann\x00e"}), "$.name holds U+0000", id="nul-in-data"),
    pytest.param("s-1", NewEvent("Named", {"deep": [{"k": "x"}, {"k": "\x00"}]}), "$.deep[1].k holds U+0000",
                 id="nul-nested"),
    pytest.param("s-1", NewEvent("Named", {"a\x00b": 1}), "a key in $ holds U+0000", id="nul-in-a-key"),
    pytest.param("s-1", NewEvent("Named", {}, {"note": "x\x00"}), "metadata $.note holds U+0000", id="nul-in-meta"),
    pytest.param("s-1", NewEvent("Named", {"name": "\ud800"}), "lone surrogate U+D800", id="lone-surrogate"),
    pytest.param("s-1", NewEvent("Named", {"n": 10**30, "name": "\udfff"}), "lone surrogate U+DFFF",
                 id="lone-surrogate-big-int"),
    pytest.param("s-1", NewEvent("T" * 201, {}), "event type is 201 characters long (at most 200)",
                 id="long-type"),
    pytest.param("s-1", NewEvent("Na\x00med", {}), "event type holds U+0000", id="nul-in-type"),
    pytest.param("s-" + "x" * 254, NewEvent("Named", {}), "stream id is 256 characters long (at most 255)",
                 id="long-stream-id"),
    pytest.param("s-1\x00", NewEvent("Named", {}), "stream id holds U+0000", id="nul-in-stream-id"),
    pytest.param("c" * 101 + "-1", NewEvent("Named", {}), "at most 100", id="long-category"),
]


def _nothing_written(store) -> None:
    assert store.head_position() == 0


@pytest.mark.parametrize("stream_id, event, message", UNSTORABLE)
def test_append_refuses_what_a_backend_cannot_hold(store, stream_id, event, message):
    with pytest.raises(InvalidEvent) as info:
        store.append(stream_id, [NewEvent("Fine", {"ok": 1}), event])
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, StoreError)
    _nothing_written(store)
    with pytest.raises(InvalidEvent):
        check_events(stream_id, [event])  # the same answer, without an append


@pytest.mark.parametrize("stream_id, event, message", UNSTORABLE)
def test_append_in_and_append_batch_refuse_it_too(store, stream_id, event, message):
    with pytest.raises(InvalidEvent, match="cannot hold"):
        with write_transaction(store.engine) as conn:
            store.append_in(conn, stream_id, [event], ExpectedVersion.NO_STREAM)
    with pytest.raises(InvalidEvent, match="cannot hold"):
        with write_transaction(store.engine) as conn:
            store.append_batch(conn, [("ok-1", [NewEvent("Fine", {})], ExpectedVersion.ANY),
                                      (stream_id, [event], ExpectedVersion.ANY)])
    _nothing_written(store)


def test_encode_events_refuses_unstorable_json_and_types():
    for event in (NewEvent("Named", {"name": "\x00"}), NewEvent("Named", {}, {"m": "\ud800"}),
                  NewEvent("T" * 201, {})):
        with pytest.raises(InvalidEvent, match="cannot hold"):
            encode_events([NewEvent("Fine", {}), event])


def test_encoded_events_and_claims_are_checked_at_append(store):
    with pytest.raises(InvalidEvent, match="stream id is 256"):
        with write_transaction(store.engine) as conn:
            store.append_batch(conn, [("s-" + "x" * 254, encode_events([NewEvent("Fine", {})]), ExpectedVersion.ANY)])
    with pytest.raises(InvalidEvent, match="email claim holds U"):
        store.append("user-1", [NewEvent("Fine", {})], claims=[Claim("email", "a\x00@example.org")])
    _nothing_written(store)


def test_what_a_backend_can_hold_is_stored_as_given(store):
    data = {"name": "tab\tnew line\n\x01 é 😀 \\u0000 literally", "n": 10**30, "e": ""}
    meta = {"note": "\x1f"}
    store.append("s-" + "x" * 253, [NewEvent("T" * 200, data, meta)])
    [event] = store.read_stream("s-" + "x" * 253)
    assert event.data == data and event.metadata["note"] == "\x1f" and event.type == "T" * 200
