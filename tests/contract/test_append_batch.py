"""append_batch: many streams in one bulk insert inside the caller's write transaction."""

from __future__ import annotations

import pytest

from es_app.store import ConcurrencyError, ExpectedVersion, write_transaction
from tests.factories import NewEventFactory


def batch(n: int) -> list:
    return NewEventFactory.build_batch(n)


def test_a_batch_appends_to_many_streams_in_item_order(store):
    store.append("b-1", batch(1))
    a1, b1, a2 = batch(2), batch(1), batch(1)
    with write_transaction(store.engine) as conn:
        results = store.append_batch(conn, [
            ("a-1", a1, ExpectedVersion.NO_STREAM),
            ("b-1", b1, 1),
            ("a-1", a2, 2),  # the same stream again, after its first item
        ])
    assert [(r.stream_id, r.version, len(r.positions)) for r in results] == [("a-1", 2, 2), ("b-1", 2, 1), ("a-1", 3, 1)]
    positions = [p for r in results for p in r.positions]
    assert positions == sorted(positions) and len(set(positions)) == 4
    assert all(r.position == r.positions[-1] and r.written for r in results)

    feed = store.read_all(after=positions[0] - 1)
    assert [e.event_id for e in feed] == [e.event_id for e in a1 + b1 + a2]
    assert [e.position for e in feed] == positions  # each result says where its events landed
    assert [e.version for e in store.read_stream("a-1")] == [1, 2, 3]


def test_a_mismatch_refuses_the_whole_batch(store):
    store.append("b-1", batch(2))
    with pytest.raises(ConcurrencyError) as info:
        with write_transaction(store.engine) as conn:
            store.append_batch(conn, [("a-1", batch(1), ExpectedVersion.NO_STREAM),
                                      ("b-1", batch(1), ExpectedVersion.NO_STREAM)])
    assert (info.value.stream_id, info.value.actual) == ("b-1", 2)
    assert store.stream_version("a-1") == 0 and store.stream_version("b-1") == 2


def test_new_streams_meeting_a_stored_one_leave_the_transaction_as_it_was(store):
    """A batch of new streams only goes in without reading versions first; when one exists, its
    insert is undone to the savepoint and the batch is refused on the versions read."""
    store.append("b-1", batch(2))
    a_events, x_events = batch(1), batch(1)
    with write_transaction(store.engine) as conn:
        store.append_batch(conn, [("x-1", x_events, ExpectedVersion.NO_STREAM)])
        with pytest.raises(ConcurrencyError) as info:
            store.append_batch(conn, [("a-1", a_events, ExpectedVersion.NO_STREAM),
                                      ("b-1", batch(1), ExpectedVersion.NO_STREAM)])
        again = store.append_batch(conn, [("a-1", a_events, ExpectedVersion.NO_STREAM)])
    assert (info.value.stream_id, info.value.actual) == ("b-1", 2)
    assert again[0].version == 1 and again[0].written
    assert [e.event_id for e in store.read_all()] == [
        *(e.event_id for e in store.read_stream("b-1")), x_events[0].event_id, a_events[0].event_id]
    with write_transaction(store.engine) as conn:  # the same new streams again: stored, nothing written
        retried = store.append_batch(conn, [("x-1", x_events, ExpectedVersion.NO_STREAM),
                                            ("a-1", a_events, ExpectedVersion.NO_STREAM)])
    assert [(r.version, r.written) for r in retried] == [(1, False), (1, False)]
    assert len(store.read_all()) == 4  # (PostgreSQL positions skip those the undone insert took)


def test_skip_mismatched_leaves_out_only_the_stale_items(store):
    store.append("b-1", batch(2))
    with write_transaction(store.engine) as conn:
        results = store.append_batch(conn, [
            ("a-1", batch(1), ExpectedVersion.NO_STREAM),
            ("b-1", batch(1), ExpectedVersion.NO_STREAM),  # already exists: skipped
            ("c-1", batch(2), ExpectedVersion.STREAM_EXISTS),  # missing: skipped
            ("d-1", batch(3), ExpectedVersion.ANY),
        ], skip_mismatched=True)
    assert [None if r is None else (r.stream_id, r.version) for r in results] == [
        ("a-1", 1), None, None, ("d-1", 3)]
    assert [store.stream_version(s) for s in ("a-1", "b-1", "c-1", "d-1")] == [1, 2, 0, 3]


