"""`recorded_event`, the reads' constructor of RecordedEvent, makes what the dataclass makes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from es_app.store import RecordedEvent
from es_app.store.types import recorded_event

FIELDS = (7, "user-1", 2, "e-1", "UserRenamed", 1, {"name": "Ann"}, {"actor": "x"})


@pytest.mark.parametrize("at", [datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), datetime(2026, 1, 2, 3, 4, 5, 6)])
def test_it_equals_the_dataclass_and_stays_frozen(at):
    made, reference = recorded_event(*FIELDS, at), RecordedEvent(*FIELDS, at)
    assert type(made) is RecordedEvent
    assert set(vars(made)) == {field.name for field in dataclasses.fields(RecordedEvent)}  # every field, no other
    assert made == reference and repr(made) == repr(reference)
    assert made.recorded_at.tzinfo is UTC  # a naive time (SQLite's) is UTC, as the dataclass makes it
    assert dataclasses.asdict(made) == dataclasses.asdict(reference)
    assert dataclasses.replace(made, version=3) == dataclasses.replace(reference, version=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.version = 3  # type: ignore[misc]
