"""Contract of every route's errors: status, a one-line `detail`, and nothing written."""

from __future__ import annotations

from sqlalchemy import func, select

from es_app.api.idempotency import idempotency_keys
from es_app.bootstrap import build
from es_app.store.schema import events

from .conftest import ADMIN, register, unique_email


def _written(settings) -> tuple[int, int]:  # noqa: ANN001
    with build(settings).engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(events)).scalar_one(),
                conn.execute(select(func.count()).select_from(idempotency_keys)).scalar_one())


def test_every_route_answers_bad_input_with_a_4xx_and_a_reason(client, api_settings, backend):
    live = register(client, email="taken@example.org")
    uid = live["id"]
    gone = register(client)["id"]
    client.delete(f"/users/{gone}")
    inactive = register(client)["id"]
    client.post(f"/users/{inactive}/deactivate")
    json_ct = {"Content-Type": "application/json"}
    cases = [
        # POST /users
        ("POST", "/users", {"content": b'{"name": "A", "email": ', "headers": json_ct}, 422, "malformed JSON"),
        ("POST", "/users", {"json": {"name": 42, "email": "a@example.org"}}, 422, "name"),
        ("POST", "/users", {"json": {"name": "A"}}, 422, "email"),
        ("POST", "/users", {"json": ["A", "a@example.org"]}, 422, ""),
        ("POST", "/users", {"json": {"name": "A", "email": "a@example.org", "admin": True}}, 422, "admin"),
        ("POST", "/users", {"json": {"name": "A", "email": "not-an-email"}}, 422, "invalid email"),
        ("POST", "/users", {"json": {"name": "   ", "email": unique_email()}}, 422, "name must not be empty"),
        ("POST", "/users", {"json": {"name": "A\x00B", "email": unique_email()}}, 422, "control characters"),
        ("POST", "/users", {"json": {"name": "A", "email": "Taken@Example.org"}}, 409, "already used"),
        ("POST", "/users", {"json": {"name": "A", "email": unique_email()},
                            "headers": {"Idempotency-Key": "has space"}}, 422, "Idempotency-Key"),
        ("POST", "/users", {"json": {"name": "A", "email": unique_email()},
                            "headers": {"X-Correlation-ID": "x" * 300}}, 422, "X-Correlation-ID"),
        # PATCH /users/{id}
        ("PATCH", "/users/user-unknown", {"json": {"name": "B"}}, 404, "unknown user"),
        ("PATCH", f"/users/{uid}", {"json": {}}, 422, "at least one"),
        ("PATCH", f"/users/{uid}", {"json": {"name": None}}, 422, "name must not be null"),
        ("PATCH", f"/users/{uid}", {"json": {"name": "Sarah Connor"}}, 409, "nothing to change"),
        ("PATCH", f"/users/{uid}", {"json": {"email": "TAKEN@example.org"}}, 409, "nothing to change"),
        ("PATCH", f"/users/{uid}", {"json": {"name": "B"}, "headers": {"If-Match": "v1"}}, 422, "If-Match"),
        ("PATCH", f"/users/{uid}", {"json": {"name": "B"}, "headers": {"If-Match": "7"}}, 412, "stale"),
        ("PATCH", f"/users/{gone}", {"json": {"name": "B"}}, 409, "deleted"),
        # deactivate / reactivate / delete
        ("POST", "/users/user-unknown/deactivate", {}, 404, "unknown user"),
        ("POST", f"/users/{inactive}/deactivate", {}, 409, "already inactive"),
        ("POST", f"/users/{uid}/deactivate", {"json": {"reason": 5}}, 422, "reason"),
        ("POST", "/users/user-unknown/reactivate", {}, 404, "unknown user"),
        ("POST", f"/users/{uid}/reactivate", {}, 409, "already active"),
        ("DELETE", "/users/user-unknown", {}, 404, "unknown user"),
        ("DELETE", f"/users/{gone}", {}, 409, "deleted"),
        ("DELETE", "/users/order-7", {}, 404, "unknown user"),
        # corrections
        ("POST", f"/users/{uid}/corrections", {"json": {"field": "role", "value": "x", "reason": "r"}}, 422, "field"),
        ("POST", f"/users/{uid}/corrections", {"json": {"field": "name", "value": "B"}}, 422, "reason"),
        ("POST", f"/users/{uid}/corrections", {"json": {"field": "name", "value": "B", "reason": " "}}, 422,
         "needs a reason"),
        ("POST", f"/users/{uid}/corrections", {"json": {"field": "email", "value": "nope", "reason": "r"}}, 422,
         "invalid email"),
        ("POST", f"/users/{uid}/corrections", {"json": {"field": "active", "value": "yes", "reason": "r"}}, 422,
         "true or false"),
        ("POST", f"/users/{uid}/corrections", {"json": {"field": "active", "value": True, "reason": "r"}}, 409,
         "already has"),
        ("POST", "/users/user-unknown/corrections", {"json": {"field": "name", "value": "B", "reason": "r"}}, 404,
         "unknown user"),
        # queries
        ("GET", "/users/user-unknown", {}, 404, "unknown user"),
        ("GET", f"/users/{gone}", {}, 410, "deleted"),
        ("GET", f"/users/{uid}", {"params": {"min_position": -1}}, 422, "min_position"),
        ("GET", f"/users/{uid}", {"params": {"min_position": 2**64}}, 422, "min_position"),
        ("GET", f"/users/{uid}", {"headers": {"X-Min-Position": "soon"}}, 422, "X-Min-Position"),
        ("GET", "/users", {"params": {"sort": "password"}}, 422, "sort"),
        ("GET", "/users", {"params": {"limit": 0}}, 422, "limit"),
        ("GET", "/users", {"params": {"active": "maybe"}}, 422, "active"),
        ("GET", "/users", {"params": {"cursor": "garbage"}}, 422, "cursor"),
        ("GET", "/users", {"params": {"q": "a\x00"}}, 422, "q"),
        # admin
        ("GET", "/admin/dead-letters/0", {"headers": ADMIN}, 422, "letter_id"),
        ("GET", "/admin/dead-letters/abc", {"headers": ADMIN}, 422, "letter_id"),
        ("GET", "/admin/dead-letters/77", {"headers": ADMIN}, 404, "no dead letter"),
        ("POST", "/admin/dead-letters/77/skip", {"headers": ADMIN}, 404, "no dead letter"),
        ("GET", "/events", {}, 401, "Bearer"),
        # routing
        ("PUT", f"/users/{uid}", {"json": {"name": "B"}}, 405, "Method Not Allowed"),
        ("GET", "/nowhere", {}, 404, "Not Found"),
    ]
    before = _written(api_settings)
    wrong = []
    for method, path, kwargs, status, reason in cases:
        r = client.request(method, path, **kwargs)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        detail = body.get("detail")
        if r.status_code != status or not isinstance(detail, str) or reason.lower() not in detail.lower() \
                or "\n" in detail:
            wrong.append(f"{method} {path} {kwargs}: expected {status} with {reason!r}, got {r.status_code} {r.text}")
    assert not wrong, "\n".join(wrong)
    assert _written(api_settings) == before  # no refused command wrote anything
