"""Every `migrator …` command and flag that README.md and docs/*.md show exists, and the URL options are where
the docs say: every command that touches a database takes `--es-url` and `--legacy-url`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from migrator.cli import app, main

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NO_DATABASE = {("demo",), ("topology", "list")}  # demo runs on its own fresh files; list reads the compose file


def _code(text: str) -> list[str]:
    """Returns the code of a markdown text: each line of fenced blocks, each inline `span` elsewhere."""
    code, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            code.append(line)
        else:
            code.extend(re.findall(r"`([^`]+)`", line))
    return code


def _invocations(snippet: str) -> list[list[str]]:
    """Returns the words after each `migrator` that starts a command in a line of code (comments dropped)."""
    found = []
    for part in re.split(r"&&|\|\||;| \| ", snippet.split(" #")[0]):
        words = part.split()
        for i, word in enumerate(words):
            if word == "migrator" and (i == 0 or words[i - 1] in ("$", "exec", "uv", "run", "time", "then")
                                       or words[i - 1].endswith("=")):
                found.append(words[i + 1:])
                break
    return found


def _flags(words: list[str]) -> list[str]:
    flags = []
    for word in words:
        for token in re.split(r"[\[\]{}()|,]", word):
            for name in token.split("/"):
                if re.fullmatch(r"--?[a-z][a-z0-9-]*(=.*)?", name):
                    flags.append(name.split("=")[0])
    return flags


def _resolve(words: list[str]) -> tuple[Any, tuple[str, ...], list[str]]:
    """Returns the command the words name, its path and the flags shown with it (globals checked on the way)."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(words)
    while hasattr(command, "commands") and rest:
        word = rest[0].strip("[]")
        if word.startswith("-"):
            for flag in _flags([rest.pop(0)]):
                assert _has(command, flag), f"`migrator {' '.join(path)}` has no option {flag}"
            option = _option(command, word.split("=")[0])
            if option is not None and not option.is_flag and "=" not in word and rest:
                rest.pop(0)  # its value
            continue
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break  # a placeholder (`<command>`, `…`)
        assert word in command.commands, f"`migrator {' '.join(path)}` has no command {word!r}"
        command = command.commands[word]
        path.append(rest.pop(0))
    return command, tuple(path), _flags(rest)


def _option(command: Any, flag: str) -> Any:
    return next((p for p in command.params if p.param_type_name == "option" and flag in [*p.opts, *p.secondary_opts]),
                None)


def _has(command: Any, flag: str) -> bool:
    return flag in ("--help", "-h") or _option(command, flag) is not None


def _shown() -> list[tuple[str, str, list[str]]]:
    """Returns (doc, code, words) for each `migrator …` invocation the docs show."""
    return [(doc.name, snippet.strip(), words)
            for doc in DOCS for snippet in _code(doc.read_text(encoding="utf-8"))
            for words in _invocations(snippet)]


def test_the_docs_show_commands():
    shown = _shown()
    assert len(shown) > 40 and {w[0] for _, _, w in shown if w} >= {"init", "backfill", "relay", "capture", "seed"}


@pytest.mark.parametrize("doc, snippet, words", _shown(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_command_and_flag_in_the_docs_exists(doc, snippet, words):
    command, path, flags = _resolve(words)
    missing = [f for f in flags if not _has(command, f)]
    assert not missing, f"{doc}: `{snippet}`: `migrator {' '.join(path)}` has no option {', '.join(missing)}"


def test_each_command_the_docs_show_answers_help(capsys):
    paths = sorted({_resolve(words)[1] for _, _, words in _shown()})
    assert len(paths) > 15
    for path in paths:
        assert main([*path, "--help"]) == 0, f"`migrator {' '.join(path)} --help` failed"
        out = capsys.readouterr().out
        assert "Usage" in out and all(word in out for word in path), out


def _leaves(command: Any, path: tuple[str, ...] = ()):  # noqa: ANN202
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path, command


def test_every_command_that_touches_a_database_takes_both_url_options():
    root = typer.main.get_command(app)
    assert _has(root, "--es-url") and _has(root, "--legacy-url")  # before the command: every command
    leaves = dict(_leaves(root))
    assert NO_DATABASE <= set(leaves)
    lacking = [" ".join(p) for p, c in leaves.items()
               if p not in NO_DATABASE and not (_has(c, "--es-url") and _has(c, "--legacy-url"))]
    assert not lacking, f"without --es-url/--legacy-url: {lacking}"
