"""Commands over HTTP: status codes, headers, events written and their metadata."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from es_app.api import create_app
from es_app.bootstrap import build, engine_for
from es_app.store.engine import checkpoint_wal
from es_app.store.schema import events
from es_app.worker import stop_embedded

from ..projection_helpers import sqlite_log_frames
from .conftest import ADMIN, ADMIN_TOKEN, read, register, unique_email


def _events(settings, stream_id):  # noqa: ANN001, ANN202
    return build(settings).store.read_stream(stream_id)


def _count(settings) -> int:  # noqa: ANN001
    with build(settings).engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events)).scalar_one()


def test_register_returns_201_with_id_version_position_and_location(client, api_settings):
    r = client.post("/users", json={"name": " Sarah Connor ", "email": "Sarah@Example.org", "phone": "+1 555"},
                    headers={"X-Actor": "alice", "X-Correlation-ID": "corr-1"})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "version", "position"}
    assert body["id"].startswith("user-") and body["version"] == 1 and body["position"] >= 1
    assert r.headers["location"] == f"/users/{body['id']}"
    assert r.headers["etag"] == '"1"'
    assert r.headers["x-correlation-id"] == "corr-1"
    [event] = _events(api_settings, body["id"])
    assert event.type == "UserRegistered" and event.position == body["position"]
    assert event.data == {"name": "Sarah Connor", "email": "sarah@example.org", "phone": "+1 555"}
    assert (event.metadata["actor"], event.metadata["claimed_actor"]) == ("anonymous", "alice")
    assert event.metadata["correlation_id"] == "corr-1"
    assert event.metadata["causation_id"]
    assert read(client, body["id"], body["position"])["email"] == "sarah@example.org"


def test_patch_emits_one_event_per_changed_field(client, api_settings, backend):
    user = register(client, email=unique_email("old"))
    new_email = unique_email("new")
    r = client.patch(f"/users/{user['id']}", json={"name": "Sarah Reese", "email": new_email, "phone": None})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 3  # phone was already null: no event for it
    types = [e.type for e in _events(api_settings, user["id"])]
    assert types == ["UserRegistered", "UserNameChanged", "UserEmailChanged"]
    view = read(client, user["id"], r.json()["position"])
    assert (view["name"], view["email"], view["version"]) == ("Sarah Reese", new_email, 3)
    # the old email is free again, the new one is taken
    register(client, email=user_email_of(api_settings, user["id"], version=1))
    assert client.post("/users", json={"name": "X", "email": new_email}).status_code == 409


def user_email_of(settings, user_id: str, version: int) -> str:  # noqa: ANN001
    return build(settings).users.load(user_id, version=version).state.email


def test_lifecycle_deactivate_reactivate_correct_delete(client, api_settings):
    user = register(client)
    uid = user["id"]
    assert client.post(f"/users/{uid}/deactivate", json={"reason": "left"}).json()["version"] == 2
    assert client.post(f"/users/{uid}/deactivate").status_code == 409  # already inactive
    assert client.post(f"/users/{uid}/reactivate").json()["version"] == 3
    r = client.post(f"/users/{uid}/corrections", json={"field": "phone", "value": "+44 1", "reason": "typo"},
                    headers={"X-Actor": "support"})
    assert r.status_code == 200 and r.json()["version"] == 4
    assert read(client, uid, r.json()["position"])["phone"] == "+44 1"
    r = client.delete(f"/users/{uid}")
    assert r.status_code == 200 and r.json()["version"] == 5
    got = client.get(f"/users/{uid}", params={"min_position": r.json()["position"]})
    assert got.status_code == 410
    stored = _events(api_settings, uid)
    assert [e.type for e in stored] == ["UserRegistered", "UserDeactivated", "UserReactivated", "UserCorrected",
                                       "UserDeleted"]
    assert stored[1].data == {"reason": "left"}
    assert stored[3].data == {"field": "phone", "value": "+44 1", "reason": "typo"}
    assert (stored[3].metadata["actor"], stored[3].metadata["claimed_actor"]) == ("anonymous", "support")
    assert client.patch(f"/users/{uid}", json={"name": "Ghost"}).status_code == 409  # deleted
    assert len(_events(api_settings, uid)) == 5


def test_if_match_stale_answers_412_with_the_current_version(client, api_settings, backend):
    uid = register(client)["id"]
    assert client.patch(f"/users/{uid}", json={"name": "B"}, headers={"If-Match": '"1"'}).status_code == 200
    before = _count(api_settings)
    r = client.patch(f"/users/{uid}", json={"name": "C"}, headers={"If-Match": "1"})
    assert r.status_code == 412
    assert r.json()["current_version"] == 2 and "stale" in r.json()["detail"]
    assert r.headers["etag"] == '"2"'
    assert _count(api_settings) == before  # nothing written
    # a stale If-Match wins over what the domain would say about the (newer) state
    assert client.patch(f"/users/{uid}", json={"name": "B"}, headers={"If-Match": "1"}).status_code == 412
    assert client.post(f"/users/{uid}/deactivate", headers={"If-Match": "2"}).status_code == 200
    assert client.post(f"/users/{uid}/reactivate", headers={"If-Match": "*"}).json()["version"] == 4


def test_concurrent_changes_without_if_match_all_apply(client, api_settings, backend):
    uid = register(client)["id"]
    results: list[int] = []

    def rename(i: int) -> None:
        r = client.patch(f"/users/{uid}", json={"name": f"Name {i}"})
        results.append(r.status_code)

    threads = [threading.Thread(target=rename, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 8
    stored = _events(api_settings, uid)
    assert [e.version for e in stored] == list(range(1, 10))


def test_concurrent_changes_with_the_same_if_match_one_wins(client, api_settings, backend):
    uid = register(client)["id"]
    codes: list[int] = []

    def rename(i: int) -> None:
        codes.append(client.patch(f"/users/{uid}", json={"name": f"N{i}"}, headers={"If-Match": "1"}).status_code)

    threads = [threading.Thread(target=rename, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [412] * 5
    assert len(_events(api_settings, uid)) == 2


def test_the_actor_comes_only_from_what_the_server_trusts(client, api_settings):
    """X-Actor is a claim (`claimed_actor`); the actor is the admin token's identity, else anonymous."""
    a = register(client)
    b = register(client, Authorization=f"Bearer {ADMIN_TOKEN}")
    c = register(client, Authorization="Bearer some-client-token")
    d = register(client, **{"X-Actor": "carol", **ADMIN})
    forged = register(client, **{"X-Actor": "admin"})
    meta = [_events(api_settings, u["id"])[0].metadata for u in (a, b, c, d, forged)]
    assert [(m["actor"], m.get("claimed_actor")) for m in meta[:2]] == [("anonymous", None), ("admin", None)]
    assert meta[2]["actor"] == "anonymous" and meta[2]["claimed_actor"].startswith("token:")
    assert "some-client-token" not in str(meta[2])
    assert (meta[3]["actor"], meta[3]["claimed_actor"]) == ("admin", "carol")
    assert (meta[4]["actor"], meta[4]["claimed_actor"]) == ("anonymous", "admin")


