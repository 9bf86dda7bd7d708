"""Stored verify runs (migrator.verify.runs): store, load, latest, latest_clean — hostile values included."""

from __future__ import annotations

import copy

import pytest

from migrator.verify import runs

HOSTILE = "a\x00b \ud800 <script>alert(1)</script> \u202e é"


def _doc(clean: bool, tables: list[str], *, started: str = "2026-12-06T20:30:00.123456+00:00",
         watermarks: dict | None = None) -> dict:
    return {
        "format": 1, "id": None, "clean": clean, "started_at": started,
        "finished_at": "2026-12-06T20:30:04.000000+00:00", "duration_s": 3.88,
        "options": {"tables": tables, "sample": 2000, "full": False, "since_last": False, "since_run": None,
                    "wait_s": 5.0},
        "counts": {"missing_in_new": 0, "missing_in_legacy": 0, "field_differs": 0 if clean else 1,
                   "replay_differs": 0, "pending": 0},
        "tables": [{"table": t, "category": t.rstrip("s"), "rows_legacy": 1, "rows_new": 1} for t in tables],
        "watermarks": watermarks if watermarks is not None else {t: {"changelog_id": 5, "position": 9} for t in tables},
        "mismatches_total": 0 if clean else 1, "mismatches_truncated": False,
        "mismatches": [] if clean else [{"table": tables[0], "key": HOSTILE, "stream_id": f"x-{HOSTILE}",
                                         "kind": "field_differs",
                                         "fields": {"name": {"legacy": HOSTILE, "new": None, "replay": 1.5}},
                                         "explain": {"changelog": None, "event": None, "pending": None,
                                                     "summary": HOSTILE}}],
    }


def test_a_stored_run_loads_back_as_the_same_document_with_its_id(es_engine):
    doc = _doc(False, ["users"])
    given = copy.deepcopy(doc)
    run_id = runs.store(es_engine, doc)
    assert doc == given  # the caller's document is not changed
    loaded = runs.load(es_engine, run_id)
    assert loaded == {**given, "id": run_id}
    assert list(loaded) == list(given)  # key order kept
    assert loaded["mismatches"][0]["key"] == HOSTILE  # NUL and a lone surrogate round-trip on both backends
    assert runs.store(es_engine, _doc(True, ["users"])) == run_id + 1


def test_an_unknown_run_is_one_clear_error(es_engine):
    with pytest.raises(runs.RunNotFound, match="no verify run 41"):
        runs.load(es_engine, 41)


def test_latest_lists_summaries_newest_first(es_engine):
    first = runs.store(es_engine, _doc(True, ["users", "accounts"]))
    second = runs.store(es_engine, _doc(False, ["users"], started="2026-12-06T21:00:00+00:00"))
    listed = runs.latest(es_engine, 10)
    assert [s["id"] for s in listed] == [second, first]
    newest = listed[0]
    assert (newest["clean"], newest["tables"], newest["counts"]["field_differs"]) == (False, ["users"], 1)
    assert newest["started_at"] == "2026-12-06T21:00:00.000000+00:00" and newest["duration_s"] == 3.88
    assert newest["options"]["sample"] == 2000
    assert [s["id"] for s in runs.latest(es_engine, 1)] == [second]


def test_latest_clean_is_the_newest_clean_run_covering_the_tables(es_engine):
    assert runs.latest_clean(es_engine) is None
    both = runs.store(es_engine, _doc(True, ["users", "accounts"], watermarks={"users": {"changelog_id": 1}}))
    only_users = runs.store(es_engine, _doc(True, ["users"], watermarks={"users": {"changelog_id": 7}}))
    runs.store(es_engine, _doc(False, ["users", "accounts"]))  # newer, but not clean
    found = runs.latest_clean(es_engine, ["users"])
    assert found is not None and found["id"] == only_users and found["watermarks"] == {"users": {"changelog_id": 7}}
    covering = runs.latest_clean(es_engine, ["users", "accounts"])
    assert covering is not None and covering["id"] == both
    assert runs.latest_clean(es_engine, ["orders"]) is None
    assert runs.latest_clean(es_engine)["id"] == only_users  # type: ignore[index]
