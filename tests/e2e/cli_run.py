"""Runs the `migrator` CLI in process for the end-to-end tests."""

from __future__ import annotations

from migrator.cli import main


def run(capsys, *argv):
    """Returns (exit code, stdout, stderr) of `migrator *argv`."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err
