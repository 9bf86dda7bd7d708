"""Hostile input the ES API refuses with a 4xx and a reason, writing nothing: corrections of the wrong
type, bodies over the size cap (with or without Content-Length), unbalanced If-Match quotes, unknown
body fields on reactivate and delete, forged cursors, bodies json cannot parse."""

from __future__ import annotations

import base64
import json
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from es_app.api import create_app
from es_app.worker import stop_embedded

from .conftest import read, register, unique_email
from .test_api_errors import _written


def _refused(client: TestClient, settings: Any, cases: list[tuple[str, str, dict, int, str]]) -> None:
    before = _written(settings)
    wrong = []
    for method, path, kwargs, status, reason in cases:
        r = client.request(method, path, **kwargs)
        detail = r.json().get("detail") if r.headers.get("content-type", "").startswith("application/json") else None
        if r.status_code != status or not isinstance(detail, str) or reason.lower() not in detail.lower():
            wrong.append(f"{method} {path} {str(kwargs)[:200]}: expected {status} {reason!r}, got {r.status_code} "
                         f"{r.text[:300]}")
    assert not wrong, "\n".join(wrong)
    assert _written(settings) == before


def test_a_correction_value_must_have_the_fields_type(client, api_settings, backend):
    uid = register(client, name="Ann Lee")["id"]
    path = f"/users/{uid}/corrections"

    def correct(field: str, value: Any) -> tuple[str, str, dict, int, str]:
        return "POST", path, {"json": {"field": field, "value": value, "reason": "r"}}, 422, f"{field}"

    _refused(client, api_settings, [
        correct("name", None), correct("name", True), correct("name", 5), correct("name", ["A"]),
        correct("email", None), correct("email", False), correct("email", 1.5),
        correct("phone", True), correct("phone", 555), correct("phone", {"n": 1}),
        correct("active", None), correct("active", 1), correct("active", "true"),
        correct("name", "A\x00B"), correct("name", "x" * 1001),
    ])
    r = client.post(path, json={"field": "phone", "value": None, "reason": "r"})
    assert r.status_code == 409  # null is a phone value (already none): nothing to change
    r = client.post(path, json={"field": "name", "value": "Ann B. Lee", "reason": "legal name"})
    assert r.status_code == 200
    assert read(client, uid, r.json()["position"])["name"] == "Ann B. Lee"


@pytest.fixture
def small_client(api_settings) -> Iterator[TestClient]:  # noqa: ANN001
    with TestClient(create_app(api_settings.model_copy(update={"max_request_body_bytes": 1000}))) as c:
        yield c
    stop_embedded()


def _chunks(body: bytes, size: int = 256) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i:i + size]


def test_a_body_over_the_cap_is_413_with_or_without_content_length(small_client, api_settings, backend):
    big = json.dumps({"name": "x" * 2000, "email": unique_email()}).encode()
    ok = json.dumps({"name": "Small", "email": unique_email()}).encode()
    json_ct = {"Content-Type": "application/json"}
    _refused(small_client, api_settings, [
        ("POST", "/users", {"content": big, "headers": json_ct}, 413, "larger than 1000 bytes"),
        ("POST", "/users", {"content": _chunks(big), "headers": json_ct}, 413, "MAX_REQUEST_BODY_BYTES"),
        ("POST", "/users", {"content": big, "headers": {**json_ct, "Content-Length": "12"}}, 413, "larger than"),
        ("POST", "/users", {"content": ok, "headers": {**json_ct, "Content-Length": "1e3"}}, 400, "Content-Length"),
    ])
    r = small_client.post("/users", content=_chunks(ok, 7), headers=json_ct)  # chunked, under the cap
    assert r.status_code == 201, r.text


def test_the_default_cap_is_one_mebibyte(client, api_settings):
    assert api_settings.max_request_body_bytes == 1024 * 1024
    body = b'{"name": "' + b"x" * (1024 * 1024) + b'", "email": "a@example.org"}'
    r = client.post("/users", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "1048576" in r.json()["detail"]


def test_if_match_quotes_must_balance(client, api_settings, backend):
    uid = register(client)["id"]
    cases = [("PATCH", f"/users/{uid}", {"json": {"name": "B"}, "headers": {"If-Match": value}}, 422, "If-Match")
             for value in ('"1', '1"', 'W/1', 'W/"1', '""1""', '"1"x')]
    _refused(client, api_settings, cases)
    for value in ('"1"', "2", 'W/"3"', " 4 "):
        r = client.patch(f"/users/{uid}", json={"name": f"N{value.strip(' W/')}"}, headers={"If-Match": value})
        assert r.status_code == 200, (value, r.text)


def test_reactivate_and_delete_refuse_unknown_body_fields(client, api_settings, backend):
    uid = register(client)["id"]
    client.post(f"/users/{uid}/deactivate")
    _refused(client, api_settings, [
        ("POST", f"/users/{uid}/reactivate", {"json": {"force": True}}, 422, "force"),
        ("POST", f"/users/{uid}/reactivate", {"json": ["x"]}, 422, ""),
        ("DELETE", f"/users/{uid}", {"json": {"hard": True}}, 422, "hard"),
    ])
    assert client.post(f"/users/{uid}/reactivate", json={}).status_code == 200
    assert client.delete(f"/users/{uid}").status_code == 200


def _cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def test_forged_cursors_are_422(client, backend):
    for i in range(3):
        register(client, name=f"U{i}")
    page = client.get("/users", params={"sort": "created_at", "limit": 2}).json()
    assert client.get("/users", params={"sort": "created_at", "cursor": page["next_cursor"]}).status_code == 200
    forged = [("created_at", _cursor("created_at", "not-a-date", "user-x")),
              ("-created_at", _cursor("-created_at", "2026-13-45", "user-x")),
              ("name", _cursor("name", "\ud800", "user-x")),
              ("name", _cursor("name", "A", "user-\x00"))]
    for sort, cursor in forged:
        r = client.get("/users", params={"sort": sort, "cursor": cursor})
        assert r.status_code == 422 and "cursor" in r.json()["detail"], (sort, cursor, r.text)


def test_bodies_json_cannot_parse_are_422(client, api_settings, backend):
    json_ct = {"Content-Type": "application/json"}
    uid = register(client)["id"]
    _refused(client, api_settings, [
        ("POST", "/users", {"content": b"[" * 100_000 + b"]" * 100_000, "headers": json_ct}, 422,
         "nested too deeply"),
        ("PATCH", f"/users/{uid}", {"content": b'{"name": "\xff\xfe"}', "headers": json_ct}, 422, "malformed JSON"),
        ("POST", "/users", {"content": b'{"name": ', "headers": json_ct}, 422, "malformed JSON"),
        ("POST", "/users", {"content": b"9" * 5000, "headers": json_ct}, 422, "malformed JSON"),  # int too long
    ])
