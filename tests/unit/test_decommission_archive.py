"""The decommission archive without a database: JSON-safe values, and `check` reading an archive back."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from migrator.decommission import MANIFEST, ArchiveError, check, json_safe, read_rows


def test_values_become_json_safe():
    when = datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC)
    got = json_safe({"t": when, "d": date(2026, 1, 2), "h": time(3, 4), "n": Decimal("1.10"), "b": b"\x00\xff",
                     "u": uuid.UUID(int=1), "i": timedelta(seconds=90), "l": [when], "x": None, "s": "é"})
    assert got == {"t": "2026-01-02T03:04:05.000600+00:00", "d": "2026-01-02", "h": "03:04:00", "n": "1.10",
                   "b": "AP8=", "u": "00000000-0000-0000-0000-000000000001", "i": 90.0,
                   "l": ["2026-01-02T03:04:05.000600+00:00"], "x": None, "s": "é"}
    json.dumps(got)


def write_archive(directory, rows: list[dict], *, count: int | None = None) -> bytes:
    body = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows), mtime=0)
    (directory / "t.jsonl.gz").write_bytes(body)
    entry = {"table": "t", "file": "t.jsonl.gz", "rows": len(rows) if count is None else count,
             "sha256": hashlib.sha256(body).hexdigest(), "key": "id", "columns": [{"name": "id", "type": "INTEGER"}]}
    (directory / MANIFEST).write_text(json.dumps({"migration": "m", "created_at": "2026-01-01T00:00:00+00:00",
                                                  "verify_run": 4, "tables": [entry]}))
    return body


def test_check_reads_an_archive_back_and_names_what_differs(tmp_path):
    write_archive(tmp_path, [{"id": 1}, {"id": 2}])
    manifest = check(tmp_path)
    assert (manifest.verify_run, [(t.table, t.rows) for t in manifest.tables]) == (4, [("t", 2)])
    assert list(read_rows(tmp_path, "t")) == [{"id": 1}, {"id": 2}]

    write_archive(tmp_path, [{"id": 1}, {"id": 2}], count=3)
    with pytest.raises(ArchiveError, match="holds 2 rows, its manifest 3"):
        check(tmp_path)

    body = write_archive(tmp_path, [{"id": 1}])
    (tmp_path / "t.jsonl.gz").write_bytes(body[:-4] + b"\x00\x00\x00\x00")  # the trailer's size no longer fits
    with pytest.raises(ArchiveError, match="does not"):
        check(tmp_path)

    (tmp_path / MANIFEST).write_text("{}")
    with pytest.raises(ArchiveError, match="is not an archive manifest"):
        check(tmp_path)
