"""The shadow-read bench runs end to end on SQLite with tiny sizes (no timing is asserted), so it cannot rot."""

from __future__ import annotations

from bench import shadow


def test_shadow_bench_runs_every_mode(capsys):
    assert shadow.main(["--backend", "sqlite", "--users", "40", "--reads", "60", "--threads", "2", "--markdown"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| sqlite |")]
    assert [r.split("|")[2].strip() for r in rows] == ["legacy", "shadow", "shadow 10%", "new"]
    assert "0 mismatched" in rows[1] and "0 fallbacks" in rows[3]
