"""The legacy app with live routes: `create_switchable_app` — reads and writes follow the migration's state
(`LiveRoutes`), and `/metrics` exposes its reads, shadow outcomes and fallbacks (Prometheus text)."""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST

from es_app.bootstrap import build
from es_app.settings import Settings
from legacy_app.api import create_app
from legacy_app.db import Database, SchemaMissing, has_schema

from ..mapping import load_mappings
from ..phases.machine import DECOMMISSIONED, load
from .live import LEGACY_TABLE, LiveRoutes, WritesFactory
from .writes import es_writes


def create_switchable_app(legacy_url: str, settings: Settings, *,
                          writes_factory: WritesFactory | None = es_writes) -> FastAPI:
    """Returns the legacy CRUD app whose routes follow the migration `settings.migration_name` (event store
    at `settings.es_database_url`), with `/metrics`; both databases are connected on the first request. In the
    `new` writes mode the writes are `writes_factory`'s (default: the event-sourced commands, `es_writes`)."""
    built: list[LiveRoutes] = []

    def routes(database: Database) -> LiveRoutes:
        es = build(settings)
        if load(es.store, settings.migration_name).phase == DECOMMISSIONED:  # the table is gone: not bound
            mappings = [m.compile() for m in load_mappings(settings.mapping_file or None)]
        elif not has_schema(database.engine):
            raise SchemaMissing(f"the legacy database has no `{LEGACY_TABLE}` table: run `migrator init`")
        else:
            mappings = load_mappings(settings.mapping_file or None, database.engine)
        live = LiveRoutes(database, es, mappings, name=settings.migration_name, poll_s=settings.routes_poll_s,
                          writes_factory=writes_factory)
        built.append(live)
        return live

    app = create_app(legacy_url, routes=routes, require_schema=False)  # checked above, knowing the phase

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        app.state.services()  # the routes are built with the first request
        return Response(built[-1].metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
