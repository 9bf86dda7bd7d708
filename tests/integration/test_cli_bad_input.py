"""Every command, fed bad input (URLs that name no usable database, broken mapping files, numbers out of
range), answers one `error:` line and exit status 2: no traceback, no new file, no new row."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, insert, inspect, select, table, text

from es_app.store import make_engine
from legacy_app.models import User
from migrator.cli import main

ES_COMMANDS = [["projections", "run"], ["projections", "rebuild"], ["projections", "status"],
               ["dead-letters", "list"], ["dead-letters", "retry", "1"], ["dead-letters", "skip", "1"],
               ["serve", "es"], ["verify", "--list"], ["rollback"], ["pause"], ["resume"],
               ["throttle", "--max-rate", "5"]]
LEGACY_COMMANDS = [["seed", "--users", "3", "--workers", "0"], ["serve", "legacy"],
                   ["capture", "install"], ["capture", "remove"], ["capture", "status"]]
BOTH_COMMANDS = [["relay"], ["backfill"], ["verify"], ["repair", "--report", "1"], ["plan"], ["advance"]]
CREATING_COMMANDS = [["init"], ["topology", "up"]]  # may create new SQLite files: URLs checked, files not made
MAPPING_COMMANDS = [["capture", "install"], ["capture", "remove"], ["capture", "status"], ["relay"], ["backfill"],
                    ["parked", "retry"], ["verify"], ["repair", "--report", "1"], ["plan"], ["advance"]]

MAPPING_FILES = {
    "syntax.yaml": "table:\n  - table: users\n    key: [id\n",
    "table-number.yaml": "table:\n  - table: 5\n",
    "column-number.yaml": "table:\n  - table: users\n    key: id\n    columns: {full_name: 5}\n",
    "tables-number.yaml": "table: 5\n",
    "exclude-number.toml": "[[table]]\ntable = 'users'\nexclude = 5\n",
    "exclude-key.toml": ("[[table]]\ntable = 'users'\nkey = 'id'\nstream_prefix = 'user'\nimport_event_type = 'I'\n"
                         "delete_event_type = 'D'\ncolumn_event_type = 'C'\nexclude = 'id'\n"),
    "broken.json": '{"table": [',
    "empty.toml": "",
    "markup.toml": "[[table]]\ntable = '[bold]users'\nunknown = 1\n",
}

NUMBERS = [
    ["seed", "--users", "99999999999999999999999"], ["seed", "--users", "0"],
    ["seed", "--users", "3", "--chunk-size", "0"],
    ["seed", "--users", "3", "--workers", "-1"], ["seed", "--users", "3", "--seed", "-1"],
    ["projections", "run", "--shards", "0"], ["projections", "run", "--shards", "-2"],
    ["projections", "run", "--shards", "99999999999999999999"], ["projections", "run", "--shard", "-1"],
    ["projections", "run", "--shard", "2", "--shards", "2"], ["projections", "run", "--batch-size", "0"],
    ["projections", "run", "--poll", "nan"], ["projections", "rebuild", "--shards", "0"],
    ["projections", "rebuild", "--batch-size", "1000000000"],
    ["backfill", "--max-rate", "1e-300"], ["backfill", "--max-rate", "nan"], ["backfill", "--max-rate", "inf"],
    ["backfill", "--max-rate", "-1"], ["backfill", "--batch-size", "0"], ["backfill", "--batch-size", "9" * 30],
    ["backfill", "--max-relay-backlog", "-1"], ["backfill", "--max-projection-lag", "9" * 30],
    ["relay", "--batch-size", "0"], ["relay", "--batch-size", "9" * 30], ["relay", "--poll-interval", "nan"],
    ["relay", "--poll-interval", "1e300"],
    ["dead-letters", "list", "--limit", "0"], ["dead-letters", "retry", "99999999999999999999"],
    ["dead-letters", "skip", "0"], ["serve", "es", "--port", "0"], ["serve", "legacy", "--port", "70000"],
    ["throttle", "--max-rate", "-1"], ["throttle", "--max-rate", "nan"], ["throttle", "--max-rate", "1e-300"],
    ["throttle"], ["advance", "--to", "nowhere"], ["rollback", "--to", "nowhere"], ["advance", "--force"],
    ["advance", "--reason", "why"], ["advance", "--force", "--reason", " "], ["pause", "--reason", " "],
    ["resume", "--actor", ""], ["plan", "--json", "extra"],
    ["demo", "--users", "0"], ["demo", "--users", "99999999999"], ["demo", "--batch-size", "0"],
    ["verify", "--sample", "0"], ["verify", "--sample", "9" * 30], ["verify", "--wait", "nan"],
    ["verify", "--wait", "-1"], ["verify", "--wait", "1e300"], ["verify", "--list", "--limit", "0"],
    ["verify", "--sample", "5", "--full"], ["verify", "--format", "pdf"], ["repair", "--report", "0"],
    ["repair", "--report", "9" * 30], ["repair", "--report", "7"],
]


def _snapshot(engines: list, root: Path) -> tuple[dict, set]:
    """Returns the row count of every table of the databases, and the files under `root`."""
    counts = {}
    for engine in engines:
        with engine.connect() as conn:
            for name in inspect(conn).get_table_names():
                counts[(str(engine.url), name)] = conn.execute(select(func.count()).select_from(table(name))).scalar()
    files = {p for p in root.rglob("*") if not p.name.endswith(("-wal", "-shm", "-journal"))}
    return counts, files


@pytest.fixture
def databases(new_database_url, tmp_path, capsys):
    """Returns (es URL, legacy URL): schema at head, 5 users, capture installed, one change waiting."""
    es_url, legacy_url = new_database_url("es"), new_database_url("legacy")
    now = datetime.now(timezone.utc)
    engine = make_engine(legacy_url)
    with engine.begin() as conn:
        conn.execute(insert(User), [{"email": f"u{i}@example.org", "full_name": f"User {i}", "is_active": True,
                                     "created_at": now, "updated_at": now} for i in range(1, 6)])
    assert main(["capture", "install", "--legacy-url", legacy_url]) == 0
    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET full_name = 'Changed' WHERE id = 1"))
    engine.dispose()
    capsys.readouterr()
    return es_url, legacy_url


def _bad_urls(tmp_path: Path) -> dict[str, str]:
    not_db = tmp_path / "notes.txt"
    not_db.write_text("not a database\n")
    (tmp_path / "a-directory.db").mkdir()
    return {"text file": f"sqlite:///{not_db}", "directory": f"sqlite:///{tmp_path / 'a-directory.db'}",
            "unknown backend": "oracle://user@127.0.0.1/legacy", "driver not installed": "postgresql+pg8000://u@127.0.0.1/x",
            "not a URL": "not a url"}


def _read_only_dir(tmp_path: Path, monkeypatch) -> Path:
    """Returns a directory no new file can be made in (root ignores modes: its access check is made to say so)."""
    locked = tmp_path / "read-only"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr("migrator.cli.common.os.access",
                            lambda p, mode, **kw: False if Path(p) == locked else real_access(p, mode, **kw))
    return locked


def test_bad_input_is_one_line_exit_2_and_writes_nothing(databases, tmp_path, capsys, monkeypatch):
    es_url, legacy_url = databases
    monkeypatch.chdir(tmp_path)  # `demo` would write under ./var/demo
    monkeypatch.setenv("BROKER_URL", "redis://127.0.0.1:1/0")  # `topology up` gets as far as its URL checks
    monkeypatch.setattr("migrator.cli.serve.run_uvicorn", lambda *a, **k: pytest.fail("a server started"))
    monkeypatch.setattr("migrator.topology.Topology.start", lambda *a, **k: pytest.fail("services started"))
    bad = _bad_urls(tmp_path)
    for name, content in MAPPING_FILES.items():
        (tmp_path / name).write_text(content)
    fresh = tmp_path / "fresh" / "new.db"  # `init` must not create it while the other URL is bad
    locked = _read_only_dir(tmp_path, monkeypatch)

    cases: list[list[str]] = []
    for what, url in bad.items():
        cases += [[*c, "--es-url", url, "--legacy-url", legacy_url] for c in ES_COMMANDS + BOTH_COMMANDS]
        cases += [[*c, "--es-url", es_url, "--legacy-url", url] for c in LEGACY_COMMANDS + BOTH_COMMANDS]
        cases += [[*c, "--es-url", f"sqlite:///{fresh}", "--legacy-url", url] for c in CREATING_COMMANDS]
        cases += [[*c, "--es-url", url, "--legacy-url", f"sqlite:///{fresh}"] for c in CREATING_COMMANDS]
        cases.append(["--es-url", url, "projections", "status"])  # the global options too
    mysql = "mysql://user@127.0.0.1/legacy"  # MySQL/MariaDB is a legacy database only, never the event store
    cases += [[*c, "--es-url", mysql, "--legacy-url", legacy_url] for c in ES_COMMANDS + BOTH_COMMANDS]
    cases += [[*c, "--es-url", mysql, "--legacy-url", f"sqlite:///{fresh}"] for c in CREATING_COMMANDS]
    cases.append(["--es-url", mysql, "projections", "status"])
    for c in CREATING_COMMANDS:
        cases.append([*c, "--es-url", f"sqlite:///{locked / 'es.db'}", "--legacy-url", f"sqlite:///{fresh}"])
        cases.append([*c, "--es-url", f"sqlite:///{fresh}", "--legacy-url", f"sqlite:///{locked / 'x' / 'l.db'}"])
    cases += [[*c, "--mapping", str(tmp_path / name), "--es-url", es_url, "--legacy-url", legacy_url]
              for c in MAPPING_COMMANDS for name in MAPPING_FILES]
    cases += [[*c, "--es-url", es_url, "--legacy-url", legacy_url] for c in NUMBERS if c[0] != "demo"]
    cases += [c for c in NUMBERS if c[0] == "demo"]

    engines = [make_engine(es_url), make_engine(legacy_url)]
    before = _snapshot(engines, tmp_path)
    for argv in cases:
        code = main(argv)
        out, err = capsys.readouterr()
        shown = f"migrator {' '.join(argv)}"
        assert "Traceback" not in out + err, f"{shown}: {err}"
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), f"{shown} -> {code}: {err}"
        assert not out.strip(), f"{shown} printed {out}"
        assert _snapshot(engines, tmp_path) == before, f"{shown} wrote something"
    for engine in engines:
        engine.dispose()
    assert not fresh.exists() and not fresh.parent.exists() and list(locked.iterdir()) == []


def test_mapping_messages_keep_brackets_and_name_the_file_and_key(databases, tmp_path, capsys):
    es_url, legacy_url = databases
    files = {"empty.toml": "", "exclude-number.toml": "[[table]]\ntable = '[bold]users'\nexclude = 5\n",
             "column-number.yaml": "table:\n  - table: users\n    key: id\n    columns: {full_name: 5}\n"}
    for name, content in files.items():
        (tmp_path / name).write_text(content)

    def error(name: str) -> str:
        assert main(["capture", "status", "--mapping", str(tmp_path / name), "--legacy-url", legacy_url]) == 2
        return capsys.readouterr().err.strip()

    assert error("empty.toml").endswith(f"mapping file {tmp_path / 'empty.toml'}: no [[table]] entries "
                                        "(see `migrator capture status --help`)")
    assert (f"mapping file {tmp_path / 'exclude-number.toml'}: mapping [bold]users: 'exclude' must be a list of "
            "strings, not a number (5)") in error("exclude-number.toml")
    assert "mapping users: column 'full_name' must be a field name or a table of settings, not a number (5)" \
        in error("column-number.yaml")


def test_names_from_a_mapping_file_show_as_written_in_tables(databases, tmp_path, capsys):
    _, legacy_url = databases
    path = tmp_path / "brackets.toml"
    path.write_text("[[table]]\ntable = '[bold]users'\nkey = 'id'\nstream_prefix = 'user'\nimport_event_type = 'I'\n"
                    "delete_event_type = 'D'\ncolumn_event_type = 'C'\n")
    assert main(["capture", "status", "--mapping", str(path), "--legacy-url", legacy_url]) == 0
    assert "│ [bold]users │" in capsys.readouterr().out
