"""The factory of legacy user rows and `insert_rows`: rows inserted under capture reach the event store."""

from __future__ import annotations

from migrator.testing import LegacyUserRowFactory, insert_rows
from migrator.verify import compare, users_read_model


def test_factory_rows_inserted_under_capture_are_relayed_and_projected(migrator_world):
    rows = LegacyUserRowFactory.create_batch(3, phone=" ")
    assert insert_rows(migrator_world.legacy, "users", rows) == 3
    migrator_world.catch_up()
    found = compare(migrator_world.legacy, migrator_world.es.store, migrator_world.mapping,
                    read_model=users_read_model(migrator_world.es.engine))
    assert found.ok and (found.rows, found.streams) == (3, 3)
    assert migrator_world.mapping.replay(migrator_world.es.store.read_stream(f"user-{rows[0]['id']}"))["phone"] is None
