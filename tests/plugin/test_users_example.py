"""The users mapping proven in a team's suite: the legacy CRUD path and the event-sourced commands agree."""

from hypothesis import HealthCheck, given, settings

from migrator.mapping import USERS
from migrator.testing import create, delete, update
from migrator.testing.strategies import operations


def test_a_user_edited_deactivated_deleted_and_recreated(migrator_world):
    migrator_world.compare([
        create(1, email=" Ann@Example.ORG", full_name=" Ann ", is_active=True, phone=None),
        create(2, email="bob@example.org", full_name="Bob", is_active=False, phone="  "),
        update(1, full_name="Ann Lee", phone=" +1 555 0100 "),
        update(1, is_active=False),
        delete(1),
        create(1, email="ann@example.org", full_name="Ann, again", is_active=True, phone=None),
        update(2, email="BOB@example.org", is_active=True),
    ])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=operations(USERS))
def test_any_sequence_of_user_writes(migrator_worlds, scenario):
    migrator_worlds().compare(scenario)
