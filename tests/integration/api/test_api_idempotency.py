"""Idempotency-Key: a retry returns the first response and writes nothing; reuse for another request is refused."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import func, select

from es_app.api.idempotency import idempotency_keys
from es_app.bootstrap import build
from es_app.store.schema import events

from .conftest import register, unique_email


def _counts(settings) -> tuple[int, int]:  # noqa: ANN001
    with build(settings).engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(events)).scalar_one(),
                conn.execute(select(func.count()).select_from(idempotency_keys)).scalar_one())


def test_retried_register_returns_the_first_response_and_writes_nothing(client, api_settings, backend):
    key = {"Idempotency-Key": f"reg-{uuid.uuid4()}"}
    body = {"name": "Kyle Reese", "email": unique_email()}
    first = client.post("/users", json=body, headers=key)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    counts = _counts(api_settings)
    again = client.post("/users", json=body, headers=key)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert _counts(api_settings) == counts


def test_retried_change_is_not_decided_again(client, api_settings, backend):
    uid = register(client)["id"]
    key = {"Idempotency-Key": "rename-1"}
    first = client.patch(f"/users/{uid}", json={"name": "Renamed"}, headers=key)
    assert first.status_code == 200
    # without the key this retry would be a 409 (nothing to change); with it, it is the first answer
    again = client.patch(f"/users/{uid}", json={"name": "Renamed"}, headers=key)
    assert (again.status_code, again.json()) == (200, first.json())
    assert client.patch(f"/users/{uid}", json={"name": "Renamed"}).status_code == 409
    assert build(api_settings).store.stream_version(uid) == 2


def test_reusing_a_key_for_another_request_is_refused(client, api_settings):
    uid = register(client)["id"]
    key = {"Idempotency-Key": "k-reuse"}
    assert client.patch(f"/users/{uid}", json={"name": "One"}, headers=key).status_code == 200
    counts = _counts(api_settings)
    for method, path, body in (("PATCH", f"/users/{uid}", {"name": "Two"}),
                               ("POST", f"/users/{uid}/deactivate", None),
                               ("POST", "/users", {"name": "Other", "email": unique_email()})):
        r = client.request(method, path, json=body, headers=key)
        assert r.status_code == 422, (method, path, r.text)
        assert r.json()["error"] == "key-reused" and "Idempotency-Key" in r.json()["detail"]
    assert _counts(api_settings) == counts


def test_a_refused_command_stores_no_key(client, api_settings):
    uid = register(client)["id"]
    key = {"Idempotency-Key": "k-refused"}
    assert client.post(f"/users/{uid}/reactivate", headers=key).status_code == 409  # already active
    assert client.post(f"/users/{uid}/deactivate", headers=key).status_code == 200  # the key is still free


def test_concurrent_requests_with_one_key_write_once(client, api_settings, backend):
    body = {"name": "Concurrent", "email": unique_email()}
    key = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    responses = []
    barrier = threading.Barrier(6)

    def send() -> None:
        barrier.wait()
        responses.append(client.post("/users", json=body, headers=key))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(1 for r in responses if "idempotent-replayed" not in r.headers) == 1
    events_count, keys_count = _counts(api_settings)
    assert (events_count, keys_count) == (1, 1)
