"""Mappings checked against the real database: missing tables or columns fail at load, types coerce alike."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from es_app.store import make_engine
from migrator.mapping import USERS, ColumnMap, MappingError, bound
from migrator.mapping import load_mappings
from tests.accounts import MAPPING_FILE, create_accounts


@pytest.fixture
def legacy(new_database_url):
    engine = make_engine(new_database_url("legacy"))
    yield engine
    engine.dispose()


def test_users_binds_and_learns_column_types(legacy):
    bound = USERS.bind(legacy)
    assert bound.table_columns == ("id", "email", "full_name", "is_active", "phone", "created_at", "updated_at")
    assert bound.coerce["is_active"] == "bool" and bound.coerce["created_at"] == "timestamp"
    # a changelog row from SQLite (0/1, text time) and one from PostgreSQL (bool, ISO) read alike
    sqlite_json = {"id": 1, "email": "a@b.co", "full_name": "A", "is_active": 0, "phone": None,
                   "created_at": "2026-01-01 10:00:00.000000", "updated_at": "2026-01-01 10:00:00.000000"}
    pg_json = sqlite_json | {"is_active": False, "created_at": "2026-01-01T11:00:00+01:00",
                             "updated_at": "2026-01-01T10:00:00+00:00"}
    a = bound.import_event(sqlite_json, event_id="1", metadata={}).data
    b = bound.import_event(pg_json, event_id="1", metadata={}).data
    assert a == b and a["row"]["is_active"] is False


@pytest.mark.parametrize("change, message", [
    (dict(table="people"), "table 'people' does not exist"),
    (dict(columns=USERS.columns + (ColumnMap("nickname", "nick"),)), "column 'nickname' does not exist in table 'users'"),
    (dict(updated_at="modified_at"), "column 'modified_at' does not exist"),
    (dict(key="email", columns=USERS.columns[:1], unique={}, register_defaults={}), "key 'email' is not the table's single-column primary key"),
])
def test_binding_a_mapping_that_does_not_fit_the_database_fails_with_one_line(legacy, change, message):
    mapping = dataclasses.replace(USERS, **change)
    with pytest.raises(MappingError) as info:
        mapping.bind(legacy)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_load_mappings_binds_a_file_and_selects_tables(legacy):
    with pytest.raises(MappingError, match="table 'accounts' does not exist"):
        load_mappings(MAPPING_FILE, legacy)
    create_accounts(legacy)
    (accounts,) = load_mappings(MAPPING_FILE, legacy)
    assert accounts.coerce["enabled"] == "bool" and accounts.coerce["balance"] == "decimal:2"
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO accounts VALUES ('acc-1', 'o@x.org', 'T', :t, 1.5, 's', :ts, :ts)"),
                     {"t": True, "ts": datetime(2026, 1, 1, tzinfo=timezone.utc)})
        row = conn.execute(text("SELECT * FROM accounts")).mappings().one()
    assert accounts.state_from_row(row) == {"title": "T", "owner": "o@x.org", "enabled": True,
                                            "extra": {"balance": "1.50"}}
    assert [m.table for m in load_mappings(None, legacy)] == ["users"]
    with pytest.raises(MappingError, match="no mapping for this table"):
        load_mappings(None, legacy, tables=["orders"])


def test_bound_keeps_a_bound_mapping_and_binds_a_declaration_or_a_mapping_compiled_without_a_database(legacy):
    first = USERS.bind(legacy)
    assert bound(first, legacy) is first
    for m in (USERS, USERS.compile()):
        again = bound(m, legacy)
        assert again.declaration is USERS and again.binding == first.binding and again.table_columns
