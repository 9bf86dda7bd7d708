"""The phase machine's fold and guards, without a database (migrator.phases.state, migrator.phases.guards)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from migrator.backfill.throttle import PauseGate, RateLimiter
from migrator.phases import GUARDS, PHASES, Facts, RelayFacts, Thresholds, fold, guards_for
from migrator.phases.facts import shadow_counts

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


@dataclasses.dataclass(frozen=True)
class Ev:
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime


def stream(*items: tuple[str, dict[str, Any]], actor: str = "ana", start: datetime = NOW - timedelta(hours=5)):
    return [Ev(i + 1, t, d, {"actor": actor}, start + timedelta(minutes=i)) for i, (t, d) in enumerate(items)]


def facts(**changes: Any) -> Facts:
    base = Facts(now=NOW, tables=("users",), changelog=True, triggers={"users": True},
                 relay={"users": RelayFacts(True, 10, NOW - timedelta(seconds=5), 0)},
                 backfill={"users": "done"}, verify={"id": 7, "clean": True,
                                                     "finished_at": (NOW - timedelta(minutes=5)).isoformat()},
                 shadow=(5000, 1))
    return dataclasses.replace(base, **changes)


def verdicts(phase: str, f: Facts, state=None, limits=None) -> dict[str, tuple[bool, str]]:
    return {r.name: (r.ok, r.detail) for r in guards_for(phase, f, state or fold("users", []),
                                                         limits or Thresholds())}


def test_an_empty_stream_is_the_legacy_phase_with_legacy_modes():
    st = fold("users", [])
    assert (st.phase, st.reads, st.writes, st.paused, st.max_rate, st.version) == ("legacy", "legacy", "legacy",
                                                                                  False, None, 0)
    assert st.next_phase == "dual_write" and st.previous_phase is None


def test_the_fold_follows_phases_modes_pause_throttle_and_keeps_the_history():
    events = stream(("PhaseAdvanced", {"from": "legacy", "to": "dual_write", "forced": False}),
                    ("MigrationPaused", {"reason": "disk full"}),
                    ("MigrationThrottled", {"max_rate": 50}),
                    ("ReadsModeChanged", {"mode": "new", "previous": "legacy"}),
                    ("MigrationResumed", {}),
                    ("PhaseRolledBack", {"from": "dual_write", "to": "legacy"}))
    mid = fold("users", events[:4])
    assert (mid.phase, mid.paused, mid.pause_note(), mid.max_rate, mid.reads) == (
        "dual_write", True, "disk full (by ana)", 50.0, "new")
    assert mid.reads_since == events[3].recorded_at
    st = fold("users", events)
    assert (st.phase, st.paused, st.pause_note(), st.version) == ("legacy", False, None, 6)
    assert [h.summary() for h in st.history] == [
        "advanced legacy → dual_write", "paused: disk full", "throttled to 50/s", "reads legacy → new", "resumed",
        "rolled back dual_write → legacy"]
    assert st.history[0].to_dict()["actor"] == "ana"
    off = fold("users", events + stream(("MigrationThrottled", {"max_rate": None})))
    assert off.max_rate is None and off.throttled_by is None


def test_shadow_counts_add_up_from_the_last_entry_into_shadow_reads():
    assert shadow_counts(fold("users", [])) is None
    events = stream(("PhaseAdvanced", {"from": "backfilled", "to": "shadow_reads", "forced": False}),
                    ("ShadowReadsRecorded", {"compared": 100, "mismatched": 2}),
                    ("ShadowReadsRecorded", {"compared": 50, "mismatched": 1}))
    assert shadow_counts(fold("users", events)) == (150, 3)
    again = events + stream(("PhaseRolledBack", {"from": "shadow_reads", "to": "backfilled"}),
                            ("PhaseAdvanced", {"from": "backfilled", "to": "shadow_reads", "forced": False}))
    assert shadow_counts(fold("users", again)) is None


def test_every_phase_has_its_guards_in_order():
    assert PHASES == ("legacy", "dual_write", "backfilled", "shadow_reads", "reads_switched", "writes_switched",
                      "decommissioned")
    assert {p: [g(facts(), fold("users", []), Thresholds()).name for g in GUARDS[p]] for p in PHASES} == {
        "legacy": [], "dual_write": ["capture_installed", "relay_running"],
        "backfilled": ["backfill_finished", "relay_backlog_empty"], "shadow_reads": ["verify_clean_recent"],
        "reads_switched": ["verify_clean_recent", "shadow_mismatch_rate"],
        "writes_switched": ["reads_switched_for"],
        "decommissioned": ["full_verify_clean_recent", "relay_backlog_empty", "projections_caught_up",
                           "writes_switched_for"]}


def test_dual_write_needs_capture_on_every_table_and_a_relay_that_runs():
    assert all(ok for ok, _ in verdicts("dual_write", facts()).values())
    assert verdicts("dual_write", facts(changelog=False))["capture_installed"] == (
        False, "no changelog: run `migrator capture install`")
    f = facts(tables=("users", "accounts"), triggers={"users": True, "accounts": False},
              relay={"users": RelayFacts(True, 10, NOW, 0), "accounts": RelayFacts(False, 0, None, 3)})
    got = verdicts("dual_write", f)
    assert got["capture_installed"][0] is False and "accounts" in got["capture_installed"][1]
    assert got["relay_running"] == (False, "the relay has not run on accounts (start `migrator relay --follow`)")
    stalled = facts(relay={"users": RelayFacts(True, 10, NOW - timedelta(seconds=120), 4)})
    ok, detail = verdicts("dual_write", stalled)["relay_running"]
    assert not ok and "4 changes wait" in detail and "120s" in detail
    assert verdicts("dual_write", stalled, limits=Thresholds(relay_max_idle_s=300))["relay_running"][0]
    idle_but_caught_up = facts(relay={"users": RelayFacts(True, 10, NOW - timedelta(days=3), 0)})
    assert verdicts("dual_write", idle_but_caught_up)["relay_running"][0]


def test_backfilled_needs_a_finished_backfill_and_an_empty_backlog():
    assert all(ok for ok, _ in verdicts("backfilled", facts()).values())
    got = verdicts("backfilled", facts(backfill={"users": "running"},
                                       relay={"users": RelayFacts(True, 10, NOW, 12)}))
    assert got == {"backfill_finished": (False, "no finished backfill of users (running): run `migrator backfill`"),
                   "relay_backlog_empty": (False, "12 changes wait for the relay")}
    assert verdicts("backfilled", facts(backfill={}))["backfill_finished"][0] is False
    assert verdicts("backfilled", facts(changelog=False))["relay_backlog_empty"][0] is False


@pytest.mark.parametrize("phase", ["shadow_reads", "reads_switched"])
def test_the_read_phases_need_a_clean_verify_no_older_than_the_limit(phase):
    assert verdicts(phase, facts())["verify_clean_recent"] == (True, "verify run 7 clean, 300s old")
    assert verdicts(phase, facts(verify=None))["verify_clean_recent"] == (
        False, "no clean verify run: run `migrator verify`")
    old = facts(verify={"id": 3, "clean": True, "finished_at": (NOW - timedelta(hours=2)).isoformat()})
    ok, detail = verdicts(phase, old)["verify_clean_recent"]
    assert not ok and "7,200s old" in detail
    assert verdicts(phase, old, limits=Thresholds(verify_max_age_s=8000))["verify_clean_recent"][0]


def test_reads_switched_needs_enough_shadow_reads_under_the_mismatch_rate():
    assert verdicts("reads_switched", facts())["shadow_mismatch_rate"][0]
    assert verdicts("reads_switched", facts(shadow=None))["shadow_mismatch_rate"] == (
        False, "no shadow reads recorded yet")
    few = verdicts("reads_switched", facts(shadow=(999, 0)))["shadow_mismatch_rate"]
    assert few == (False, "999 shadow reads compared (at least 1,000 needed)")
    assert not verdicts("reads_switched", facts(shadow=(1000, 2)))["shadow_mismatch_rate"][0]
    assert verdicts("reads_switched", facts(shadow=(1000, 2)),
                    limits=Thresholds(shadow_max_mismatch_rate=0.002))["shadow_mismatch_rate"][0]


def test_writes_switched_needs_reads_switched_long_enough():
    legacy_reads = verdicts("writes_switched", facts())
    assert legacy_reads == {"reads_switched_for": (False, "reads are in legacy mode, not new")}
    switched = fold("users", stream(("ReadsModeChanged", {"mode": "new", "previous": "shadow"}),
                                    start=NOW - timedelta(minutes=30)))
    ok, detail = verdicts("writes_switched", facts(), switched)["reads_switched_for"]
    assert not ok and detail == "reads switched 1,800s ago (at least 3600s)"
    assert verdicts("writes_switched", facts(), switched, Thresholds(reads_switched_min_s=1800))[
        "reads_switched_for"][0]


FULL = {"id": 9, "clean": True, "finished_at": (NOW - timedelta(minutes=10)).isoformat(), "options": {"full": True}}


def switched(reads_at: datetime, writes_at: datetime, percent: float = 100.0):
    return fold("users", [Ev(1, "ReadsModeChanged", {"mode": "new", "previous": "shadow", "percent": percent},
                             {"actor": "ana"}, reads_at),
                          Ev(2, "WritesModeChanged", {"mode": "new", "previous": "legacy"}, {"actor": "ana"},
                             writes_at)])


def test_decommission_needs_a_recent_clean_full_verify_no_backlog_no_lag_and_time_switched():
    ready = switched(NOW - timedelta(hours=3), NOW - timedelta(hours=2))
    assert verdicts("decommissioned", facts(full_verify=FULL, lag=0), ready) == {
        "full_verify_clean_recent": (True, "--full verify run 9 clean, 600s old"),
        "relay_backlog_empty": (True, "no change waits for the relay"),
        "projections_caught_up": (True, "every projection is at the feed's head"),
        "writes_switched_for": (True, "reads and writes new for 7,200s (at least 3600s)")}
    got = verdicts("decommissioned", facts(relay={"users": RelayFacts(True, 10, NOW, 3)}, lag=12),
                   switched(NOW - timedelta(hours=3), NOW - timedelta(minutes=20)))
    assert {name for name, (ok, _) in got.items() if not ok} == {
        "full_verify_clean_recent", "relay_backlog_empty", "projections_caught_up", "writes_switched_for"}
    assert got["full_verify_clean_recent"][1] == "no --full verify run: run `migrator verify --full`"
    assert got["projections_caught_up"][1].startswith("the projections lag 12 events behind the feed")
    assert got["writes_switched_for"][1] == "reads and writes new for 1,200s (at least 3600s)"
    assert verdicts("decommissioned", facts(full_verify=FULL, lag=0),
                    switched(NOW - timedelta(hours=3), NOW - timedelta(minutes=20)),
                    Thresholds(writes_switched_min_s=1200))["writes_switched_for"][0]


def test_a_dirty_or_old_full_verify_and_partial_reads_keep_decommission_refused():
    dirty = verdicts("decommissioned", facts(full_verify={**FULL, "clean": False}))["full_verify_clean_recent"]
    assert dirty == (False, "the latest --full verify run 9 is not clean: repair, then run `migrator verify --full`")
    old = {**FULL, "finished_at": (NOW - timedelta(hours=2)).isoformat()}
    ok, detail = verdicts("decommissioned", facts(full_verify=old))["full_verify_clean_recent"]
    assert not ok and "7,200s old (at most 3600s)" in detail
    assert verdicts("decommissioned", facts(lag=None))["projections_caught_up"] == (
        False, "the projection lag was not read")
    partial = switched(NOW - timedelta(hours=3), NOW - timedelta(hours=2), percent=50)
    assert verdicts("decommissioned", facts(), partial)["writes_switched_for"] == (
        False, "reads are new for 50% of users, writes new: both must be new")
    assert verdicts("decommissioned", facts(), fold("users", []))["writes_switched_for"] == (
        False, "reads are legacy, writes legacy: both must be new")


def test_writes_since_follows_the_writes_mode():
    st = switched(NOW - timedelta(hours=3), NOW - timedelta(hours=2))
    assert st.writes_since == NOW - timedelta(hours=2)
    st.apply(Ev(3, "WritesModeChanged", {"mode": "legacy", "previous": "new"}, {"actor": "bo"}, NOW))
    assert (st.writes, st.writes_since) == ("legacy", None)


class Live:
    def __init__(self) -> None:
        self.reason: str | None = None
        self.rate: float | None = None

    def pause_reason(self) -> str | None:
        return self.reason

    def max_rate(self) -> float | None:
        return self.rate


def test_the_pause_gate_waits_while_the_live_state_says_pause():
    live, sleeps = Live(), []
    gate = PauseGate(live=live)
    live.reason = "migration paused: disk (by ana)"

    def sleep(s: float) -> None:
        sleeps.append(s)
        if len(sleeps) == 3:
            live.reason = None

    seen: list[str] = []
    assert gate.wait(sleep, poll_s=1.0, on_pause=seen.append) == 3.0
    assert seen == ["migration paused: disk (by ana)"] * 3


def test_a_new_rate_cap_counts_from_when_it_is_set():
    now, slept = [0.0], []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(None, clock=lambda: now[0], sleep=sleep)
    limiter.start()
    now[0] = 100.0
    limiter.record(1000)
    limiter.set_max_rate(10)
    assert limiter.chunk_limit(500) == 10
    limiter.record(10)
    assert slept == [1.0]
    limiter.set_max_rate(10)  # unchanged: the window goes on
    limiter.record(10)
    assert slept == [1.0, 1.0]
    limiter.set_max_rate(0)
    assert limiter.max_rate is None and limiter.record(10_000) == 0.0
