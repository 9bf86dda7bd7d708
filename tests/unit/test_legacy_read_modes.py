"""Selecting the legacy app's read mode: only "legacy" exists until the switchover provides more."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient

from legacy_app import reads
from legacy_app.api import create_app
from legacy_app.db import Database, SchemaMissing
from legacy_app.reads import ReadMode, ReadModeError, parse_mode, reads_for


def test_default_and_env_mode(monkeypatch):
    monkeypatch.delenv(reads.READ_MODE_ENV, raising=False)
    assert parse_mode(None) is ReadMode.LEGACY
    monkeypatch.setenv(reads.READ_MODE_ENV, "shadow")
    assert parse_mode(None) is ReadMode.SHADOW
    assert parse_mode("new") is ReadMode.NEW


def test_unknown_mode_is_one_clear_error():
    with pytest.raises(ReadModeError, match="unknown read mode 'sideways': choose one of legacy, shadow, new"):
        parse_mode("sideways")


@pytest.mark.parametrize("mode", ["shadow", "new"])
def test_unprovided_modes_refuse_instead_of_pretending(mode):
    with pytest.raises(ReadModeError, match=f"read mode '{mode}' is not available yet"):
        reads_for(None, mode)


def test_a_registered_mode_becomes_selectable(monkeypatch):
    monkeypatch.setattr(reads, "_PROVIDERS", dict(reads._PROVIDERS))
    marker = object()
    reads.register_read_mode(ReadMode.SHADOW, lambda db: (marker, db))
    assert reads_for("the-db", "shadow") == (marker, "the-db")


def test_api_answers_503_with_the_reason(tmp_path):
    missing = f"sqlite:///{tmp_path / 'absent.db'}"
    with pytest.raises(SchemaMissing, match="run `migrator init`"):
        Database.connect(missing)
    assert not (tmp_path / "absent.db").exists()
    with TestClient(create_app(missing)) as client:
        r = client.get("/users")
        assert r.status_code == 503 and "migrator init" in r.json()["detail"]
    empty = tmp_path / "empty.db"
    empty.touch()
    with TestClient(create_app(f"sqlite:///{empty}")) as client:
        r = client.get("/users/1")
        assert r.status_code == 503 and "has no `users` table" in r.json()["detail"]
    assert not (tmp_path / "absent.db").exists()



def test_api_answers_503_when_the_database_is_unreachable():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with TestClient(create_app(f"postgresql://nobody@127.0.0.1:{port}/legacy")) as client:
        r = client.get("/users")
        assert r.status_code == 503 and r.json()["detail"].startswith("legacy database unavailable: ")
