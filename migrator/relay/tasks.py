"""The migrator's Celery tasks, on es_app's app: the relay, run by the beat and woken after legacy commits.

`migrator.relay.runner` drains the changelog of every mapped table (MAPPING_FILE, default: the
built-in users mapping) and then wakes the projection workers. It is safe to run
anywhere and any number of times at once: batches lock the table's relay offset, and
event ids derive from changelog ids. The beat runs it every RELAY_INTERVAL_S seconds;
`migrator relay --follow --wake-workers` sends it on every legacy commit (PostgreSQL LISTEN).
It obeys the migration's live control: while `migrator pause` holds it relays nothing, and under
`migrator throttle --max-rate R` one run relays at most R * RELAY_INTERVAL_S changes (the next
beat goes on).
"""

from __future__ import annotations

import logging
from typing import Any

from es_app.worker import app, container_for, publish_appended

RELAY_QUEUE = "relay"
RELAY_TASK = "migrator.relay.runner"

log = logging.getLogger(__name__)


@app.task(name=RELAY_TASK, queue=RELAY_QUEUE, ignore_result=True)
def relay(es_url: str | None = None, legacy_url: str | None = None) -> int:
    """Returns the number of changelog rows read: relays every mapped table up to now, wakes the projectors,
    then lets the reverse projection catch up (while writes are switched)."""
    from es_app.bootstrap import engine_for

    from ..capture.changelog import CaptureError, require_installed
    from ..mapping import MappingError, load_mappings
    from .runner import relays_for

    container = container_for(es_url)
    settings = container.settings
    legacy = engine_for(legacy_url or settings.legacy_database_url)
    try:
        mappings = load_mappings(settings.mapping_file or None, legacy)
        require_installed(legacy, [m.declaration for m in mappings])
    except (MappingError, CaptureError) as exc:
        log.warning("relay not run: %s", exc)
        return 0
    from ..phases import LiveControl

    budget = _Budget(LiveControl(container.store, settings.migration_name, poll_s=0.0), settings.relay_interval_s)
    if (why := budget.control.pause_reason()) is not None:
        log.info("relay not run: %s", why)
        return 0
    relays = relays_for(mappings, legacy, container.store, batch_size=settings.relay_batch_size)
    totals = [r.drain(before_batch=budget.before_batch) for r in relays]
    last = max((t.last_event_position or 0 for t in totals), default=0)
    if last:
        publish_appended(settings, last)
    for t in totals:
        if t.read:
            log.info("relayed %s: %d changes -> %d events, offset %d", t.table, t.read, t.events, t.position)
    from ..capture.gaps import open_gaps

    # every run, until `relay --resync`
    for gap in open_gaps(legacy, container.store.engine, [m.declaration for m in mappings]):
        log.warning("%s", gap.warning())
    from .follow import reverse_round

    reverse_round(relays, settings.migration_name)()  # while writes are switched: the legacy tables follow the store
    return sum(t.read for t in totals)


class _Budget:
    """One run's share of the live control: stop at a pause, at most max_rate * interval changes in all."""

    def __init__(self, control: Any, interval_s: float):
        self.control, self.interval_s, self.used = control, interval_s, 0

    def before_batch(self, batch_size: int) -> int | None:
        if self.control.pause_reason() is not None:
            return None
        rate = self.control.max_rate()
        if rate is None:
            return batch_size
        left = int(rate * self.interval_s) - self.used
        if left <= 0:
            return None
        take = min(batch_size, left)
        self.used += take
        return take


def _add_beat_entry(sender: Any = None, **_: Any) -> None:
    from es_app.settings import get_settings

    app.conf.beat_schedule.setdefault("migrator-relay", {
        "task": RELAY_TASK, "schedule": get_settings().relay_interval_s, "options": {"queue": RELAY_QUEUE}})


if app.configured:
    _add_beat_entry()
else:
    app.on_after_configure.connect(_add_beat_entry, weak=False)
