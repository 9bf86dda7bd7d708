"""The projection runner on both backends: every event type, atomic checkpoints, replays, shards."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, update

from es_app.projections import (
    projection_status,
    read_model_position,
    run_projection,
    run_projections,
    shard_of,
)
from es_app.projections import runner as runner_module
from es_app.projections.registry import get_projection
from es_app.projections.tables import projection_checkpoints, users_view
from es_app.store import NewEvent

from .projection_helpers import (
    checkpoints,
    container,
    dump,
    expected_row,
    outbox,
    register,
    seed_every_event_type,
    seed_users,
    view_fields,
)


@pytest.fixture
def es(new_database_url):
    c = container(new_database_url("es"))
    yield c
    c.engine.dispose()  # give the server its connections back


def test_every_user_event_type_projects_like_a_replay_of_its_stream(es):
    ids = seed_every_event_type(es)
    applied = run_projections(es, names=["users"])
    assert applied == 11
    rows = dump(es.engine)
    assert sorted(rows) == sorted(ids)
    for uid in ids:
        assert view_fields(rows[uid]) == expected_row(es, uid)
    a, b, imported = ids
    assert rows[a]["name"] == "Anna Maria" and rows[a]["phone"] == "+1 555 0100" and rows[a]["active"]
    assert rows[b]["deleted"] is True  # a deleted user keeps its row
    assert rows[imported]["legacy_key"] == "42" and rows[imported]["extra"] == {"shoe_size": 44}
    assert rows[a]["position"] == es.store.read_stream(a)[-1].position
    assert read_model_position(es.engine) == es.store.head_position()


def test_replaying_everything_again_changes_nothing(es):
    seed_every_event_type(es)
    seed_users(es, 5)
    run_projections(es)
    before, notes = dump(es.engine), outbox(es.engine)
    with es.engine.begin() as conn:
        conn.execute(update(projection_checkpoints).values(position=0))
    assert run_projections(es, batch_size=4, names=["users"]) == 0
    run_projections(es, names=["notifications"])
    assert dump(es.engine) == before
    assert outbox(es.engine) == notes
    assert read_model_position(es.engine) == es.store.head_position()


def test_the_read_model_and_its_checkpoint_commit_together(es, monkeypatch):
    ids = seed_users(es, 3)

    def broken_save(*args, **kwargs):
        raise RuntimeError("crash between the read-model write and the checkpoint")

    monkeypatch.setattr(runner_module, "save_position", broken_save)
    monkeypatch.setattr(runner_module, "save_locked_position", broken_save)  # inside writes_with_commit
    with pytest.raises(RuntimeError):
        run_projections(es, names=["users"])
    assert dump(es.engine) == {}
    assert checkpoints(es.engine).get("users", 0) == 0
    monkeypatch.undo()
    assert run_projections(es, names=["users"]) == 6
    assert sorted(dump(es.engine)) == sorted(ids)


def test_one_batch_at_a_time_resumes_from_the_checkpoint(es):
    seed_users(es, 4)  # 8 events
    users = get_projection("users")
    assert run_projection(es.engine, es.store, users, until_head=False, batch_size=3) == 3
    assert checkpoints(es.engine)["users"] == 3
    assert sum(r["version"] for r in dump(es.engine).values()) == 3
    assert run_projection(es.engine, es.store, users, batch_size=3) == 5
    assert checkpoints(es.engine)["users"] == 8


def test_events_of_other_categories_still_move_the_checkpoint_to_the_head(es):
    register(es)
    es.store.append("order-1", [NewEvent("OrderPlaced", {"n": 1}), NewEvent("OrderPaid", {"n": 1})])
    run_projections(es)
    head = es.store.head_position()
    assert checkpoints(es.engine) == {"users": head, "notifications": head}
    assert {s.name: s.lag for s in projection_status(es)} == {"users": 0, "notifications": 0}


def test_shards_split_the_streams_without_overlap_and_keep_their_own_checkpoints(es):
    ids = seed_users(es, 12, ids=[f"user-{i:04d}" for i in range(12)])  # fixed ids: a fixed spread
    owners = {uid: shard_of(uid, 3) for uid in ids}
    assert sorted(owners.values()).count(0) >= 2 and len(set(owners.values())) == 3
    applied0 = run_projections(es, shard=0, shards=3, names=["users"])
    assert sorted(dump(es.engine)) == sorted(uid for uid, s in owners.items() if s == 0)
    assert applied0 == 2 * sum(1 for s in owners.values() if s == 0)
    assert read_model_position(es.engine) == 0  # the other shards have not run yet
    applied = [applied0, 0, 0]
    errors = []

    def run(shard: int) -> None:
        try:
            applied[shard] = run_projections(es, shard=shard, shards=3, names=["users"], batch_size=5)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(applied) == 24  # each event applied exactly once over all shards
    rows = dump(es.engine)
    assert {uid: view_fields(rows[uid]) for uid in ids} == {uid: expected_row(es, uid) for uid in ids}
    head = es.store.head_position()
    assert checkpoints(es.engine) == {"users:0/3": head, "users:1/3": head, "users:2/3": head}
    assert read_model_position(es.engine) == head
    assert [s.name for s in projection_status(es) if s.projection == "users"] == ["users:0/3", "users:1/3",
                                                                                 "users:2/3"]


def test_a_new_shard_count_starts_where_the_old_layout_safely_was(es):
    seed_users(es, 3)
    run_projections(es, names=["users"])
    first = es.store.head_position()
    later = seed_users(es, 3)
    run_projections(es, shard=1, shards=2, names=["users"])
    cps = checkpoints(es.engine)
    assert set(cps) == {"users:0/2", "users:1/2"}  # the unsharded row is gone
    assert cps["users:0/2"] == first and cps["users:1/2"] == es.store.head_position()
    assert read_model_position(es.engine) == first
    run_projections(es, shard=0, shards=2, names=["users"])
    assert set(later) <= set(dump(es.engine))
    assert read_model_position(es.engine) == es.store.head_position()


def test_bad_shard_arguments_are_refused(es):
    for shard, shards in ((3, 3), (None, 2), (-1, 2), (1, None)):
        with pytest.raises(ValueError):
            run_projections(es, shard=shard, shards=shards)


def test_notifications_are_written_once_per_event_id(es):
    a = register(es, "Ann")
    es.user_service.execute(a, lambda u: u.change_email("ann.new@example.org"))
    es.user_service.execute(a, lambda u: u.change_name("Anne"))  # no side effect
    assert run_projections(es, names=["notifications"]) == 2
    notes = outbox(es.engine)
    assert sorted(n["kind"] for n in notes) == ["email-changed", "welcome"]
    welcome = next(n for n in notes if n["kind"] == "welcome")
    assert welcome["payload"]["subject"] == "Welcome, Ann!" and welcome["stream_id"] == a
    with es.engine.begin() as conn:
        conn.execute(update(projection_checkpoints).values(position=0))
    run_projections(es, names=["notifications"])
    assert outbox(es.engine) == notes


def test_a_page_read_ahead_is_used_only_if_it_starts_at_the_locked_checkpoint(es):
    from concurrent.futures import Future

    from es_app.projections.runner import FeedPage, read_page, run_batch
    from es_app.store import write_transaction

    seed_users(es, 3)  # 6 events
    users = get_projection("users")
    stale = Future()
    stale.set_result(read_page(es.store, users, 0, 100))  # read before another runner moved on
    assert run_projection(es.engine, es.store, users, until_head=False, batch_size=4) == 4
    with write_transaction(es.engine) as conn:
        result, following = run_batch(conn, es.store, users, batch_size=4, ahead=stale,
                                      read_ahead=lambda after: pytest.fail("at the head: nothing to read ahead"))
    assert (result.read, result.applied, result.position, following) == (2, 2, 6, None)
    fresh = Future()
    fresh.set_result(FeedPage(6, 6, []))
    with write_transaction(es.engine) as conn:
        result, _ = run_batch(conn, es.store, users, ahead=fresh)
    assert (result.at_head, result.applied, result.position) == (True, 0, 6)


def test_a_checkpoint_moved_back_by_another_process_is_read_from_where_it_stands(es):
    ids = seed_users(es, 3)
    run_projections(es, names=["users"])  # this process last left the checkpoint at the head
    with es.engine.begin() as conn:  # as an operator's reset in another process would
        conn.execute(update(projection_checkpoints).where(projection_checkpoints.c.name == "users").values(position=0))
        conn.execute(users_view.delete())
    assert run_projections(es, names=["users"]) == 6  # not the empty page after where this process left it
    assert sorted(dump(es.engine)) == sorted(ids)
    assert read_model_position(es.engine, "users") == es.store.head_position()


def test_a_layout_replaced_under_a_process_is_laid_out_again_on_its_next_run(es):
    seed_users(es, 2)
    run_projections(es, names=["users"])  # this process now knows the unsharded layout
    run_projections(es, shard=0, shards=2, names=["users"])  # as another worker's shard count would
    assert set(checkpoints(es.engine)) == {"users:0/2", "users:1/2"}
    later = seed_users(es, 2)
    run_projections(es, names=["users"])  # the layout it knew is gone: laid out again, from the lowest
    assert set(checkpoints(es.engine)) == {"users"}
    assert set(later) <= set(dump(es.engine))
    assert read_model_position(es.engine) == es.store.head_position()


def test_the_layout_is_checked_once_per_process_not_on_every_run(es):
    from sqlalchemy import event

    seed_users(es, 1)
    run_projections(es, names=["users"])
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    def layout_reads() -> list[str]:
        return [s for s in statements if "projection_checkpoints.name IN" in s]

    event.listen(es.engine, "before_cursor_execute", seen)
    try:
        with es.engine.connect() as conn:  # the listener sees a layout read when there is one
            conn.execute(select(projection_checkpoints.c.name).where(projection_checkpoints.c.name.in_(["users"]))).all()
        assert len(layout_reads()) == 1
        statements.clear()
        seed_users(es, 1)
        run_projections(es, names=["users"])
    finally:
        event.remove(es.engine, "before_cursor_execute", seen)
    assert layout_reads() == []
    assert read_model_position(es.engine) == es.store.head_position()
