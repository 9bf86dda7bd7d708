"""Event ids and import metadata shared by the relay, the backfill and the re-sync: uuid5 of stable names."""

from __future__ import annotations

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
    """Returns the id of the backfill's import event of one legacy key."""
    return uuid5_text(f"{table}:{key}:backfill")


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
