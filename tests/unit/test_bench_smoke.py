"""The store bench runs end to end in quick mode on SQLite (no timing is asserted), so it cannot rot."""

from __future__ import annotations

from bench import store as store_bench
from bench import store_eventsourcing
from bench.__main__ import modules


def test_store_bench_runs_in_quick_mode_on_sqlite(capsys):
    assert store_bench.main(["--quick", "--backend", "sqlite", "--markdown"]) == 0
    out = capsys.readouterr().out
    for label in ("command, sequential", "command, 8 threads", "append_batch: 100 streams x 1 event",
                  "read_all, pages of 250", "1,000 events, snapshot at 1,000", "goals of issue 2"):
        assert label in out
    table = [line for line in out.splitlines() if line.startswith("| sqlite | command, sequential |")]
    assert len(table) == 2  # its throughput, then its CPU per event
    throughput, cpu = ([cell.strip() for cell in row.split("|")[1:-1]] for row in table)
    ratio = throughput[-1]
    if store_eventsourcing.available():
        assert ratio.endswith("x") and float(ratio[:-1]) > 0
        assert float(cpu[5].replace(",", "")) > 0 and cpu[-1].endswith("x")
    else:
        assert ratio == "-"
    assert float(cpu[2].replace(",", "")) > 0 and cpu[3] == "-"  # SQLite has no server process


def test_python_m_bench_finds_the_store_bench():
    assert "store" in modules()
    assert "common" not in modules() and "store_eventsourcing" not in modules()
