"""The docs check: every `migrator <command> [--flag]` that README.md and docs/*.md show answers `--help` and
lists the flag there; every Python block of the docs runs (a block after `<!-- no-run -->` is a fragment and
is skipped; keep them few); the example files docs/testing.md shows are the files tests/plugin runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from es_app.store import make_engine
from migrator import schema
from migrator.cli import app

from .test_cli_docs import DOCS, ROOT, _resolve, _shown

NO_RUN = "<!-- no-run -->"
FILE = re.compile(r"<!-- file: (\S+) -->")
MAX_NO_RUN = 3


def python_blocks() -> list[tuple[str, int, str, str]]:
    """Returns (doc, line, marker, code) of each ```python block; marker is the comment line just before it."""
    found = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() in ("```python", "```py"):
                end = lines.index("```", i + 1)
                before = next((x.strip() for x in reversed(lines[:i]) if x.strip()), "")
                found.append((doc.name, i + 1, before, "\n".join(lines[i + 1:end]) + "\n"))
                i = end
            i += 1
    return found


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, f"`migrator {' '.join(path)} --help` failed: {result.output}"
    return result.output


def test_every_flag_the_docs_show_is_in_its_commands_help():
    helps: dict[tuple[str, ...], str] = {}
    missing = []
    for doc, snippet, words in _shown():
        _, path, flags = _resolve(words)
        text = helps.setdefault(path, _help(path))
        missing += [f"{doc}: `{snippet}`: {f}" for f in flags if f not in ("--help", "-h") and f not in text]
    assert len(helps) > 15
    assert not missing, "flags not in their command's --help:\n" + "\n".join(missing)


def test_the_docs_have_python_blocks_and_few_fragments():
    blocks = python_blocks()
    assert len(blocks) >= 5
    assert sum(marker == NO_RUN for _, _, marker, _ in blocks) <= MAX_NO_RUN


@pytest.mark.parametrize("doc, line, code", [pytest.param(d, n, c, id=f"{d}:{n}")
                                             for d, n, marker, c in python_blocks() if marker != NO_RUN])
def test_every_python_block_in_the_docs_runs(doc, line, code, tmp_path, monkeypatch):
    """Each block runs in a fresh directory where `migrator init` has made var/es.db and var/legacy.db."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    for name in ("es", "legacy"):
        engine = make_engine(f"sqlite:///var/{name}.db")
        schema.upgrade_all({name: engine})
        engine.dispose()
    exec(compile(code, f"{doc}:{line}", "exec"), {"__name__": f"docs_{Path(doc).stem}"})


def test_the_example_files_docs_testing_shows_are_the_files_the_suite_runs():
    shown = {m.group(1): code for doc, _, marker, code in python_blocks()
             if doc == "testing.md" and (m := FILE.fullmatch(marker))}
    assert set(shown) == {"tests/plugin/test_users_example.py", "tests/plugin/test_accounts_example.py"}
    for path, code in shown.items():
        assert code == (ROOT / path).read_text(encoding="utf-8"), f"docs/testing.md's block differs from {path}"
