"""The projection tasks' check: a wake-up whose position the checkpoints already passed runs nothing."""

from __future__ import annotations

import pytest

from es_app.bootstrap import engine_for
from es_app.projections import run_projections
from es_app.projections.checkpoints import positions_now
from es_app.worker.app import NOTIFICATIONS_QUEUE, PROJECTIONS_QUEUE
from es_app.worker.tasks import catch_up_queue

from .projection_helpers import container, counting_write_transactions, register


@pytest.fixture
def url(new_database_url):
    url = new_database_url("es")
    yield url
    engine_for(url).dispose()


def test_positions_now_reads_every_checkpoint_asked_for(url):
    es = container(url, catch_up_interval_s=3600)
    assert positions_now(es.engine, ["users", "notifications"]) == [None, None]  # before the first run
    register(es, "Ann")
    run_projections(es)
    head = es.store.head_position()
    assert positions_now(es.engine, ["notifications", "nope", "users"]) == [head, None, head]


def test_a_wake_up_the_checkpoints_passed_runs_nothing_and_a_later_one_runs(url, monkeypatch):
    es = container(url, catch_up_interval_s=3600)
    register(es, "Ann")
    run_projections(es)
    passed = es.store.head_position()
    opened = counting_write_transactions(monkeypatch)
    assert catch_up_queue(es, PROJECTIONS_QUEUE, position=passed) == 0
    assert catch_up_queue(es, NOTIFICATIONS_QUEUE, position=passed) == 0
    assert opened == []  # no checkpoint lock taken
    register(es, "Bob")
    later = es.store.head_position()
    assert catch_up_queue(es, PROJECTIONS_QUEUE, position=later) == 1
    assert catch_up_queue(es, NOTIFICATIONS_QUEUE, position=later) == 1
    assert len(opened) == 2
    assert positions_now(es.engine, ["users", "notifications"]) == [later, later]
