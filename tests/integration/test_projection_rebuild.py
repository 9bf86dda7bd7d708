"""Blue/green rebuild of users_view on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, update

from es_app.projections import list_parked, read_model_position, run_projections
from es_app.projections.rebuild import rebuild_users
from es_app.projections.tables import users_view
from es_app.store import NewEvent

from .projection_helpers import checkpoints, container, dump, expected_row, register, seed_every_event_type, \
    seed_users, view_fields


@pytest.fixture
def es(new_database_url):
    c = container(new_database_url("es"))
    yield c
    c.engine.dispose()  # give the server its connections back


def index_names(engine) -> set[str]:
    return {i["name"] for i in inspect(engine).get_indexes("users_view")}


def test_rebuild_replays_into_a_fresh_table_and_swaps_it_in(es):
    ids = seed_every_event_type(es) + seed_users(es, 4)
    run_projections(es, names=["users"])
    indexes = index_names(es.engine)
    assert "ix_users_view_name" in indexes
    with es.engine.begin() as conn:  # damage the live read model
        conn.execute(update(users_view).where(users_view.c.id == ids[0]).values(name="garbage"))
        conn.execute(users_view.delete().where(users_view.c.id == ids[1]))
    late = []

    def append_while_rebuilding(result):
        if not late:  # a command lands during the replay: the swap must include it
            late.append(register(es, "Late"))

    result = rebuild_users(es, batch_size=5, on_batch=append_while_rebuilding)
    rows = dump(es.engine)
    assert sorted(rows) == sorted(ids + late)
    assert {uid: view_fields(rows[uid]) for uid in rows} == {uid: expected_row(es, uid) for uid in rows}
    head = es.store.head_position()
    assert (result.position, result.rows) == (head, len(rows))
    assert checkpoints(es.engine) == {"users": head}
    assert read_model_position(es.engine) == head
    assert index_names(es.engine) == indexes
    assert "users_view_next" not in inspect(es.engine).get_table_names()
    assert inspect(es.engine).get_pk_constraint("users_view")["constrained_columns"] == ["id"]
    # the live projection carries on on the swapped-in table; a second rebuild works too
    register(es, "After")
    assert run_projections(es, names=["users"]) == 1
    assert rebuild_users(es).rows == len(rows) + 1


def test_rebuild_keeps_a_sharded_layout_and_moves_its_dead_letters(es):
    a = register(es, "Ann")
    es.store.append(a, [NewEvent("UserEmailChanged", {"mail": "oops"})])
    seed_users(es, 3)
    for shard in range(2):
        run_projections(es, shard=shard, shards=2, names=["users"])
    [old] = list_parked(es.engine)
    result = rebuild_users(es)
    head = es.store.head_position()
    assert checkpoints(es.engine) == {"users:0/2": head, "users:1/2": head}
    [new] = list_parked(es.engine)
    assert new.projection == "users" and new.position == old.position and new.id != old.id
    statuses = {d.id: d.status for d in list_parked(es.engine, status=None)}
    assert statuses == {old.id: "superseded", new.id: "parked"}
    assert dump(es.engine)[a]["version"] == 1 and result.rows == 4
