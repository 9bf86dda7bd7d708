"""The SQLite store writes recorded_at exactly as SQLAlchemy's DateTime stores it, so Core and driver reads agree."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import DATETIME

from es_app.store.sqlite import SqliteEventStore

_STORED = DATETIME().bind_processor(sqlite.dialect())


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)))
def test_time_param_is_sqlalchemys_storage_text(naive):
    assert SqliteEventStore._time_param(None, naive.replace(tzinfo=UTC)) == _STORED(naive)  # type: ignore[arg-type]


def test_whole_seconds_and_early_years_keep_their_padding():
    assert SqliteEventStore._time_param(None, datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02 03:04:05.000000"  # type: ignore[arg-type]
