"""Gap safety on PostgreSQL, by fault injection.

A sequence hands out positions at INSERT time, but transactions commit in any order. If an
appender holding position N is still open while later positions commit, a reader tailing
`read_all(after=checkpoint)` moves its checkpoint past N and never sees N. The store prevents
that with a transaction-scoped advisory lock taken before the version read and held to commit
(docs/architecture.md, "Gap safety"). The control turns the lock off and shows the skip.
"""

from __future__ import annotations

from typing import Callable

import pytest
from sqlalchemy import Connection

from es_app.store import EventStore, ExpectedVersion, RecordedEvent, make_engine, write_transaction
from tests.conftest import require_postgres
from tests.factories import NewEventFactory
from tests.integration.store_threads import Threads, advisory_lock_waiters, wait_until

pytestmark = pytest.mark.postgres

OTHERS = 4


@pytest.fixture
def pg_engine(request):
    require_postgres()
    databases = request.getfixturevalue("postgres_databases")
    engine = make_engine(databases.new())
    yield engine
    engine.dispose()


class Tailer:
    """Reads the global feed the way a projection does: after its checkpoint, page by page."""

    def __init__(self, store: EventStore):
        self.store, self.checkpoint, self.seen = store, 0, []

    def poll(self) -> list[RecordedEvent]:
        new = []
        while page := self.store.read_all(after=self.checkpoint, limit=2):
            new += page
            self.checkpoint = page[-1].position
        self.seen += new
        return new


def held_by_append_in(store: EventStore, conn: Connection, stream_id: str) -> None:
    store.append_in(conn, stream_id, [NewEventFactory()], ExpectedVersion.NO_STREAM)


def held_by_append_batch(store: EventStore, conn: Connection, stream_id: str) -> None:
    store.append_batch(conn, [(stream_id, [NewEventFactory()], ExpectedVersion.NO_STREAM)])


HOLDERS = {"append_in": held_by_append_in, "append_batch": held_by_append_batch}


def hold_one_append_open(store: EventStore, hold: Callable, *,
                         lock_waits: bool) -> tuple[Tailer, list[RecordedEvent]]:
    """The fault: one appender has inserted and stays open while OTHERS append on their threads
    and the tailer polls; then it commits and the tailer polls again.

    Returns the tailer and what it saw while the held transaction was open."""
    tailer = Tailer(store)
    store.append("before-1", [NewEventFactory()])
    assert len(tailer.poll()) == 1
    others = Threads()
    with write_transaction(store.engine) as held:
        hold(store, held, "held-1")
        for i in range(OTHERS):
            others.start(store.append, f"other-{i}", [NewEventFactory()], ExpectedVersion.NO_STREAM)
        if lock_waits:  # serialized: every other appender queues behind the held transaction
            wait_until(lambda: advisory_lock_waiters(store.engine) == OTHERS, "all others wait for the lock")
        else:  # unserialized: the others commit positions after the held one's
            others.join()
        seen_while_held = tailer.poll()
    others.join()
    tailer.poll()
    return tailer, seen_while_held


@pytest.mark.parametrize("hold", HOLDERS.values(), ids=HOLDERS.keys())
def test_a_tailer_sees_every_event_once_when_an_early_append_commits_late(pg_engine, hold):
    store = EventStore(pg_engine)
    tailer, seen_while_held = hold_one_append_open(store, hold, lock_waits=True)

    stored = store.read_all(limit=100)
    assert seen_while_held == []  # nothing could become visible past the open append
    assert len(stored) == 2 + OTHERS
    assert [e.event_id for e in tailer.seen] == [e.event_id for e in stored]  # each once, in order
    assert "held-1" in [e.stream_id for e in tailer.seen]
    positions = [e.position for e in tailer.seen]
    assert positions == sorted(positions)
    # the lock made positions follow commit order: the held append, which committed first
    # among the contenders, holds the lowest position after "before-1"
    assert tailer.seen[1].stream_id == "held-1"


@pytest.mark.parametrize("hold", HOLDERS.values(), ids=HOLDERS.keys())
def test_control_without_the_lock_the_tailer_skips_the_late_commit(pg_engine, hold):
    store = EventStore(pg_engine, serialize_appends=False)
    tailer, seen_while_held = hold_one_append_open(store, hold, lock_waits=False)

    stored = store.read_all(limit=100)
    held = [e for e in stored if e.stream_id == "held-1"]
    assert len(stored) == 2 + OTHERS and len(held) == 1  # it is in the store...
    assert held[0].event_id not in [e.event_id for e in tailer.seen]  # ...but the tailer skipped it
    assert held[0].position < tailer.checkpoint
    assert {e.stream_id for e in seen_while_held} == {f"other-{i}" for i in range(OTHERS)}
    assert len(tailer.seen) == 1 + OTHERS
