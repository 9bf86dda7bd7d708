"""`migrator demo --servers`: the same walk on fresh PostgreSQL databases, with Redis as the broker (under a key
prefix of its own) and real `celery -A migrator.worker worker` processes started by the demo and stopped at the
end (SIGTERM to each worker's process group, then SIGKILL). `--mysql-url`: the legacy database is a fresh one on
a MySQL/MariaDB server instead."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from es_app.store.engine import normalize_url

from ..topology import delete_broker_keys
from .walk import WalkFailed

CELERY = str(Path(sys.executable).with_name("celery"))
# two workers, as a deployment runs them: projections and the relay (with the beat), projections and notifications
WORKERS = (("projections,relay", ("-B",)), ("projections,notifications", ()))


def fresh_databases(server_url: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Returns the URLs of the databases `names` on the PostgreSQL server at `server_url`, dropped (if a previous
    demo left them) and created empty."""
    url = make_url(normalize_url(server_url))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return tuple(url.set(database=name).render_as_string(hide_password=False) for name in names)


def fresh_mysql_database(server_url: str, name: str) -> str:
    """Returns the URL of the database `name` on the MySQL/MariaDB server at `server_url` (utf8mb4), dropped (if a
    previous demo left it) and created empty. MySQL's DDL commits by itself: each statement stands alone."""
    url = make_url(normalize_url(server_url))
    admin = create_engine(url.set(database=""), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def broker_prefix() -> str:
    """Returns a broker key prefix of one demo run (it shares Redis with whatever else uses it)."""
    return f"migrator-demo-{uuid.uuid4().hex[:8]}:"


class CeleryWorkers:
    """`celery -A migrator.worker worker` processes with this process's environment (the demo's settings);
    `errors` stays empty: a worker's failures are in its log under `workdir`."""

    def __init__(self, workdir: Path, broker_url: str, prefix: str, timeout: float = 60.0):
        self.workdir, self.broker_url, self.prefix, self.timeout = workdir.resolve(), broker_url, prefix, timeout
        self.procs: list[subprocess.Popen[bytes]] = []
        self.errors: list[str] = []

    def log_path(self, n: int) -> Path:
        return self.workdir / f"worker-{n}.log"

    def __enter__(self) -> CeleryWorkers:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            for n, (queues, extra) in enumerate(WORKERS):
                argv = [CELERY, "-A", "migrator.worker", "worker", "-Q", queues, "--concurrency=2",
                        "--without-mingle", "--without-gossip", "--loglevel=INFO", "-n", f"demo{n}-{os.getpid()}@%h",
                        "-s", str(self.workdir / "beat-schedule"), *extra]
                with self.log_path(n).open("wb") as log:
                    self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                                       start_new_session=True, env={**os.environ,
                                                                                    "PYTHONUNBUFFERED": "1"}))
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        for n, proc in enumerate(self.procs):
            while b" ready." not in self.log_path(n).read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = self.log_path(n).read_text(errors="replace").strip().splitlines()[-1:]
                    raise WalkFailed(f"celery worker {n} did not start (see {self.log_path(n)}): {tail}")
                time.sleep(0.1)

    def __exit__(self, *_: object) -> None:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            for proc in self.procs:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, sig)
            for proc in self.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(wait)
        delete_broker_keys(self.broker_url, self.prefix)
