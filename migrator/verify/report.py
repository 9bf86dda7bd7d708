"""What a verify run found: mismatches, per-table reports and the whole run, as the documented JSON document.

The document (`VerifyReport.to_json`) is a public contract that CI jobs and `migrator repair` read;
docs/verify.md documents it. Fields may be added; none is ever renamed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

FORMAT = 1
MISSING_IN_NEW = "missing_in_new"
MISSING_IN_LEGACY = "missing_in_legacy"
FIELD_DIFFERS = "field_differs"
REPLAY_DIFFERS = "replay_differs"
PENDING = "pending"
KINDS = (MISSING_IN_NEW, MISSING_IN_LEGACY, FIELD_DIFFERS, REPLAY_DIFFERS, PENDING)
REAL_KINDS = KINDS[:4]  # pending alone leaves a run clean

CHECKSUM = "checksum"  # legacy vs read model compared by checksums computed inside each database
STREAM = "stream"  # legacy vs new compared key by key (no read model, or only the keys changed since a run)


def zero_counts() -> dict[str, int]:
    """Returns {kind: 0} of the five kinds, in their fixed order."""
    return dict.fromkeys(KINDS, 0)


@dataclasses.dataclass(frozen=True)
class FieldValues:
    """One field of a mismatch: its normalized value in the legacy row, the new side and the stream's replay."""

    legacy: Any
    new: Any
    replay: Any

    def to_json(self) -> dict[str, Any]:
        return {"legacy": self.legacy, "new": self.new, "replay": self.replay}


@dataclasses.dataclass(frozen=True)
class Explain:
    """Why a key differs: its last changelog row, its stream's last event, what keeps it pending, one sentence."""

    changelog: Mapping[str, Any] | None
    event: Mapping[str, Any] | None
    pending: Mapping[str, Any] | None
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {"changelog": None if self.changelog is None else dict(self.changelog),
                "event": None if self.event is None else dict(self.event),
                "pending": None if self.pending is None else dict(self.pending),
                "summary": self.summary}


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """One key whose views disagree (or are still in flight), of one of the five kinds."""

    table: str
    key: Any
    stream_id: str
    kind: str
    fields: Mapping[str, FieldValues]
    explain: Explain

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "stream_id": self.stream_id, "kind": self.kind,
                "fields": {name: v.to_json() for name, v in self.fields.items()},
                "explain": self.explain.to_json()}


@dataclasses.dataclass(frozen=True)
class TableReport:
    """What the run saw in one mapped table."""

    table: str
    category: str
    rows_legacy: int  # live legacy rows
    rows_new: int  # live read-model rows, or live streams without a read model
    keys_compared: int
    keys_replayed: int
    method: str  # CHECKSUM or STREAM
    streamed_fields: tuple[str, ...]
    counts: Mapping[str, int]
    duration_s: float
    findings: Mapping[str, int]  # data-quality findings by kind
    parked: int  # open parked rows
    watermark: Mapping[str, int]  # {"changelog_id", "position"} taken when the run started

    @property
    def rows_per_s(self) -> float:
        return round(self.keys_compared / self.duration_s, 1) if self.duration_s > 0 else 0.0

    @property
    def replayed_per_s(self) -> float:
        """Returns the keys replayed from their streams per second of the table's run."""
        return round(self.keys_replayed / self.duration_s, 1) if self.duration_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "category": self.category, "rows_legacy": self.rows_legacy,
                "rows_new": self.rows_new, "keys_compared": self.keys_compared, "keys_replayed": self.keys_replayed,
                "method": self.method, "streamed_fields": list(self.streamed_fields), "counts": dict(self.counts),
                "duration_s": round(self.duration_s, 3), "rows_per_s": self.rows_per_s,
                "findings": dict(self.findings), "parked": self.parked}


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """A whole verify run: per-table reports, exact counts per kind and the first `max_mismatches` mismatches."""

    started_at: datetime
    finished_at: datetime
    options: Mapping[str, Any]
    tables: tuple[TableReport, ...]
    mismatches: tuple[Mismatch, ...]
    mismatches_total: int

    @property
    def counts(self) -> dict[str, int]:
        """Returns {kind: number of keys} over every table (exact, even when the list is truncated)."""
        out = zero_counts()
        for t in self.tables:
            for kind, n in t.counts.items():
                out[kind] += n
        return out

    @property
    def clean(self) -> bool:
        """Returns True when no key has a mismatch of the four real kinds (pending alone is clean)."""
        counts = self.counts
        return not any(counts[k] for k in REAL_KINDS)

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def watermarks(self) -> dict[str, dict[str, int]]:
        """Returns {table: {"changelog_id", "position"}}: where a later `since` run starts from."""
        return {t.table: dict(t.watermark) for t in self.tables}

    @property
    def mismatches_truncated(self) -> bool:
        return self.mismatches_total > len(self.mismatches)

    def to_json(self) -> dict[str, Any]:
        """Returns the documented JSON document of the run, with "id" None (the caller that stores it fills it)."""
        return {
            "format": FORMAT,
            "id": None,
            "clean": self.clean,
            "started_at": self.started_at.isoformat(timespec="microseconds"),
            "finished_at": self.finished_at.isoformat(timespec="microseconds"),
            "duration_s": round(self.duration_s, 3),
            "options": dict(self.options),
            "counts": self.counts,
            "tables": [t.to_json() for t in self.tables],
            "watermarks": self.watermarks,
            "mismatches_total": self.mismatches_total,
            "mismatches_truncated": self.mismatches_truncated,
            "mismatches": [m.to_json() for m in self.mismatches],
        }
