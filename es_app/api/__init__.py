"""The FastAPI command/query API. `es_app.api:app` is the ASGI app, built on first access from settings.

Nothing connects at import time: the container (engines, store, services) is built by
`es_app.bootstrap` on the first request that needs it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from es_app.settings import Settings, get_settings
from es_app.worker import publish_appended

from . import admin, audit, commands, errors, ops, queries
from .context import CorrelationMiddleware, LazyContainer
from .execution import Publisher
from .limits import BodySizeLimit
from .metrics import ApiMetrics

__all__ = ["app", "create_app"]

DESCRIPTION = """\
Commands append events to the event store and answer at once with the stream `version`
and the global `position`; queries answer from the read model, which projections fill
asynchronously. Pass a command's `position` as `min_position` (or `X-Min-Position`) to
read your own writes. History, as-of and diff are replayed from the store itself.
See docs/api.md for headers and status codes.
"""


def create_app(settings: Settings | None = None, *, publish: Publisher | None = None) -> FastAPI:
    """Returns a new API app for these settings (default: the environment's).

    `publish` is called with the position after every committed command; the default
    wakes the projections (in-process when embedded, a Celery hint to the workers otherwise).
    """
    settings = settings or get_settings()
    app = FastAPI(title="es_app: users (event-sourced CQRS)", version="1", description=DESCRIPTION)
    app.state.es = LazyContainer(settings)
    app.state.publish = publish or publish_appended
    app.state.metrics = ApiMetrics(app.state.es)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(CorrelationMiddleware)  # outermost: every answer, a 413 too, carries the id
    errors.install(app)
    for module in (commands, queries, audit, admin, ops):
        app.include_router(module.router)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        globals()["app"] = built = create_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
