"""Event ids and import metadata shared by the relay, the backfill and the re-sync: deterministic ids of
stable names (uuid5 for the relay's events, an ordered version-8 UUID for the backfill's imports)."""

from __future__ import annotations

import functools
import hashlib
import uuid
from typing import Any

ID_NAMESPACE = uuid.UUID("6f1c8a52-3d0e-4c5e-9b7a-2e4d1f0c9a11")


# -- event ids shared by relay and backfill --------------------------------
def relay_event_id(table: str, changelog_id: int, index: int) -> str:
    """Returns the id of the `index`-th event the relay makes from one changelog row."""
    return uuid5_text(f"{table}:{changelog_id}:{index}")


def relay_import_id(table: str, changelog_id: int) -> str:
    """Returns the id of the import event the relay makes on a key's first touch (or re-insert)."""
    return uuid5_text(f"{table}:{changelog_id}:import")


def backfill_import_id(table: str, key: Any) -> str:
    """Returns the id of the backfill's import event of one legacy key: a version-8 UUID (RFC 9562) that
    sorts by table, then by key where the key is an integer.

    122 free bits, in order: 40 bits of the SHA-1 of `<table>:backfill`, one bit for the kind of
    key, then 81 bits: an integer key plus 2**63 (keys in [-2**63, 2**80 - 2**63)), or for
    any other key the first 81 bits of the SHA-1 of `<table>:<type>:<key>:backfill`. Deterministic, as
    a re-run or a resume needs; and as the backfill reads in key order, each chunk's ids land
    at the right edge of the events table's unique event-id index instead of on random pages
    (exactly one import per key does not rest on the id: each is appended with NO_STREAM).
    """
    prefix = _table_prefix(table)
    if type(key) is int and _INT_MIN <= key < _INT_END:
        payload = prefix | (key - _INT_MIN)
    else:
        digest = hashlib.sha1(f"{table}:{type(key).__name__}:{key}:backfill".encode()).digest()
        payload = prefix | 1 << 81 | int.from_bytes(digest[:11], "big") >> 7
    # the 122 bits around the version (bits 76-79: 8) and the variant (bits 62-63: 0b10)
    value = (payload >> 74) << 80 | 0x8 << 76 | (payload >> 62 & 0xFFF) << 64 | 0b10 << 62 | payload & _LOW_62
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_INT_MIN, _INT_END = -(1 << 63), (1 << 81) - (1 << 63)
_LOW_62 = (1 << 62) - 1


@functools.lru_cache(maxsize=256)
def _table_prefix(table: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{table}:backfill".encode()).digest()[:5], "big") << 82


_NS_SHA1 = hashlib.sha1(ID_NAMESPACE.bytes)  # copied for each name: the namespace is hashed once
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # the RFC 4122 variant bits on a hex digit


def uuid5_text(name: str) -> str:
    """Returns `str(uuid.uuid5(ID_NAMESPACE, name))`, without building UUID objects: the SHA-1's
    first 32 hex digits, with the version digit set to 5 and the variant bits on the 17th."""
    sha1 = _NS_SHA1.copy()
    sha1.update(name.encode("utf-8"))
    h = sha1.hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def import_metadata(source: str, watermark: int, occurred_at: str | None, **extra: Any) -> dict[str, Any]:
    """Returns the metadata every import event carries: `source`, `changelog_watermark`, `occurred_at`."""
    meta: dict[str, Any] = {"source": source, "changelog_watermark": int(watermark), "actor": "migrator", **extra}
    if occurred_at is not None:
        meta["occurred_at"] = occurred_at
    return meta
