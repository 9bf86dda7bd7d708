"""Event ids made by default are time-ordered version-7 UUIDs (RFC 9562) in their canonical text."""

from __future__ import annotations

import time
import uuid

from es_app.store import NewEvent
from es_app.store.types import new_event_id


def test_default_event_ids_are_canonical_version_7_uuids_with_random_bits():
    before = time.time_ns() // 1_000_000
    ids = [NewEvent("Thing", {}).event_id for _ in range(5000)] + [new_event_id() for _ in range(5000)]
    after = time.time_ns() // 1_000_000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower-case hex, 8-4-4-4-12
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after  # the Unix milliseconds it was made in
    assert len(set(ids)) == len(ids)
    # the 62 random bits all vary: none stuck at 0 or 1 over 10,000 ids
    ones = [0] * 64
    for text in ids:
        n = uuid.UUID(text).int
        for bit in range(64):
            ones[bit] += n >> bit & 1
    assert {bit for bit in range(64) if ones[bit] in (0, len(ids))} == {62, 63}  # the variant's two bits


def test_ids_made_later_sort_later_as_text():
    earlier = [new_event_id() for _ in range(100)]
    time.sleep(0.002)
    later = [new_event_id() for _ in range(100)]
    assert max(earlier) < min(later)  # what keeps the unique index growing at its right edge
    # within a millisecond the fraction orders them too, up to ids made in the same ~244 ns
    run = [new_event_id() for _ in range(1000)]
    assert sum(a <= b for a, b in zip(run, run[1:])) >= 0.9 * (len(run) - 1)
