"""Embedded mode (no BROKER_URL): the same task code runs on a background thread of this process."""

from __future__ import annotations

import pytest

from es_app.bootstrap import engine_for
from es_app.projections import caught_up, list_parked, read_model_position
from es_app.store import NewEvent
from es_app.store.engine import checkpoint_wal
from es_app.worker import embedded_worker, publish_appended, stop_embedded
from tests.e2e.celery_worker import wait_until

from .projection_helpers import (
    assert_projected,
    container,
    counting_write_transactions,
    dump,
    register,
    sqlite_log_frames,
)


@pytest.fixture
def url(new_database_url):
    url = new_database_url("es")
    yield url
    stop_embedded()
    engine_for(url).dispose()


def test_publish_after_commit_wakes_the_in_process_worker(url):
    es = container(url)
    assert es.settings.embedded
    ids = []
    for i in range(3):
        uid = register(es, f"U{i}")
        r = es.user_service.execute(uid, lambda u, i=i: u.change_name(f"U{i} renamed"))
        publish_appended(es.settings, r.position)
        ids.append(uid)
    head = es.store.head_position()
    wait_until(lambda: caught_up(es.engine, head), "the embedded worker to reach the head")
    assert_projected(es, ids)


def test_the_embedded_worker_catches_up_without_any_wake_up(url):
    es = container(url, catch_up_interval_s=0.2)
    embedded_worker(es.settings)  # started once, e.g. by the API at start-up
    uid = register(es)
    head = es.store.head_position()
    wait_until(lambda: read_model_position(es.engine) >= head, "the periodic catch-up")
    assert dump(es.engine)[uid]["version"] == 1


def test_a_poison_event_is_retried_then_parked_in_embedded_mode_too(url):
    es = container(url, projection_max_retries=2, projection_retry_backoff_s=0.01)
    a, b = register(es, "Ann"), register(es, "Bob")
    es.store.append(a, [NewEvent("UserEmailChanged", {"mail": "oops"})])
    r = es.user_service.execute(b, lambda u: u.change_name("Bobby"))
    publish_appended(es.settings, r.position)
    wait_until(lambda: caught_up(es.engine, r.position), "the embedded worker to park and move on")
    letters = {d.projection: d for d in list_parked(es.engine)}
    assert sorted(letters) == ["notifications", "users"]
    assert letters["users"].stream_id == a and letters["users"].attempts == 3
    assert dump(es.engine)[b]["name"] == "Bobby"


def test_wake_ups_close_together_share_one_run_and_a_lone_one_runs_at_once(url, monkeypatch):
    import threading
    import time

    from es_app.worker.embedded import EmbeddedWorker

    runs: list[float] = []
    ran = threading.Event()

    def counted(self) -> None:
        runs.append(time.monotonic())
        ran.set()

    monkeypatch.setattr(EmbeddedWorker, "run_once", counted)
    es = container(url, embedded_coalesce_ms=300, catch_up_interval_s=3600)
    worker = embedded_worker(es.settings)
    woken = time.monotonic()
    worker.wake()  # after a quiet spell: at once
    assert ran.wait(5) and runs[0] - woken < 0.25
    for _ in range(20):  # a burst within the window: one more run, at its end
        worker.wake()
    assert worker.wait_idle(5)
    assert len(runs) == 2 and runs[1] - runs[0] >= 0.29


def test_the_projection_task_copies_the_sqlite_log_into_the_database_itself(url, backend):
    from es_app.worker.tasks import project

    es = container(url)
    for i in range(5):
        register(es, f"U{i}")
    if backend != "sqlite":
        assert checkpoint_wal(es.engine) is False  # nothing to do on PostgreSQL
        return
    path = es.engine.url.database
    frames, copied = sqlite_log_frames(path)
    assert frames > copied  # the commands' pages wait in the log, short of SQLite's automatic checkpoint
    project.apply(kwargs={"es_url": url})  # what a wake-up runs, embedded or in a worker
    frames, copied = sqlite_log_frames(path)
    assert frames == copied > 0  # copied by the task, not by the next command's commit
    assert checkpoint_wal(es.engine, every_s=3600) is False  # at most once per `every_s`


@pytest.fixture
def started(url):
    """Yields (container, a started embedded worker of its database), the worker stopped after."""
    from es_app.worker.embedded import EmbeddedWorker

    es = container(url, catch_up_interval_s=3600)
    worker = EmbeddedWorker(es.settings)
    yield es, worker
    worker.stop()


def test_a_run_after_a_few_commands_is_one_write_transaction(started, monkeypatch):
    es, worker = started
    worker.run_once()  # the layout, and whatever a first run finds
    ids = [register(es, f"U{i}") for i in range(3)]
    es.user_service.execute(ids[0], lambda u: u.change_name("Renamed"))
    opened = counting_write_transactions(monkeypatch)
    worker.run_once()
    assert len(opened) == 1  # the read model's batch and the outbox's, together
    assert_projected(es, ids)


def test_a_backlog_beyond_the_first_batches_is_caught_up_in_the_same_run(started, monkeypatch):
    from es_app.projections import runner

    es, worker = started
    ids = [register(es, f"U{i}") for i in range(7)]
    first = runner.run_first_batches
    monkeypatch.setattr("es_app.worker.embedded.run_first_batches",
                        lambda *a, **kw: first(*a, **{**kw, "batch_size": 3}))
    opened = counting_write_transactions(monkeypatch)
    worker.run_once()
    assert len(opened) > 1  # 3 of 7 together, the rest by each queue's own run
    assert_projected(es, ids)


def test_a_first_batch_of_many_new_users_goes_with_the_commit_too(started, monkeypatch):
    # From COPY_AT_LEAST new rows PostgreSQL's upsert would COPY them, which a pipeline cannot carry:
    # with the batch's writes pipelined with the COMMIT they go by the upsert instead.
    from es_app.dialect.postgres import COPY_AT_LEAST

    es, worker = started
    worker.run_once()  # the layout
    ids = [register(es, f"U{i}") for i in range(COPY_AT_LEAST + 20)]
    opened = counting_write_transactions(monkeypatch)
    worker.run_once()
    assert len(opened) == 1  # all of them in the first batches' transaction
    assert_projected(es, ids)
