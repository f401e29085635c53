"""The CLI's user-facing error: printed as one line, exit code 2, never a traceback."""

from __future__ import annotations

__all__ = ["CliError"]


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""
