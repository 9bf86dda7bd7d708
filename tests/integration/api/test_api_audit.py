"""Audit and time travel over HTTP, replayed from the store: history, as-of (time or version), diff."""

from __future__ import annotations

from datetime import datetime, timedelta

from es_app.bootstrap import build

import pytest

from .conftest import register, unique_email

PROXY = "X-Authenticated-User"  # set by the reverse proxy that authenticated the caller


@pytest.fixture
def api_settings(api_settings):  # noqa: ANN001, ANN201 - behind a proxy: its header names the actor
    return api_settings.model_copy(update={"trusted_actor_header": PROXY})


def _story(client) -> tuple[str, list[dict]]:  # noqa: ANN001
    """Behind the proxy, Sarah registers, is renamed by alice, changes email, is corrected by support: 4 events."""
    uid = register(client, name="Sarah Connor", email=unique_email("sarah"), **{PROXY: "sarah"})["id"]
    client.patch(f"/users/{uid}", json={"name": "Sarah Reese"}, headers={PROXY: "alice"})
    client.patch(f"/users/{uid}", json={"email": unique_email("reese")}, headers={PROXY: "sarah"})
    client.post(f"/users/{uid}/corrections", json={"field": "name", "value": "Sarah J. Reese", "reason": "legal name"},
                headers={PROXY: "support"})
    history = client.get(f"/users/{uid}/history").json()["events"]
    return uid, history


def test_history_is_paginated_and_carries_metadata(client, backend):
    uid, events = _story(client)
    assert [e["type"] for e in events] == ["UserRegistered", "UserNameChanged", "UserEmailChanged", "UserCorrected"]
    assert [e["version"] for e in events] == [1, 2, 3, 4]
    assert events[0]["position"] < events[1]["position"] < events[3]["position"]
    assert events[1]["data"] == {"name": "Sarah Reese"}
    assert events[1]["metadata"]["actor"] == "alice" and events[1]["metadata"]["correlation_id"]
    page = client.get(f"/users/{uid}/history", params={"limit": 3}).json()
    assert [e["version"] for e in page["events"]] == [1, 2, 3] and page["next_after_version"] == 3
    rest = client.get(f"/users/{uid}/history", params={"limit": 3, "after_version": 3}).json()
    assert [e["version"] for e in rest["events"]] == [4] and rest["next_after_version"] is None


def test_as_of_a_version_and_a_time(client, backend):
    uid, events = _story(client)
    v2 = client.get(f"/users/{uid}/as-of", params={"version": 2}).json()
    assert (v2["name"], v2["version"], v2["deleted"]) == ("Sarah Reese", 2, False)
    assert client.get(f"/users/{uid}/as-of", params={"version": 99}).json()["version"] == 4
    second = datetime.fromisoformat(events[1]["metadata"]["occurred_at"])
    at = client.get(f"/users/{uid}/as-of", params={"at": second.isoformat()}).json()
    assert (at["name"], at["version"]) == ("Sarah Reese", 2)
    just_before = (second - timedelta(microseconds=1)).isoformat()
    assert client.get(f"/users/{uid}/as-of", params={"at": just_before}).json()["name"] == "Sarah Connor"
    first = datetime.fromisoformat(events[0]["metadata"]["occurred_at"])
    r = client.get(f"/users/{uid}/as-of", params={"at": (first - timedelta(seconds=1)).isoformat()})
    assert r.status_code == 404 and "did not exist" in r.json()["detail"]
    utc_naive = second.replace(tzinfo=None).isoformat()  # no offset means UTC
    assert client.get(f"/users/{uid}/as-of", params={"at": utc_naive}).json()["version"] == 2


def test_as_of_a_deleted_user_still_answers(client):
    uid, _ = _story(client)
    client.delete(f"/users/{uid}")
    latest = client.get(f"/users/{uid}/as-of", params={"version": 5}).json()
    assert latest["deleted"] is True and latest["name"] == "Sarah J. Reese"


def test_diff_lists_each_changed_field_with_the_events_that_changed_it(client, api_settings, backend):
    uid, events = _story(client)
    d = client.get(f"/users/{uid}/diff", params={"from": "1", "to": "4"}).json()
    assert (d["from_version"], d["to_version"]) == (1, 4)
    changes = {c["field"]: c for c in d["changes"]}
    assert set(changes) == {"name", "email"}
    assert (changes["name"]["before"], changes["name"]["after"]) == ("Sarah Connor", "Sarah J. Reese")
    assert [(e["type"], e["actor"]) for e in changes["name"]["events"]] == [("UserNameChanged", "alice"),
                                                                             ("UserCorrected", "support")]
    assert [e["version"] for e in changes["email"]["events"]] == [3]
    # by time: from just after the rename up to the email change
    t2 = events[1]["metadata"]["occurred_at"]
    t3 = events[2]["metadata"]["occurred_at"]
    by_time = client.get(f"/users/{uid}/diff", params={"from": t2, "to": t3}).json()
    assert (by_time["from_version"], by_time["to_version"]) == (2, 3)
    assert [c["field"] for c in by_time["changes"]] == ["email"]
    whole = client.get(f"/users/{uid}/diff").json()
    assert whole["from_version"] == 0 and whole["to_version"] == 4
    name = next(c for c in whole["changes"] if c["field"] == "name")
    assert name["before"] is None and len(name["events"]) == 3
    state = build(api_settings).users.load(uid).state
    assert name["after"] == state.name


def test_audit_errors(client):
    uid, _ = _story(client)
    for path in ("history", "as-of?version=1", "diff"):
        r = client.get(f"/users/user-unknown/{path}")
        assert r.status_code == 404 and "unknown user" in r.json()["detail"], path
        assert client.get(f"/users/order-1/{path}").status_code == 404
    cases = [("as-of", {}), ("as-of", {"at": "2026-01-01T00:00:00Z", "version": 1}), ("as-of", {"at": "yesterday"}),
             ("as-of", {"version": 0}), ("as-of", {"version": "x"}), ("diff", {"from": "3", "to": "1"}),
             ("diff", {"from": "not a time"}), ("history", {"limit": 0}), ("history", {"after_version": -1})]
    for path, params in cases:
        r = client.get(f"/users/{uid}/{path}", params=params)
        assert r.status_code == 422, (path, params, r.text)
        assert r.json()["detail"], (path, params)
