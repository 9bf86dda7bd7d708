"""The error of a mapping that cannot work."""

from __future__ import annotations


class MappingError(ValueError):
    """A mapping that cannot work; the message is one line naming the table and the problem."""
