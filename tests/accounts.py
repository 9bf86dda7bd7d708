"""The second legacy table of the tests: `accounts`, with a text primary key and its mapping file."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from migrator.mapping import TableMapping
from migrator.mapping import load_mapping_file

MAPPING_FILE = Path(__file__).parent / "data" / "accounts.toml"

DDL = """
CREATE TABLE accounts (
    code VARCHAR(40) PRIMARY KEY,
    owner_email VARCHAR(254) NOT NULL,
    title VARCHAR(200) NOT NULL,
    enabled BOOLEAN NOT NULL,
    balance NUMERIC(12, 2),
    secret VARCHAR(100),
    opened_at TIMESTAMP WITH TIME ZONE NOT NULL,
    touched_at TIMESTAMP WITH TIME ZONE NOT NULL
)
"""


def accounts_mapping() -> TableMapping:
    """Returns the accounts mapping, loaded from tests/data/accounts.toml."""
    (mapping,) = load_mapping_file(MAPPING_FILE)
    return mapping


def create_accounts(engine: Engine) -> None:
    """Creates the accounts table in a legacy database."""
    with engine.begin() as conn:
        conn.execute(text(DDL))
