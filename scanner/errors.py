"""Error families. Each is caught once, at the CLI edge, and becomes one line on stderr + exit 2."""

from __future__ import annotations

import re

# What would break the one line or reach the terminal as a command: C0 but TAB, DEL, C1, line and
# paragraph separators, bidi overrides and isolates, and lone surrogates (undecodable bytes).
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a name or argument
        code -= 0xDC00
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


class ProvscanError(Exception):
    """Base class: str(error) is a complete one-line message for the user.

    Whatever a message quotes (a path, an argument, a line of git's output), str() keeps it on
    one line and inert: control characters are shown as escapes."""

    def __str__(self) -> str:
        return _UNPRINTABLE.sub(_escape, super().__str__().strip())


class UsageError(ProvscanError):
    """Bad command-line arguments or configuration."""


class SourceError(ProvscanError):
    """A SOURCE or REFERENCE could not be acquired (missing path, bad URL, unknown revision, hostile archive)."""
