"""`capture_gaps.detect`: the relay's decision from its checkpoint and the capture history (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from migrator.capture.gaps import CAPTURE_OFF, CHANGELOG_RECREATED, IDS_RESTARTED, detect
from migrator.capture.history import Generation, HistoryEntry
from migrator.capture.offsets import OffsetState

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=1)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def entry(seq, action, table=None, generation=None, last_id=0):
    return HistoryEntry(seq, at(seq), action, table, generation, last_id)


def began(_: datetime) -> bool:
    return True


def never(_: datetime) -> bool:
    return False


G1, G2 = Generation("g1", T0, 0), Generation("g2", at(4), 90)


def test_nothing_new_changes_nothing():
    state = OffsetState(40, "g1", 2, at(0))
    d = detect("users", state, [], G1, 50, began, NOW)
    assert (d.position, d.generation, d.history_seq, d.gaps, d.id_base) == (40, "g1", 2, (), 0)


def test_capture_off_then_on_is_one_gap_and_a_stretch_still_open_is_looked_at_again():
    state = OffsetState(40, "g1", 2, at(0))
    d = detect("users", state, [entry(3, "removed", "users", "g1", 45)], G1, 50, began, NOW)
    assert d.gaps == () and d.history_seq == 2
    d = detect("users", state, [entry(3, "removed", "users", "g1", 45), entry(4, "installed", "users", "g1", 50),
                                entry(5, "removed", "accounts", "g1", 50)], G1, 50, began, NOW)
    assert [(g.reason, g.since, g.until) for g in d.gaps] == [(CAPTURE_OFF, at(3), at(4))]
    assert (d.position, d.history_seq) == (40, 5)


def test_no_gap_before_anything_reached_the_event_store():
    d = detect("users", OffsetState(0), [entry(1, "removed", "users"), entry(2, "installed", "users")],
               G1, 0, never, NOW)
    assert d.gaps == () and d.history_seq == 2


def test_a_new_generation_is_read_from_its_beginning_and_dropped_unrelayed_rows_start_the_gap_earlier():
    state = OffsetState(40, "g1", 2, at(-30))
    history = [entry(3, "removed", "users", "g1", 60), entry(4, "changelog_dropped", None, "g1", 90),
               entry(5, "changelog_created", None, "g2", 90), entry(6, "installed", "users", "g2", 90)]
    d = detect("users", state, history, G2, 95, began, NOW)
    assert (d.position, d.generation, d.history_seq, d.id_base) == (90, "g2", 6, 0)
    assert [(g.reason, g.since, g.until) for g in d.gaps] == [(CHANGELOG_RECREATED, at(-30), at(6))]


def test_ids_that_restart_below_the_offset_are_shifted_past_it():
    state = OffsetState(40, "g1", 2, at(-30))
    d = detect("users", state, [], Generation("g3", at(5), 0), 3, began, NOW)
    assert (d.position, d.generation, d.id_base) == (0, "g3", 40)
    assert [g.reason for g in d.gaps] == [IDS_RESTARTED]
    d = detect("users", OffsetState(40, None, 0, at(-30)), [], None, 7, began, NOW)  # no history at all
    assert (d.position, d.id_base, [g.reason for g in d.gaps]) == (0, 40, [IDS_RESTARTED])
