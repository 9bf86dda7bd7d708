"""A quieter cyclic garbage collector for bulk runs (backfill, relay drains, projection catch-ups).

A bulk run allocates millions of short-lived, acyclic objects (rows, dicts, events). With the
interpreter's default first threshold (700 allocations) the cyclic collector runs after every
few rows and, each time enough survive, walks the older generations too, which showed up as a
visible share of a backfill's time. Reference counting frees these objects anyway; raising the
threshold only makes the collector run less often. It is set back when the run ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLD = 50_000

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def bulk_gc(threshold: int = BULK_THRESHOLD) -> Iterator[None]:
    """Raises the collector's first threshold to at least `threshold` for the block (nested and
    concurrent blocks share one change; the last to leave restores the thresholds)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            if _saved[0] < threshold:
                gc.set_threshold(threshold, *_saved[1:])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
