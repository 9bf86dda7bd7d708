"""`migrator projections ...` and `migrator dead-letters ...`: work on both backends, one-line errors otherwise."""

from __future__ import annotations

import json

import pytest

from es_app.bootstrap import engine_for
from es_app.projections import list_parked, read_model_position
from es_app.store import NewEvent
from migrator.cli import main

from .projection_helpers import checkpoints, container, dump, register, seed_users


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def _json(capsys):
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def url(new_database_url):
    url = new_database_url("es")
    yield url
    engine_for(url).dispose()  # the CLI and the helpers share this process's engine for the URL


def test_run_status_and_rebuild(url, capsys):
    es = container(url)
    ids = seed_users(es, 5)
    assert main(["projections", "status", "--json", "--es-url", url]) == 0
    before = {s["name"]: s for s in _json(capsys)}
    assert before["users"]["position"] == 0 and before["users"]["lag"] == 10
    assert main(["projections", "run", "--es-url", url]) == 0
    assert "applied 15 events" in capsys.readouterr().out  # 10 user events + 5 welcome notifications
    assert sorted(dump(es.engine)) == sorted(ids)
    assert main(["projections", "status", "--json", "--es-url", url]) == 0
    after = {s["name"]: s for s in _json(capsys)}
    assert after["users"]["lag"] == 0 and after["users"]["rate"] > 0 and after["notifications"]["position"] == 10
    assert main(["projections", "status", "--es-url", url]) == 0
    assert "users" in capsys.readouterr().out
    assert main(["projections", "run", "--shards", "2", "--only", "users", "--es-url", url]) == 0
    assert set(checkpoints(es.engine)) == {"users:0/2", "users:1/2", "notifications"}
    assert main(["projections", "rebuild", "--es-url", url]) == 0
    assert "rebuilt users_view: 5 rows from 10 events" in capsys.readouterr().out
    assert read_model_position(es.engine) == es.store.head_position()


def test_dead_letters_list_retry_skip(url, capsys):
    es = container(url)
    a = register(es, "Ann")
    es.store.append(a, [NewEvent("UserEmailChanged", {"mail": "oops"}), NewEvent("UserNameChanged", {"name": "Anna"})])
    assert main(["projections", "run", "--only", "users", "--es-url", url]) == 0
    capsys.readouterr()
    assert main(["dead-letters", "list", "--json", "--es-url", url]) == 0
    [letter] = _json(capsys)
    assert letter["stream_id"] == a and letter["status"] == "parked"
    assert main(["dead-letters", "list", "--es-url", url]) == 0
    assert "dead letters (1)" in capsys.readouterr().out
    assert main(["dead-letters", "retry", str(letter["id"]), "--es-url", url]) == 1
    assert "failed again (attempt 2)" in _one_error_line(capsys)
    assert main(["dead-letters", "skip", str(letter["id"]), "--es-url", url]) == 0
    assert "skipped" in capsys.readouterr().out
    assert dump(es.engine)[a]["name"] == "Anna" and list_parked(es.engine) == []
    assert main(["dead-letters", "skip", str(letter["id"]), "--es-url", url]) == 1
    assert "already skipped" in _one_error_line(capsys)
    assert main(["dead-letters", "retry", "999", "--es-url", url]) == 1
    assert "no dead letter with id 999" in _one_error_line(capsys)


@pytest.mark.parametrize("args, message", [
    (["projections", "run", "--shard", "2", "--shards", "2"], "shard must be between 0 and 1"),
    (["projections", "run", "--shard", "1"], "needs a shard count above 1"),
    (["projections", "run", "--only", "nope"], "unknown projection 'nope'"),
    (["projections", "rebuild", "--shards", "0"], "Invalid value for '--shards'"),
    (["projections", "run", "--shards", "0"], "Invalid value for '--shards'"),
    (["projections", "run", "--shards", "-2"], "Invalid value for '--shards'"),
])
def test_bad_arguments_are_one_line_errors_and_change_nothing(url, capsys, args, message):
    es = container(url)
    register(es)
    assert main([*args, "--es-url", url]) == 2
    assert message in _one_error_line(capsys)
    assert dump(es.engine) == {} and checkpoints(es.engine) == {}


def test_a_database_without_the_schema_is_one_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["projections", "status", "--es-url", url]) == 1
    assert "migrator init" in _one_error_line(capsys)
