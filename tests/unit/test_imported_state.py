"""The backfill's fast path for imports: the row built straight from a UserImported's data equals what
the replay of that event gives (the users read model must stay equal to a replay of each stream)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from es_app.domain import User, event_from_data
from es_app.projections.users import IMPORTED, imported_state
from es_app.store import RecordedEvent

texts = st.one_of(st.none(), st.just(""), st.text(max_size=12))
values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
import_data = st.fixed_dictionaries(
    {},
    optional={"name": st.text(max_size=12), "email": st.text(max_size=12), "phone": texts,
              "active": st.one_of(st.booleans(), values), "legacy_key": values, "created_at": texts,
              "updated_at": texts, "row": st.dictionaries(st.text(max_size=5), values, max_size=3),
              "unknown_field": values})
metadata = st.fixed_dictionaries({}, optional={"occurred_at": texts, "actor": st.text(max_size=5)})


def replayed(event: RecordedEvent):
    """Returns the state the users projection's general path gives for an event on a blank row."""
    user = User.replay(event.stream_id, [(event_from_data(event.type, event.data), event.metadata)])
    user.state.version = event.version
    return user.state


@settings(max_examples=500, deadline=None)
@given(import_data, metadata, st.integers(min_value=1, max_value=5))
def test_the_import_fast_path_equals_the_replay(data, meta, version):
    event = RecordedEvent(7, "user-prop", version, "e-1", IMPORTED, 1, data, meta, datetime.now(UTC))
    fast = imported_state(event)
    try:
        expected = replayed(event)
    except TypeError:  # a missing field: the general path refuses the event (it is parked)
        assert fast is None
        return
    assert fast == expected
