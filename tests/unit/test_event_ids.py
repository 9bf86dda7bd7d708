"""Event ids made by default are random version-4 UUIDs in their canonical text, as str(uuid.uuid4()) gives."""

from __future__ import annotations

import uuid

from es_app.store import NewEvent
from es_app.store.types import new_event_id


def test_default_event_ids_are_canonical_random_uuids():
    ids = [NewEvent("Thing", {}).event_id for _ in range(5000)] + [new_event_id() for _ in range(5000)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower-case hex, 8-4-4-4-12
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert len(set(ids)) == len(ids)
    # every free bit varies: none stuck at 0 or 1 over 10,000 ids (the 6 fixed ones are the version and variant)
    ones = [0] * 128
    for text in ids:
        n = uuid.UUID(text).int
        for bit in range(128):
            ones[bit] += n >> bit & 1
    fixed = {bit for bit in range(128) if ones[bit] in (0, len(ids))}
    assert fixed == {76, 77, 78, 79, 62, 63}
