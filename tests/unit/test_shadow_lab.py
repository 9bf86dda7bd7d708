"""Shadow reads without a database: sampling by key hash, the background lab's outcomes (compared, timeouts,
errors, skipped) and that the legacy result is always the one served."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from legacy_app.reads import Page, ReadMode, UserRecord
from migrator.mapping import USERS
from migrator.shadow.compare import page_differences, record_differences
from migrator.shadow.judge import ReadJudge
from migrator.shadow.lab import Lab
from migrator.shadow.metrics import OUTCOMES, ReadMetrics
from migrator.shadow.mismatches import LAG, MISMATCH
from migrator.shadow.reads import ShadowReads
from migrator.shadow.sampling import BUCKETS, bucket, sampled

T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
MAPPING = USERS.compile()


def rec(uid: int, name: str = "Ann", email: str = "ann@example.org") -> UserRecord:
    return UserRecord(uid, email, name, True, None, T, T)


class FakeReads:
    mode = ReadMode.LEGACY

    def __init__(self, name: str = "Ann", before=None):
        self.name, self.before, self.calls = name, before, 0

    def get(self, user_id: int) -> UserRecord | None:
        self.calls += 1
        if self.before is not None:
            self.before()
        return rec(user_id, self.name)

    def search(self, query=None, *, limit=50, offset=0) -> Page:
        return Page([rec(1, self.name)], 1, limit, offset)


def test_sampling_is_stable_and_proportional():
    assert all(bucket(k) == bucket(k) and 0 <= bucket(k) < BUCKETS for k in range(100))
    share = sum(sampled(k, 25.0) for k in range(20_000)) / 20_000
    assert 0.22 < share < 0.28
    assert all(sampled(k, 100.0) for k in range(100))
    assert {k for k in range(1000) if sampled(k, 10.0)} <= {k for k in range(1000) if sampled(k, 50.0)}


def test_differences_go_through_the_mapping_normalizers():
    assert record_differences(MAPPING, rec(1, " Ann "), rec(1, "Ann", "ANN@example.org ")) == []
    assert record_differences(MAPPING, rec(1, "Ann"), rec(1, "Bob")) == ["name"]
    assert set(record_differences(MAPPING, rec(1), None)) >= {"name", "email"}
    a, b = Page([rec(1), rec(2)], 2, 50, 0), Page([rec(1), rec(2, "Bob")], 3, 50, 0)
    assert page_differences(MAPPING, a, b) == ["total", "2.name"]
    assert page_differences(MAPPING, a, Page([rec(2), rec(1)], 2, 50, 0)) == ["ids"]


def shadow(candidate, metrics, *, timeout_s=60.0, clock=None, pool=2, queue=2, recorded=None):
    legacy = FakeReads()
    lab = Lab(metrics, pool=pool, queue=queue, timeout_s=timeout_s, **({"clock": clock} if clock else {}))
    judge = ReadJudge("users", MAPPING, legacy, candidate, freshness=None,
                      record=(recorded.append if recorded is not None else None))
    return ShadowReads(legacy, candidate, lab, judge), lab


def test_a_slow_candidate_is_a_timeout_and_the_legacy_read_is_served():
    now = [0.0]

    def slow():  # the candidate "takes" 5 s on the lab's clock
        now[0] += 5.0

    metrics = ReadMetrics()
    reads, lab = shadow(FakeReads(before=slow), metrics, timeout_s=0.1, clock=lambda: now[0])
    assert [reads.get(i) for i in range(3)] == [rec(i) for i in range(3)]
    lab.close()
    assert metrics.totals() == {**dict.fromkeys(OUTCOMES, 0), "timeouts": 3}


def test_a_failing_candidate_counts_as_an_error_never_raised():
    def boom():
        raise RuntimeError("read model down")

    metrics = ReadMetrics()
    reads, lab = shadow(FakeReads(before=boom), metrics)
    assert reads.get(7) == rec(7) and reads.search("a").total == 1
    lab.close()
    assert metrics.totals()["errors"] == 1 and metrics.totals()["compared"] == 1  # the search compared fine


def test_a_saturated_pool_skips_instead_of_waiting():
    gate = threading.Event()
    metrics = ReadMetrics()
    reads, lab = shadow(FakeReads(before=lambda: gate.wait(30)), metrics, pool=1, queue=1)
    served = [reads.get(i) for i in range(5)]  # 2 slots: 1 running, 1 waiting; 3 skipped
    gate.set()
    lab.close()
    assert served == [rec(i) for i in range(5)]
    totals = metrics.totals()
    assert totals["skipped"] == 3 and totals["compared"] == 2 and totals["mismatched"] == 0


def test_a_difference_that_stays_is_a_mismatch_one_that_goes_is_lag():
    metrics, recorded = ReadMetrics(), []
    reads, lab = shadow(FakeReads("Bob"), metrics, recorded=recorded)
    reads.get(1)
    lab.close()
    assert metrics.totals()["mismatched"] == 1 and recorded[0].kind == MISMATCH
    assert recorded[0].fields == ("name",) and recorded[0].legacy["full_name"] == "Ann"
    assert recorded[0].candidate["full_name"] == "Bob"

    class CatchingUp(FakeReads):  # behind on the first read, caught up on the second
        def get(self, user_id):
            self.calls += 1
            return rec(user_id, "Old" if self.calls == 1 else "Ann")

    metrics, recorded = ReadMetrics(), []
    reads, lab = shadow(CatchingUp(), metrics, recorded=recorded)
    reads.get(2)
    lab.close()
    assert metrics.totals()["lagged"] == 1 and metrics.totals()["mismatched"] == 0 and recorded[0].kind == LAG


def test_a_key_changed_again_after_its_look_is_lag_and_a_difference_that_always_stays_is_a_mismatch():
    from migrator.shadow.freshness import KeyLag
    from migrator.shadow.judge import RECHECKS

    class Traffic(FakeReads):  # legacy: the key is renamed between every two reads
        def get(self, user_id):
            self.calls += 1
            return rec(user_id, f"Name {self.calls}")

    class Looks:  # caught up when first looked at; a new legacy change waits at the second look
        def __init__(self, behind: list[bool]):
            self.behind, self.calls = behind, 0

        def key(self, user_id):
            self.calls += 1
            pending = 7 if self.behind[min(self.calls, len(self.behind)) - 1] else None
            return KeyLag(relayed_to=6, pending_change=pending, stream_version=3, row_version=3, position=9)

    judge = ReadJudge("users", MAPPING, Traffic(), FakeReads("Name 0"), freshness=Looks([False, True]), record=None)
    assert judge.get(1, rec(1, "Name 0"), rec(1, "Name 00")) == LAG  # the re-read differs, but legacy moved on

    candidate, looks = FakeReads("Bob"), Looks([False])
    judge = ReadJudge("users", MAPPING, FakeReads("Ann"), candidate, freshness=looks, record=None)
    assert judge.get(1, rec(1, "Ann"), rec(1, "Bob")) == MISMATCH
    assert candidate.calls == RECHECKS and looks.calls == 1 + RECHECKS  # read again each time, never behind


def test_a_failing_legacy_read_raises_and_is_not_compared():
    class Broken(FakeReads):
        def get(self, user_id):
            raise RuntimeError("legacy down")

    metrics = ReadMetrics()
    lab = Lab(metrics, pool=1, queue=1, timeout_s=60)
    candidate = FakeReads()
    reads = ShadowReads(Broken(), candidate, lab, ReadJudge("users", MAPPING, Broken(), candidate, freshness=None,
                                                            record=None))
    with pytest.raises(RuntimeError):
        reads.get(1)
    lab.close()
    assert sum(metrics.totals().values()) == 0


def test_counts_taken_once_and_given_back():
    metrics = ReadMetrics()
    metrics.shadow("compared", 3)
    metrics.shadow("lagged")
    taken = metrics.take_shadow()
    assert taken["compared"] == 3 and taken["lagged"] == 1 and not any(metrics.take_shadow().values())
    metrics.give_back(taken)
    assert metrics.take_shadow() == taken
    assert b'legacy_api_shadow_reads_total{outcome="compared"} 3.0' in metrics.render()
