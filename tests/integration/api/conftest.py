"""Fixtures of the API tests: an app on a fresh event store (SQLite, or PostgreSQL via `backend`)."""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from es_app.api import create_app
from es_app.bootstrap import engine_for
from es_app.settings import Settings
from es_app.worker import stop_embedded

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def api_settings(new_database_url, tmp_path) -> Settings:
    return Settings(es_database_url=new_database_url("es"), legacy_database_url=f"sqlite:///{tmp_path}/legacy.db",
                    broker_url="", admin_token=ADMIN_TOKEN, read_your_writes_timeout_s=5.0,
                    catch_up_interval_s=3600)


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    """Returns a client of a new app in embedded mode (projections run in this process's worker thread)."""
    with TestClient(create_app(api_settings)) as c:
        yield c
    stop_embedded()
    engine_for(api_settings.es_database_url).dispose()  # give the server its connections back


def unique_email(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.org"


def register(client: TestClient, name: str = "Sarah Connor", email: str | None = None,
             **headers: str) -> dict[str, Any]:
    """Returns the 201 body of a new user."""
    r = client.post("/users", json={"name": name, "email": email or unique_email()}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def read(client: TestClient, user_id: str, position: int) -> dict[str, Any]:
    """Returns GET /users/{id} once the read model has reached `position` (read-your-writes)."""
    r = client.get(f"/users/{user_id}", params={"min_position": position})
    assert r.status_code == 200, r.text
    assert r.json()["read_model"]["stale"] is False
    return r.json()
