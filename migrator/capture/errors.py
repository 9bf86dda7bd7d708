"""The errors of change capture; each message is one line saying what to do."""

from __future__ import annotations


class CaptureError(RuntimeError):
    """Capture cannot be used as asked; the message is one line saying what to do."""


class CaptureNotInstalled(CaptureError):
    """Change capture is not installed in the legacy database (no changelog); the one-line message says what to run."""

    def __init__(self) -> None:
        super().__init__("change capture is not installed in the legacy database: run `migrator capture install`")


class UnsupportedCaptureBackend(CaptureError):
    """The legacy database's backend has no capture backend (`migrator.capture.backends`)."""