def test_a_configured_trusted_proxy_header_names_the_actor(api_settings):
    settings = api_settings.model_copy(update={"trusted_actor_header": "X-Forwarded-User"})
    with TestClient(create_app(settings)) as c:
        proxied = register(c, **{"X-Forwarded-User": "sarah@corp", "X-Actor": "admin"})
        direct = register(c, **{"X-Actor": "admin"})
        bad = c.post("/users", json={"name": "A", "email": unique_email()}, headers={"X-Forwarded-User": " "})
        assert bad.status_code == 422 and "X-Forwarded-User" in bad.json()["detail"]
    stop_embedded()
    meta = [_events(settings, u["id"])[0].metadata for u in (proxied, direct)]
    assert (meta[0]["actor"], meta[0]["claimed_actor"]) == ("sarah@corp", "admin")
    assert (meta[1]["actor"], meta[1]["claimed_actor"]) == ("anonymous", "admin")


def test_correlation_id_is_generated_echoed_and_causation_can_be_given(client, api_settings):
    r = client.post("/users", json={"name": "A", "email": unique_email()}, headers={"X-Causation-ID": "msg-9"})
    generated = r.headers["x-correlation-id"]
    assert len(generated) >= 16
    event = _events(api_settings, r.json()["id"])[0]
    assert event.metadata["correlation_id"] == generated
    assert event.metadata["causation_id"] == "msg-9"
    assert event.metadata["command"] == "RegisterUser"
    assert client.get("/health", headers={"X-Correlation-ID": "abc"}).headers["x-correlation-id"] == "abc"


def test_the_wake_up_goes_out_once_per_written_command_after_its_answer(api_settings):
    """The projections are woken with the command's position once its answer is written (a background
    task of the response), never for a refused command or a replayed one."""
    woken: list[tuple[int, bool]] = []
    answered = threading.Event()

    def publish(settings, position: int) -> None:
        woken.append((position, answered.is_set()))

    app = create_app(api_settings, publish=publish)

    @app.middleware("http")
    async def mark_answer(request, call_next):  # noqa: ANN001, ANN202 - runs as the answer starts
        response = await call_next(request)
        answered.set()
        return response

    try:
        with TestClient(app) as client:
            email = unique_email()
            first = client.post("/users", json={"name": "A", "email": email}, headers={"Idempotency-Key": "k-1"})
            assert first.status_code == 201
            assert woken == [(first.json()["position"], True)]
            answered.clear()
            replay = client.post("/users", json={"name": "A", "email": email}, headers={"Idempotency-Key": "k-1"})
            taken = client.post("/users", json={"name": "B", "email": email})
            assert (replay.status_code, taken.status_code) == (201, 409)
            changed = client.patch(f"/users/{first.json()['id']}", json={"name": "C"})
            assert changed.status_code == 200
            assert woken == [(first.json()["position"], True), (changed.json()["position"], True)]
    finally:
        stop_embedded()


def test_an_answered_command_checkpoints_the_sqlite_log_itself(api_settings, backend):
    """After its answer a written command copies SQLite's write-ahead log into the database (at most every
    50 ms), whatever the projections' pace: no later command's commit pays for SQLite's own checkpoint."""
    app = create_app(api_settings, publish=lambda settings, position: None)  # no projection runs at all
    try:
        with TestClient(app) as client:
            assert client.post("/users", json={"name": "A", "email": unique_email()}).status_code == 201
            engine = engine_for(api_settings.es_database_url)
            if backend != "sqlite":
                assert checkpoint_wal(engine) is False  # nothing to do on PostgreSQL
                return
            path = engine.url.database
            frames, copied = sqlite_log_frames(path)
            assert frames == copied > 0
    finally:
        stop_embedded()
