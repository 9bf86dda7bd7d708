"""Idempotency-Key: a retry returns the first response and writes nothing; reuse for another request is refused."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select

from es_app.api.idempotency import Answer, KeyedStore, StoredResponse, idempotency_keys, lookup
from es_app.bootstrap import build
from es_app.store import ConcurrencyError
from es_app.store.schema import events
from tests.factories import NewEventFactory

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


def _stored(settings, key: str) -> tuple:  # noqa: ANN001
    with build(settings).engine.connect() as conn:
        row = conn.execute(select(idempotency_keys).where(idempotency_keys.c.key == key)).one()
    return row.status_code, dict(row.body), dict(row.headers), row.stream_id, row.position


def test_the_stored_first_answer_is_the_answer_given(client, api_settings, backend):
    # on PostgreSQL the key's row is written by api_keyed_append, in SQL: it must be what Answer gives
    created = client.post("/users", json={"name": "Ann", "email": unique_email()}, headers={"Idempotency-Key": "c-1"})
    uid = created.json()["id"]
    changed = client.patch(f"/users/{uid}", json={"name": "Bo"}, headers={"Idempotency-Key": "c-2", "If-Match": '"1"'})
    for key, r, headers in (("c-1", created, ("etag", "location")), ("c-2", changed, ("etag",))):
        status, body, stored_headers, stream_id, position = _stored(api_settings, key)
        assert (status, body) == (r.status_code, r.json())
        assert {k.lower(): v for k, v in stored_headers.items()} == {h: r.headers[h] for h in headers}
        assert (stream_id, position) == (uid, r.json()["position"])
    assert changed.headers["etag"] == '"2"' and created.headers["location"] == f"/users/{uid}"


def test_a_keyed_register_whose_email_is_taken_stores_nothing(client, api_settings, backend):
    email = unique_email()
    register(client, email=email)
    counts = _counts(api_settings)
    r = client.post("/users", json={"name": "Second", "email": email.upper()}, headers={"Idempotency-Key": "t-1"})
    assert r.status_code == 409, r.text
    assert _counts(api_settings) == counts
    assert client.post("/users", json={"name": "Second", "email": unique_email()},
                       headers={"Idempotency-Key": "t-1"}).status_code == 201  # the key is still free


def test_a_keyed_append_on_a_version_that_moved_is_settled_as_before(client, api_settings, backend):
    # what a writer between the command's load and its append leaves: on PostgreSQL api_keyed_append answers
    # "mismatch" and the write transaction's way settles it, as it did alone
    store = build(api_settings).store
    store.append("user-m", NewEventFactory.build_batch(2))
    with pytest.raises(ConcurrencyError):
        KeyedStore(store, "m-1", "h", Answer(200)).append("user-m", NewEventFactory.build_batch(1), 1)
    assert lookup(store.engine, "m-1") is None and store.stream_version("user-m") == 2
    events = NewEventFactory.build_batch(1)
    first = store.append("user-m", events, 2)
    again = KeyedStore(store, "m-2", "h", Answer(200)).append("user-m", events, 2)  # an exact retry: its result
    assert (again.position, again.version, again.written) == (first.position, 3, False)
    body = {"id": "user-m", "version": 3, "position": first.position}
    assert lookup(store.engine, "m-2") == StoredResponse(200, body, {"ETag": '"3"'}, "h")


def test_a_keyed_change_on_a_stale_version_is_refused_and_stores_nothing(client, api_settings, backend):
    uid = register(client)["id"]
    assert client.patch(f"/users/{uid}", json={"name": "B"}).status_code == 200
    counts = _counts(api_settings)
    r = client.patch(f"/users/{uid}", json={"name": "C"}, headers={"Idempotency-Key": "s-1", "If-Match": '"1"'})
    assert r.status_code == 412 and r.headers["etag"] == '"2"'
    assert _counts(api_settings) == counts


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_on_postgres_a_keyed_command_is_one_call(client, monkeypatch):
    def no_transaction(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the keyed command took the write transaction's path")

    monkeypatch.setattr(KeyedStore, "_append_in_transaction", no_transaction)
    uid = register(client, **{"Idempotency-Key": "one-1"})["id"]
    assert client.patch(f"/users/{uid}", json={"name": "B"}, headers={"Idempotency-Key": "one-2"}).status_code == 200
    assert client.patch(f"/users/{uid}", json={"name": "B"}, headers={"Idempotency-Key": "one-2"}).status_code == 200
