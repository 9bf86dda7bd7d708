"""The decommission archive: each legacy table as compressed JSON Lines beside a `manifest.json`.

`<table>.jsonl.gz` holds one JSON object per row, in key order, its keys the column names in
table order, its values JSON-safe (`json_safe`). `manifest.json` says what the archive holds
and what it rests on (see `Manifest`); it is written last, so a directory with a manifest holds
a finished archive. Files are written under temporary names, flushed to disk and renamed;
nothing that exists is ever overwritten. `check` reads an archive back (count and sha256).
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Engine, MetaData, Table, column, func, select
from sqlalchemy import table as table_clause

MANIFEST = "manifest.json"
FORMAT = "migrator-archive/1"
FETCH_ROWS = 1000  # rows read from the database at a time


class ArchiveError(Exception):
    """An archive that cannot be written, or that does not read back as written; the message is one line."""


def json_safe(value: Any) -> Any:
    """Returns a column value as JSON holds it: date/time ISO-8601, Decimal and UUID as strings, bytes as base64,
    an interval as seconds; JSON values (numbers, strings, lists, objects, null) as they are."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, default=json_safe)


@dataclasses.dataclass(frozen=True)
class TableArchive:
    """Returns one table's entry in the manifest: its file, row count, the file's sha256, key and columns."""

    table: str
    file: str
    rows: int
    sha256: str
    key: str
    columns: tuple[dict[str, Any], ...]  # {name, type, nullable}, in table order

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "file": self.file, "rows": self.rows, "sha256": self.sha256, "key": self.key,
                "columns": [dict(c) for c in self.columns]}


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Returns what an archive holds: the migration, when it was made, the verify run it rests on, its tables."""

    migration: str
    created_at: str
    verify_run: int | None
    tables: tuple[TableArchive, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "migration": self.migration, "created_at": self.created_at,
                "verify_run": self.verify_run, "tables": [t.to_dict() for t in self.tables]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Manifest:
        tables = tuple(TableArchive(t["table"], t["file"], int(t["rows"]), t["sha256"], t["key"],
                                    tuple(t["columns"])) for t in doc["tables"])
        return cls(doc["migration"], doc["created_at"], doc.get("verify_run"), tables)


def archive_file(table: str) -> str:
    """Returns the name of a table's archive file."""
    return f"{table}.jsonl.gz"


def read_manifest(directory: Path) -> Manifest:
    """Returns the manifest of the archive in `directory`; ArchiveError when it is missing or unreadable."""
    path = directory / MANIFEST
    try:
        return Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{path} is not an archive manifest ({exc})") from None


def refuse_existing(directory: Path, tables: Sequence[str]) -> None:
    """Raises ArchiveError when `directory` already holds a manifest or an archive file of one of `tables`, or
    cannot become a writable archive directory; writes nothing."""
    if directory.exists() and not directory.is_dir():
        raise ArchiveError(f"the archive directory {directory} is not a directory")
    manifest = directory / MANIFEST
    if manifest.exists():
        try:
            held = ", ".join(t.table for t in read_manifest(directory).tables)
        except ArchiveError:
            held = "unreadable"
        raise ArchiveError(f"{manifest} already exists (tables: {held}): an archive is never overwritten; "
                           "choose a new directory")
    for table in tables:
        if (directory / archive_file(table)).exists():
            raise ArchiveError(f"{directory / archive_file(table)} already exists: an archive is never overwritten; "
                               "choose a new directory")
    ancestor = directory.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ArchiveError(f"the archive directory {directory} cannot be written: {ancestor} is not writable")


class _Hashing:
    """A binary file that hashes what passes through it (under gzip, so the sha256 is of the file's bytes)."""

    def __init__(self, raw: IO[bytes]):
        self.raw, self.hash = raw, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def _columns(engine: Engine, table: str) -> tuple[dict[str, Any], ...]:
    reflected = Table(table, MetaData(), autoload_with=engine)
    return tuple({"name": str(c.name), "type": str(c.type.compile(engine.dialect)), "nullable": c.nullable}
                            for c in reflected.columns)


def count_rows(engine: Engine, table: str) -> int:
    """Returns how many rows the table holds now."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Table(table, MetaData()))).scalar_one())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(directory: Path, name: str) -> Path:
    return directory / f".{name}.{uuid.uuid4().hex[:8]}.tmp"


def _rename(tmp: Path, final: Path) -> None:
    if final.exists():  # a concurrent writer got there first: never overwrite
        raise ArchiveError(f"{final} appeared while archiving: an archive is never overwritten")
    os.rename(tmp, final)


def export_table(engine: Engine, table: str, key: str, directory: Path) -> TableArchive:
    """Returns the entry of `table` once written to `<directory>/<table>.jsonl.gz`: the rows in key order, read
    in one statement (one snapshot) and streamed, never held in memory at once. Values are the driver's, not
    converted by reflected column types (SQLite's declared types need not match what a row holds)."""
    columns = _columns(engine, table)
    final = directory / archive_file(table)
    tmp = _temporary(directory, final.name)
    rows = 0
    try:
        with open(tmp, "xb") as raw:
            hashing = _Hashing(raw)
            with gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0) as gz:
                names = [str(c["name"]) for c in columns]  # plain str keys (orjson refuses str subclasses)
                source = table_clause(table, *(column(n) for n in names))  # untyped: the driver's values
                q = select(source).order_by(source.c[key])
                with engine.connect() as conn:
                    result = conn.execution_options(stream_results=True, yield_per=FETCH_ROWS).execute(q)
                    for row in result:
                        gz.write(_dump(dict(zip(names, row, strict=True))) + b"\n")
                        rows += 1
            raw.flush()
            os.fsync(raw.fileno())
        _rename(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return TableArchive(table, final.name, rows, hashing.hash.hexdigest(), key, columns)


def write_manifest(directory: Path, manifest: Manifest) -> str:
    """Writes `<directory>/manifest.json` (under a temporary name, then renamed); returns its sha256."""
    body = json.dumps(manifest.to_dict(), indent=2, ensure_ascii=True).encode("ascii") + b"\n"
    tmp = _temporary(directory, MANIFEST)
    try:
        with open(tmp, "xb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        _rename(tmp, directory / MANIFEST)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(directory)
    return hashlib.sha256(body).hexdigest()


def read_rows(directory: Path, table: str) -> Iterator[dict[str, Any]]:
    """Returns the archived rows of `table`, one dict at a time, in archive (key) order."""
    with gzip.open(directory / archive_file(table), "rb") as f:
        for line in f:
            yield orjson.loads(line)


def check(directory: Path) -> Manifest:
    """Returns the manifest of the archive in `directory` once every file reads back with its row count and
    sha256; ArchiveError (one line) otherwise."""
    manifest = read_manifest(directory)
    for t in manifest.tables:
        path = directory / t.file
        digest, rows = hashlib.sha256(), 0
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            rows = sum(1 for _ in read_rows(directory, t.table))
        except (OSError, EOFError, orjson.JSONDecodeError) as exc:
            raise ArchiveError(f"the archive {path} does not read back: {exc}") from None
        if digest.hexdigest() != t.sha256:
            raise ArchiveError(f"the archive {path} does not match its manifest: sha256 {digest.hexdigest()}, "
                               f"manifest {t.sha256}")
        if rows != t.rows:
            raise ArchiveError(f"the archive {path} holds {rows:,} rows, its manifest {t.rows:,}")
    return manifest
