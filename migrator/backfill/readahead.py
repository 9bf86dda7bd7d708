"""The read-ahead process of a backfill: one per run, started with the mapping (its declaration and binding,
compiled again there) and the legacy database's URL, it reads and builds the next chunks while the writer
stores the current one."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from es_app.bulk_gc import bulk_gc

from ..mapping import Binding, CompiledMapping, TableMapping
from .reader import Chunk, ChunkReader, Item

PARENT_CHECK_S = 0.5  # how often the reader process looks whether its backfill still runs


@contextmanager
def _children_ignore_sigint(applies: bool) -> Iterator[None]:
    """Ignores SIGINT while a reader process may be started, so that it inherits the ignoring: a
    Ctrl-C is the writer's to handle (it stops its reader), not a traceback from the reader."""
    import signal
    import threading

    if not applies or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _picklable(mapping: CompiledMapping) -> bool:
    import pickle

    try:
        pickle.dumps((mapping.declaration, mapping.binding))
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


# -- the reader process: one per backfill, started with the mapping and the legacy database's URL --
_process_reader: ChunkReader | None = None


def _start_process_reader(declaration: TableMapping, binding: Binding, legacy_url: str, parent: int) -> None:
    import threading

    from es_app.bootstrap import engine_for

    global _process_reader
    _process_reader = ChunkReader(CompiledMapping(declaration, binding), engine_for(legacy_url))

    def exit_with_parent() -> None:
        # A backfill killed outright (SIGKILL, OOM) cannot stop its reader, which may be blocked writing a
        # chunk into a pipe it holds both ends of: it ends itself once its parent is gone.
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=exit_with_parent, name="exit-with-parent", daemon=True).start()


def _read_in_process(after: Any, limit: int, parsed: bool) -> tuple[Chunk, list[Item]]:
    """Returns the next chunk (without its rows, which the writer does not need) and its import items."""
    assert _process_reader is not None, "the reader process was not started"
    with bulk_gc():
        chunk, items = _process_reader.read_and_build(after, limit, parsed)
    return dataclasses.replace(chunk, rows=()), items
