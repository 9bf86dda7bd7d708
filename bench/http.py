"""HTTP API: command throughput and p50/p99 latency at 1 and 32 clients beside the legacy write, and end-to-end lag.

    python -m bench.http [--quick] [--backend sqlite|postgres] [--mode embedded|servers] [--requests N]
                         [--clients C ...] [--markdown]

The API runs as `migrator serve es` (uvicorn, one process) on loopback, started from
docker-compose.yml by `migrator.topology`; in servers mode with the compose projections
and notifications workers (real `celery worker`s on Redis, under a unique key prefix).
Clients are asyncio tasks in this process, each sending its next command as soon as the
previous one answered; every command carries an Idempotency-Key, as a client that retries
after a network error must (so the figures include the key's lookup and stored response). Phases: register N users, then rename them (PATCH). The lag of a
rename is the time from sending it until the read model's position covers it (polled
from the database every 2 ms by a thread of this process).

Beside each register phase, in the same run and at the same number of clients, the legacy
app's write: N POST /users on `legacy_app.api` (uvicorn, one process, its own database of the
same backend, no capture installed: the legacy write before any migration), the reference of
issue 16's goal (the ES command's p50 and p99 at most 1.2x the legacy write's). The two are
driven in alternating blocks (`drive_alternating`), so a drift of the machine's speed during the
run weighs on both alike.
"API CPU ms/req" is the CPU time the serving process used per request during the phase (every
thread, so in embedded mode the projections' work too), read from /proc: on a shared machine it
moves much less with other work than latency does. Beside it, per request, the CPU of the Celery
workers' process trees (servers mode) and, on a PostgreSQL on this host, of the server processes
serving that side's database (its backends, found in pg_stat_activity; the server's shared
background work — WAL writer, checkpointer — is nobody's). Their sum is the whole stack's CPU per
request: on the 2 cores the apps, their workers and the database share, what a request costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import urlparse

from bench.common import (
    ServerCpu,
    Timing,
    cpu_delta,
    cpu_of,
    cpu_seconds,
    empty_database,
    es_database,
    fmt,
    machine_line,
    parse,
    parser,
    percentile,
    print_table,
    ratio,
)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
MODES = ("embedded", "servers")


def redis_reachable() -> bool:
    parsed = urlparse(REDIS_URL)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=2):
            return True
    except OSError:
        return False


WATCHER = "bench-position-watcher"


class PositionWatcher:
    """Polls the read model's position; `visible_at(p)` is when it first reached p (perf_counter)."""

    def __init__(self, url: str, interval: float = 0.002):
        from es_app.store import make_engine

        if url.startswith("postgresql"):  # not counted as the API's database work (CpuMeter)
            url += ("&" if "?" in url else "?") + f"application_name={WATCHER}"
        self.engine = make_engine(url)
        self.interval = interval
        self.seen: list[tuple[float, int]] = []  # (time, position) whenever it moved
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from es_app.projections import read_model_position

        last = -1
        while not self._stop.is_set():
            position = read_model_position(self.engine)
            if position != last:
                self.seen.append((time.perf_counter(), position))
                last = position
            time.sleep(self.interval)

    def __enter__(self) -> "PositionWatcher":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()

    def visible_at(self, position: int) -> float | None:
        for t, p in self.seen:
            if p >= position:
                return t
        return None

    def wait_for(self, position: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while (not self.seen or self.seen[-1][1] < position) and time.monotonic() < deadline:
            time.sleep(0.01)


def _descendants(roots: Sequence[int]) -> list[int]:
    """Returns the roots and every process below them (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


PARTS = ("api", "workers", "db")


class CpuMeter:
    """Reads the CPU seconds used so far by one side of the comparison, per part: its API process
    (`api`), its Celery workers' process trees (`workers`), and its PostgreSQL database's backends
    (`db`: a server on this host, whose processes /proc shows; None for SQLite, which runs in the API)."""

    def __init__(self, api_pid: int, worker_pids: Sequence[int] = (), database_url: str | None = None):
        self.api_pid, self.worker_pids = api_pid, list(worker_pids)
        self.server = ServerCpu(database_url, leave_out=WATCHER) if database_url else None

    def read(self) -> dict[str, dict[int, float] | None]:
        api = cpu_seconds(self.api_pid)
        return {"api": None if api is None else {self.api_pid: api},
                "workers": cpu_of(_descendants(self.worker_pids)) if self.worker_pids else None,
                "db": self.server.read() if self.server else None}

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def cpu_used(before: dict[str, dict[int, float] | None], after: dict[str, dict[int, float] | None],
             requests: int) -> dict[str, float | None]:
    """Returns each part's CPU ms per request between two `CpuMeter.read`s (see `cpu_delta`)."""
    used: dict[str, float | None] = {}
    for part in PARTS:
        b, a = before.get(part), after.get(part)
        used[part] = None if b is None or a is None else cpu_delta(b, a) * 1000 / max(1, requests)
    return used


Cpu = dict[str, float | None]


def drive_measured(base: str, clients: int, bodies: list[tuple[str, str, dict]], meter: CpuMeter
                   ) -> tuple[Timing, list[tuple], Cpu]:
    """Returns what `_drive` returns and the side's CPU ms per request by part (None where unknown).

    CPU per request hardly moves with other work on the machine, unlike latency: it is the
    steadier figure for comparing two versions on a shared host.
    """
    before = meter.read()
    timing, records = asyncio.run(_drive(base, clients, bodies))
    return timing, records, cpu_used(before, meter.read(), len(records))


def drive_alternating(clients: int, *sides: tuple[str, list[tuple[str, str, dict]], CpuMeter]
                      ) -> list[tuple[Timing, list[tuple], Cpu]]:
    """Returns `drive_measured`'s figures of each side, (base, bodies, meter), driven in alternating blocks
    of at least 50 requests and 8 per client, each side on one client kept open throughout: on a VM
    whose speed drifts from one minute to the next, two phases run one after the other would compare
    the minutes as much as the apps."""
    size = max(50, 8 * clients)

    async def alternate() -> list[list[tuple[Timing, list[tuple], Cpu]]]:
        parts: list[list[tuple[Timing, list[tuple], Cpu]]] = [[] for _ in sides]
        async with contextlib.AsyncExitStack() as stack:
            opened = [await stack.enter_async_context(_client(base, clients)) for base, _, _ in sides]
            for start in range(0, max(len(bodies) for _, bodies, _ in sides), size):
                for part, client, (_, bodies, meter) in zip(parts, opened, sides, strict=True):
                    block = bodies[start:start + size]
                    if block:
                        before = meter.read()
                        timing, records = await _drive_on(client, clients, block)
                        part.append((timing, records, cpu_used(before, meter.read(), len(records))))
        return parts

    return [_joined(part) for part in asyncio.run(alternate())]


def _joined(parts: list[tuple[Timing, list[tuple], Cpu]]) -> tuple[Timing, list[tuple], Cpu]:
    """Returns the figures of blocks as of one phase (CPU per request weighted by the blocks' requests)."""
    timing = Timing(sum(t.seconds for t, _, _ in parts), sum(t.ops for t, _, _ in parts),
                    sum(t.items for t, _, _ in parts), [x for t, _, _ in parts for x in t.latencies])
    records = [r for _, rs, _ in parts for r in rs]
    cpu: Cpu = {}
    for part in PARTS:
        got = [(c[part], len(rs)) for _, rs, c in parts]
        known = [(v, n) for v, n in got if v is not None]
        cpu[part] = sum(v * n for v, n in known) / max(1, len(records)) if len(known) == len(got) else None
    return timing, records, cpu


@contextlib.contextmanager
def legacy_api(backend: str, workdir: Path) -> Iterator[tuple[str, int, str]]:
    """Yields (base URL, pid, database URL) of `legacy_app.api:app` served by uvicorn in a process of its own, on a new
    database of `backend` holding the legacy schema only; stops it and drops the database after."""
    import httpx

    from es_app.store import make_engine
    from migrator.schema import TREES, upgrade

    with empty_database(backend, prefix="bench_http_legacy") as url:
        engine = make_engine(url)
        try:
            upgrade(next(t for t in TREES if t.name == "legacy"), engine)
        finally:
            engine.dispose()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        log = (workdir / "legacy-api.log").open("w")
        process = subprocess.Popen(  # the log level `migrator serve` runs with: info, access log on
            [sys.executable, "-m", "uvicorn", "legacy_app.api:app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "info"], env={**os.environ, "LEGACY_DATABASE_URL": url}, stdout=log,
            stderr=subprocess.STDOUT)
        log.close()
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"legacy API exited with {process.returncode}: "
                                       f"{(workdir / 'legacy-api.log').read_text()[-800:]}")
                try:
                    httpx.get(f"{base}/openapi.json", timeout=1.0)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the legacy API did not answer within 60 s") from None
                    time.sleep(0.1)
            yield base, process.pid, url
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _drive(base: str, clients: int, bodies: list[tuple[str, str, dict]]) -> tuple[Timing, list[tuple]]:
    """Returns the timing of sending every (method, path, body), `clients` at a time, and per-request records."""
    async with _client(base, clients) as client:
        return await _drive_on(client, clients, bodies)


def _client(base: str, clients: int):  # noqa: ANN202 - an httpx.AsyncClient (imported late)
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    return httpx.AsyncClient(base_url=base, limits=limits, timeout=60)


async def _drive_on(client, clients: int, bodies: list[tuple[str, str, dict]]  # noqa: ANN001 - httpx.AsyncClient
                    ) -> tuple[Timing, list[tuple]]:
    """`_drive` on an open client (its connections kept from one call to the next)."""
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    records: list[tuple[float, float, int, dict]] = []  # (sent, answered, status, body)
    retried: list[str] = []

    async def worker() -> None:
        while not queue.empty():
            method, path, body = queue.get_nowait()
            headers = {"Idempotency-Key": str(uuid.uuid4())}  # so a retry after a network error is safe
            sent = time.perf_counter()
            for attempt in range(3):
                try:
                    r = await client.request(method, path, json=body, headers=headers)
                    break
                except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
                    retried.append(path)
                    if attempt == 2:
                        raise
            records.append((sent, time.perf_counter(), r.status_code, r.json()))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    seconds = time.perf_counter() - start
    if retried:
        print(f"note: {len(retried)} requests retried after a network error (same Idempotency-Key)",
              file=sys.stderr)
    bad = [r for r in records if r[2] >= 300]
    if bad:
        raise RuntimeError(f"{len(bad)} commands failed, e.g. {bad[0][2]} {bad[0][3]}")
    return Timing(seconds, len(records), len(records), [a - s for s, a, _, _ in records]), records


def _all_cpu(cpu: Cpu) -> float | None:
    """Returns the whole stack's CPU ms per request (the parts measured; None when the API's is unknown)."""
    return None if cpu.get("api") is None else sum(v for v in cpu.values() if v is not None)


def _row(backend: str, mode: str, what: str, clients: int, t: Timing, cpu: Cpu) -> list[str]:
    return [backend, mode, what, fmt(t.ops), str(clients), fmt(t.per_second),
            f"{t.percentile_ms(50):.1f}", f"{t.percentile_ms(99):.1f}", fmt(cpu["api"], 2),
            fmt(cpu["workers"], 2), fmt(cpu["db"], 2), fmt(_all_cpu(cpu), 2)]


def _versus(backend: str, mode: str, clients: int, es: Timing, legacy: Timing, es_cpu: Cpu,
            legacy_cpu: Cpu) -> list[str]:
    """Returns a row of the ES register against the legacy POST at the same load."""
    ratios = [(es.percentile_ms(q) or 0) / (legacy.percentile_ms(q) or 1) for q in (50, 99)]
    es_all, legacy_all = _all_cpu(es_cpu), _all_cpu(legacy_cpu)
    return [backend, mode, str(clients), f"{es.percentile_ms(50):.1f}", f"{es.percentile_ms(99):.1f}",
            f"{legacy.percentile_ms(50):.1f}", f"{legacy.percentile_ms(99):.1f}", f"{ratios[0]:.2f}x",
            f"{ratios[1]:.2f}x", ratio(es.per_second, legacy.per_second),
            ratio(es_all, legacy_all) if es_all is not None and legacy_all else "-",
            "met" if max(ratios) <= 1.2 else "MISSED"]


def run(backend: str, mode: str, requests: int, clients: Sequence[int]
        ) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """Returns the rows of the three tables (commands, lag, ES vs legacy) of one backend and mode."""
    from migrator.topology import Topology, delete_broker_keys, load_compose, local_env

    rows, lags, versus = [], [], []
    with es_database(backend, prefix="bench_http") as url, tempfile.TemporaryDirectory(prefix="bench-http-") as tmp, \
            legacy_api(backend, Path(tmp)) as (legacy_base, legacy_pid, legacy_url):
        prefix = f"bench-{uuid.uuid4().hex}:"
        broker = REDIS_URL if mode == "servers" else ""
        env = local_env(url, url, broker, broker_key_prefix=prefix, catch_up_interval_s=5)
        names = ["es-api"] + (["projections-worker", "notifications-worker"] if mode == "servers" else [])
        topology = Topology(load_compose(COMPOSE), env, Path(tmp))
        meters: list[CpuMeter] = []
        try:
            topology.start(names)
            base = topology.url("es-api")
            workers = [topology.procs[n].pid for n in names[1:]]
            es_meter = CpuMeter(topology.procs["es-api"].pid, workers, url)
            legacy_meter = CpuMeter(legacy_pid, (), legacy_url)
            meters += [es_meter, legacy_meter]
            for c in clients:
                run_id = uuid.uuid4().hex[:6]
                registers = [("POST", "/users", {"name": f"User {i}", "email": f"b{run_id}-{i}@example.org"})
                             for i in range(requests)]
                posts = [("POST", "/users", {"full_name": f"User {i}", "email": f"l{run_id}-{i}@example.org"})
                         for i in range(requests)]
                (t_reg, records, cpu_reg), (t_legacy, _, cpu_legacy) = drive_alternating(
                    c, (base, registers, es_meter), (legacy_base, posts, legacy_meter))
                ids = [body["id"] for *_, body in records]
                renames = [("PATCH", f"/users/{uid}", {"name": f"Renamed {i}"}) for i, uid in enumerate(ids)]
                with PositionWatcher(url) as watcher:
                    t_ren, records, cpu_ren = drive_measured(base, c, renames, es_meter)
                    watcher.wait_for(max(body["position"] for *_, body in records))
                    lag = []
                    for sent, _answered, _, body in records:
                        seen = watcher.visible_at(body["position"])
                        if seen is not None:
                            lag.append(max(0.0, seen - sent))
                rows += [_row(backend, mode, "POST /users (register)", c, t_reg, cpu_reg),
                         _row(backend, mode, "PATCH /users/{id} (rename)", c, t_ren, cpu_ren),
                         _row(backend, mode, "legacy_app POST /users", c, t_legacy, cpu_legacy)]
                lags.append([backend, mode, fmt(len(lag)), f"{percentile(lag, 50) * 1000:.1f}",
                             f"{percentile(lag, 99) * 1000:.1f}", f"{max(lag, default=0) * 1000:.1f}", str(c)])
                versus.append(_versus(backend, mode, c, t_reg, t_legacy, cpu_reg, cpu_legacy))
        except Exception:
            for name in names:
                print(f"--- {name} log (last lines) ---\n{topology.log(name)[-3000:]}", file=sys.stderr)
            raise
        finally:
            for meter in meters:
                meter.close()
            topology.stop()
            if mode == "servers":
                delete_broker_keys(REDIS_URL, prefix)
    return rows, lags, versus


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--mode", action="append", choices=MODES, dest="modes",
                   help="embedded (in-process projection) or servers (Celery workers on Redis); repeatable; "
                        "default: both (servers only when Redis is reachable)")
    p.add_argument("--requests", type=int, default=None, help="commands per phase (default 3,000; --quick 200)")
    p.add_argument("--clients", type=int, action="append", default=None,
                   help="concurrent clients; repeatable (default: 1 and 32)")
    args = parse(p, argv)
    requests = args.requests or (200 if args.quick else 3000)
    clients = args.clients or [1, 32]
    modes = args.modes or (["embedded"] + (["servers"] if redis_reachable() else []))
    rows, lags, versus = [], [], []
    for backend in args.backends:
        for mode in modes:
            r, lag, vs = run(backend, mode, requests, clients)
            rows += r
            lags += lag
            versus += vs
    shown = " and ".join(str(c) for c in clients)
    print_table(f"HTTP commands over loopback ({shown} concurrent clients, uvicorn, one API process)",
                ["backend", "mode", "command", "requests", "clients", "req/s", "p50 ms", "p99 ms",
                 "API CPU ms/req", "workers CPU ms/req", "DB server CPU ms/req", "all CPU ms/req"], rows,
                markdown=args.markdown, caption=machine_line())
    print_table("End-to-end lag under that load: rename sent -> read model position covers it",
                ["backend", "mode", "renames", "p50 ms", "p99 ms", "max ms", "clients"], lags,
                markdown=args.markdown, caption=machine_line())
    print_table("ES register vs the legacy write (POST /users on legacy_app), same backend, same run: "
                "goal of issue 16, p50 and p99 <= 1.2x",
                ["backend", "mode", "clients", "ES p50 ms", "ES p99 ms", "legacy p50 ms", "legacy p99 ms",
                 "p50 ES/legacy", "p99 ES/legacy", "req/s ES/legacy", "all CPU/req ES/legacy", "goal"], versus,
                markdown=args.markdown, caption=machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
