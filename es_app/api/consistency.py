"""Read-your-writes on demand: wait (bounded) until the read model reaches a position; say when stale."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from es_app.bootstrap import EsContainer
from es_app.projections import read_model_position

from .schemas import ReadModelInfo

MAX_POSITION = 2**63 - 1
POSITION_HEADER = "X-Read-Model-Position"
STALE_HEADER = "X-Read-Model-Stale"

MinPositionQuery = Annotated[int | None, Query(
    ge=0, le=MAX_POSITION,
    description="Wait (up to the configured bound) until the read model has applied this global position, "
                "e.g. the `position` a command returned")]
MinPositionHeader = Annotated[int | None, Header(
    alias="X-Min-Position", ge=0, le=MAX_POSITION, description="Same as the `min_position` query parameter")]


def _positions(container: EsContainer) -> tuple[int, int]:
    with container.engine.connect() as conn:
        return read_model_position(conn), container.store.head_position(conn)


async def wait_for(container: EsContainer, *mins: int | None) -> ReadModelInfo:
    """Returns the read model's position once it reached the highest of `mins` or the bound passed.

    Without a minimum it answers at once; `stale` then says whether events are not yet projected.
    A minimum beyond the head of the store cannot be reached by waiting, so it answers at once too.
    """
    wanted = max((m for m in mins if m is not None), default=None)
    deadline = time.monotonic() + container.settings.read_your_writes_timeout_s
    delay = 0.005
    while True:
        position, head = await run_in_threadpool(_positions, container)
        target = head if wanted is None else wanted
        if position >= target or wanted is None or wanted > head or time.monotonic() >= deadline:
            return ReadModelInfo(position=position, stale=position < target)
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)


def with_read_model(body: dict, info: ReadModelInfo, status: int = 200) -> JSONResponse:
    """Returns the JSON response carrying the read model's position and staleness (body and headers)."""
    body = {**body, "read_model": info.model_dump()}
    return JSONResponse(body, status_code=status, headers={
        POSITION_HEADER: str(info.position), STALE_HEADER: "true" if info.stale else "false"})
