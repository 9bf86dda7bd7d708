"""`migrator verify` and `migrator repair` through the CLI entry point: exit codes (0 clean, 1 mismatches, 2 could
not run), the stored runs, the report formats, --since-last, and repair turning a dirty run clean."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from es_app.store import EventStore, make_engine
from migrator.capture import changelog as capture
from migrator.verify import runs
from tests.e2e.cli_run import run

T = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["legacy beside", pytest.param("legacy on mariadb", marks=pytest.mark.mysql)])
def urls(request, new_database_url):
    """Returns (legacy URL, event-store URL): two fresh databases of the test's backend, or a MariaDB legacy
    database beside an event store of the test's backend."""
    from es_app.bootstrap import engine_for
    from tests.conftest import require_mysql

    if request.param == "legacy on mariadb":
        require_mysql()
        pair = request.getfixturevalue("mysql_databases").new(), new_database_url("es")
    else:
        pair = new_database_url("legacy"), new_database_url("es")
    yield pair
    for url in pair:
        engine_for(url).dispose()  # the CLI's cached engines: give their connections back


def _opts(urls) -> tuple[str, ...]:
    legacy_url, es_url = urls
    return ("--legacy-url", legacy_url, "--es-url", es_url)


def _migrated(capsys, urls, n: int = 12) -> None:
    """Legacy users captured, relayed and projected: the new side agrees."""
    legacy_url, _ = urls
    assert run(capsys, "capture", "install", "--legacy-url", legacy_url)[0] == 0
    legacy = make_engine(legacy_url)
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) "
                          "VALUES (:i, :e, :n, :a, :t, :t)"),
                     [{"i": i, "e": f" U{i}@X.org ", "n": f" User {i} ", "a": i % 3 != 0, "t": T}
                      for i in range(1, n + 1)])
    legacy.dispose()
    code, _, err = run(capsys, "relay", *_opts(urls))
    assert code == 0, err


