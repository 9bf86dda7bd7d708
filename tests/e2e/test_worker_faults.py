"""Servers mode for real: PostgreSQL, Redis and `celery worker` subprocesses.

Each test isolates its broker keys with a unique prefix (BROKER_KEY_PREFIX -> kombu's
global_keyprefix) and removes them afterwards; the workers are killed at teardown.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from es_app.bootstrap import build
from es_app.projections import caught_up, dead_letters, list_parked, read_model_position
from es_app.settings import Settings
from es_app.store import ExpectedVersion, NewEvent, write_transaction
from es_app.store.schema import events
from es_app.worker import close_publishers, publish_appended
from tests.conftest import REDIS_URL, require_redis
from tests.integration.projection_helpers import checkpoints, dump, expected_row, outbox, view_fields

from .celery_worker import CeleryWorker, clean_redis, new_prefix, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

DEAD_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def pg_url(postgres_databases):
    require_redis()
    return postgres_databases.new()


@pytest.fixture
def prefix():
    value = new_prefix()
    yield value
    close_publishers()
    clean_redis(value)


@pytest.fixture
def settings(pg_url, prefix) -> Settings:
    return Settings(es_database_url=pg_url, broker_url=REDIS_URL, broker_key_prefix=prefix)


@pytest.fixture
def es(settings):
    container = build(settings)
    yield container
    container.engine.dispose()


@pytest.fixture
def start_worker(pg_url, prefix, tmp_path):
    workers: list[CeleryWorker] = []

    def start(**settings: object) -> CeleryWorker:
        workdir = tmp_path / f"w{len(workers)}"
        workdir.mkdir()
        worker = CeleryWorker(pg_url, prefix, workdir, **{k: str(v) for k, v in settings.items()}).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def converge(es, workers, what: str = "the read model and the outbox to reach the head", timeout: float = 60):
    head = es.store.head_position()
    try:
        wait_until(lambda: caught_up(es.engine, head), what, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker logs ---\n" + "\n".join(w.log()[-4000:] for w in workers)) from None


def register_and_rename(es, settings, n: int, tag: str) -> list[str]:
    ids = []
    for i in range(n):
        r = es.user_service.register(f"{tag} {i}", f"{tag}.{i}.{uuid.uuid4().hex[:6]}@example.org")
        publish_appended(settings, r.position)
        r = es.user_service.execute(r.stream_id, lambda u, i=i: u.change_name(f"{tag} {i} renamed"))
        publish_appended(settings, r.position)
        ids.append(r.stream_id)
    return ids


def assert_read_model_complete(es, ids):
    rows = dump(es.engine)
    assert {uid: view_fields(rows[uid]) for uid in ids} == {uid: expected_row(es, uid) for uid in ids}
    welcomes = {n["stream_id"] for n in outbox(es.engine) if n["kind"] == "welcome"}
    assert welcomes == set(ids) and len(outbox(es.engine)) == len(ids)


def test_two_sharded_workers_make_the_read_model_converge(es, settings, start_worker):
    sharded = settings.model_copy(update={"projection_shards": 2})
    workers = [start_worker(projection_shards=2), start_worker(projection_shards=2)]
    ids = register_and_rename(es, sharded, 8, "Ann")
    converge(es, workers)
    assert_read_model_complete(es, ids)
    head = es.store.head_position()
    assert checkpoints(es.engine) == {"users:0/2": head, "users:1/2": head, "notifications": head}


def test_lost_wake_ups_and_a_dead_broker_only_delay_the_read_model(es, settings, start_worker):
    worker = start_worker(catch_up_interval_s=3600)  # no beat tick during the test
    before = register_and_rename(es, settings, 4, "Before")
    converge(es, [worker])
    dead = settings.model_copy(update={"broker_url": DEAD_BROKER})
    during = register_and_rename(es, dead, 6, "During")  # commands succeed; their wake-ups are lost
    assert len(during) == 6
    publish_appended(settings, es.store.head_position())  # the broker is back: one hint, no data in it
    converge(es, [worker])
    assert_read_model_complete(es, before + during)  # 0 events lost


def test_the_beat_catches_up_when_no_message_arrives_at_all(es, settings, start_worker):
    worker = start_worker(catch_up_interval_s=1)
    wait_until(lambda: "users" in checkpoints(es.engine), "the worker's start-up catch-up")
    silent = settings.model_copy(update={"broker_url": DEAD_BROKER})
    ids = register_and_rename(es, silent, 5, "Quiet")
    converge(es, [worker], "the beat's catch-up")
    assert_read_model_complete(es, ids)


def seed_quickly(es, users: int) -> list[str]:
    ids = [f"user-{uuid.uuid4()}" for _ in range(users)]
    for start in range(0, users, 1000):
        chunk = ids[start:start + 1000]
        with write_transaction(es.engine) as conn:
            es.store.append_batch(conn, [
                (uid, [NewEvent("UserRegistered", {"name": f"N{uid[-6:]}", "email": f"{uid[5:17]}@example.org"},
                                schema_version=2),
                       NewEvent("UserNameChanged", {"name": f"M{uid[-6:]}"})], ExpectedVersion.NO_STREAM)
                for uid in chunk])
    return ids


def assert_consistent_at_checkpoints(es) -> None:
    """Every read-model row reflects exactly the events up to its checkpoint: none missing, none beyond."""
    cps = checkpoints(es.engine)
    users_at, notes_at = cps.get("users", 0), cps.get("notifications", 0)
    with es.engine.connect() as conn:
        stored = conn.execute(select(events.c.stream_id, events.c.position, events.c.event_id,
                                     events.c.event_type)).all()
    expected_versions: dict[str, int] = {}
    for stream_id, position, _, _ in stored:
        if position <= users_at:
            expected_versions[stream_id] = expected_versions.get(stream_id, 0) + 1
    rows = dump(es.engine)
    assert {uid: r["version"] for uid, r in rows.items()} == expected_versions
    welcomed = {event_id for _, position, event_id, kind in stored if kind == "UserRegistered" and position <= notes_at}
    assert {n["event_id"] for n in outbox(es.engine)} == welcomed


def test_sigkill_mid_batch_leaves_no_duplicate_and_no_missing_change(es, start_worker):
    ids = seed_quickly(es, 2000)
    head = es.store.head_position()
    worker = start_worker(projection_batch_size=25)  # its start-up catch-up begins at once
    wait_until(lambda: 0 < read_model_position(es.engine) < head - 500, "the worker to be mid-run", interval=0.01)
    worker.kill()
    assert 0 < read_model_position(es.engine) < head
    assert_consistent_at_checkpoints(es)
    restarted = start_worker(projection_batch_size=500)
    converge(es, [worker, restarted])
    assert_consistent_at_checkpoints(es)
    rows = dump(es.engine)
    assert len(rows) == len(ids) and all(r["version"] == 2 and r["name"][0] == "M" for r in rows.values())
    assert len(outbox(es.engine)) == len(ids)


def test_a_poison_event_is_retried_with_backoff_then_parks_only_its_stream(es, settings, start_worker):
    worker = start_worker(projection_max_retries=2, projection_retry_backoff_s=0.1)
    a, b = register_and_rename(es, settings, 2, "P")
    es.store.append(a, [NewEvent("UserEmailChanged", {"mail": "oops"})])
    es.store.append(a, [NewEvent("UserNameChanged", {"name": "A waits"})])
    last = es.user_service.execute(b, lambda u: u.change_name("B flows"))
    publish_appended(settings, last.position)
    converge(es, [worker], "the projection to park the poison event and move on")
    letters = {d.projection: d for d in list_parked(es.engine)}
    assert sorted(letters) == ["notifications", "users"]  # the poison breaks both handlers
    letter = letters["users"]
    assert letter.stream_id == a and letter.attempts == 3  # the first try and two Celery retries
    assert letters["notifications"].attempts == 3 and letters["notifications"].position == letter.position
    rows = dump(es.engine)
    assert rows[b]["name"] == "B flows" and rows[a]["version"] == 2
    assert dead_letters.skip(es, letter.id).status == "skipped"
    assert dump(es.engine)[a]["name"] == "A waits"
    assert "Retry in" in worker.log() or "retrying in" in worker.log()
