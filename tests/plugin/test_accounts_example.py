"""A table of a team's own with a text key: its mapping and its table, proven with the same fixtures.

The table has no command handlers in es_app, so the event-sourced path appends the events the mapping
declares (`MappingEvents`): the comparison proves that capture and relay turn the legacy writes into
exactly those events, and that both streams replay to the legacy rows.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import create_engine, text

from migrator.mapping import ColumnMap, TableMapping
from migrator.testing import create, delete, update
from migrator.testing.strategies import operations, padded_text

ACCOUNTS = TableMapping(
    table="accounts",
    key="code",
    stream_prefix="account",
    columns=(
        ColumnMap("title", "title", ("trim",), event="AccountRenamed"),
        ColumnMap("owner_email", "owner", ("email",), event="AccountOwnerChanged"),
        ColumnMap("enabled", "enabled", ("bool",), true_event="AccountEnabled", false_event="AccountDisabled"),
        ColumnMap("note", "note", ("trim", "blank_to_none")),
    ),
    import_event_type="AccountImported",
    delete_event_type="AccountClosed",
    column_event_type="AccountColumnChanged",
    created_at="opened_at",
    updated_at="touched_at",
)

DDL = """
CREATE TABLE accounts (
    code VARCHAR(40) PRIMARY KEY,
    owner_email VARCHAR(254) NOT NULL,
    title VARCHAR(200) NOT NULL,
    enabled BOOLEAN NOT NULL,
    note VARCHAR(200),
    region VARCHAR(40) NOT NULL,
    opened_at TIMESTAMP WITH TIME ZONE NOT NULL,
    touched_at TIMESTAMP WITH TIME ZONE NOT NULL
)
"""


@pytest.fixture
def migrator_mapping():
    return ACCOUNTS


@pytest.fixture
def migrator_legacy_setup():
    def create_table(legacy_url):
        engine = create_engine(legacy_url)
        with engine.begin() as conn:
            conn.execute(text(DDL))
        engine.dispose()

    return create_table


def test_accounts_with_text_keys(migrator_world):
    migrator_world.compare([
        create("acc-1", title=" Main ", owner_email="Owner@Example.org", enabled=True, note=None, region="EU"),
        create("o'brien", title="Ünïcode", owner_email="ob@example.org", enabled=False, note="  ", region="US"),
        update("acc-1", title="Renamed", enabled=False, region="APAC"),
        update("o'brien", note=" first note ", owner_email="OB@EXAMPLE.ORG"),
        delete("acc-1"),
        create("acc-1", title="Reopened", owner_email="owner@example.org", enabled=True, note="x", region="EU"),
    ])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=operations(ACCOUNTS, keys=["acc-1", "o'brien", "Ünï-3"], columns={"region": padded_text(max_size=8)}))
def test_any_sequence_of_account_writes(migrator_worlds, scenario):
    migrator_worlds().compare(scenario)
