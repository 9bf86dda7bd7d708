"""The tasks: project (queue `projections`), notify (queue `notifications`), catch_up (the beat).

A task message is only a wake-up hint carrying the position that was appended; the
data always comes from the store. A failing handler makes the task retry with
exponential backoff (Celery's own retry); on the last attempt the failing event is
parked as a dead letter and the other streams flow on.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from es_app.bootstrap import EsContainer, build
from es_app.projections import HandlerFailed, checkpoint_name, run_projections
from es_app.projections.checkpoints import positions_now
from es_app.projections.registry import get_projection, names_for_queue
from es_app.settings import Settings, get_settings
from es_app.store.engine import checkpoint_wal

from .app import NOTIFICATIONS_QUEUE, PROJECTIONS_QUEUE, app

log = logging.getLogger(__name__)

def container_for(es_url: str | None = None) -> EsContainer:
    """Returns the container of the settings, for `es_url` when given."""
    settings = get_settings()
    if es_url and es_url != settings.es_database_url:
        settings = settings.model_copy(update={"es_database_url": es_url})
    return build(settings)


def shard_kwargs(settings: Settings) -> list[dict[str, Any]]:
    """Returns one kwargs dict per projection shard the settings ask for."""
    n = settings.projection_shards
    return [{"shard": None, "shards": None}] if n <= 1 else [{"shard": i, "shards": n} for i in range(n)]


def _past(container: EsContainer, names: list[str], position: int | None, shard: int | None,
          shards: int | None) -> bool:
    if not position:
        return False
    wanted = []
    for name in names:
        sharded = get_projection(name).shardable
        wanted.append(checkpoint_name(name, shard if sharded else None, shards if sharded else None))
    return all((found or 0) >= position for found in positions_now(container.engine, wanted))


def catch_up_queue(container: EsContainer, queue: str, shard: int | None = None, shards: int | None = None, *,
                   attempt: int = 0, position: int | None = None) -> int:
    """Returns the events applied: runs the projections of `queue` (this shard) up to the head of the feed.

    Nothing is run when they already stand at `position`. A failing handler raises
    HandlerFailed until `attempt` (0 for the first) reaches the settings' projection_max_retries;
    then its event is parked and the other streams flow on.
    """
    settings = container.settings
    names = names_for_queue(queue)
    if _past(container, names, position, shard, shards):
        return 0
    applied = run_projections(container, shard=shard, shards=shards, names=names,
                              batch_size=settings.projection_batch_size,
                              park_failures=attempt >= settings.projection_max_retries, attempts=attempt + 1)
    checkpoint_wal(container.engine)  # SQLite: the log copied here, not in a later commit (see checkpoint_wal)
    return applied


def _run(task: Any, queue: str, shard: int | None, shards: int | None, position: int | None,
         es_url: str | None) -> int:
    container = container_for(es_url)
    retries = task.request.retries
    try:
        return catch_up_queue(container, queue, shard, shards, attempt=retries, position=position)
    except HandlerFailed as exc:
        backoff = container.settings.projection_retry_backoff_s * 2 ** retries
        log.warning("retrying in %.2fs: %s", backoff, exc)
        raise task.retry(exc=exc, countdown=backoff) from exc


@app.task(name="es_app.worker.project", bind=True, max_retries=None)
def project(self: Any, shard: int | None = None, shards: int | None = None, position: int | None = None,
            es_url: str | None = None) -> int:
    """Returns the events the read models applied: catches this shard up to the head of the feed."""
    return _run(self, PROJECTIONS_QUEUE, shard, shards, position, es_url)


@app.task(name="es_app.worker.notify", bind=True, max_retries=None)
def notify(self: Any, position: int | None = None, es_url: str | None = None) -> int:
    """Returns the events the side-effect handlers (notifications outbox) handled up to the head."""
    return _run(self, NOTIFICATIONS_QUEUE, None, None, position, es_url)


def send_wakeups(settings: Settings, position: int | None = None, connection: Any = None) -> None:
    """Sends one wake-up per projection shard and one for the notifications; raises if the broker is down."""
    options: dict[str, Any] = {"retry": False}
    if connection is not None:
        options["connection"] = connection
    for kwargs in shard_kwargs(settings):
        project.apply_async(kwargs={**kwargs, "position": position}, **options)
    notify.apply_async(kwargs={"position": position}, **options)


@app.task(name="es_app.worker.catch_up")
def catch_up() -> None:
    """Wakes every projection worker, with no position: the beat's periodic catch-up."""
    send_wakeups(get_settings())


@signals.worker_ready.connect
def _catch_up_on_start(sender: Any = None, **_: Any) -> None:
    """A (re)started worker catches up at once: wake-ups sent while it was down may be lost."""
    if getattr(sender, "app", None) is app:
        try:
            send_wakeups(get_settings())
        except Exception:
            log.exception("could not send the start-up catch-up")
