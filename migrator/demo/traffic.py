"""The legacy app's users going on with their lives (a writer and readers through its HTTP API, in threads)
and the Celery worker's jobs (relay, reverse projection, projections) in a thread, as the demo runs them."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from es_app.bootstrap import build
from es_app.projections import run_projections
from es_app.settings import Settings

from ..phases import load
from ..relay.tasks import relay


class Traffic:
    """A writer (sign-ups, renames, (de)activations, deletions) and two readers on the legacy API.

    `showcase` users are changed often but never deleted, `protected` ones never written; every 5xx answer is
    kept in `server_errors`."""

    def __init__(self, client: Any, max_id: int, showcase: tuple[int, ...], protected: tuple[int, ...] = (),
                 seed: int = 7):
        self.client, self.max_id, self.showcase, self.protected = client, max_id, showcase, protected
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.writes = self.reads = 0
        self.server_errors: list[str] = []
        self.threads = [threading.Thread(target=self._writer, name="demo-writer", daemon=True)] + \
                       [threading.Thread(target=self._reader, args=(r,), name=f"demo-reader-{r}", daemon=True)
                        for r in range(2)]

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def wait_writes(self, n: int, timeout: float = 30.0) -> None:
        """Returns once the writer made `n` more writes (or after `timeout` seconds)."""
        target, deadline = self.writes + n, time.monotonic() + timeout
        while self.writes < target and time.monotonic() < deadline:
            time.sleep(0.02)

    def _seen(self, response: Any) -> int:
        if response.status_code >= 500:
            self.server_errors.append(f"{response.request.method} {response.request.url.path}: "
                                      f"{response.status_code} {response.text[:120]}")
        return int(response.status_code)

    def _writer(self) -> None:
        rng, n = self.rng, 0
        while not self.stop.is_set():
            n += 1
            uid = rng.choice(self.showcase) if rng.random() < 0.1 else rng.randint(1, self.max_id)
            choice = rng.random()
            if choice < 0.25 or uid in self.protected:
                r = self.client.post("/users", json={"email": f"signup{n}@example.org", "full_name": f"Signup {n}"})
            elif choice < 0.75:
                r = self.client.put(f"/users/{uid}", json={"full_name": f"Renamed {n}"})
            elif choice < 0.9 or uid in self.showcase:
                r = self.client.put(f"/users/{uid}", json={"is_active": rng.random() < 0.5})
            else:
                r = self.client.delete(f"/users/{uid}")
            if self._seen(r) < 300:
                self.writes += 1
            time.sleep(0.005)

    def _reader(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            if rng.random() < 0.8:
                self._seen(self.client.get(f"/users/{rng.randint(1, self.max_id)}"))
            else:
                self._seen(self.client.get("/users", params={"search": "renamed", "limit": 20}))
            self.reads += 1
            time.sleep(0.005)


class WorkerThread:
    """The worker's jobs in a thread, as `celery -A migrator.worker worker` runs them: the relay (then the
    reverse projection while writes are switched) and the projections, every `interval_s`."""

    def __init__(self, settings: Settings, interval_s: float = 0.05):
        self.settings, self.interval_s = settings, interval_s
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, name="demo-worker", daemon=True)

    def _run(self) -> None:
        es = build(self.settings)
        es_url, legacy_url = self.settings.es_database_url, self.settings.legacy_database_url
        while not self.stop.is_set():
            try:
                if load(es.store).phase != "decommissioned":
                    relay(es_url, legacy_url)
                run_projections(es)
            except Exception as exc:  # noqa: BLE001 - counted and shown; the next round retries
                self.errors.append(repr(exc))
            self.stop.wait(self.interval_s)

    def __enter__(self) -> WorkerThread:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)
