"""Prometheus metrics of one app: events appended here, and (read at scrape time) lag and dead letters."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError

from es_app.projections import projection_status
from es_app.store import AppendResult

from .context import LazyContainer

log = logging.getLogger(__name__)


class _StoreCollector:
    """Reads the store's head and each projection's position, lag and parked events on every scrape."""

    def __init__(self, es: LazyContainer):
        self.es = es

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            container = self.es.get()
            statuses = projection_status(container)
            head = statuses[0].head if statuses else container.store.head_position()
        except SQLAlchemyError as exc:  # the scrape still answers; /health says what is wrong
            log.warning("metrics: cannot read the store: %s", exc)
            return
        yield GaugeMetricFamily("es_event_store_head_position", "Global position of the newest event", value=head)
        lag = GaugeMetricFamily("es_projection_lag_events", "Events a projection (shard) is behind the head",
                                labels=["projection", "checkpoint"])
        position = GaugeMetricFamily("es_projection_position", "Global position a projection (shard) reached",
                                     labels=["projection", "checkpoint"])
        parked = GaugeMetricFamily("es_dead_letters_parked", "Events parked in the dead-letter table",
                                   labels=["projection"])
        seen = set()
        for s in statuses:
            lag.add_metric([s.projection, s.name], s.lag)
            position.add_metric([s.projection, s.name], s.position)
            if s.projection not in seen:
                seen.add(s.projection)
                parked.add_metric([s.projection], s.parked)
        yield from (lag, position, parked)


class ApiMetrics:
    """Returns the app's registry; `on_written` counts the events each command appended."""

    def __init__(self, es: LazyContainer):
        self.registry = CollectorRegistry(auto_describe=False)
        self.appended = Counter("es_events_appended", "Events appended through this API process",
                                ["command"], registry=self.registry)
        self.registry.register(_StoreCollector(es))

    def on_written(self, command: str, result: AppendResult) -> None:
        if result.written:
            self.appended.labels(command).inc(len(result.positions))

    def render(self) -> bytes:
        return generate_latest(self.registry)
