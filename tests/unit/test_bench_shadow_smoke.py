"""The shadow-read bench runs end to end on SQLite with tiny sizes (no timing is asserted), so it cannot rot."""

from __future__ import annotations

from bench import shadow


def test_shadow_bench_runs_every_mode(capsys):
    assert shadow.main(["--backend", "sqlite", "--users", "40", "--reads", "60", "--threads", "2", "--markdown"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| sqlite |")]
    modes = ["legacy", "shadow", "shadow 10%", "new"]
    assert [r.split("|")[3].strip() for r in rows] == modes * 2  # closed loop, then paced
    loads = [r.split("|")[2].strip() for r in rows]
    assert loads[:4] == ["2 threads, closed loop"] * 4 and len(set(loads[4:])) == 1 and loads[4].startswith("paced ")
    assert all("0 mismatched" in rows[i] for i in (1, 5)) and all("0 fallbacks" in rows[i] for i in (3, 7))
