"""bulk_gc raises the collector's first threshold for a block and always puts it back."""

from __future__ import annotations

import gc

import pytest

from es_app.bulk_gc import bulk_gc


@pytest.fixture(autouse=True)
def _default_thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_the_threshold_is_raised_inside_and_restored_after():
    with bulk_gc(50_000):
        assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_nested_blocks_restore_only_when_the_outermost_ends_even_on_error():
    with pytest.raises(RuntimeError):
        with bulk_gc(50_000):
            with bulk_gc(80_000):
                assert gc.get_threshold()[0] == 50_000
            assert gc.get_threshold()[0] == 50_000
            raise RuntimeError
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_already_set_is_left_alone():
    gc.set_threshold(100_000, 10, 10)
    with bulk_gc(50_000):
        assert gc.get_threshold()[0] == 100_000
    assert gc.get_threshold()[0] == 100_000
