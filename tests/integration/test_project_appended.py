"""project_appended: a bulk writer's events folded into the projections in the writer's own transaction."""

from __future__ import annotations

import pytest

from es_app.projections import project_appended, run_projections
from es_app.store import ExpectedVersion, NewEvent, write_transaction

from .projection_helpers import checkpoints, container, dump, expected_row, outbox, register, view_fields


@pytest.fixture
def es(new_database_url):
    c = container(new_database_url("es"))
    yield c
    c.engine.dispose()


def imported(key: int, name: str = "Imported") -> NewEvent:
    return NewEvent("UserImported", {"name": f"{name} {key}", "email": f"u{key}@example.org", "active": key % 2 == 0,
                                     "phone": None, "legacy_key": key, "created_at": "2020-01-02T03:04:05+00:00",
                                     "updated_at": "2021-01-02T03:04:05+00:00", "row": {"id": key}})


def append_and_project(es, keys, *, fail: bool = False, **options) -> bool:
    with write_transaction(es.engine) as conn:
        recorded = es.store.append_batch_recorded(
            conn, [(f"user-{k}", [imported(k)], ExpectedVersion.NO_STREAM) for k in keys])
        done = project_appended(conn, es.store, [e for events in recorded for e in events], **options)
        if fail:
            raise RuntimeError("the writer fails after projecting")
    return done


def test_the_read_model_and_checkpoints_follow_in_the_same_transaction(es):
    register(es)
    run_projections(es)  # the runner made the layout
    assert append_and_project(es, range(1, 6)) is True
    head = es.store.head_position()
    assert checkpoints(es.engine) == {"users": head, "notifications": head}
    rows = dump(es.engine)
    for k in range(1, 6):
        assert view_fields(rows[f"user-{k}"]) == expected_row(es, f"user-{k}")
        assert rows[f"user-{k}"]["position"] == es.store.read_stream(f"user-{k}")[0].position
    assert run_projections(es) == 0  # nothing left for the runner


def test_events_between_the_checkpoint_and_the_batch_are_applied_first(es):
    known = register(es)
    run_projections(es)
    es.user_service.execute(known, lambda u: u.change_name("Renamed"))  # behind the checkpoints: a change,
    late = register(es, "Late")  # and a registration (with its welcome notification)
    assert append_and_project(es, [1, 2]) is True
    assert view_fields(dump(es.engine)[known]) == expected_row(es, known)
    assert dump(es.engine)[known]["name"] == "Renamed"
    assert view_fields(dump(es.engine)[late]) == expected_row(es, late)
    assert [n["stream_id"] for n in outbox(es.engine)].count(late) == 1
    assert set(checkpoints(es.engine).values()) == {es.store.head_position()}


def test_a_projection_too_far_behind_is_left_to_the_runner(es):
    run_projections(es)
    ids = [register(es, f"U{i}") for i in range(3)]
    before = checkpoints(es.engine)
    assert append_and_project(es, [1], max_behind=2) is False
    assert checkpoints(es.engine) == before and dump(es.engine) == {}
    run_projections(es)
    assert set(dump(es.engine)) == {*ids, "user-1"}


def test_a_projection_that_never_ran_is_left_to_the_runner(es):
    assert append_and_project(es, [1]) is False
    assert checkpoints(es.engine) == {} and dump(es.engine) == {}
    run_projections(es)
    assert set(dump(es.engine)) == {"user-1"}


def test_every_shard_checkpoint_moves_and_each_applies_its_own_streams(es):
    run_projections(es, shard=0, shards=2, names=["users"])
    run_projections(es, shard=1, shards=2, names=["users"])
    run_projections(es, names=["notifications"])
    assert append_and_project(es, range(1, 21)) is True
    head = es.store.head_position()
    assert checkpoints(es.engine) == {"users:0/2": head, "users:1/2": head, "notifications": head}
    assert set(dump(es.engine)) == {f"user-{k}" for k in range(1, 21)}


def test_a_poison_event_parks_only_its_stream(es):
    run_projections(es)
    with write_transaction(es.engine) as conn:
        bad = imported(2, name="x" * 300)  # longer than the read model's name column
        recorded = es.store.append_batch_recorded(conn, [("user-1", [imported(1)], ExpectedVersion.NO_STREAM),
                                                         ("user-2", [bad], ExpectedVersion.NO_STREAM)])
        assert project_appended(conn, es.store, [e for events in recorded for e in events]) is True
    assert set(dump(es.engine)) == {"user-1"}
    from es_app.projections import list_parked
    assert [d.stream_id for d in list_parked(es.engine, projection="users")] == ["user-2"]


def test_a_rolled_back_writer_leaves_no_row_and_no_checkpoint_move(es):
    run_projections(es)
    before = checkpoints(es.engine)
    with pytest.raises(RuntimeError):
        append_and_project(es, [1, 2], fail=True)
    assert checkpoints(es.engine) == before and dump(es.engine) == {} and es.store.head_position() == 0


def test_many_new_rows_go_in_by_copy_and_equal_what_the_upsert_writes(es, monkeypatch):
    from es_app.dialect import postgres

    copied = []
    real = postgres.PostgresDialect._copy_new_rows
    monkeypatch.setattr(postgres.PostgresDialect, "_copy_new_rows",
                        staticmethod(lambda cur, table, rows: copied.append(len(rows)) or real(cur, table, rows)))
    register(es)
    run_projections(es)
    keys = range(1, postgres.COPY_AT_LEAST + 51)
    assert append_and_project(es, keys) is True
    rows = dump(es.engine)
    for k in keys:
        assert view_fields(rows[f"user-{k}"]) == expected_row(es, f"user-{k}")
    assert copied == ([] if es.engine.dialect.name == "sqlite" else [len(keys)])


def test_a_row_found_in_the_table_after_all_makes_the_flush_fall_back_to_the_upsert(es, monkeypatch):
    """A stale read-model row of a stream the store does not have (say, a store restored without its read
    model): COPY would clash on it; the batch writes everything by upsert instead, which keeps it, as a
    replay would."""
    from sqlalchemy import insert

    from es_app.dialect import postgres
    from es_app.projections.tables import users_view

    outcomes = []
    real = postgres.PostgresDialect._copy_new_rows
    monkeypatch.setattr(postgres.PostgresDialect, "_copy_new_rows",
                        staticmethod(lambda *a: outcomes.append(real(*a)) or outcomes[-1]))
    register(es)
    run_projections(es)
    stale = {"id": "user-3", "name": "Stale", "email": "stale@example.org", "phone": None, "active": True,
             "deleted": False, "version": 1, "position": 1, "legacy_key": "3", "created_at": None,
             "updated_at": None, "extra": None}
    with write_transaction(es.engine) as conn:
        conn.execute(insert(users_view).values(**stale))
    keys = range(1, postgres.COPY_AT_LEAST + 11)
    assert append_and_project(es, keys) is True
    assert outcomes == ([] if es.engine.dialect.name == "sqlite" else [False])
    rows = dump(es.engine)
    assert rows["user-3"]["name"] == "Stale"  # version 1 is not older than the event's: left as it was
    for k in keys:
        if k != 3:
            assert view_fields(rows[f"user-{k}"]) == expected_row(es, f"user-{k}")