def test_a_rerun_of_the_same_batch_with_skip_mismatched_writes_nothing_twice(store):
    items = [(f"user-{i}", batch(2), ExpectedVersion.NO_STREAM) for i in range(5)]
    with write_transaction(store.engine) as conn:
        assert all(store.append_batch(conn, items, skip_mismatched=True))
    with write_transaction(store.engine) as conn:
        assert store.append_batch(conn, items, skip_mismatched=True) == [None] * 5
    assert len(store.read_all()) == 10


def test_a_batch_shares_the_callers_transaction(store):
    with pytest.raises(RuntimeError):
        with write_transaction(store.engine) as conn:
            store.append_batch(conn, [("a-1", batch(2), ExpectedVersion.NO_STREAM)])
            store.append_in(conn, "b-1", batch(1))
            raise RuntimeError("the caller fails after appending")
    assert store.read_all() == []


def test_a_large_batch_spans_many_streams(store):
    items = [(f"user-{i}", batch(1 + i % 3), ExpectedVersion.NO_STREAM) for i in range(1200)]
    with write_transaction(store.engine) as conn:
        results = store.append_batch(conn, items)
    assert sum(len(r.positions) for r in results) == len(store.read_all(limit=10_000)) == 2400
    assert [store.stream_version(f"user-{i}") for i in (0, 1, 2, 1199)] == [1, 2, 3, 3]


def test_an_item_without_events_is_refused_before_anything_is_written(es_engine):
    from es_app.store import EventStore, NewEvent, write_transaction

    store = EventStore(es_engine)
    with pytest.raises(ValueError, match="at least one event"):
        with write_transaction(es_engine) as conn:
            store.append_batch(conn, [("s-1", [NewEvent("T", {})], 0), ("s-2", [], 0)])
    assert store.head_position() == 0


def test_append_batch_recorded_returns_the_events_exactly_as_the_feed_reads_them(store):
    store.append("b-1", batch(1))
    items = [("a-1", batch(2), ExpectedVersion.NO_STREAM), ("b-1", batch(1), ExpectedVersion.NO_STREAM),
             ("c-1", [NewEventFactory(data={"n": 1, "nested": [1, "x", None]}, metadata={"occurred_at": "2016-01-01T00:00:00+00:00"})],
              ExpectedVersion.ANY)]
    with write_transaction(store.engine) as conn:
        recorded = store.append_batch_recorded(conn, items, skip_mismatched=True)
    assert recorded[1] is None  # b-1 exists: skipped, as with append_batch
    written = recorded[0] + recorded[2]
    assert written == store.read_all(after=written[0].position - 1)
    assert written[-1].metadata["occurred_at"] == "2016-01-01T00:00:00+00:00"


