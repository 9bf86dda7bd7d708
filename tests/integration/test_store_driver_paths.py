"""The store's driver-level hot paths (es_app/store/driver.py) keep the guarantees of the Core paths.

JSON stays exact, driver errors come out as SQLAlchemy's, PostgreSQL connections lent out
for autocommit reads go back to the pool in transaction mode, idle pooled connections cut
by the server are replaced, and SQLite writers of one process take turns without losing events.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from es_app.domain import UPCASTERS, User, UserState
from es_app.store import (
    EventStore,
    ExpectedVersion,
    NewEvent,
    Repository,
    SnapshotStore,
    UpcasterRegistry,
    make_engine,
    write_transaction,
)
from tests.conftest import require_postgres

HUGE = 2**70 + 1  # beyond 64 bits: orjson alone would read it back as a float


@pytest.fixture
def store(es_engine) -> EventStore:
    return EventStore(es_engine, UpcasterRegistry(UPCASTERS))


def test_big_integers_and_unicode_round_trip_exactly(store):
    data = {"n": HUGE, "nested": [{"m": -HUGE}, 1.5, 7], "name": "Zoë ✓", "1": None}
    store.append("thing-1", [NewEvent("Thing", data, {"actor": "ann", "big": HUGE})], 0)
    store.append("thing-1", [NewEvent("Thing", {"plain": 1}), NewEvent("Thing", {"plain": 2})], 1)
    read = store.read_stream("thing-1")
    assert read[0].data == data and type(read[0].data["n"]) is int
    assert read[0].metadata["big"] == HUGE
    assert [e.data for e in read[1:]] == [{"plain": 1}, {"plain": 2}]
    assert [e.data for e in store.read_all(after=0)] == [data, {"plain": 1}, {"plain": 2}]


def test_snapshot_and_tail_come_from_one_read(store, es_engine):
    repo = Repository(store, SnapshotStore(es_engine), User, UserState, snapshot_every=4)
    user = User.register("user-1", "Ann", "ann@example.org")
    repo.save(user)
    for i in range(6):
        user.change_name(f"Ann {i}")
        repo.save(user)
    snap, tail = store.read_from_snapshot("user-1", User.snapshot_schema_version)
    assert snap is not None and snap.version == 4
    assert [e.version for e in tail] == [5, 6, 7]
    assert repo.load("user-1").state.name == "Ann 5"
    old, tail = store.read_from_snapshot("user-1", User.snapshot_schema_version, to_version=3)
    assert old is None and [e.version for e in tail] == [1, 2, 3]
    assert repo.load("user-1", version=3).state.name == "Ann 1"
    other, tail = store.read_from_snapshot("user-1", User.snapshot_schema_version + 1)
    assert other is None and len(tail) == 7


def test_a_duplicate_event_id_inside_a_caller_transaction_raises_sqlalchemy_integrity_error(store):
    event = NewEvent("Thing", {"n": 1})
    store.append("thing-1", [event])
    with pytest.raises(IntegrityError):
        with write_transaction(store.engine) as conn:
            store.append_in(conn, "thing-2", [NewEvent("Thing", {"n": 2}), event], ExpectedVersion.NO_STREAM)
    assert store.read_stream("thing-2") == []


def test_connections_lent_for_reads_go_back_in_transaction_mode(store, es_engine):
    with es_engine.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (n INTEGER)"))
    for _ in range(3):  # every pooled connection has served a read
        store.read_all(after=0)
        store.read_stream("nothing")
    with pytest.raises(RuntimeError):
        with write_transaction(es_engine) as conn:
            conn.execute(text("INSERT INTO scratch (n) VALUES (1)"))
            raise RuntimeError("abort")
    with es_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM scratch")).scalar() == 0


@pytest.mark.postgres
def test_an_idle_connection_cut_by_the_server_is_replaced(request):
    require_postgres()
    url = request.getfixturevalue("postgres_databases").new()
    engine = make_engine(url, ping_after_idle_s=0.0, pool_size=2)
    admin = make_engine(url, pool_size=1)
    try:
        store = EventStore(engine)
        store.append("thing-1", [NewEvent("Thing", {"n": 1})], 0)
        dbname = url.rpartition("/")[2]
        with admin.connect() as conn:
            cut = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": dbname}).scalar()
        assert cut >= 1
        assert store.append("thing-1", [NewEvent("Thing", {"n": 2})], 1).version == 2
        assert [e.data["n"] for e in store.read_stream("thing-1")] == [1, 2]
    finally:
        engine.dispose()
        admin.dispose()


def test_sqlite_writers_in_threads_lose_nothing(tmp_path):
    from migrator import schema

    engine = make_engine(f"sqlite:///{tmp_path / 'es.db'}")
    schema.upgrade_all({"es": engine})
    store = EventStore(engine)
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(25):
                store.append(f"thing-{t}", [NewEvent("Thing", {"t": t, "i": i})], i)
                with write_transaction(engine) as conn:
                    store.append_in(conn, f"other-{t}", [NewEvent("Thing", {"i": i})], i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    feed = store.read_all(after=0, limit=10_000)
    assert [e.position for e in feed] == list(range(1, 301))
    for t in range(6):
        assert [e.data["i"] for e in store.read_stream(f"thing-{t}")] == list(range(25))
    engine.dispose()


@pytest.mark.postgres
def test_a_failed_connect_comes_out_as_sqlalchemy_operational_error():
    require_postgres()
    from sqlalchemy.exc import OperationalError

    from tests.conftest import PG_URL

    engine = make_engine(f"{PG_URL.rpartition('/')[0]}/no_such_database_here")
    try:
        with pytest.raises(OperationalError):
            EventStore(engine).append("thing-1", [NewEvent("Thing", {})])
        with pytest.raises(OperationalError):
            EventStore(engine).read_all(after=0)
    finally:
        engine.dispose()
