"""The CLI's Ctrl-C for long work: the first asks for a stop at a safe point, a second interrupts at once."""

import os
import signal
import threading

import pytest

from migrator.cli.interrupt import StopOnInterrupt


def test_first_ctrl_c_only_asks_and_the_work_stops_where_it_checks(capfd):
    with StopOnInterrupt() as stop:
        os.kill(os.getpid(), signal.SIGINT)  # handled in this (main) thread before kill returns to Python code
        assert stop.requested.is_set()
        with pytest.raises(KeyboardInterrupt):
            stop.check()
    assert "stopping after the current chunk (Ctrl-C again to stop at once)" in capfd.readouterr().err


def test_a_second_ctrl_c_interrupts_at_once():
    with StopOnInterrupt():
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            signal.pause()  # not reached: the default handler raises first
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_stop_cuts_a_pause_short():
    stop = StopOnInterrupt()
    threading.Timer(0.05, stop.requested.set).start()
    with pytest.raises(KeyboardInterrupt):
        stop.sleep(30)
    with pytest.raises(KeyboardInterrupt):
        stop.sleep(0)  # asked before: no more pausing
    StopOnInterrupt().sleep(0)  # not asked: returns at once

def test_the_previous_handler_comes_back_and_an_ignored_sigint_stays_ignored():
    with StopOnInterrupt():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopOnInterrupt() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            assert not stop.requested.is_set()
    finally:
        signal.signal(signal.SIGINT, previous)
