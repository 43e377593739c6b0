"""JSON output: the provscan/report/v1 contract."""

from __future__ import annotations

import json
import math

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), check_circular=False)
# JSONEncoder.encode makes a new C encoder for every value it is given (20 us; a report of 1,000
# copies writes 20,000 values): one is made here and kept, where this Python has it.
_C_ENCODE = (json.encoder.c_make_encoder(None, _ENCODER.default, json.encoder.encode_basestring, None, ": ", ", ",
                                         False, False, True)
             if json.encoder.c_make_encoder is not None else None)


_LITERALS = {None: "null", True: "true", False: "false"}


def _compact(value) -> str:
    kind = type(value)
    # Scalars as json writes them, without a call into the encoder (most of a report's values).
    if kind is str:
        return json.encoder.encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if kind is bool or value is None:
        return _LITERALS[value]
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if _C_ENCODE is None:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODE(value, 0))


def dumps(value, depth: int, indent: int = 2) -> str:
    """The JSON of value, indented like json.dumps(value, indent=2) for the containers of the first
    `depth` levels, each deeper container on one line.

    json's indenting encoder is pure Python (0.7 s for a report of 1,000 copies with their evidence);
    the compact one is C. With depth reaching the deepest container, the output is json.dumps's.
    """
    def encode(item, level: int) -> str:
        if level >= depth or not isinstance(item, (dict, list)) or not item:
            return _compact(item)
        inner, outer = " " * (indent * (level + 1)), " " * (indent * level)
        if isinstance(item, list):
            return "[\n" + ",\n".join(inner + encode(v, level + 1) for v in item) + "\n" + outer + "]"
        return "{\n" + ",\n".join(f"{inner}{_key(k)}: {encode(v, level + 1)}" for k, v in item.items()) + "\n" + outer + "}"

    return encode(value, 0)


def _key(key) -> str:
    """A dict key as json writes it (non-string keys become strings: 1 -> "1", True -> "true")."""
    return _compact(key) if isinstance(key, str) else _compact({key: 0})[1:-len(": 0}")]


def render_json(report) -> str:
    # Report > findings > finding: each finding's fields on their own lines, their values compact.
    return dumps(report.to_dict(), depth=3) + "\n"
