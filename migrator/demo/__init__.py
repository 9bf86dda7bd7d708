"""The demo's walk: live traffic through the legacy app, the worker's jobs in a thread, the side-by-side
views of each phase and the final consistency report (`migrator demo`)."""

from .final import FinalReport, final_report
from .traffic import Traffic, WorkerThread
from .walk import Walk, WalkOptions

__all__ = ["FinalReport", "Traffic", "Walk", "WalkOptions", "WorkerThread", "final_report"]
