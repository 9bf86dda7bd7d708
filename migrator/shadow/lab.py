"""Running candidate reads beside the legacy ones, Scientist-style: on a bounded thread pool, in the background.

`Lab.start(candidate, judge)` hands the candidate read to a pool thread at once and returns a `Trial`;
the request thread reads legacy as always and `deliver`s its result to the trial, then answers without
waiting. The pool thread compares the two with `judge` once both are there. The legacy read never
fails and never waits because of the candidate: when every thread is busy and the queue is full, the
read is not shadowed (`skipped`); a candidate that raises counts as `errors`, one that answers later
than the timeout after it was started counts as `timeouts` and is not compared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .metrics import ReadMetrics
from .mismatches import LAG, MISMATCH

log = logging.getLogger(__name__)

CONTROL_WAIT_S = 60.0  # how long a pool thread waits for the legacy read it is compared with
T = TypeVar("T")
Judge = Callable[[Any, Any], str | None]  # (legacy, candidate) -> None when equal, else MISMATCH or LAG


class Trial:
    """One shadowed read: the request thread delivers the legacy result (or abandons it when legacy failed)."""

    def __init__(self, started: float):
        self.started = started
        self._ready = threading.Event()
        self._value: Any = None
        self._abandoned = False

    def deliver(self, value: Any) -> None:
        self._value = value
        self._ready.set()

    def abandon(self) -> None:
        self._abandoned = True
        self._ready.set()

    def control(self) -> tuple[bool, Any]:
        """Returns (True, the legacy result) once delivered; (False, None) when abandoned or never delivered."""
        if not self._ready.wait(CONTROL_WAIT_S) or self._abandoned:
            return False, None
        return True, self._value


def served(trial: Trial | None, read: Callable[[], T]) -> T:
    """Returns the legacy read's result, delivered to the trial (abandoned when the read raises)."""
    try:
        value = read()
    except BaseException:
        if trial is not None:
            trial.abandon()
        raise
    if trial is not None:
        trial.deliver(value)
    return value


class Lab:
    """Returns a runner of candidate reads: `pool` threads, `queue` more waiting at most, `timeout_s` per read."""

    def __init__(self, metrics: ReadMetrics, *, pool: int = 4, queue: int = 64, timeout_s: float = 0.1,
                 clock: Callable[[], float] = time.perf_counter):
        self.metrics, self.timeout_s, self.clock = metrics, timeout_s, clock
        self._slots = threading.BoundedSemaphore(pool + queue)
        self._pool = ThreadPoolExecutor(max_workers=pool, thread_name_prefix="shadow-read")
        self._closed = False

    def start(self, candidate: Callable[[], Any], judge: Judge) -> Trial | None:
        """Returns the trial of a candidate read now running in the background; None when it is skipped."""
        if self._closed or not self._slots.acquire(blocking=False):
            self.metrics.shadow("skipped")
            return None
        trial = Trial(self.clock())
        try:
            self._pool.submit(self._run, trial, candidate, judge)
        except RuntimeError:  # shut down meanwhile
            self._slots.release()
            self.metrics.shadow("skipped")
            return None
        return trial

    def _run(self, trial: Trial, candidate: Callable[[], Any], judge: Judge) -> None:
        try:
            try:
                value = candidate()
            except Exception:
                log.warning("shadow read: the candidate failed", exc_info=True)
                self.metrics.shadow("errors")
                return
            if self.clock() - trial.started > self.timeout_s:
                self.metrics.shadow("timeouts")
                return
            delivered, legacy = trial.control()
            if not delivered:
                return
            try:
                outcome = judge(legacy, value)
            except Exception:
                log.warning("shadow read: the comparison failed", exc_info=True)
                self.metrics.shadow("errors")
                return
            self.metrics.shadow("compared")
            if outcome == MISMATCH:
                self.metrics.shadow("mismatched")
            elif outcome == LAG:
                self.metrics.shadow("lagged")
        finally:
            self._slots.release()

    def close(self) -> None:
        """Stops taking candidate reads and waits for those running to end."""
        self._closed = True
        self._pool.shutdown(wait=True)
