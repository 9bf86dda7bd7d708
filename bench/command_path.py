"""The embedded command path in one thread: a register command as the API runs it, then the projections' run.

    python -m bench.command_path [--quick] [--backend B] [--commands N] [--rounds R] [--markdown]

Without HTTP and without threads, so the two costs are apart: the command (`CommandRunner.register`
with an Idempotency-Key: load nothing, decide, append with the email claim and the stored response,
commit) and the run the embedded worker makes after a wake-up (`EmbeddedWorker.run_once`: the users
read model and the notifications outbox, each as its task runs it, up to the head), called here
right after each command, as an embedded API without any coalescing of wake-ups would. Best of
`--rounds` (default 3) blocks of `--commands` (default 1,000; --quick 200) commands. The CPU columns
are this thread's CPU time (`time.thread_time`): what the API's other threads wait for under the GIL,
without the waits on the server, and steadier than wall time on a shared machine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from bench.common import es_database, fmt, machine_line, parse, parser, print_table


def measure(backend: str, commands: int, rounds: int) -> tuple[float, float, float, float]:
    """Returns the best (command µs, run µs, command CPU µs, run CPU µs) per command over `rounds` blocks
    (CPU: this thread's, so the time waiting on a server is left out)."""
    from es_app.api.context import Actor
    from es_app.api.execution import CommandRequest, CommandRunner
    from es_app.settings import Settings
    from es_app.worker.embedded import EmbeddedWorker

    with es_database(backend, "bench_command") as url:
        worker = EmbeddedWorker(Settings(es_database_url=url, broker_url="", catch_up_interval_s=3600))
        try:
            runner = CommandRunner(worker.container, lambda _settings, _position: None)

            def block(n: int) -> tuple[float, float, float, float]:
                command = run = command_cpu = run_cpu = 0.0
                for i in range(n):
                    req = CommandRequest(Actor("bench"), str(uuid.uuid4()), idempotency_key=str(uuid.uuid4()),
                                         fingerprint="bench")
                    t0, c0 = time.perf_counter(), time.thread_time()
                    runner.register(req, f"User {i}", f"c{i}-{uuid.uuid4().hex[:8]}@example.org", None)
                    t1, c1 = time.perf_counter(), time.thread_time()
                    worker.run_once()
                    command, run = command + t1 - t0, run + time.perf_counter() - t1
                    command_cpu, run_cpu = command_cpu + c1 - c0, run_cpu + time.thread_time() - c1
                return command / n * 1e6, run / n * 1e6, command_cpu / n * 1e6, run_cpu / n * 1e6

            block(min(50, commands))  # warm up: connections, prepared statements, the layout
            results = [block(commands) for _ in range(rounds)]
        finally:
            worker.stop()
    return tuple(min(r[k] for r in results) for k in range(4))  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--commands", type=int, default=None, help="commands per block (default 1,000; --quick 200)")
    p.add_argument("--rounds", type=int, default=3, help="blocks; the best counts")
    args = parse(p, argv)
    commands = args.commands or (200 if args.quick else 1000)
    rows = []
    for backend in args.backends:
        command, run, command_cpu, run_cpu = measure(backend, commands, args.rounds)
        rows.append([backend, fmt(commands), fmt(command), fmt(run), fmt(command + run), fmt(command_cpu),
                     fmt(run_cpu)])
    print_table("Embedded command path: register (Idempotency-Key) and the projections' run after it, µs per command",
                ["backend", "commands", "command µs", "projections' run µs", "total µs", "command CPU µs",
                 "run CPU µs"], rows,
                markdown=args.markdown, caption=machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
