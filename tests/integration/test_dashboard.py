"""The dashboard's pages and phase actions over HTTP (TestClient) on both backends: what each page shows, the
token, the guards, and bad input answered with 4xx and one reason."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from es_app.bootstrap import engine_for
from es_app.settings import get_settings
from es_app.store import EventStore
from migrator.cli import main
from migrator.dashboard import create_app
from migrator.phases import load, stream_id

from .dashboard_helpers import TOKEN, prepare, settings_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def url(new_database_url):
    url = new_database_url("dash")  # the legacy tables and the event store in one database
    prepare(url)
    yield url
    engine_for(url).dispose()


@pytest.fixture
def client(url):
    return TestClient(create_app(settings_for(url, TOKEN)))


def actors(url: str) -> list[tuple[str, str]]:
    return [(e.type, e.metadata["actor"]) for e in EventStore(engine_for(url)).read_stream(stream_id("users"))]


def cells(html: str, row: str) -> list[str]:
    """Returns the <td> elements (class and text) of the table row of field `row`."""
    found = re.search(rf'<tr data-field="{row}">(.*?)</tr>', html, re.S)
    assert found, row
    tds = re.findall(r'<td class="([^"]*)">(.*?)</td>', found.group(1), re.S)
    return [f"{cls}={text.strip()}" for cls, text in tds]


def test_the_migration_page_shows_phase_history_guards_and_figures(client, url):
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    assert '<span id="phase" class="phase">dual_write</span>' in html
    assert re.search(r'<li class="current"><span class="name">dual_write</span>\s*<span class="who">by ana, ', html)
    assert '<li class="ok"><b>ok</b> backfill_finished: finished on users</li>' in html
    assert "advanced legacy → dual_write" in html and "<td>ana</td>" in html
    assert re.search(r'id="backlog" class="value">0<', html) and re.search(r'id="lag" class="value">0<', html)
    assert "none recorded" in html and re.search(r'id="verify" class="value">never<', html)
    assert re.search(r"<td>users</td><td>done</td><td class=\"num\">3</td>", html)
    assert '<svg id="chart"' in html and 'id="token"' in html and "actions are disabled" not in html
    live = client.get("/fragments/migration")
    assert live.status_code == 200 and 'data-lag="0"' in live.text and "<html" not in live.text
    data = client.get("/api/migration").json()
    assert (data["phase"], data["next"], data["backlog"], data["lag"], data["mismatch_rate"]) == (
        "dual_write", "backfilled", 0, 0, None)
    assert [p["state"] for p in data["timeline"]][:3] == ["done", "current", "ahead"]


def test_without_a_token_the_dashboard_is_read_only(url):
    client = TestClient(create_app(settings_for(url)))
    html = client.get("/").text
    assert 'id="actions-disabled"' in html and "set DASHBOARD_TOKEN" in html and 'data-action="advance"' not in html
    for name in ("advance", "rollback", "pause", "resume", "reads"):
        r = client.post(f"/actions/{name}", json={}, headers=AUTH)
        assert r.status_code == 403 and r.json() == {"detail": "the phase actions are disabled: set DASHBOARD_TOKEN"}
    placeholder = TestClient(create_app(settings_for(url, "change-me")))
    assert placeholder.post("/actions/advance", headers={"Authorization": "Bearer change-me"}).status_code == 403
    assert load(EventStore(engine_for(url))).phase == "dual_write"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer"])
def test_an_action_without_the_right_token_is_403(client, url, header):
    r = client.post("/actions/advance", json={}, headers={"Authorization": header} if header else {})
    assert r.status_code == 403 and "dashboard token" in r.json()["detail"]
    assert load(EventStore(engine_for(url))).phase == "dual_write"


def test_the_actions_go_through_the_guards_and_record_the_dashboard(client, url):
    r = client.post("/actions/advance", json={}, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"action": "advance", "actor": "dashboard", "message":
                                                 "dual_write → backfilled; reads legacy, writes legacy"}
    assert actors(url)[-1] == ("PhaseAdvanced", "dashboard")

    refused = client.post("/actions/advance", json={}, headers=AUTH)  # no clean verify run
    assert refused.status_code == 409
    body = refused.json()
    assert body["detail"] == "cannot advance to shadow_reads: 1 guard(s) unmet"
    assert body["unmet"] == [{"name": "verify_clean_recent", "ok": False, "detail": body["unmet"][0]["detail"]}]
    assert "no clean verify run" in body["unmet"][0]["detail"]
    assert load(EventStore(engine_for(url))).phase == "backfilled"
    assert actors(url)[-1] == ("GuardFailed", "dashboard")

    assert client.post("/actions/pause", json={"reason": "night"}, headers=AUTH).json()["message"] == \
        "paused: night (by dashboard)"
    assert 'id="paused">paused: night (by dashboard)' in client.get("/fragments/migration").text
    assert client.post("/actions/pause", json={}, headers=AUTH).status_code == 409  # already paused
    assert client.post("/actions/resume", headers=AUTH).json()["message"] == "resumed"
    r = client.post("/actions/reads", json={"mode": "shadow", "percent": 25}, headers=AUTH)
    assert r.status_code == 200 and r.json()["message"] == "reads legacy → shadow for 25% of users"
    r = client.post("/actions/rollback", json={"to": "legacy"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["message"].startswith("backfilled → legacy (rolled back)")
    state = load(EventStore(engine_for(url)))
    assert (state.phase, state.reads) == ("legacy", "legacy")
    assert {actor for kind, actor in actors(url)[3:]} == {"dashboard"}


@pytest.mark.parametrize(("name", "body", "status", "detail"), [
    ("advance", {"to": "bogus"}, 422, "'bogus' is not a phase: choose one of legacy, dual_write"),
    ("advance", {"to": 3}, 422, "3 is not a phase"),
    ("advance", {"to": "legacy"}, 409, "legacy"),
    ("rollback", {"to": "backfilled"}, 409, "backfilled"),
    ("reads", {"mode": "sideways"}, 422, "'sideways' is not a reads mode"),
    ("reads", {"mode": "new", "percent": 0}, 422, "percent must be a number above 0 and at most 100"),
    ("reads", {"mode": "new", "percent": "all"}, 422, "percent must be a number"),
    ("reads", {"mode": "new"}, 409, "reads cannot be new before the backfilled phase"),
    ("pause", {"reason": "  "}, 422, "reason must be a non-blank text"),
    ("nothing", {}, 404, "no action 'nothing'"),
])
def test_bad_actions_are_4xx_with_a_reason(client, url, name, body, status, detail):
    r = client.post(f"/actions/{name}", json=body, headers=AUTH)
    assert r.status_code == status and detail in r.json()["detail"]
    assert load(EventStore(engine_for(url))).phase == "dual_write"


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_an_action_body_that_is_not_a_json_object_is_422(client, content):
    r = client.post("/actions/pause", content=content, headers=AUTH)
    assert r.status_code == 422 and r.json() == {"detail": "the body must be a JSON object"}


def test_a_user_side_by_side_highlights_the_differences(client):
    html = client.get("/users/1").text
    assert cells(html, "name") == ['legacy="Ada Lovelace"', 'read-model="Ada Lovelace"', 'replayed="Ada Lovelace"']
    assert 'id="verdict">the three views agree' in html and "version 3" in html
    html = client.get("/users/3").text
    assert cells(html, "name") == ['legacy="User 3"', 'read-model differ="Wrong"', 'replayed="User 3"']
    assert cells(html, "email")[1] == 'read-model="u3@example.org"'
    assert re.search(r'id="verdict">differs from the legacy row:\s*read model in name', html)
    found = client.get("/users", params={"key": " 3 "}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"].endswith("/users/3?table=users")
    assert 'name="key"' in client.get("/users").text


def test_a_users_timeline_carries_the_state_at_every_version(client):
    html = client.get("/users/1/timeline").text
    assert '<input type="range" id="version" min="0" max="3" value="3"' in html
    assert len(re.findall(r'<tr data-version="\d">', html)) == 3
    states = re.search(r'<script type="application/json" id="states">(.*?)</script>', html, re.S).group(1)
    assert states.startswith("[null, {") and '"User 1"' in states and '"Ada"' in states and '"Ada Lovelace"' in states
    assert 'value="1"' in client.get("/users/1/timeline", params={"version": 1}).text


@pytest.mark.parametrize(("path", "status", "detail"), [
    ("/users/abc", 422, "&#39;abc&#39; is not a key of users"),
    ("/users/99999999999999999999999", 422, "is not a key of users"),
    ("/users/99", 404, "no row and the event store no stream for key 99"),
    ("/users/1?table=orders", 404, "no mapping of a table &#39;orders&#39;"),
    ("/users/99/timeline", 404, "no stream user-99"),
    ("/users/1/timeline?version=4", 422, "version must be between 0 and 3"),
    ("/users/1/timeline?version=x", 422, "version: "),
    ("/users?key=x1", 422, "is not a key of users"),
    ("/reports/12345", 404, "no verify run 12345"),
    ("/reports/x", 422, "run_id: "),
    ("/nowhere", 404, "Not Found"),
])
def test_bad_page_requests_are_4xx_with_a_reason(client, path, status, detail):
    r = client.get(path)
    assert r.status_code == status and detail in r.text and "Traceback" not in r.text
    assert f"<h1>{status}</h1>" in r.text


def test_the_verify_reports_list_the_runs_and_show_each_report(client, url):
    assert 'id="no-runs"' in client.get("/reports").text
    main(["verify", "--full", "--es-url", url, "--legacy-url", url])  # user 3's read model differs: not clean
    html = client.get("/reports").text
    run_id = re.search(r'<a href="/reports/(\d+)">run \1</a>', html).group(1)
    assert '<td class="unmet">not clean</td>' in html and "<td>full</td>" in html
    report = client.get(f"/reports/{run_id}")
    assert report.status_code == 200 and report.text.lstrip().lower().startswith("<!doctype html>")
    assert "user-3" in report.text or ">3<" in report.text
    assert f'<a href="/reports/{run_id}">run {run_id}</a>' in client.get("/").text


def test_the_app_is_built_from_the_environment_on_first_use(url, monkeypatch):
    monkeypatch.setenv("ES_DATABASE_URL", url)
    monkeypatch.setenv("LEGACY_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        app = create_app()  # nothing is read yet
        monkeypatch.setenv("DASHBOARD_TOKEN", TOKEN)
        get_settings.cache_clear()
        client = TestClient(app)
        assert '<span id="phase" class="phase">dual_write</span>' in client.get("/").text
        assert client.post("/actions/pause", headers=AUTH).status_code == 200
    finally:
        get_settings.cache_clear()


def test_databases_without_the_schema_are_503_with_a_reason(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    client = TestClient(create_app(settings_for(f"sqlite:///{empty}", TOKEN)))
    for path in ("/", "/fragments/migration", "/reports"):
        r = client.get(path)
        assert r.status_code == 503 and "the databases cannot be read: no such table" in r.text, path
    r = client.get("/users/1")
    assert r.status_code == 503 and "the mapping cannot be used: mapping users: table &#39;users&#39; does not " \
        "exist" in r.text
    r = client.post("/actions/advance", json={}, headers=AUTH)
    assert r.status_code == 503 and r.json()["detail"].startswith("the databases cannot be read: no such table")
    assert client.get("/health").json() == {"status": "ok"}


@pytest.mark.parametrize(("argv", "code", "error"), [
    (["--es-url", "sqlite:///{tmp}/missing.db"], 1, "the es database {tmp}/missing.db does not exist"),
    (["--es-url", "sqlite:///{tmp}/empty.db"], 1, "is not at its schema head: run `migrator init`"),
    (["--es-url", "{url}", "--legacy-url", "sqlite:///{tmp}/missing.db"], 1,
     "the legacy database {tmp}/missing.db does not exist"),
    (["--es-url", "bogus://x"], 2, "backend 'bogus' is not supported"),
    (["--port", "0"], 2, "Invalid value for '--port'"),
])
def test_serve_dashboard_refuses_bad_input_in_one_line(tmp_path, capsys, argv, code, error):
    (tmp_path / "empty.db").touch()
    url = f"sqlite:///{tmp_path / 'ok.db'}"
    assert main(["init", "--es-url", url, "--legacy-url", url]) == 0
    capsys.readouterr()
    filled = [a.format(tmp=tmp_path, url=url) for a in argv]
    assert main(["serve", "dashboard", *filled]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and error.format(tmp=tmp_path) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "missing.db").exists()


def test_importing_the_app_connects_to_nothing(tmp_path):
    env = dict(os.environ, ES_DATABASE_URL=f"sqlite:///{tmp_path / 'es.db'}",
               LEGACY_DATABASE_URL=f"sqlite:///{tmp_path / 'legacy.db'}")
    code = "import fastapi, migrator.dashboard as d; assert isinstance(d.app, fastapi.FastAPI); print(d.app.title)"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "migrator dashboard", done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
