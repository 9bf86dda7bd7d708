"""MySQL/MariaDB capture never skips a late commit: a fault test, and a control that shows the hazard.

InnoDB hands out AUTO_INCREMENT values at INSERT, not at COMMIT. A legacy transaction that
writes early and commits late holds a low `entry`; a reader moving its offset over `entry`
passes it by while it is open (the control). The changelog's public `id` is given after
commit by the sequencer, so the relay reading `id > offset` delivers every change exactly
once, in commit order per key. Real threads and connections throughout.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from es_app.store import EventStore, make_engine
from es_app.store.schema import events
from migrator import schema
from migrator.capture import changelog as capture
from migrator.mapping import USERS
from migrator.relay.runner import Relay
from migrator.verify import compare

pytestmark = pytest.mark.mysql

T = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
WAIT_S = 20


@pytest.fixture
def legacy(mysql_databases):
    url = mysql_databases.new()
    engine = make_engine(url)
    capture.install(engine, [USERS])
    yield engine
    engine.dispose()
    mysql_databases.drop(url)


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'es.db'}")
    schema.upgrade_all({"es": engine})
    yield EventStore(engine)
    engine.dispose()


def insert(conn, *ids):
    conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                      "VALUES (:id, :email, :name, 1, NULL, :t, :t)"),
                 [{"id": i, "email": f"u{i}@example.org", "name": f"User {i}", "t": T} for i in ids])


def rename(conn, key, name):
    conn.execute(text("UPDATE users SET full_name = :n WHERE id = :k"), {"n": name, "k": key})


class HeldOpen(threading.Thread):
    """A legacy transaction that writes at once and commits only when told to (or rolls back on an error)."""

    def __init__(self, engine, work):
        super().__init__(daemon=True)
        self.engine, self.work = engine, work
        self.wrote, self.release, self.done = threading.Event(), threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            with self.engine.begin() as conn:
                self.work(conn)
                self.wrote.set()
                assert self.release.wait(WAIT_S)
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.error = exc
        finally:
            self.wrote.set()
            self.done.set()


def changelog_rows(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT entry, id, pk, op, new_row FROM migrator_changelog ORDER BY entry")).all()


def relayed_ids(store):
    with store.engine.connect() as conn:
        return Counter(m["changelog_id"] for m in conn.execute(select(events.c.meta)).scalars()
                       if "changelog_id" in m)


def names(store, key):
    return [e.data.get("name") for e in store.read_stream(f"user-{key}")]


def test_a_transaction_committing_late_is_relayed_once_after_the_others_in_commit_order_per_key(legacy, store):
    with legacy.begin() as conn:
        insert(conn, 1, 2, 3)
    relay = Relay(USERS.bind(legacy), legacy, store)
    assert relay.drain().read == 3

    late = HeldOpen(legacy, lambda conn: rename(conn, 1, "Late"))  # its changelog entry is taken now ...
    late.start()
    assert late.wrote.wait(WAIT_S) and late.error is None
    # ... a second writer of key 1 queues behind it on the row lock; it commits after it
    behind = HeldOpen(legacy, lambda conn: rename(conn, 1, "After late"))
    behind.release.set()
    behind.start()
    for n in range(3):  # others commit meanwhile, and the relay runs
        with legacy.begin() as conn:
            rename(conn, 2, f"Two {n}")
            insert(conn, 10 + n)
        relay.drain()
    assert names(store, 2) == ["User 2", "Two 0", "Two 1", "Two 2"]
    assert names(store, 1) == ["User 1"] and relay.backlog() == 0
    assert not behind.done.is_set()  # still waiting for the late transaction's row lock

    late.release.set()  # ... which commits now, after the relay has gone past later entries
    assert late.done.wait(WAIT_S) and behind.done.wait(WAIT_S) and late.error is None and behind.error is None
    relay.drain()

    assert names(store, 1) == ["User 1", "Late", "After late"]  # delivered, once, in commit order
    rows = changelog_rows(legacy)
    counts = relayed_ids(store)
    assert sorted(counts) == sorted(r.id for r in rows) and set(counts.values()) == {1}
    late_row = next(r for r in rows if r.op == "U" and '"Late"' in r.new_row)
    earlier = [r for r in rows if r.entry > late_row.entry and r.pk != "1"]
    assert earlier and all(r.id < late_row.id for r in earlier)  # a later entry, committed first: a lower id
    assert compare(legacy, store, USERS.bind(legacy), [1, 2, 3, 10, 11, 12]).lines() == []


def test_control_reading_by_entry_skips_the_late_commit(legacy):
    """The hazard the sequencer removes: an offset over AUTO_INCREMENT values passes a row that commits late."""
    with legacy.begin() as conn:
        insert(conn, 1, 2)
    late = HeldOpen(legacy, lambda conn: rename(conn, 1, "Late"))
    late.start()
    assert late.wrote.wait(WAIT_S) and late.error is None
    with legacy.begin() as conn:
        rename(conn, 2, "Committed first")

    def naive_read(after):  # what a relay over AUTO_INCREMENT ids would do
        with legacy.connect() as conn:
            return conn.execute(text("SELECT entry, pk, new_row FROM migrator_changelog WHERE entry > :a "
                                     "ORDER BY entry"), {"a": after}).all()

    seen = naive_read(0)
    offset = seen[-1].entry
    assert [r.pk for r in seen] == ["1", "2", "2"]  # the late row is not visible: the offset moves past its entry
    with legacy.connect() as conn:  # the remedy, read at the same moment: ids given after commit
        by_id = capture.read_changes(conn, "users", 0)
    assert [c.pk for c in by_id] == ["1", "2", "2"]
    late.release.set()
    assert late.done.wait(WAIT_S) and late.error is None

    missed = naive_read(offset)
    assert missed == []  # the hazard: the late row is committed now, below the offset, and never read
    late_entry = next(r.entry for r in changelog_rows(legacy) if r.new_row and '"Late"' in r.new_row)
    assert late_entry < offset
    with legacy.connect() as conn:  # the remedy: it is numbered after everything read before
        (found,) = capture.read_changes(conn, "users", by_id[-1].id)
    assert (found.pk, found.new_row["full_name"]) == ("1", "Late")


def test_many_writers_holding_transactions_open_lose_and_repeat_nothing(legacy, store):
    keys = list(range(1, 7))
    with legacy.begin() as conn:
        insert(conn, *keys)
    relay = Relay(USERS.bind(legacy), legacy, store, batch_size=5)
    stop, errors = threading.Event(), []

    def relay_loop():
        try:
            while not stop.is_set():
                relay.drain()
                time.sleep(0.005)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def writer(seed):
        rnd = random.Random(seed)
        try:
            for n in range(12):
                with legacy.begin() as conn:
                    rename(conn, rnd.choice(keys), f"w{seed}-{n}")
                    time.sleep(rnd.random() * 0.03)  # held open while others commit
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    relayer = threading.Thread(target=relay_loop, daemon=True)
    writers = [threading.Thread(target=writer, args=(s,), daemon=True) for s in range(4)]
    relayer.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    stop.set()
    relayer.join(60)
    relay.drain()
    assert not errors, errors

    rows = changelog_rows(legacy)
    counts = relayed_ids(store)
    assert sorted(counts) == sorted(r.id for r in rows) and set(counts.values()) == {1}  # exactly once
    assert compare(legacy, store, USERS.bind(legacy), keys).lines() == []
    with legacy.connect() as conn:
        changes = capture.read_changes(conn, "users", 0, limit=10_000)
    last: dict[str, object] = {}
    for c in changes:  # per key, in id order, each change starts from the row the one before left
        if c.pk in last:
            assert c.old_row == last[c.pk]
        last[c.pk] = c.new_row


def test_a_committed_change_not_numbered_yet_is_pending_for_those_who_ask_by_key(legacy, store):
    from migrator.shadow.freshness import Freshness
    from migrator.verify.readmodel import USERS_VIEW

    with legacy.begin() as conn:
        insert(conn, 1)  # committed; no reader has numbered it yet
    with legacy.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM migrator_changelog WHERE id > 0")).scalar() == 0
        assert capture.backlog(conn, "users", 0) == 1
    freshness = Freshness(legacy, store, USERS.bind(legacy), USERS_VIEW)
    lag = freshness.key(1)
    assert lag.behind and lag.pending_change == 1 and freshness.feed().backlog == 1
    Relay(USERS.bind(legacy), legacy, store).drain()
    lag = freshness.key(1)
    assert lag.pending_change is None and lag.relayed_to == 1 and freshness.feed().backlog == 0


def test_a_snapshot_watermark_never_covers_a_change_the_snapshot_does_not_hold(legacy):
    """The backfill's watermark: numbered first in its snapshot, exact; read later, never above what it holds."""
    with legacy.begin() as conn:
        insert(conn, 1)
    with legacy.connect() as snap:
        snap = snap.execution_options(isolation_level="REPEATABLE READ")
        with snap.begin():
            watermark = capture.latest_change_id(snap)  # first: numbers, then the snapshot begins
            assert watermark == 1
            with legacy.begin() as conn:
                insert(conn, 2)  # committed after the snapshot: not in it
            assert capture.number_committed(legacy) == 0  # the snapshot's pass holds the counter: skipped
            assert [r[0] for r in snap.execute(text("SELECT id FROM users"))] == [1]
        assert capture.number_committed(legacy) == 1  # after the snapshot's commit
    with legacy.connect() as conn:
        assert capture.read_changes(conn, "users", watermark)[0].pk == "2"

    with legacy.connect() as snap:  # a snapshot that began before a pass numbered a row it does not hold
        snap = snap.execution_options(isolation_level="REPEATABLE READ")
        with snap.begin():
            assert [r[0] for r in snap.execute(text("SELECT id FROM users ORDER BY id"))] == [1, 2]
            with legacy.begin() as conn:
                insert(conn, 3)
            assert capture.number_committed(legacy) == 1  # user 3 gets id 3 from another pass
            with legacy.begin() as conn:
                insert(conn, 4)  # committed, not numbered, not in the snapshot either
            late = capture.latest_change_id(snap)
        assert late == 2  # not numbered over id 3, which the snapshot does not hold
    with legacy.connect() as conn:
        assert [c.pk for c in capture.read_changes(conn, "users", late)] == ["3", "4"]


