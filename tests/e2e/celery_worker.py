"""A real `celery worker` subprocess for end-to-end tests, isolated on the shared Redis by a key prefix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

from migrator.topology import delete_broker_keys
from tests.conftest import REDIS_URL

CELERY = str(Path(sys.executable).with_name("celery"))


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60.0, interval: float = 0.05) -> None:
    """Returns once `predicate()` is true; fails the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class CeleryWorker:
    """Starts `celery -A es_app.worker worker -B` with its own settings; `kill()` is SIGKILL to the group."""

    def __init__(self, es_url: str, prefix: str, workdir: Path, **settings: str):
        self.workdir = workdir
        self.env = {**os.environ, "ES_DATABASE_URL": es_url, "BROKER_URL": REDIS_URL,
                    "BROKER_KEY_PREFIX": prefix, "PYTHONUNBUFFERED": "1",
                    **{k.upper(): str(v) for k, v in settings.items()}}
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"worker-{self.starts}.log"

    def start(self) -> "CeleryWorker":
        self.starts += 1
        cmd = [CELERY, "-A", "es_app.worker", "worker", "-Q", "projections,notifications", "--pool=solo",
               "--without-mingle", "--without-gossip", "--without-heartbeat", "-B",
               "-s", str(self.workdir / "beat-schedule"), "--loglevel=INFO", "-n", f"t{uuid.uuid4().hex[:8]}@%h"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.workdir)
        return self

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("worker-*.log")))

    def _signal_group(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the worker and its beat child, as a crash would."""
        self._signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self) -> None:
        """Ends the worker at teardown; a kill is enough, since every message is only a hint."""
        self.kill()


def new_prefix() -> str:
    return f"t-{uuid.uuid4().hex}:"


def clean_redis(prefix: str) -> None:
    delete_broker_keys(REDIS_URL, prefix)
