"""A deliberately broken users mapping (the name is not trimmed) fails with a readable, field-level diff; a write
the event-sourced side refuses is named; hypothesis shrinks a sequence the broken mapping fails to one operation."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import find, settings

from migrator.mapping import USERS, ColumnMap
from migrator.testing import create, update
from migrator.testing.strategies import operations

UNTRIMMED = dataclasses.replace(USERS, columns=(
    ColumnMap("full_name", "name", ("strip_control",), event="UserNameChanged"), *USERS.columns[1:]))


@pytest.fixture
def migrator_mapping():
    return UNTRIMMED


def test_the_diff_names_key_view_field_both_values_and_the_events(migrator_world):
    with pytest.raises(AssertionError) as failed:
        migrator_world.compare([
            create(7, email="ann@example.org", full_name=" Ann ", is_active=True, phone=None),
            update(7, phone="+1 555"),
        ])
    message = str(failed.value)
    assert message.splitlines()[:3] == [
        "the legacy path and the event-sourced path disagree after 2 operations:",
        "  1. create(7, email='ann@example.org', full_name=' Ann ', is_active=True, phone=None)",
        "  2. update(7, phone='+1 555')",
    ]
    assert "key 7 (user-7):" in message
    assert "  commands replay: field 'name': legacy ' Ann ' != 'Ann'" in message
    assert "  commands read model: field 'name': legacy ' Ann ' != 'Ann'" in message
    assert "relay replay" not in message and "relay read model" not in message  # the relay follows the mapping
    assert "  events (relay):\n    1. UserImported {'name': ' Ann '," in message
    assert "  events (commands):\n    1. UserRegistered {" in message
    assert "    2. UserPhoneChanged {'phone': '+1 555'}" in message


def test_a_write_the_commands_refuse_is_named(migrator_world):
    with pytest.raises(AssertionError, match=r"operation 1 create\(1, .*\): the event-sourced path refused it "
                                             r"\(name must not be empty\), the legacy path accepted it"):
        migrator_world.compare([create(1, email="a@example.org", full_name="  ", is_active=True, phone=None)])


def test_hypothesis_shrinks_a_failing_sequence_to_one_operation():
    untrimmed = UNTRIMMED.compile()

    def broken(scenario):  # the name the broken mapping keeps differs from the one the domain registers
        return any(op.kind == "create" and untrimmed.state_from_row(op.values)["name"] != op.values["full_name"].strip()
                   for op in scenario)

    shortest = find(operations(USERS), broken, settings=settings(max_examples=500, database=None))
    assert len(shortest) == 1 and shortest[0].kind == "create" and shortest[0].key == 1
