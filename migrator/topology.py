"""docker-compose.yml's topology as local processes: the same services and commands, no Docker.

Every service with a `command` runs as a subprocess with this machine's database and
broker URLs instead of the compose hostnames: `migrator init` first (the one-shot
`init` service), then the APIs, workers and beat. Ports are remapped to free local
ones, `--host 0.0.0.0` becomes 127.0.0.1, worker node names get a unique suffix, and
readiness follows each service's compose healthcheck: the HTTP URL it polls, or the
worker's "ready" / the beat's "Starting" log line. The end-to-end tests run this.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import yaml

BIN = Path(sys.executable).parent
_HEALTH_URL = re.compile(r"http://127\.0\.0\.1:(\d+)(/[^'\"\s]*)")


class TopologyError(RuntimeError):
    """A service could not be started or did not become ready; the message names it."""


@dataclasses.dataclass(frozen=True)
class Service:
    """Returns one compose service as a local process: its argv, port and readiness check."""

    name: str
    argv: tuple[str, ...]
    one_shot: bool = False
    port: int | None = None  # the container port the command listens on
    health_path: str | None = None  # HTTP readiness, from the compose healthcheck
    ready_log: str | None = None  # log readiness for workers and the beat

    @property
    def kind(self) -> str:
        return "one-shot" if self.one_shot else "http" if self.port else "worker"


def _argv(command: str | list[str]) -> tuple[str, ...]:
    return tuple(shlex.split(command) if isinstance(command, str) else command)


def load_compose(path: str | Path = "docker-compose.yml") -> list[Service]:
    """Returns the services of a compose file that run our image's commands, in start order."""
    spec = yaml.safe_load(Path(path).read_text())
    services = []
    for name, svc in (spec.get("services") or {}).items():
        if "command" not in svc:
            continue  # postgres, redis: servers this machine already runs
        argv = _argv(svc["command"])
        port = None
        if "--port" in argv:
            port = int(argv[argv.index("--port") + 1])
        test = " ".join(map(str, (svc.get("healthcheck") or {}).get("test", [])))
        match = _HEALTH_URL.search(test)
        ready = None
        if argv[:1] == ("celery",):
            ready = "Starting..." if "beat" in argv else " ready."
        services.append(Service(name, argv, one_shot=svc.get("restart") == "no", port=port,
                                health_path=match.group(2) if match else None, ready_log=ready))
    return sorted(services, key=lambda s: not s.one_shot)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replace(argv: list[str], flag: str, value: str) -> None:
    if flag in argv:
        argv[argv.index(flag) + 1] = value


class Topology:
    """Starts compose services as local processes; `stop()` ends them (SIGTERM, then SIGKILL)."""

    def __init__(self, services: Iterable[Service], env: dict[str, str], workdir: Path):
        self.services = {s.name: s for s in services}
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self._suffix = uuid.uuid4().hex[:6]

    # -- the local command of a service ---------------------------------------
    def local_argv(self, service: Service) -> list[str]:
        """Returns the service's command with local executables, host, port and file paths."""
        argv = list(service.argv)
        exe = BIN / argv[0]
        if exe.exists():
            argv[0] = str(exe)
        _replace(argv, "--host", "127.0.0.1")
        if service.port is not None:
            self.ports.setdefault(service.name, free_port())
            _replace(argv, "--port", str(self.ports[service.name]))
        _replace(argv, "-s", str(self.workdir / f"{service.name}-schedule"))
        if "-n" in argv:
            node = argv[argv.index("-n") + 1]
            argv[argv.index("-n") + 1] = node.replace("@", f"-{self._suffix}@", 1)
        return argv

    def url(self, name: str) -> str:
        """Returns the local base URL of an HTTP service."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    # -- life cycle ------------------------------------------------------------
    def start(self, names: Iterable[str] | None = None, timeout: float = 90.0) -> Topology:
        """Runs the one-shot services to completion, starts the others, and waits until all are ready."""
        wanted = list(names) if names is not None else list(self.services)
        unknown = [n for n in wanted if n not in self.services]
        if unknown:
            raise TopologyError(f"no such service in the compose file: {', '.join(unknown)}")
        for name in wanted:
            service = self.services[name]
            if service.one_shot:
                self._run_once(service, timeout)
        for name in wanted:
            if not self.services[name].one_shot:
                self._spawn(self.services[name])
        for name in wanted:
            if not self.services[name].one_shot:
                self.wait_ready(name, timeout)
        return self

    def _run_once(self, service: Service, timeout: float) -> None:
        with self.log_path(service.name).open("w") as out:
            done = subprocess.run(self.local_argv(service), env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=self.workdir, timeout=timeout)
        if done.returncode != 0:
            raise TopologyError(f"{service.name} exited with {done.returncode}: {self.log(service.name)[-500:]}")

    def _spawn(self, service: Service) -> None:
        out = self.log_path(service.name).open("a")
        self.procs[service.name] = subprocess.Popen(
            self.local_argv(service), env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir,
            start_new_session=True)
        out.close()

    def is_ready(self, name: str) -> bool:
        service, proc = self.services[name], self.procs[name]
        if proc.poll() is not None:
            raise TopologyError(f"{name} exited with {proc.returncode}: {self.log(name)[-800:]}")
        if service.health_path is not None and service.port is not None:
            try:
                return httpx.get(self.url(name) + service.health_path, timeout=2).status_code < 400
            except httpx.HTTPError:
                return False
        if service.ready_log is not None:
            return service.ready_log in self.log(name)
        return True

    def wait_ready(self, name: str, timeout: float = 90.0) -> None:
        """Returns once the service passes its readiness check; raises TopologyError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while not self.is_ready(name):
            if time.monotonic() > deadline:
                raise TopologyError(f"{name} not ready after {timeout:.0f} s: {self.log(name)[-800:]}")
            time.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILLs a service's whole process group, as a crash would."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def restart(self, name: str, timeout: float = 90.0) -> None:
        self.kill(name)
        self._spawn(self.services[name])
        self.wait_ready(name, timeout)

    def stop(self, grace: float = 10.0) -> None:
        """Ends every service: SIGTERM to each process group, SIGKILL to what is left after `grace` s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name in list(self.procs):
            proc = self.procs[name]
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(name)
        self.procs.clear()

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def local_env(es_url: str, legacy_url: str, broker_url: str, **knobs: Any) -> dict[str, str]:
    """Returns the environment that replaces the compose one: this machine's URLs, plus any knobs."""
    return {"ES_DATABASE_URL": es_url, "LEGACY_DATABASE_URL": legacy_url, "BROKER_URL": broker_url,
            **{k.upper(): str(v) for k, v in knobs.items()}}


def delete_broker_keys(broker_url: str, prefix: str) -> int:
    """Returns how many Redis keys under `prefix` it deleted: what a topology started with
    `broker_key_prefix` left on a shared Redis (queues, results, locks)."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()
