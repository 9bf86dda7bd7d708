"""Random command sequences: the pure fold of the produced events equals the state the aggregate reports."""

from __future__ import annotations

from hypothesis import given, settings

from es_app.domain import User
from tests.strategies import histories, run, start_user


@settings(max_examples=300, deadline=None)
@given(histories)
def test_replaying_the_produced_events_gives_the_reported_state(history):
    start, commands = history
    user, events = start_user("user-prop", start)
    for command in commands:
        events += run(user, command)

    replayed = User.replay("user-prop", ((e, {}) for e in events))

    assert replayed.state == user.state
    assert replayed.version == len(events)
    if user.state.deleted:
        assert events[-1].type_name == "UserDeleted"
