"""The phase machine on both backends: advance through guards, rollback, force, pause / resume / throttle,
optimistic concurrency on the migration's stream, and `migrator status` showing it all."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from es_app.bootstrap import engine_for
from es_app.store import EventStore, NewEvent
from migrator.cli import main
from migrator.phases import MigrationChanged, PhaseError, advance, load, pause, rollback, stream_id, throttle
from migrator.verify.runs import store as store_verify_run

T = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
STATUS_KEYS = ["tables", "capture", "relay", "backfill", "projections", "findings", "parked", "capture_gaps", "runs",
               "phase", "next", "guards", "backlog", "lag", "last_verify", "shadow", "paused", "migration"]


@pytest.fixture
def url(new_database_url):
    url = new_database_url("phases")  # the legacy tables and the event store in one database
    yield url
    engine_for(url).dispose()


def cli(capsys, url: str, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*argv, "--es-url", url, "--legacy-url", url])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def add_users(url: str, ids: range) -> None:
    with engine_for(url).begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                          "VALUES (:id, :email, :name, TRUE, NULL, :t, :t)"),
                     [{"id": i, "email": f"u{i}@example.org", "name": f"User {i}", "t": T} for i in ids])


def history(url: str) -> list[tuple[str, str]]:
    return [(e.type, e.metadata["actor"]) for e in EventStore(engine_for(url)).read_stream(stream_id("users"))]


def clean_verify(url: str, age: timedelta = timedelta(minutes=1)) -> int:
    finished = datetime.now(timezone.utc) - age
    return store_verify_run(engine_for(url), {"started_at": (finished - timedelta(seconds=3)).isoformat(),
                                              "finished_at": finished.isoformat(), "clean": True,
                                              "tables": [{"table": "users"}], "options": {"tables": ["users"]}})


def test_a_walk_through_the_guards_to_reads_switched_and_back(url, capsys):
    add_users(url, range(1, 6))
    code, out, err = cli(capsys, url, "advance", "--actor", "ana")
    assert code == 1 and not out
    assert err.splitlines() == [
        "error: cannot advance to dual_write: capture_installed: no changelog: run `migrator capture install`",
        "error: cannot advance to dual_write: relay_running: the relay has not run on users (start `migrator relay "
        "--follow`)"]
    assert history(url) == [("GuardFailed", "ana"), ("GuardFailed", "ana")]  # the attempt is recorded
    assert load(EventStore(engine_for(url))).phase == "legacy"

    assert main(["capture", "install", "--legacy-url", url]) == 0
    assert main(["relay", "--es-url", url, "--legacy-url", url]) == 0
    code, _, err = cli(capsys, url, "advance", "--to", "backfilled")  # all or nothing: dual_write is not taken
    assert code == 1 and err.startswith("error: cannot advance to backfilled: backfill_finished: no finished")
    assert load(EventStore(engine_for(url))).phase == "legacy"
    code, out, _ = cli(capsys, url, "advance", "--actor", "ana")
    assert code == 0 and "legacy → dual_write" in out

    code, out, _ = cli(capsys, url, "plan")
    assert code == 0 and "backfill_finished" in out and "full_verify_clean_recent: no --full verify run" in out
    plan = json.loads(cli(capsys, url, "plan", "--json")[1])
    assert [s["phase"] for s in plan["steps"]] == ["backfilled", "shadow_reads", "reads_switched",
                                                   "writes_switched", "decommissioned"]
    assert plan["steps"][0]["guards"][0] == {"name": "backfill_finished", "ok": False,
                                            "detail": "no finished backfill of users (never): run `migrator backfill`"}

    assert main(["backfill", "--es-url", url, "--legacy-url", url]) == 0
    add_users(url, range(6, 8))  # two changes wait for the relay
    code, _, err = cli(capsys, url, "advance")
    assert code == 1 and err.strip() == ("error: cannot advance to backfilled: relay_backlog_empty: 2 changes wait "
                                         "for the relay")
    assert main(["relay", "--es-url", url, "--legacy-url", url]) == 0
    assert cli(capsys, url, "advance")[0] == 0

    code, _, err = cli(capsys, url, "advance")
    assert code == 1 and "verify_clean_recent: no clean verify run" in err
    clean_verify(url, timedelta(hours=3))
    code, _, err = cli(capsys, url, "advance")
    assert code == 1 and re.search(r"is 10,80\ds old \(at most 3600s\)", err)  # the run's own seconds count too
    clean_verify(url)
    code, out, _ = cli(capsys, url, "advance")
    assert code == 0 and "backfilled → shadow_reads; reads shadow, writes legacy" in out

    code, _, err = cli(capsys, url, "advance")
    assert code == 1 and err.strip() == ("error: cannot advance to reads_switched: shadow_mismatch_rate: no shadow "
                                         "reads recorded yet")
    store = EventStore(engine_for(url))
    store.append(stream_id("users"), [NewEvent("ShadowReadsRecorded", {"compared": 2000, "mismatched": 1})])
    code, out, _ = cli(capsys, url, "advance", "--actor", "bo")
    assert code == 0 and "shadow_reads → reads_switched; reads new, writes legacy" in out

    assert main(["projections", "run", "--es-url", url]) == 0  # past the migration's own events in the feed
    status = json.loads(cli(capsys, url, "status", "--json")[1])
    assert list(status) == STATUS_KEYS
    assert (status["phase"], status["next"], status["backlog"], status["lag"], status["paused"]) == (
        "reads_switched", "writes_switched", 0, 0, False)
    assert status["guards"] == [{"name": "reads_switched_for", "ok": False,
                                 "detail": status["guards"][0]["detail"]}]
    assert status["shadow"] == {"compared": 2000, "mismatched": 1, "rate": 0.0005}
    assert status["last_verify"]["clean"] is True
    types = [h["type"] for h in status["migration"]["history"]]
    assert types.count("PhaseAdvanced") == 4 and types[-1] == "PhaseAdvanced"
    code, out, _ = cli(capsys, url, "status")
    assert "migration users: reads_switched" in out and "reads shadow → new" in out and "bo" in out

    code, out, _ = cli(capsys, url, "rollback", "--to", "backfilled", "--actor", "cy")
    assert code == 0 and "reads_switched → backfilled (rolled back); reads legacy, writes legacy" in out
    st = load(store)
    assert (st.phase, st.reads, st.writes) == ("backfilled", "legacy", "legacy")
    assert main(["capture", "status", "--legacy-url", url]) == 0  # capture keeps running
    assert "installed" in capsys.readouterr().out


def test_force_needs_a_reason_and_is_recorded_and_writes_switched_rolls_back(url, capsys):
    for argv in (["advance", "--force"], ["advance", "--force", "--reason", "  "], ["advance", "--reason", "x"]):
        code, out, err = cli(capsys, url, *argv)
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and not out
    assert history(url) == []

    code, out, _ = cli(capsys, url, "advance", "--to", "writes_switched", "--force", "--reason", "drill",
                       "--actor", "ana")
    assert code == 0 and "legacy → writes_switched (forced); reads new, writes new" in out
    events = EventStore(engine_for(url)).read_stream(stream_id("users"))
    forced = [e.data for e in events if e.type == "AdvanceForced"]
    assert [f["to"] for f in forced] == ["dual_write", "backfilled", "shadow_reads", "reads_switched",
                                         "writes_switched"]
    assert all(f["reason"] == "drill" and f["unmet"] for f in forced)
    assert forced[0]["unmet"] == ["capture_installed", "relay_running"]

    code, _, err = cli(capsys, url, "advance", "--to", "backfilled")
    assert code == 1 and err.strip() == ("error: the migration users is already writes_switched: backfilled is not "
                                         "ahead (see `migrator rollback`)")
    code, out, _ = cli(capsys, url, "rollback")
    assert code == 0 and "writes_switched → reads_switched (rolled back); reads new, writes legacy" in out
    code, out, _ = cli(capsys, url, "rollback", "--to", "legacy")
    assert code == 0 and "reads legacy, writes legacy" in out
    code, _, err = cli(capsys, url, "rollback")
    assert code == 1 and "the first phase: nothing to roll back" in err

    store = EventStore(engine_for(url))  # as `migrator decommission` records it (tests/integration/test_decommission)
    store.append(stream_id("users"), [NewEvent("PhaseAdvanced", {"from": "legacy", "to": "decommissioned",
                                                                 "forced": False})], load(store).version)
    code, _, err = cli(capsys, url, "rollback")
    assert code == 1 and err.strip() == "error: the migration users is decommissioned: there is no rolling back"
    code, _, err = cli(capsys, url, "advance")
    assert code == 1 and "the last phase" in err


def test_advance_never_steps_into_decommissioned_even_forced(url, capsys):
    assert cli(capsys, url, "advance", "--to", "writes_switched", "--force", "--reason", "drill")[0] == 0
    code, _, err = cli(capsys, url, "advance", "--force", "--reason", "drill")
    assert code == 1 and err.splitlines()[-1] == (
        "error: the migration users reaches decommissioned only through `migrator decommission --archive DIR` (it "
        "archives the legacy table before dropping it); see `migrator plan`")
    assert load(EventStore(engine_for(url))).phase == "writes_switched"


def test_two_operators_cannot_change_the_same_state(url):
    store = EventStore(engine_for(url))
    first, second = load(store), load(store)
    advance(store, first, None, lambda phase, st: [], "ana")
    with pytest.raises(MigrationChanged, match="changed meanwhile"):
        advance(store, second, None, lambda phase, st: [], "bo")
    with pytest.raises(MigrationChanged):
        pause(store, second, "why", "bo")
    assert [e.type for e in store.read_stream(stream_id("users"))] == ["PhaseAdvanced"]
    with pytest.raises(PhaseError, match="not behind"):
        rollback(store, load(store), "backfilled", "ana")


def test_pause_resume_and_throttle_are_recorded_and_shown(url, capsys):
    code, out, _ = cli(capsys, url, "pause", "--reason", "disk almost full", "--actor", "ana")
    assert code == 0 and out.strip() == "migration users paused: disk almost full (by ana)"
    code, _, err = cli(capsys, url, "pause")
    assert code == 1 and "already paused: disk almost full (by ana)" in err
    status = json.loads(cli(capsys, url, "status", "--json")[1])
    assert status["paused"] is True and status["migration"]["pause_reason"] == "disk almost full"
    assert cli(capsys, url, "throttle", "--max-rate", "25", "--actor", "bo")[1].strip() == (
        "migration users throttled: at most 25 per second")
    assert "paused: yes: disk almost full (by ana); throttle: 25/s (by bo)" in cli(capsys, url, "status")[1]
    assert cli(capsys, url, "resume")[0] == 0
    code, _, err = cli(capsys, url, "resume")
    assert code == 1 and "is not paused" in err
    assert cli(capsys, url, "throttle", "--max-rate", "0")[1].strip() == "migration users throttled: no rate cap"
    st = load(EventStore(engine_for(url)))
    assert (st.paused, st.max_rate) == (False, None)
    assert [h.type for h in st.history] == ["MigrationPaused", "MigrationThrottled", "MigrationResumed",
                                            "MigrationThrottled"]
    assert throttle(EventStore(engine_for(url)), st, 3.5, "cy").max_rate == 3.5


@pytest.mark.parametrize("command", [["plan"], ["advance"], ["rollback"], ["pause"], ["resume"], ["throttle"]])
def test_every_phase_command_answers_help(command, capsys):
    assert main([*command, "--help"]) == 0
    assert "--es-url" in capsys.readouterr().out


@pytest.fixture
def env_settings(monkeypatch):
    """Sets environment variables for the settings the CLI reads (its cached settings forgotten around it)."""
    from es_app.settings import get_settings

    get_settings.cache_clear()
    yield monkeypatch.setenv
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_thresholds_come_from_the_settings(url, capsys, env_settings):
    env_settings("READS_SWITCHED_MIN_S", "0")
    assert cli(capsys, url, "advance", "--to", "reads_switched", "--force", "--reason", "drill")[0] == 0
    code, out, _ = cli(capsys, url, "advance")  # reads switched for 0 s is enough now
    assert code == 0 and "reads_switched → writes_switched" in out
    assert load(EventStore(engine_for(url))).history[-1].data == {"from": "reads_switched", "to": "writes_switched",
                                                                  "forced": False}


def test_a_bad_threshold_setting_is_one_error_line(url, capsys, env_settings):
    env_settings("SHADOW_MAX_MISMATCH_RATE", "2")
    code, out, err = cli(capsys, url, "plan")
    assert code == 2 and not out
    assert err.strip() == "error: bad setting SHADOW_MAX_MISMATCH_RATE: Input should be less than or equal to 1"


def test_counts_flushed_meanwhile_do_not_conflict_but_a_decision_does(url):
    store = EventStore(engine_for(url))
    before = load(store)
    store.append(stream_id("users"), [NewEvent("ShadowReadsRecorded", {"compared": 5, "mismatched": 0},
                                                {"actor": "legacy-app"})])
    after = pause(store, before, "checking", "ana")  # read before the flush: still recorded, after it
    assert after.paused and after.version == before.version + 2 and after.shadow_compared == 5
    with pytest.raises(MigrationChanged):
        throttle(store, before, 10, "bo")  # the pause is a decision made since `before` was read
