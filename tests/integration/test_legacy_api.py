"""The legacy CRUD API over HTTP (TestClient), on SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from legacy_app.api import create_app
from legacy_app.db import MYSQL_SESSION


@pytest.fixture
def client(new_legacy_and_es_urls):
    with TestClient(create_app(new_legacy_and_es_urls("legacy")[0])) as c:
        yield c


def _create(client, email, name="Ann Example", **extra):
    r = client.post("/users", json={"email": email, "full_name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_create_then_get(client):
    body = _create(client, "ann@example.org", "Zoë Ångström", phone="+49 30 1234")
    assert body["id"] > 0
    assert (body["email"], body["full_name"], body["is_active"], body["phone"]) == \
        ("ann@example.org", "Zoë Ångström", True, "+49 30 1234")
    created = datetime.fromisoformat(body["created_at"])
    assert created.utcoffset().total_seconds() == 0
    assert body["updated_at"] == body["created_at"]
    assert client.get(f"/users/{body['id']}").json() == body


def test_unknown_user_is_404_on_get_put_delete(client):
    assert client.get("/users/999").status_code == 404
    assert client.put("/users/999", json={"full_name": "X"}).status_code == 404
    r = client.delete("/users/999")
    assert r.status_code == 404 and "999" in r.json()["detail"]


def test_delete(client):
    uid = _create(client, "del@example.org")["id"]
    r = client.delete(f"/users/{uid}")
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/users/{uid}").status_code == 404
    assert client.get("/users").json()["total"] == 0


def test_duplicate_email_is_409_and_changes_nothing(client):
    a = _create(client, "a@example.org", "A")
    b = _create(client, "b@example.org", "B")
    r = client.post("/users", json={"email": "a@example.org", "full_name": "Other"})
    assert r.status_code == 409 and "a@example.org" in r.json()["detail"]
    r = client.put(f"/users/{b['id']}", json={"email": "a@example.org", "full_name": "B2"})
    assert r.status_code == 409
    assert client.get(f"/users/{b['id']}").json() == b
    assert client.get("/users").json()["total"] == 2
    assert client.get(f"/users/{a['id']}").json() == a


def test_partial_update_keeps_other_fields_and_moves_updated_at(client):
    user = _create(client, "p@example.org", "Pat", phone="+1 555 0100")
    r = client.put(f"/users/{user['id']}", json={"is_active": False})
    assert r.status_code == 200
    after = r.json()
    assert after["is_active"] is False
    assert {k: after[k] for k in ("email", "full_name", "phone", "created_at")} == \
        {k: user[k] for k in ("email", "full_name", "phone", "created_at")}
    assert after["updated_at"] > user["updated_at"]

    cleared = client.put(f"/users/{user['id']}", json={"phone": None}).json()
    assert cleared["phone"] is None and cleared["is_active"] is False

    full = client.put(f"/users/{user['id']}", json={"email": "pat@example.org", "full_name": "Pat Q",
                                                     "is_active": True, "phone": "+1 2"}).json()
    assert (full["email"], full["full_name"], full["is_active"], full["phone"]) == \
        ("pat@example.org", "Pat Q", True, "+1 2")
    assert client.get(f"/users/{user['id']}").json() == full


def test_unchanged_put_does_not_touch_updated_at(client):
    user = _create(client, "same@example.org", "Same")
    r = client.put(f"/users/{user['id']}", json={"full_name": "Same", "email": "same@example.org"})
    assert r.status_code == 200 and r.json() == user


@pytest.mark.parametrize("body", [
    {"full_name": "No Email"},
    {"email": "not-an-email", "full_name": "X"},
    {"email": "x@example.org", "full_name": "   "},
    {"email": "x@example.org", "full_name": "X" * 201},
    {"email": "x@example.org", "full_name": "X", "phone": "1" * 41},
    {"email": "x@example.org", "full_name": "X", "is_active": "maybe"},
    {"email": "x@example.org", "full_name": "X", "password": "secret"},
])
def test_bad_create_is_422_and_writes_nothing(client, body):
    r = client.post("/users", json=body)
    assert r.status_code == 422 and r.json()["detail"]
    assert client.get("/users").json()["total"] == 0


@pytest.mark.parametrize("body", [{"full_name": None}, {"email": None}, {"is_active": None},
                                  {"email": "bad"}, {"id": 5}])
def test_bad_update_is_422_and_changes_nothing(client, body):
    user = _create(client, "u@example.org", "U")
    assert client.put(f"/users/{user['id']}", json=body).status_code == 422
    assert client.get(f"/users/{user['id']}").json() == user


def test_bad_path_and_query_are_422(client):
    assert client.get("/users/abc").status_code == 422
    assert client.get("/users/0").status_code == 422
    assert client.get(f"/users/{2**31}").status_code == 422  # beyond the integer key, on both backends
    assert client.put(f"/users/{2**40}", json={"full_name": "X"}).status_code == 422
    assert client.get("/users", params={"limit": 0}).status_code == 422
    assert client.get("/users", params={"limit": 501}).status_code == 422
    assert client.get("/users", params={"offset": -1}).status_code == 422


def test_search_by_name_or_email_with_pagination(client):
    names = ["Alice Smith", "Bob Smithers", "Carol Jones", "Dan SMITH", "Eve Brown", "Ümit Smith"]
    ids = [_create(client, f"user{i}@example.org", n)["id"] for i, n in enumerate(names)]
    _create(client, "smithy@example.net", "Frank Miller")
    _create(client, "100%@example.org", "Percent")

    page = client.get("/users", params={"search": "smith", "limit": 2}).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 0
    assert [u["full_name"] for u in page["items"]] == ["Alice Smith", "Bob Smithers"]
    page2 = client.get("/users", params={"search": "smith", "limit": 2, "offset": 2}).json()
    assert [u["full_name"] for u in page2["items"]] == ["Dan SMITH", "Ümit Smith"]
    page3 = client.get("/users", params={"search": "smith", "limit": 2, "offset": 4}).json()
    assert [u["email"] for u in page3["items"]] == ["smithy@example.net"]

    assert client.get("/users", params={"search": "EXAMPLE.NET"}).json()["total"] == 1
    assert [u["full_name"] for u in client.get("/users", params={"search": "üMIT"}).json()["items"]] == ["Ümit Smith"]
    assert client.get("/users", params={"search": "%"}).json()["total"] == 1  # wildcards are literal
    assert client.get("/users", params={"search": "_"}).json()["total"] == 0

    everyone = client.get("/users", params={"limit": 500}).json()
    assert everyone["total"] == 8
    assert [u["id"] for u in everyone["items"]][:6] == ids
    assert client.get("/users", params={"offset": 8}).json()["items"] == []


def test_api_with_unavailable_read_mode_is_503(new_legacy_and_es_urls):
    with TestClient(create_app(new_legacy_and_es_urls("legacy")[0], read_mode="new")) as client:
        r = client.get("/users")
        assert r.status_code == 503 and "read mode 'new' is not available yet" in r.json()["detail"]


@pytest.mark.parametrize("path, params", [
    ("/users", {"offset": 99999999999999999999}),
    ("/users", {"offset": 2**63}),  # one beyond a 64-bit integer, which both databases hold
    ("/users", {"limit": 99999999999999999999}),
    ("/users/99999999999999999999", {}),
])
def test_huge_numbers_are_422_with_a_reason(client, path, params):
    r = client.get(path, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["msg"].startswith("Input should be less than or equal to")
    assert client.put("/users/99999999999999999999", json={"full_name": "X"}).status_code == 422
    assert client.delete("/users/99999999999999999999").status_code == 422


def test_the_largest_offset_both_databases_hold_is_an_empty_page(client):
    _create(client, "one@example.org")
    page = client.get("/users", params={"offset": 2**63 - 1}).json()
    assert (page["items"], page["total"], page["offset"]) == ([], 1, 2**63 - 1)


@pytest.mark.parametrize("search, code", [("\x00", "U+0000"), ("ann\x1f", "U+001F"), ("\x7f", "U+007F")])
def test_search_with_control_characters_is_422_with_a_reason(client, search, code):
    r = client.get("/users", params={"search": search})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["msg"] == f"Value error, must not contain control characters ({code})"
    assert r.json()["detail"][0]["loc"] == ["query", "search"]


def test_a_refused_lone_surrogate_is_echoed_escaped(client):
    body = '{"email": "s@example.org", "full_name": "Ann \\ud800"}'
    r = client.post("/users", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.content.isascii()
    assert r.json()["detail"][0]["input"] == "Ann \ud800"
    assert client.get("/users").json()["total"] == 0


def test_dirty_legacy_rows_are_still_read_and_edited(client, legacy_backend):
    """Only HTTP input is refused: values already in the table (the migration's dirty data) read as they are."""
    dirty = ["Ann\u202eeeL", "Tab\tName", "Bell\x07", "C1\x85"]
    dirty += ["Nul\x00Name"] if legacy_backend != "postgres" else []  # PostgreSQL text cannot hold NUL
    service = client.app.state.services().users  # the app's own service, below the HTTP checks
    ids = [service.create(email=f"dirty{i}@example.org", full_name=name, phone=f"+1\x0b{i}").id
           for i, name in enumerate(dirty)]
    for user_id, name in zip(ids, dirty):
        got = client.get(f"/users/{user_id}")
        assert got.status_code == 200 and got.json()["full_name"] == name
        r = client.put(f"/users/{user_id}", json={"is_active": False})
        assert r.status_code == 200 and r.json()["full_name"] == name and r.json()["phone"].startswith("+1\x0b")
    assert [u["full_name"] for u in client.get("/users", params={"search": "tab"}).json()["items"]] == ["Tab\tName"]
    assert client.get("/users").json()["total"] == len(dirty)


def test_duplicate_email_check_is_case_sensitive(client, legacy_backend):
    """The legacy behaviour the migration lives with (docs/legacy_app.md): the new side folds case.

    On MySQL/MariaDB the unique index follows the column's collation (`*_ci`: case- and accent-
    insensitive), so there a case duplicate is a 409 like an exact one, never a 500.
    """
    _create(client, "leg1@example.org")
    upper = client.post("/users", json={"email": "LEG1@example.org", "full_name": "Upper"})
    assert upper.status_code == (409 if legacy_backend == "mysql" else 201), upper.text
    assert client.post("/users", json={"email": "leg1@example.org", "full_name": "Again"}).status_code == 409


@pytest.fixture
def mysql_client(mysql_databases):
    """A legacy app on a fresh MySQL/MariaDB database (the MySQL-only cases)."""
    url = mysql_databases.new()
    try:
        with TestClient(create_app(url)) as c:
            yield c
    finally:
        mysql_databases.drop(url)


@pytest.mark.mysql
def test_mysql_collation_duplicates_are_409_on_create_and_update(mysql_client):
    client = mysql_client
    a = _create(client, "josé@example.org", "José")
    b = _create(client, "other@example.org", "Other")
    for email in ("JOSÉ@example.org", "jose@example.org", "Jose@Example.ORG"):
        r = client.post("/users", json={"email": email, "full_name": "Dup"})
        assert r.status_code == 409 and email in r.json()["detail"], r.text
        r = client.put(f"/users/{b['id']}", json={"email": email})
        assert r.status_code == 409, r.text
    assert client.get(f"/users/{b['id']}").json() == b and client.get(f"/users/{a['id']}").json() == a
    assert client.get("/users").json()["total"] == 2


@pytest.mark.mysql
def test_mysql_keeps_4_byte_characters_exactly(mysql_client):
    client = mysql_client
    user = _create(client, "emoji😀@example.org", "李小龍 😀 𝄞", phone="+1 555")
    assert client.get(f"/users/{user['id']}").json()["full_name"] == "李小龍 😀 𝄞"
    assert [u["id"] for u in client.get("/users", params={"search": "😀"}).json()["items"]] == [user["id"]]
    assert client.put(f"/users/{user['id']}", json={"full_name": "🎉" * 200}).status_code == 200
    assert client.get(f"/users/{user['id']}").json()["full_name"] == "🎉" * 200  # 200 characters, 800 bytes


@pytest.mark.mysql
def test_mysql_sessions_are_strict_whatever_the_servers_sql_mode(mysql_client):
    engine = mysql_client.app.state.services().database.engine
    with engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION sql_mode = ''")  # as a lax server would start it ...
        conn.exec_driver_sql(MYSQL_SESSION)  # ... and as the app starts every session
        modes = conn.exec_driver_sql("SELECT @@SESSION.sql_mode, @@SESSION.time_zone").one()
    assert "STRICT_ALL_TABLES" in modes[0].split(",") and modes[1] == "+00:00"


@pytest.mark.mysql
def test_mysql_refuses_what_a_narrower_legacy_column_cannot_hold_with_a_422(mysql_client):
    """A real legacy table may be utf8mb3 or narrower than the app's rules: refused clearly, never truncated."""
    client = mysql_client
    engine = client.app.state.services().database.engine
    user = _create(client, "narrow@example.org", "Narrow")
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE users MODIFY full_name VARCHAR(200) CHARACTER SET utf8mb3 "
                             "COLLATE utf8mb3_general_ci NOT NULL, MODIFY phone VARCHAR(10) NULL")
    for method, path, body, column in [
        ("POST", "/users", {"email": "e1@example.org", "full_name": "Ann 😀"}, "full_name"),
        ("PUT", f"/users/{user['id']}", {"full_name": "Ann 😀"}, "full_name"),
        ("POST", "/users", {"email": "e2@example.org", "full_name": "Ann", "phone": "+1 555 0100 99"}, "phone"),
    ]:
        r = client.request(method, path, json=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith("the legacy database cannot store this value: ") and column in \
            r.json()["detail"], r.text
    assert client.get("/users").json()["total"] == 1
    assert client.get(f"/users/{user['id']}").json() == user
    assert _create(client, "fine@example.org", "Zoë Ångström", phone="+1 555")["full_name"] == "Zoë Ångström"


def test_sqlite_text_that_is_not_utf8_reads_as_replacement_characters(client, legacy_backend):
    """SQLite stores any bytes another program wrote; the app still reads, searches and edits that row."""
    if legacy_backend != "sqlite":
        pytest.skip("PostgreSQL and MySQL refuse bytes that are not valid in the column's encoding")
    engine = client.app.state.services().database.engine
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO users (email, full_name, is_active, created_at, updated_at) VALUES "
                             "('raw@example.org', CAST(X'416E6EFF4C6565' AS TEXT), 1, "
                             "'2020-01-01 00:00:00', '2020-01-01 00:00:00')")
    [user] = client.get("/users", params={"search": "ann"}).json()["items"]
    assert user["full_name"] == "Ann\ufffdLee"
    assert client.get(f"/users/{user['id']}").json()["full_name"] == "Ann\ufffdLee"
    assert client.put(f"/users/{user['id']}", json={"is_active": False}).status_code == 200
    with engine.connect() as conn:  # the row's bytes are left as they were
        assert conn.exec_driver_sql("SELECT hex(full_name) FROM users").scalar() == "416E6EFF4C6565"
