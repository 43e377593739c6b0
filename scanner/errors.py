"""Error families. Each is caught once, at the CLI edge, and becomes one line on stderr + exit 2."""

from __future__ import annotations


class ProvscanError(Exception):
    """Base class: str(error) is a complete one-line message for the user."""


class UsageError(ProvscanError):
    """Bad command-line arguments or configuration."""


class SourceError(ProvscanError):
    """A SOURCE or REFERENCE could not be acquired (missing path, bad URL, unknown revision, hostile archive)."""
