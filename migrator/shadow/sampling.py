"""Sampling by key: a stable hash puts each key in one of 10,000 buckets, so the same user is always in or out
of a share (shadow sampling, the `new` rollout), in every process and after every restart."""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def bucket(key: object) -> int:
    """Returns the key's bucket, 0..BUCKETS-1 (blake2b of its text: the same in every process)."""
    digest = hashlib.blake2b(str(key).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def sampled(key: object, percent: float) -> bool:
    """Returns True when the key falls in the first `percent` of the buckets (100: every key, 0: none)."""
    if percent >= 100.0:
        return True
    return bucket(key) < percent * BUCKETS / 100.0
