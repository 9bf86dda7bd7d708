"""Shard assignment and checkpoint names: stable across processes, validated, evenly spread."""

from __future__ import annotations

import subprocess
import sys

import pytest

from es_app.projections.checkpoints import check_shard, checkpoint_name, layout_names, shard_of


def test_a_stream_maps_to_the_same_shard_in_another_process():
    ids = [f"user-{i}" for i in range(50)]
    here = [shard_of(i, 7) for i in ids]
    code = ("from es_app.projections.checkpoints import shard_of;"
            f"print([shard_of(i, 7) for i in {ids!r}])")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123"}).stdout.strip()
    assert there == str(here)  # not Python's salted hash()


def test_streams_spread_over_the_shards():
    counts = [0] * 4
    for i in range(4000):
        counts[shard_of(f"user-{i:08d}", 4)] += 1
    assert all(800 < c < 1200 for c in counts), counts


def test_checkpoint_names_and_layouts():
    assert checkpoint_name("users") == "users"
    assert checkpoint_name("users", 0, 1) == "users"
    assert checkpoint_name("users", 2, 4) == "users:2/4"
    assert layout_names("users", None) == ["users"]
    assert layout_names("users", 3) == ["users:0/3", "users:1/3", "users:2/3"]


@pytest.mark.parametrize("shard, shards", [(4, 4), (-1, 4), (None, 4), (1, None), (1, 1), (0, 0)])
def test_invalid_shards_are_refused(shard, shards):
    with pytest.raises(ValueError):
        check_shard(shard, shards)
