"""Over HTTP: the ES API refuses the email of an imported legacy user to anyone else (409)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import text

from es_app.bootstrap import engine_for
from es_app.store import EventStore
from migrator.capture import changelog as capture
from migrator.backfill.run import Backfill
from migrator.mapping import USERS

from .conftest import register

T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def backfill_legacy_users(url: str, emails: dict[int, str]) -> None:
    engine = engine_for(url)  # the test database holds the legacy tables too
    with engine.begin() as conn:
        for key, email in emails.items():
            conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                              "VALUES (:id, :email, :name, TRUE, NULL, :t, :t)"),
                         {"id": key, "email": email, "name": f"Legacy {key}", "t": T})
    capture.install(engine, [USERS])
    b = Backfill(USERS.bind(engine), engine, EventStore(engine))
    b.start()
    b.run_to_end()


def test_imported_emails_are_refused_to_new_and_other_users(client, api_settings):
    backfill_legacy_users(api_settings.es_database_url,
                          {1: "leg1@example.org", 2: "Leg2@Example.org", 3: "LEG1@example.org"})

    for email in ("leg1@example.org", "LEG2@example.org", " leg1@EXAMPLE.org"):
        r = client.post("/users", json={"name": "Newcomer", "email": email})
        assert r.status_code == 409, (email, r.text)

    r = client.patch("/users/user-1", json={"email": "leg2@example.org"})  # another imported user's email
    assert r.status_code == 409, r.text
    r = client.patch("/users/user-3", json={"email": "Leg1@example.org"})  # the duplicate did not get the claim
    assert r.status_code == 409, r.text

    other = register(client)
    assert client.patch(f"/users/{other['id']}", json={"email": "LEG2@example.org"}).status_code == 409
    assert client.patch("/users/user-2", json={"email": "moved@example.org"}).status_code == 200
    assert client.patch(f"/users/{other['id']}", json={"email": "leg2@example.org"}).status_code == 200