@pytest.mark.parametrize("parsed", [False, True])
def test_events_encoded_ahead_are_stored_and_recorded_as_the_same_new_events_would_be(store, parsed):
    from es_app.store import encode_events

    odd = {"big": 2**70, "tuple": (1, 2), "float": 1.5, "text": "Zoë 李雷", "nested": {"k": [None, True]}}
    events = [NewEventFactory(data=odd, metadata={"occurred_at": "2016-01-01T00:00:00+00:00", "source": "t"}),
              NewEventFactory()]  # no occurred_at of its own: the encoding time
    plain = [NewEventFactory(data=e.data, metadata=e.metadata) for e in events]
    encoded = encode_events(events, parsed=parsed)
    assert [e.event_id for e in encoded] == [str(e.event_id) for e in events]
    with write_transaction(store.engine) as conn:
        recorded = store.append_batch_recorded(conn, [("enc-1", encoded, ExpectedVersion.NO_STREAM)])[0]
        store.append_batch_recorded(conn, [("new-1", plain, ExpectedVersion.NO_STREAM)])
    feed = store.read_stream("enc-1")
    assert recorded == feed  # what a read returns: tuples as lists, the big integer exact
    assert feed[0].data == {**odd, "tuple": [1, 2]} and type(feed[0].data["big"]) is int
    same = store.read_stream("new-1")
    assert (feed[0].data, feed[0].metadata) == (same[0].data, same[0].metadata)
    assert feed[0].metadata == {"occurred_at": "2016-01-01T00:00:00+00:00", "source": "t"}
    assert feed[1].data == same[1].data and set(feed[1].metadata) == set(same[1].metadata) >= {"occurred_at"}
    with write_transaction(store.engine) as conn:  # append_batch takes them too
        result = store.append_batch(conn, [("enc-2", encode_events([NewEventFactory()]), ExpectedVersion.NO_STREAM)])
    assert result[0].version == 1 and len(store.read_stream("enc-2")) == 1


def test_single_stream_appends_refuse_encoded_events(store):
    from es_app.store import encode_events

    encoded = encode_events([NewEventFactory()])
    with pytest.raises(TypeError, match="append_batch"):
        store.append("enc-3", encoded)
    with pytest.raises(TypeError, match="append_batch"):
        with write_transaction(store.engine) as conn:
            store.append_in(conn, "enc-3", encoded)
    assert store.read_stream("enc-3") == []


def test_an_exact_re_append_of_a_batch_is_a_no_op_like_append(store):
    a, b = batch(2), batch(1)
    with write_transaction(store.engine) as conn:
        first = store.append_batch(conn, [("a-1", a, ExpectedVersion.ANY), ("b-1", b, ExpectedVersion.NO_STREAM)])
    with write_transaction(store.engine) as conn:  # the same batch again, plus a new item
        c = batch(1)
        again = store.append_batch(conn, [("a-1", a, ExpectedVersion.ANY), ("b-1", b, ExpectedVersion.NO_STREAM),
                                          ("a-1", c, ExpectedVersion.ANY)])
    assert [(r.stream_id, r.version, r.positions, r.written) for r in again[:2]] == [
        (r.stream_id, r.version, r.positions, False) for r in first]
    assert again[2].written and again[2].version == 3  # the new item lands right after the stored ones
    assert [e.event_id for e in store.read_stream("a-1")] == [e.event_id for e in a + c]
    with write_transaction(store.engine) as conn:
        recorded = store.append_batch_recorded(conn, [("b-1", b, ExpectedVersion.ANY)])
    assert recorded[0] == store.read_stream("b-1")


def test_a_reused_event_id_with_other_content_or_in_another_stream_is_an_id_conflict(store):
    from es_app.store import EventIdConflict, NewEvent

    a = batch(1)
    with write_transaction(store.engine) as conn:
        store.append_batch(conn, [("a-1", a, ExpectedVersion.NO_STREAM)])
    other = NewEvent(a[0].type, {"other": True}, event_id=a[0].event_id)
    for items in ([("a-1", [other], ExpectedVersion.ANY)], [("z-1", a, ExpectedVersion.NO_STREAM)]):
        with pytest.raises(EventIdConflict):
            with write_transaction(store.engine) as conn:
                store.append_batch(conn, items)
    assert store.stream_version("z-1") == 0 and store.stream_version("a-1") == 1


@pytest.mark.parametrize("call", ["append", "append_batch"])
def test_the_same_event_id_twice_in_one_call_is_an_id_conflict_not_a_version_error(store, call):
    from es_app.store import EventIdConflict

    e = batch(1)[0]
    with pytest.raises(EventIdConflict, match="twice"):
        if call == "append":
            store.append("s-1", [e, e], ExpectedVersion.ANY)
        else:
            with write_transaction(store.engine) as conn:
                store.append_batch(conn, [("s-1", [e], ExpectedVersion.ANY), ("s-2", [e], ExpectedVersion.ANY)])
    assert store.head_position() == 0