def _behind_the_relays_back(url: str, sql: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn, capture.migrator_writes(conn):
        conn.execute(text(sql))
    engine.dispose()


def _verify_json(capsys, urls, *argv) -> tuple[int, dict, str]:
    code, out, err = run(capsys, "verify", "--format", "json", "--wait", "1", *argv, *_opts(urls))
    assert code in (0, 1), err
    return code, json.loads(out), err


def test_clean_then_dirty_runs_are_stored_listed_and_exit_0_then_1(capsys, urls):
    _migrated(capsys, urls)
    code, doc, _ = _verify_json(capsys, urls)
    assert code == 0 and doc["clean"] is True and doc["id"] == 1
    assert doc["counts"] == dict.fromkeys(("missing_in_new", "missing_in_legacy", "field_differs", "replay_differs",
                                           "pending"), 0)
    assert [t["table"] for t in doc["tables"]] == ["users"] and doc["tables"][0]["rows_legacy"] == 12
    es = make_engine(urls[1])
    assert runs.load(es, 1) == doc

    _behind_the_relays_back(urls[0], "UPDATE users SET full_name = 'Changed Behind' WHERE id = 2")
    code, doc, _ = _verify_json(capsys, urls)
    assert code == 1 and doc["clean"] is False and doc["id"] == 2 and doc["counts"]["field_differs"] == 1
    [m] = doc["mismatches"]
    assert (m["table"], m["key"], m["stream_id"], m["kind"]) == ("users", 2, "user-2", "field_differs")
    assert m["fields"]["name"] == {"legacy": "Changed Behind", "new": "User 2", "replay": "User 2"}
    assert runs.load(es, 2) == doc and runs.latest_clean(es, ["users"])["id"] == 1  # type: ignore[index]
    es.dispose()

    code, out, _ = run(capsys, "verify", "--list", *_opts(urls))
    assert code == 0 and "verify runs (2)" in out
    code, out, _ = run(capsys, "verify", "--list", "--format", "json", "--limit", "1", *_opts(urls))
    assert code == 0 and [(r["id"], r["clean"]) for r in json.loads(out)] == [(2, False)]


def test_since_last_verifies_from_the_last_clean_run_and_says_so_when_there_is_none(capsys, urls):
    _migrated(capsys, urls)
    code, doc, err = _verify_json(capsys, urls, "--since-last")
    assert code == 0 and "no clean verify run of these tables yet: verifying every key" in err
    assert doc["options"]["since_last"] is True and doc["options"]["since_run"] is None
    assert doc["tables"][0]["keys_compared"] == 12
    code, doc, err = _verify_json(capsys, urls, "--since-last")
    assert code == 0 and "verifying the keys changed since clean run 1" in err
    assert doc["options"]["since_run"] == 1


def test_repair_makes_a_dirty_run_clean_and_leaves_corrections_in_the_history(capsys, urls):
    _migrated(capsys, urls)
    _behind_the_relays_back(urls[0], "UPDATE users SET full_name = 'Changed Behind' WHERE id = 2")
    _behind_the_relays_back(urls[0], "DELETE FROM users WHERE id = 3")
    code, doc, _ = _verify_json(capsys, urls, "--full")
    assert code == 1 and {(m["key"], m["kind"]) for m in doc["mismatches"]} == {(2, "field_differs"),
                                                                                (3, "missing_in_legacy")}
    code, out, err = run(capsys, "repair", "--report", str(doc["id"]), *_opts(urls))
    assert code == 0, err
    assert "users 2 (user-2, field_differs): correct [1 event]: name \"User 2\" -> \"Changed Behind\"" in out
    assert "users 3 (user-3, missing_in_legacy): delete" in out and "dry run: 2 actions planned" in out
    code, out, err = run(capsys, "repair", "--report", str(doc["id"]), "--apply", *_opts(urls))
    assert code == 0 and "applied: 2 events" in out, err
    assert _verify_json(capsys, urls, "--full")[0] == 0
    es = make_engine(urls[1])
    last = EventStore(es).read_stream("user-2")[-1]
    es.dispose()
    assert (last.type, last.data["reason"]) == ("UserCorrected", f"repair of verify run {doc['id']}")


@pytest.mark.parametrize("fmt, marker", [("text", "verify summary"), ("md", "## Mismatches per field"),
                                         ("html", "<!DOCTYPE html>")])
def test_each_format_writes_its_report_to_the_output_file(capsys, urls, tmp_path, fmt, marker):
    _migrated(capsys, urls, n=3)
    path = tmp_path / f"report.{fmt}"
    code, out, err = run(capsys, "verify", "--format", fmt, "--output", str(path), "--sample", "2", *_opts(urls))
    assert code == 0, err
    assert marker in path.read_text(encoding="utf-8") and "report written to" in err
    assert marker not in out


def _stored(es_url: str, mismatches: list[dict]) -> int:
    es = make_engine(es_url)
    try:
        return runs.store(es, {"format": 1, "id": None, "clean": not mismatches, "started_at": T.isoformat(),
                               "duration_s": 0.5, "options": {"tables": ["users"]}, "counts": {}, "tables": [],
                               "watermarks": {}, "mismatches": mismatches})
    finally:
        es.dispose()


def test_repair_of_a_run_whose_keys_agree_again_plans_nothing(capsys, urls):
    _migrated(capsys, urls, n=2)
    run_id = _stored(urls[1], [{"table": "users", "key": 1, "stream_id": "user-1", "kind": "field_differs",
                                "fields": {}, "explain": {}},
                               {"table": "users", "key": 2, "stream_id": "user-2", "kind": "pending",
                                "fields": {}, "explain": {"pending": {"changelog_id": 4}}}])
    code, out, _ = run(capsys, "repair", "--report", str(run_id), "--apply", *_opts(urls))
    assert code == 0
    assert "users 1 (user-1, field_differs): none: the new side agrees with the legacy row now" in out
    assert "users 2 (user-2, pending): skip: in flight when verified (changelog #4 not relayed)" in out
    assert "applied: 0 events" in out
    code, out, _ = run(capsys, "verify", "--list", *_opts(urls))
    assert code == 0 and re.search(rf"│\s+{run_id}\s+│", out)


@pytest.mark.parametrize("argv, message", [
    (["verify", "--sample", "10", "--full"], "pass either --sample or --full, not both"),
    (["verify", "--format", "pdf"], "Invalid value for '--format'"),
    (["verify", "--wait", "-1"], "Invalid value for '--wait'"),
    (["verify", "--sample", "0"], "Invalid value for '--sample'"),
    (["verify", "--list", "--format", "md"], "--list prints text or json"),
    (["verify", "--output", "/nonexistent-dir/report.html"], "does not exist"),
    (["verify", "--table", "orders"], "no mapping for this table"),
    (["repair", "--report", "99"], "no verify run 99"),
    (["repair", "--report", "0"], "Invalid value for '--report'"),
])
def test_what_cannot_run_is_one_error_line_and_exit_2(capsys, urls, argv, message):
    code, out, err = run(capsys, *argv, *_opts(urls))
    assert code == 2 and message in err and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:")


def test_an_event_store_that_is_not_there_is_exit_2(capsys, urls, tmp_path):
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    for argv in (["verify"], ["verify", "--list"], ["repair", "--report", "1"]):
        code, _, err = run(capsys, *argv, "--legacy-url", urls[0], "--es-url", missing)
        assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_a_real_document_has_the_documented_shape(capsys, urls):
    from tests.unit.test_verify_docs import documented_example, key_paths

    _migrated(capsys, urls, n=4)
    _behind_the_relays_back(urls[0], "UPDATE users SET full_name = 'Changed Behind' WHERE id = 2")
    _, doc, _ = _verify_json(capsys, urls)
    example = documented_example()
    assert list(doc) == list(example) and key_paths(doc) == key_paths(example)
    assert list(doc["options"]) == list(example["options"]) and list(doc["counts"]) == list(example["counts"])
    assert set(doc["mismatches"][0]["explain"]) == set(example["mismatches"][0]["explain"])
    assert set(doc["mismatches"][0]["fields"]["name"]) == {"legacy", "new", "replay"}
