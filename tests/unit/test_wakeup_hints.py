"""Servers mode's wake-up hints: sent from a thread of their own, coalesced, never waited on."""

from __future__ import annotations

import threading
import time

import pytest

from es_app.settings import Settings
from es_app.worker import publish


class Sent(list):
    """The positions the hint senders sent, and a condition to wait for them."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Condition()

    def record(self, _settings: Settings, position: int) -> None:
        with self.arrived:
            self.append(position)
            self.arrived.notify_all()

    def wait_for(self, n: int, timeout: float = 10.0) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self) >= n, timeout), list(self)


@pytest.fixture
def sent(monkeypatch) -> Sent:
    """Records the positions the hint senders send (instead of sending them to a broker)."""
    got = Sent()
    monkeypatch.setattr(publish, "_send", got.record)
    return got


def test_the_first_hint_goes_at_once_and_those_of_the_next_spell_go_as_one_with_the_highest(sent):
    hints = publish._Hints(Settings(broker_url="redis://127.0.0.1:1/0", hint_coalesce_ms=300))
    hints.offer(1)
    sent.wait_for(1)
    for position in (2, 5, 3):  # within the 300 ms after the first was sent
        hints.offer(position)
    sent.wait_for(2)
    time.sleep(0.4)  # nothing more was offered: nothing more goes
    assert sent == [1, 5]
    hints.offer(6)
    sent.wait_for(3)
    assert sent == [1, 5, 6]


def test_without_spacing_every_hint_goes(sent):
    hints = publish._Hints(Settings(broker_url="redis://127.0.0.1:1/0", hint_coalesce_ms=0))
    for position in range(1, 4):
        hints.offer(position)
        sent.wait_for(position)
    assert sent == [1, 2, 3]


def test_a_slow_broker_costs_the_caller_nothing(monkeypatch):
    """Every hint is handed over at once: the broker's round trip is the sender thread's, not the command's."""
    calls = Sent()

    def slow_send(settings: Settings, position: int, connection=None) -> None:  # noqa: ANN001 - kombu's
        time.sleep(0.5)
        calls.record(settings, position)

    monkeypatch.setattr(publish, "send_wakeups", slow_send)
    settings = Settings(broker_url="redis://127.0.0.1:1/0", broker_key_prefix=f"slow{time.monotonic_ns()}:")
    started = time.monotonic()
    for position in range(1, 11):
        publish.publish_appended(settings, position)
    returned = time.monotonic() - started
    with calls.arrived:
        assert calls.arrived.wait_for(lambda: 10 in calls, 10.0), list(calls)
    assert returned < 0.5  # sent in the caller, ten hints would take ten times 0.5 s
    assert len(calls) <= 2  # the first perhaps alone (if the sender was already waiting), the rest as one


def test_a_dead_broker_is_logged_and_not_raised(caplog):
    settings = Settings(broker_url="redis://127.0.0.1:1/0", broker_key_prefix=f"t{time.monotonic_ns()}:")
    with caplog.at_level("WARNING", logger="es_app.worker.publish"):
        publish.publish_appended(settings, 1)
        deadline = time.monotonic() + 10
        while "not sent" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "wake-up for position 1 not sent" in caplog.text


def test_one_sender_per_broker_prefix_and_shard_count():
    a = Settings(broker_url="redis://127.0.0.1:1/0", broker_key_prefix="one:")
    assert publish._hints(a) is publish._hints(a.model_copy())
    assert publish._hints(a) is not publish._hints(a.model_copy(update={"projection_shards": 2}))
    assert publish._hints(a) is not publish._hints(a.model_copy(update={"broker_key_prefix": "two:"}))
