"""Ctrl-C for long work: the first one asks the work to stop at its next safe point, a second stops it at once.

A KeyboardInterrupt raised at an arbitrary bytecode can land inside a library's own
bookkeeping (a process pool's pipe half written, a connection's transaction begun but
not yet recorded) and leave it stuck; raised at a point the work chose (between two
committed chunks, in a pause's sleep) it unwinds cleanly. The exit is the same: the
CLI prints `interrupted` and exits 130.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class StopOnInterrupt:
    """While entered (in the main thread), the first SIGINT sets `requested` and says the work stops after
    its current chunk; `check()` and `sleep()` raise KeyboardInterrupt once it is set. The first SIGINT also puts the
    previous handler back, so a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> StopOnInterrupt:
        current = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread() and current is not signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._installed and signal.getsignal(signal.SIGINT) == self._handle:
            signal.signal(signal.SIGINT, self._previous)
        self._installed = False

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested.set()
        signal.signal(signal.SIGINT, self._previous)
        # os.write: safe in a signal handler, whatever the console was writing when it came
        os.write(2, b"\nstopping after the current chunk (Ctrl-C again to stop at once)\n")

    def check(self) -> None:
        """Raises KeyboardInterrupt when a stop was asked for."""
        if self.requested.is_set():
            raise KeyboardInterrupt

    def sleep(self, seconds: float) -> None:
        """Sleeps, cut short by a stop (then raises KeyboardInterrupt)."""
        if self.requested.wait(max(seconds, 0.0)):
            raise KeyboardInterrupt
