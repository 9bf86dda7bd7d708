"""Retiring the legacy tables once the migration is done: guards, a verified archive, then the drop
(see docs/decommission.md)."""

from .archive import MANIFEST, ArchiveError, Manifest, TableArchive, archive_file, check, json_safe, read_rows
from .drop import DropError, DropPlan
from .restore import restore
from .run import Decommission, Done

__all__ = ["MANIFEST", "ArchiveError", "Decommission", "Done", "DropError", "DropPlan", "Manifest", "TableArchive",
           "archive_file", "check", "json_safe", "read_rows", "restore"]
