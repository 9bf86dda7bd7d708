"""The names change capture shares across backends: its tables, origins, wake-up channel and lock key.

They are public contracts (the legacy database holds them). The SQL of each backend is in
`migrator.capture.backends`.
"""

from __future__ import annotations

CHANGELOG = "migrator_changelog"
HISTORY = "migrator_capture_history"
HISTORY_ACTIONS = ("installed", "removed", "changelog_created", "changelog_dropped")
NOTIFY_CHANNEL = "migrator_changelog"
NUMBERING_LOCK_KEY = 7_045_112_358  # install/remove (and PostgreSQL's commit-time numbering) hold it
LEGACY_ORIGIN = "legacy"
MIGRATOR_ORIGIN = "migrator"


def quote(name: str) -> str:
    """Returns an identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """Returns a string literal in single quotes."""
    return "'" + text.replace("'", "''") + "'"
