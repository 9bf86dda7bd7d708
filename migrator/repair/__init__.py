"""Repair: the events that make the new side agree with the legacy side, from a stored verify run."""

from .corrections import correction_events, differing_fields
from .run import SOURCE, Action, RepairResult, reason_of, repair

__all__ = ["SOURCE", "Action", "RepairResult", "correction_events", "differing_fields", "reason_of", "repair"]
