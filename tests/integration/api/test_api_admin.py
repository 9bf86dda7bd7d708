"""The admin bearer token, the global feed, projection status, dead letters, /health and /metrics."""

from __future__ import annotations

from fastapi.testclient import TestClient

from es_app.api import create_app
from es_app.bootstrap import build
from es_app.projections import run_projections
from es_app.settings import Settings
from es_app.store import NewEvent
from es_app.worker import embedded_worker, stop_embedded

from .conftest import ADMIN, read, register

ADMIN_ROUTES = [("GET", "/events"), ("GET", "/admin/projections"), ("GET", "/admin/dead-letters"),
                ("GET", "/admin/dead-letters/1"), ("POST", "/admin/dead-letters/1/retry"),
                ("POST", "/admin/dead-letters/1/skip")]


def test_admin_routes_need_the_admin_bearer_token(client):
    for method, path in ADMIN_ROUTES:
        r = client.request(method, path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (method, path)
        r = client.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 403, (method, path)
        r = client.request(method, path, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert r.status_code == 401, (method, path)


def test_there_is_no_default_admin_token(monkeypatch):
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    assert Settings(_env_file=None).admin_token == ""


def test_without_a_usable_admin_token_the_admin_routes_are_off_and_say_why(api_settings):
    for token, reason in [("", "admin routes are disabled: set ADMIN_TOKEN"), ("  ", "set ADMIN_TOKEN"),
                          ("change-me", "example placeholder")]:
        with TestClient(create_app(api_settings.model_copy(update={"admin_token": token}))) as c:
            created = c.post("/users", json={"name": "A", "email": f"a{len(token)}@example.org"},
                             headers={"Authorization": f"Bearer {token}"})
            assert created.status_code == 201  # the other routes work
            for method, path in ADMIN_ROUTES:
                for headers in ({}, {"Authorization": f"Bearer {token}"}, {"Authorization": "Bearer change-me"}):
                    r = c.request(method, path, headers=headers)
                    assert r.status_code == 403, (token, method, path, r.text)
                    assert reason in r.json()["detail"] and r.json()["error"] == "admin-disabled"
        stop_embedded()
        metadata = build(api_settings).store.read_stream(created.json()["id"])[0].metadata
        assert metadata["actor"] == "anonymous"  # a disabled token is no identity either


def test_events_feed_pages_through_the_global_feed(client, backend):
    created = [register(client, name=f"U{i}") for i in range(5)]
    r = client.get("/events", params={"limit": 2}, headers=ADMIN)
    page = r.json()
    assert r.status_code == 200 and page["head_position"] == created[-1]["position"]
    seen, after = [], 0
    while True:
        page = client.get("/events", params={"after": after, "limit": 2}, headers=ADMIN).json()
        if not page["events"]:
            break
        seen += page["events"]
        after = page["next_after"]
    assert [e["stream_id"] for e in seen] == [c["id"] for c in created]
    assert all(e["type"] == "UserRegistered" and e["metadata"]["correlation_id"] for e in seen)
    assert client.get("/events", params={"after": -1}, headers=ADMIN).status_code == 422
    assert client.get("/events", params={"limit": 5000}, headers=ADMIN).status_code == 422


def test_projection_status_and_metrics(client):
    created = register(client)
    read(client, created["id"], created["position"])
    assert embedded_worker(client.app.state.es.settings).wait_idle(10)
    status = {s["name"]: s for s in client.get("/admin/projections", headers=ADMIN).json()}
    assert status["users"]["position"] == created["position"] and status["users"]["lag"] == 0
    text = client.get("/metrics").text
    assert 'es_events_appended_total{command="RegisterUser"} 1.0' in text
    assert 'es_projection_lag_events{checkpoint="users",projection="users"} 0.0' in text
    assert 'es_dead_letters_parked{projection="users"} 0.0' in text
    assert f"es_event_store_head_position {created['position']}.0" in text


def _poison(settings: Settings, user_id: str) -> None:
    """Appends an event the users projection cannot store (a 300-character name): it gets parked."""
    assert embedded_worker(settings).wait_idle(10)
    build(settings).store.append(user_id, [NewEvent("UserCorrected", {"field": "name", "value": "x" * 300,
                                                                      "reason": "poison"})])
    run_projections(build(settings))


def test_dead_letters_list_retry_skip(client, api_settings, backend):
    poisoned = register(client)["id"]
    healthy = register(client)["id"]
    _poison(api_settings, poisoned)
    parked = client.get("/admin/dead-letters", headers=ADMIN).json()
    assert [(d["projection"], d["stream_id"], d["status"]) for d in parked] == [("users", poisoned, "parked")]
    letter = parked[0]["id"]
    assert client.get(f"/admin/dead-letters/{letter}", headers=ADMIN).json()["event_type"] == "UserCorrected"
    # the parked stream waits; the others flow
    renamed = client.patch(f"/users/{healthy}", json={"name": "Still Flowing"}).json()
    assert read(client, healthy, renamed["position"])["name"] == "Still Flowing"
    assert 'es_dead_letters_parked{projection="users"} 1.0' in client.get("/metrics").text
    retried = client.post(f"/admin/dead-letters/{letter}/retry", headers=ADMIN).json()
    assert retried["status"] == "parked" and retried["attempts"] == 2  # fails again
    skipped = client.post(f"/admin/dead-letters/{letter}/skip", headers=ADMIN)
    assert skipped.status_code == 200 and skipped.json()["status"] == "skipped"
    again = client.post(f"/admin/dead-letters/{letter}/skip", headers=ADMIN)
    assert again.status_code == 409 and "skipped" in again.json()["detail"]
    assert client.post("/admin/dead-letters/99999/retry", headers=ADMIN).status_code == 404
    assert client.get("/admin/dead-letters", headers=ADMIN).json() == []
    everything = client.get("/admin/dead-letters", params={"status": "all"}, headers=ADMIN).json()
    assert [d["status"] for d in everything] == ["skipped"]
    assert client.get("/admin/dead-letters", params={"status": "bogus"}, headers=ADMIN).status_code == 422


def test_health_ok_and_unavailable(client, tmp_path):
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["mode"] == "embedded"
    down = Settings(es_database_url="postgresql://postgres@127.0.0.1:9/nowhere", broker_url="redis://127.0.0.1:9/0",
                    legacy_database_url=f"sqlite:///{tmp_path}/l.db")
    with TestClient(create_app(down)) as dead:
        r = dead.get("/health")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable" and r.json()["mode"] == "servers" and r.json()["database"]
        r = dead.get("/users")
        assert r.status_code == 503 and "unavailable" in r.json()["detail"]
        r = dead.post("/users", json={"name": "A", "email": "a@example.org"})  # the store's driver-level path
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert dead.get("/users/user-1/history").status_code == 503
        assert dead.get("/metrics").status_code == 200
