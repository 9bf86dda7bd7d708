"""Queries on the read model: one user, search/filter/sort/cursor, read-your-writes and the stale flag."""

from __future__ import annotations

import threading
import time

from es_app.bootstrap import build
from es_app.projections import run_projections
from es_app.store import ExpectedVersion, NewEvent
from es_app.worker import embedded_worker

from .conftest import read, register, unique_email


def test_get_user_has_the_fields_and_the_read_model_position(client):
    created = register(client, name="Ann Lee", email="ann.lee@example.org")
    r = client.get(f"/users/{created['id']}", params={"min_position": created["position"]})
    body = r.json()
    assert r.status_code == 200
    assert {k: body[k] for k in ("id", "name", "email", "active", "phone", "version")} == {
        "id": created["id"], "name": "Ann Lee", "email": "ann.lee@example.org", "active": True, "phone": None,
        "version": 1}
    assert body["read_model"] == {"position": created["position"], "stale": False}
    assert r.headers["x-read-model-position"] == str(created["position"])
    assert r.headers["x-read-model-stale"] == "false"


def test_unknown_and_deleted_users(client):
    assert client.get("/users/user-nobody").status_code == 404
    assert client.get("/users/not-a-user-stream").status_code == 404
    uid = register(client)["id"]
    deleted = client.delete(f"/users/{uid}").json()
    r = client.get(f"/users/{uid}", headers={"X-Min-Position": str(deleted["position"])})
    assert r.status_code == 410 and "deleted" in r.json()["detail"]
    assert client.get(f"/users/{uid}/history").status_code == 200
    assert client.get(f"/users/{uid}/as-of", params={"version": 1}).json()["name"] == "Sarah Connor"
    listed = client.get("/users", params={"min_position": deleted["position"]}).json()["items"]
    assert uid not in [u["id"] for u in listed]


def _seed(client) -> tuple[dict[str, str], int]:  # noqa: ANN001
    names = ["delta", "Alpha", "charlie", "bravo", "echo 50%", "foxtrot", "golf_1"]
    ids, position = {}, 0
    for n in names:
        created = register(client, name=n, email=f"{n.split()[0].lower()}-{unique_email()}")
        ids[n] = created["id"]
        position = created["position"]
    r = client.post(f"/users/{ids['charlie']}/deactivate").json()
    return ids, r["position"]


def _all_pages(client, **params) -> list[str]:  # noqa: ANN001
    names, cursor = [], None
    while True:
        r = client.get("/users", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        names += [u["name"] for u in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return names


def test_list_search_filter_sort_and_cursor_pagination(client, backend):
    ids, position = _seed(client)
    every = ["Alpha", "bravo", "charlie", "delta", "echo 50%", "foxtrot", "golf_1"]
    first = client.get("/users", params={"limit": 3, "min_position": position, "sort": "name"}).json()
    assert first["read_model"]["stale"] is False
    assert sorted(_all_pages(client, limit=3, sort="name"), key=str.lower) == sorted(every, key=str.lower)
    forward = _all_pages(client, limit=2, sort="name")
    assert _all_pages(client, limit=3, sort="-name") == list(reversed(forward))
    assert len(set(_all_pages(client, limit=1, sort="created_at"))) == 7
    assert _all_pages(client, limit=2, sort="created_at") == list(reversed(_all_pages(client, limit=4,
                                                                                       sort="-created_at")))
    assert _all_pages(client, q="ALP") == ["Alpha"]
    assert _all_pages(client, q="HA", limit=1) == ["Alpha", "charlie"]
    assert _all_pages(client, q="%") == ["echo 50%"]  # LIKE wildcards are searched literally
    assert _all_pages(client, q="_") == ["golf_1"]
    assert _all_pages(client, q="golf-") == []
    assert _all_pages(client, q="bravo-") == ["bravo"]  # the email matches too
    assert _all_pages(client, active="false") == ["charlie"]
    assert len(_all_pages(client, active="true", limit=4)) == 6


def test_cursor_errors(client):
    _, position = _seed(client)
    page = client.get("/users", params={"limit": 2, "sort": "name", "min_position": position}).json()
    assert page["next_cursor"]
    r = client.get("/users", params={"limit": 2, "sort": "email", "cursor": page["next_cursor"]})
    assert r.status_code == 422 and "sort" in r.json()["detail"]
    for bad in ("nope", "!!!", "W10", "WyJuYW1lIiwxLDJd"):
        r = client.get("/users", params={"cursor": bad})
        assert r.status_code == 422 and "cursor" in r.json()["detail"], bad


def _append_unprojected(settings, n: int) -> tuple[str, int]:  # noqa: ANN001
    """Appends a user's events straight to the store: no publish, so the read model lags."""
    assert embedded_worker(settings).wait_idle(10)  # done with the commands sent so far
    store = build(settings).store
    uid = f"user-direct-{unique_email()[:12]}"
    result = store.append(uid, [NewEvent("UserRegistered", {"name": "Direct", "email": unique_email()},
                                         schema_version=2)], ExpectedVersion.NO_STREAM)
    for i in range(n - 1):
        result = store.append(uid, [NewEvent("UserNameChanged", {"name": f"Direct {i}"})])
    return uid, result.position


def test_stale_flag_says_the_read_model_lags_the_store(client, api_settings):
    register(client)  # starts the embedded worker, then wait until it is idle
    uid, position = _append_unprojected(api_settings, 2)
    r = client.get("/users")
    assert r.json()["read_model"]["stale"] is True
    assert r.json()["read_model"]["position"] < position
    assert client.get(f"/users/{uid}").status_code == 404
    run_projections(build(api_settings))
    r = client.get(f"/users/{uid}")
    assert r.status_code == 200 and r.json()["read_model"] == {"position": position, "stale": False}


def test_min_position_waits_for_the_projection(client, api_settings):
    register(client)
    uid, position = _append_unprojected(api_settings, 3)
    answer = {}

    def query() -> None:
        answer["r"] = client.get(f"/users/{uid}", params={"min_position": position})

    reader = threading.Thread(target=query)
    reader.start()
    time.sleep(0.3)  # the query is now waiting (it answers only once the projection has run)
    assert "r" not in answer
    run_projections(build(api_settings))
    reader.join(10)
    r = answer["r"]
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Direct 1" and r.json()["version"] == 3
    assert r.json()["read_model"] == {"position": position, "stale": False}


def test_min_position_gives_up_after_the_bound_and_says_stale(client, api_settings):
    register(client)
    api_settings.read_your_writes_timeout_s = 0.2
    uid, position = _append_unprojected(api_settings, 1)
    r = client.get(f"/users/{uid}", params={"min_position": position})
    assert r.status_code == 404
    assert r.json()["read_model"]["stale"] is True and r.json()["read_model"]["position"] < position
    # a position nobody has written yet cannot be waited for: an immediate stale answer
    r = client.get("/users", params={"min_position": position + 1000})
    assert r.status_code == 200 and r.json()["read_model"]["stale"] is True