def test_snapshot_watermarks_taken_among_writers_and_a_relay_cover_exactly_what_each_snapshot_holds(legacy, store):
    """The backfill's invariant under load: a snapshot holds exactly the changes with id <= its watermark."""
    keys = list(range(1, 6))
    with legacy.begin() as conn:
        insert(conn, *keys)
    relay = Relay(USERS.bind(legacy), legacy, store, batch_size=7)
    stop, errors, snapshots = threading.Event(), [], []

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        return run

    def writer(seed):
        rnd = random.Random(seed)
        for n in range(10):
            with legacy.begin() as conn:
                rename(conn, rnd.choice(keys), f"w{seed}-{n}")
                time.sleep(rnd.random() * 0.02)

    def relay_loop():
        while not stop.is_set():
            relay.drain()

    def snapshot_loop():
        while not stop.is_set():
            with legacy.connect() as snap:
                snap = snap.execution_options(isolation_level="REPEATABLE READ")
                with snap.begin():  # as the backfill reads a chunk: the watermark first, then the rows
                    watermark = capture.latest_change_id(snap)
                    held = set(snap.execute(text("SELECT entry FROM migrator_changelog")).scalars())
            snapshots.append((watermark, held))
            time.sleep(0.003)

    writers = [threading.Thread(target=guarded(lambda s=s: writer(s)), daemon=True) for s in range(3)]
    readers = [threading.Thread(target=guarded(relay_loop), daemon=True),
               threading.Thread(target=guarded(snapshot_loop), daemon=True)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(60)
    stop.set()
    for t in readers:
        t.join(60)
    assert not errors, errors
    relay.drain()
    final = {r.entry: r.id for r in changelog_rows(legacy)}
    assert len(snapshots) > 5 and all(i is not None for i in final.values())
    for watermark, held in snapshots:
        assert held == {e for e, i in final.items() if i <= watermark}
    assert set(relayed_ids(store).values()) == {1} and len(relayed_ids(store)) == len(final)


def test_a_zero_date_is_parked_with_its_reason_never_a_crash(legacy, store):
    """MySQL without NO_ZERO_DATE stores '0000-00-00': the change is parked with a reason, the other keys flow on."""
    from migrator.parking.entries import parked

    with legacy.begin() as conn:
        conn.execute(text("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'"))  # zero dates allowed
        insert(conn, 1)
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) "
                          "VALUES (2, 'z@example.org', 'Zero', 1, '0000-00-00 00:00:00', '0000-00-00 00:00:00')"))
    with legacy.connect() as conn:
        zero = capture.read_changes(conn, "users", 0)[-1]
    assert zero.new_row["created_at"] == "0000-00-00 00:00:00.000000"
    totals = Relay(USERS.bind(legacy), legacy, store).drain()
    assert (totals.read, totals.parked) == (2, 1)
    with store.engine.connect() as conn:
        (reason,) = conn.execute(select(parked.c.reason).where(parked.c.key == "2")).scalars()
    assert reason.startswith("mapping users: ")  # one line, the mapping's (see `migrator parked list`)
    assert names(store, 1) == ["User 1"]
