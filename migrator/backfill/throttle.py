"""Throttling for long-running migration work: a rate cap and pause conditions.

Both take an injected clock and sleep so tests can drive them without waiting.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class RateLimiter:
    """Keeps the average rate at or below `max_rate` units per second since `start()`.

    `max_rate` None or <= 0 means no cap.
    """

    def __init__(self, max_rate: float | None, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep):
        self.max_rate = max_rate if max_rate and max_rate > 0 else None
        self.clock, self.sleep = clock, sleep
        self.started: float | None = None
        self.done = 0
        self.slept = 0.0

    def start(self) -> None:
        self.started, self.done = self.clock(), 0

    def set_max_rate(self, max_rate: float | None) -> None:
        """Changes the cap (None or <= 0: none); a new cap counts from now, not from `start()`."""
        rate = max_rate if max_rate and max_rate > 0 else None
        if rate != self.max_rate:
            self.max_rate = rate
            self.start()

    def record(self, units: int) -> float:
        """Counts `units` as done and sleeps until the average rate is back under the cap.

        Returns the seconds slept.
        """
        if self.started is None:
            self.start()
        self.done += units
        if self.max_rate is None:
            return 0.0
        due = self.started + self.done / self.max_rate  # type: ignore[operator]
        wait = due - self.clock()
        if wait <= 0:
            return 0.0
        self.sleep(wait)
        self.slept += wait
        return wait

    def chunk_limit(self, batch_size: int) -> int:
        """Returns a chunk size that lets the cap act at least about once a second."""
        if self.max_rate is None:
            return batch_size
        return max(1, min(batch_size, int(self.max_rate)))


class LiveLimits(Protocol):
    """Limits an operator changes while the work runs (migrator.phases.LiveControl: the migration's state)."""

    def pause_reason(self) -> str | None:
        """Returns why to pause now, None to go on."""
        ...

    def max_rate(self) -> float | None:
        """Returns the rate cap now, None for none."""
        ...


@dataclasses.dataclass
class PauseGate:
    """Says why work should pause now: the migration paused (`live`), a pause file, a relay backlog or a
    projection lag.

    `relay_backlog` / `projection_lag` are callables returning the current figure;
    a threshold of None switches that check off.
    """

    pause_file: Path | None = None
    relay_backlog: Callable[[], int] | None = None
    max_relay_backlog: int | None = None
    projection_lag: Callable[[], int] | None = None
    max_projection_lag: int | None = None
    live: LiveLimits | None = None

    def reason(self) -> str | None:
        """Returns why to pause now, or None to go on."""
        if self.live is not None and (why := self.live.pause_reason()) is not None:
            return why
        if self.pause_file is not None and Path(self.pause_file).exists():
            return f"pause file {self.pause_file} exists"
        if self.max_relay_backlog is not None and self.relay_backlog is not None:
            backlog = self.relay_backlog()
            if backlog > self.max_relay_backlog:
                return f"relay backlog {backlog} > {self.max_relay_backlog}"
        if self.max_projection_lag is not None and self.projection_lag is not None:
            lag = self.projection_lag()
            if lag > self.max_projection_lag:
                return f"projection lag {lag} > {self.max_projection_lag}"
        return None

    def wait(self, sleep: Sleep, *, poll_s: float = 1.0,
             on_pause: Callable[[str], None] | None = None) -> float:
        """Sleeps in `poll_s` steps while there is a reason to pause.

        Returns the seconds paused.
        """
        paused = 0.0
        while (why := self.reason()) is not None:
            if on_pause is not None:
                on_pause(why)
            sleep(poll_s)
            paused += poll_s
        return paused
