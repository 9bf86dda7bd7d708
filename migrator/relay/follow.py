"""Following the changelog: relay, then wait for the next legacy commit (PostgreSQL NOTIFY) or a poll tick.

On PostgreSQL the capture trigger sends NOTIFY on the `migrator_changelog` channel with
every captured write, delivered at commit; the loop LISTENs and wakes at once. On SQLite
(no notifications) it polls. Either way a lost wake-up only delays the relay until the
next tick: the data is always read from the changelog.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Engine

from es_app.dialect import dialect_for

from ..backfill.throttle import LiveLimits, RateLimiter
from ..capture.changelog import NOTIFY_CHANNEL
from .runner import Relay, RelayBatch, RelayTotals

log = logging.getLogger(__name__)

_SLICE_S = 0.5


class _Waiter:
    """Waits for a NOTIFY on PostgreSQL, or just for the timeout on SQLite."""

    def __init__(self, legacy: Engine):
        self._raw: Any = None
        if dialect_for(legacy).listens:
            try:
                self._raw = legacy.raw_connection()
                driver = self._raw.driver_connection
                driver.autocommit = True
                driver.execute(f"LISTEN {NOTIFY_CHANNEL}")
            except Exception:  # fall back to polling
                log.exception("LISTEN failed; polling instead")
                self.close()

    def wait(self, timeout: float, stop: threading.Event) -> None:
        if self._raw is None:
            stop.wait(timeout)
            return
        driver = self._raw.driver_connection
        deadline = time.monotonic() + timeout
        try:
            # in slices, so that `stop` (set by a signal handler) is seen within a fraction of a second
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if list(driver.notifies(timeout=min(left, _SLICE_S), stop_after=1)):
                    break
            # drain whatever else arrived meanwhile: one relay round covers them all
            for _ in driver.notifies(timeout=0.01):
                pass
        except Exception:  # a broken listener connection: poll from now on
            log.exception("LISTEN connection lost; polling instead")
            self.close()
            stop.wait(timeout)

    def close(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.invalidate()
            self._raw = None


@contextlib.contextmanager
def _waiter(legacy: Engine) -> Iterator[_Waiter]:
    w = _Waiter(legacy)
    try:
        yield w
    finally:
        w.close()


def wait_loop(legacy: Engine, *, stop: threading.Event, poll_interval: float,
              on_wake: Callable[[], Any]) -> None:
    """Calls `on_wake()` now and after every legacy commit (PostgreSQL) or `poll_interval`, until `stop` is set."""
    with _waiter(legacy) as waiter:
        while not stop.is_set():
            on_wake()
            waiter.wait(poll_interval, stop)


class _LiveGate:
    """Between two relay batches: stops the drain while `live` says pause (telling `on_pause` once per pause)
    and keeps the rate under `live`'s cap (sleeping through `stop`, so a stop is not delayed)."""

    def __init__(self, live: LiveLimits, stop: threading.Event, on_pause: Callable[[str | None], Any] | None):
        self.live, self.on_pause = live, on_pause
        def sleep(seconds: float) -> None:  # woken by a stop
            stop.wait(seconds)

        self.limiter = RateLimiter(None, sleep=sleep)
        self.stop = stop
        self.paused_for: str | None = None

    def new_round(self) -> None:
        """Starts the cap's average afresh: an idle stretch before the round earns no burst."""
        self.limiter.start()

    def before_batch(self, batch_size: int) -> int | None:
        why = self.live.pause_reason()
        if why != self.paused_for:
            self.paused_for = why
            if self.on_pause is not None:
                self.on_pause(why)
        if why is not None or self.stop.is_set():
            return None
        self.limiter.set_max_rate(self.live.max_rate())
        return self.limiter.chunk_limit(batch_size)

    def after_batch(self, batch: RelayBatch) -> None:
        self.limiter.record(batch.read)


def reverse_round(relays: Sequence[Relay], migration: str | None = None) -> Callable[[], Any]:
    """Returns what a follow round runs after relaying: the reverse projection's catch-up of the relayed tables
    (`migrator.switchover.reverse.background_catch_up`: only while the writes of `migration`, default the
    settings' MIGRATION_NAME, are switched or keys wait). It logs and goes on when the catch-up fails: the
    next round tries again."""
    from es_app.settings import get_settings

    from ..switchover.reverse import background_catch_up, projections_for

    name = migration or get_settings().migration_name

    made: list[Any] = []

    def catch_up() -> None:
        try:
            if not made:
                made.append(projections_for([r.mapping for r in relays], relays[0].legacy, relays[0].store))
            background_catch_up(made[0], name)
        except Exception:  # the relay keeps going; the reverse projection catches up next round
            log.exception("reverse projection: catch-up failed; trying again next round")

    return catch_up


def follow(relays: Sequence[Relay], legacy: Engine, *, stop: threading.Event, poll_interval: float = 1.0,
           on_round: Callable[[list[RelayTotals]], Any] | None = None, live: LiveLimits | None = None,
           on_pause: Callable[[str | None], Any] | None = None, reverse: bool = True) -> None:
    """Relays every table until `stop` is set, waking on legacy commits (PostgreSQL) or every `poll_interval`.

    `on_round` gets the totals of each round that relayed something (to project, publish, report).
    With `live`, every batch first asks it: while paused nothing is relayed (`on_pause` gets the reason
    when a pause starts, None when it ends), and the changes per second stay under its cap. With
    `reverse`, each round then runs the reverse projection's catch-up (see `reverse_round`).
    """
    gate = _LiveGate(live, stop, on_pause) if live is not None else None
    after = reverse_round(relays) if reverse and relays else None

    def relay_round() -> None:
        if gate is None:
            totals = [r.drain() for r in relays]
        else:
            gate.new_round()
            totals = [r.drain(before_batch=gate.before_batch, on_batch=gate.after_batch) for r in relays]
        if any(t.read for t in totals) and on_round is not None:
            on_round(totals)
        if after is not None:
            after()

    wait_loop(legacy, stop=stop, poll_interval=poll_interval, on_wake=relay_round)
