"""Ctrl-C in mid-query: a driver error raised while cleaning up after the interrupt is still an interrupt."""

from __future__ import annotations

import logging

import pytest
import typer
from sqlalchemy.exc import OperationalError

import migrator.cli as cli


def _fails_after_interrupt() -> None:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise OperationalError("ROLLBACK", {}, Exception("another command is already in progress")) from None


def test_a_database_error_raised_while_handling_ctrl_c_exits_130_as_interrupted(monkeypatch, capsys):
    app = typer.Typer()
    app.command()(_fails_after_interrupt)
    monkeypatch.setattr(cli, "app", app)
    assert cli.main([]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted" and "Traceback" not in err


def test_a_plain_database_error_is_still_one_error_line(monkeypatch, capsys):
    def fails() -> None:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    app = typer.Typer()
    app.command()(fails)
    monkeypatch.setattr(cli, "app", app)
    assert cli.main([]) == 1
    assert "error: database: server closed the connection" in capsys.readouterr().err


def test_the_pools_cleanup_traceback_after_an_interrupt_is_dropped_others_kept():
    quiet = cli._QuietAfterInterrupt()
    try:
        _fails_after_interrupt()
    except OperationalError as exc:
        after_interrupt = exc
    record = logging.LogRecord("sqlalchemy.pool.impl.QueuePool", logging.ERROR, __file__, 1,
                               "Exception during reset or similar", None,
                               (type(after_interrupt), after_interrupt, after_interrupt.__traceback__))
    assert quiet.filter(record) is False
    plain = OperationalError("x", {}, Exception("boom"))
    record.exc_info = (type(plain), plain, None)
    assert quiet.filter(record) is True


@pytest.mark.parametrize("chain, expected", [((ValueError(),), False), ((KeyboardInterrupt(), ValueError()), True)])
def test_interrupted_walks_the_context_chain(chain, expected):
    exc = None
    for e in chain:
        e.__context__ = exc
        exc = e
    assert cli.interrupted(exc) is expected
