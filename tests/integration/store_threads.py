"""Helpers for tests that drive the store from real threads."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from sqlalchemy import Engine, text


class Threads:
    """Starts callables on real threads; `join()` re-raises the first error any of them hit."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.results: dict[int, Any] = {}

    def start(self, fn: Callable[..., Any], *args: Any) -> None:
        index = len(self.threads)

        def run() -> None:
            try:
                self.results[index] = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the test by join()
                self.errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        self.threads.append(thread)
        thread.start()

    def join(self, timeout: float = 60) -> list[Any]:
        """Returns each thread's result in start order."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise TimeoutError("a thread did not finish")
        if self.errors:
            raise self.errors[0]
        return [self.results[i] for i in range(len(self.threads))]

    def alive(self) -> int:
        return sum(t.is_alive() for t in self.threads)


def advisory_lock_waiters(engine: Engine) -> int:
    """Returns how many sessions of this engine's database wait for an advisory lock."""
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()")).scalar()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Polls `condition` (politely) until it holds; a hang becomes a clear failure."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting until {what}")
        time.sleep(0.01)
