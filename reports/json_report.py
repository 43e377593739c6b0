"""JSON output: the provscan/report/v1 contract."""

from __future__ import annotations

import json

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode


def dumps(value, depth: int, indent: int = 2) -> str:
    """The JSON of value, indented like json.dumps(value, indent=2) for the containers of the first
    `depth` levels, each deeper container on one line.

    json's indenting encoder is pure Python (0.7 s for a report of 1,000 copies with their evidence);
    the compact one is C. With depth reaching the deepest container, the output is json.dumps's.
    """
    def encode(item, level: int) -> str:
        if level >= depth or not isinstance(item, (dict, list)) or not item:
            return _COMPACT(item)
        inner, outer = " " * (indent * (level + 1)), " " * (indent * level)
        if isinstance(item, list):
            return "[\n" + ",\n".join(inner + encode(v, level + 1) for v in item) + "\n" + outer + "]"
        return "{\n" + ",\n".join(f"{inner}{_key(k)}: {encode(v, level + 1)}" for k, v in item.items()) + "\n" + outer + "}"

    return encode(value, 0)


def _key(key) -> str:
    """A dict key as json writes it (non-string keys become strings: 1 -> "1", True -> "true")."""
    return _COMPACT(key) if isinstance(key, str) else _COMPACT({key: 0})[1:-len(": 0}")]


def render_json(report) -> str:
    # Report > findings > finding: each finding's fields on their own lines, their values compact.
    return dumps(report.to_dict(), depth=3) + "\n"
