"""The store under concurrent writers on real threads: no lost or duplicated version, every loser
told the actual version, and a tailer of the global feed that sees every event once, in order."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict

import pytest

from es_app.store import ConcurrencyError, EventStore, write_transaction
from tests.factories import NewEventFactory
from tests.integration.store_threads import Threads, advisory_lock_waiters, wait_until

WRITERS = 16
STREAMS = 4  # writer i works on stream i % STREAMS: four writers per stream


@pytest.fixture
def store(es_engine) -> EventStore:
    return EventStore(es_engine)


def stream_of(writer: int) -> str:
    return f"shared-{writer % STREAMS}"


def test_writers_in_lockstep_on_shared_streams_one_wins_per_round(store):
    """Each round every writer reads its stream's version, waits for all, then appends at version+1:
    exactly one of the four writers of a stream wins, the three others learn the actual version."""
    rounds = 5
    barrier = threading.Barrier(WRITERS, timeout=60)

    def writer(i: int) -> list[tuple[int, int | None, object]]:
        outcomes = []
        for _ in range(rounds):
            version = store.stream_version(stream_of(i))
            event = NewEventFactory(metadata={"writer": i})
            barrier.wait()
            try:
                result = store.append(stream_of(i), [event], version)
                outcomes.append((version, None, (result.version, event.event_id)))
            except ConcurrencyError as exc:
                outcomes.append((version, exc.actual, None))
            barrier.wait()  # the round is over for everyone before anyone reads again
        return outcomes

    threads = Threads()
    for i in range(WRITERS):
        threads.start(writer, i)
    outcomes = threads.join()

    for s in range(STREAMS):
        stored = store.read_stream(f"shared-{s}")
        assert [e.version for e in stored] == list(range(1, rounds + 1))
        by_version = {e.version: e.event_id for e in stored}
        mine = [o for i, per_writer in enumerate(outcomes) if i % STREAMS == s for o in per_writer]
        wins = [won for _, _, won in mine if won]
        losers = [(expected, actual) for expected, actual, won in mine if not won]
        assert sorted(v for v, _ in wins) == list(range(1, rounds + 1))  # one winner per round
        assert all(by_version[v] == event_id for v, event_id in wins)  # stored where it was told
        assert len(losers) == rounds * (WRITERS // STREAMS - 1)
        assert all(actual == expected + 1 for expected, actual in losers)


def test_free_running_writers_retry_until_every_event_is_in_exactly_once(store):
    per_writer = 6
    barrier = threading.Barrier(WRITERS, timeout=60)

    def writer(i: int) -> tuple[list[str], list[tuple[int, int]]]:
        landed, conflicts = [], []
        barrier.wait()
        for _ in range(per_writer):
            event = NewEventFactory(metadata={"writer": i})
            while True:
                version = store.stream_version(stream_of(i))
                try:
                    store.append(stream_of(i), [event], version)
                    break
                except ConcurrencyError as exc:
                    conflicts.append((version, exc.actual))
            landed.append(event.event_id)
        return landed, conflicts

    threads = Threads()
    for i in range(WRITERS):
        threads.start(writer, i)
    results = threads.join()

    finals = {s: store.stream_version(f"shared-{s}") for s in range(STREAMS)}
    for s in range(STREAMS):
        stored = store.read_stream(f"shared-{s}")
        assert [e.version for e in stored] == list(range(1, per_writer * WRITERS // STREAMS + 1))
        landed = [eid for i, (ids, _) in enumerate(results) if i % STREAMS == s for eid in ids]
        assert Counter(e.event_id for e in stored) == Counter(landed)  # nothing lost, nothing twice
        for i, (_, conflicts) in enumerate(results):
            if i % STREAMS == s:
                assert all(expected < actual <= finals[s] for expected, actual in conflicts)
    assert len(store.read_all(limit=10_000)) == WRITERS * per_writer


def test_a_tailer_sees_every_event_of_distinct_stream_writers_once_in_position_order(store):
    writers, per_writer = 8, 25
    done = threading.Event()
    barrier = threading.Barrier(writers + 1, timeout=60)

    def writer(i: int) -> list[str]:
        ids = []
        barrier.wait()
        for n in range(per_writer):
            event = NewEventFactory(data={"writer": i, "n": n})
            store.append(f"own-{i}", [event], n)
            ids.append(event.event_id)
        return ids

    def tailer() -> list:
        seen, checkpoint = [], 0
        barrier.wait()
        while True:
            finished = done.is_set()  # read before the feed: a last pass after all writers finished
            page = store.read_all(after=checkpoint, limit=7)
            seen += page
            if page:
                checkpoint = page[-1].position
            elif finished:
                return seen
            else:
                time.sleep(0.002)

    writer_threads, tail_thread = Threads(), Threads()
    tail_thread.start(tailer)
    for i in range(writers):
        writer_threads.start(writer, i)
    written = writer_threads.join()
    done.set()
    [seen] = tail_thread.join()

    positions = [e.position for e in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert Counter(e.event_id for e in seen) == Counter(eid for ids in written for eid in ids)
    assert [e.event_id for e in seen] == [e.event_id for e in store.read_all(limit=10_000)]
    per_stream = defaultdict(list)
    for e in seen:
        per_stream[e.stream_id].append(e.data["n"])
    assert all(ns == list(range(per_writer)) for ns in per_stream.values()) and len(per_stream) == writers


def test_a_retry_while_the_first_attempt_is_still_in_flight_writes_once(store, backend):
    """The first attempt has inserted but not committed when the caller, tired of waiting, retries."""
    attempt = NewEventFactory.build_batch(2)
    inserted, release = threading.Event(), threading.Event()

    def first_attempt() -> None:
        with write_transaction(store.engine) as conn:
            store.append_in(conn, "user-1", attempt, 0)
            inserted.set()
            release.wait(60)

    first, retry = Threads(), Threads()
    first.start(first_attempt)
    assert inserted.wait(60)
    retry.start(store.append, "user-1", attempt, 0)
    if backend == "postgres":
        wait_until(lambda: advisory_lock_waiters(store.engine) == 1, "the retry waits for the first attempt")
    release.set()
    first.join()
    [retried] = retry.join()

    stored = store.read_stream("user-1")
    assert [e.event_id for e in stored] == [e.event_id for e in attempt]
    assert (retried.written, retried.version, retried.positions) == (False, 2, tuple(e.position for e in stored))
