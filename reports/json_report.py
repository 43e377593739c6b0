"""JSON output: the provscan/report/v1 contract."""

from __future__ import annotations

import json
import math

import orjson

# Containers below the indented levels are written by orjson: a report of 1,000 copies with their
# evidence is 7 MB, which json's C encoder writes in 0.19 s and orjson in 0.03 s. Values it cannot
# write (integers beyond 64 bits, types it does not know) go to json's encoder, with the same separators.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)

_LITERALS = {None: "null", True: "true", False: "false"}


def _compact(value) -> str:
    kind = type(value)
    # Scalars as json writes them, without a call into an encoder (most of a report's values).
    if kind is str:
        return json.encoder.encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if kind is bool or value is None:
        return _LITERALS[value]
    if kind is float:
        # JSON has no NaN or infinity: null, as orjson writes them inside containers.
        return float.__repr__(value) if math.isfinite(value) else "null"
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return _ENCODER.encode(_finite(value))


def _finite(value):
    """value with non-finite floats as None, for json's encoder (which would write NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(value, depth: int, indent: int = 2) -> str:
    """The JSON of value, indented like json.dumps(value, indent=2) for the containers of the first
    `depth` levels, each deeper container on one line.

    json's indenting encoder is pure Python (0.7 s for a report of 1,000 copies with their evidence);
    the deeper containers are written compact, without spaces, by orjson. With depth reaching the
    deepest container, the output is json.dumps's, but for non-finite floats: null, not NaN.
    """
    return "".join(_pieces(value, depth, indent))


def _pieces(value, depth: int, indent: int) -> list[str]:
    """dumps' text as pieces, to be joined once: a 7 MB report built by concatenating each level's
    join copied itself ten times over, into fresh memory (15,000 page faults)."""
    out: list[str] = []
    put = out.append

    def encode(item, level: int) -> None:
        if level >= depth or not isinstance(item, (dict, list)) or not item:
            put(_compact(item))
            return
        pad = " " * (indent * (level + 1))
        first, then = "\n" + pad, ",\n" + pad
        if isinstance(item, list):
            put("[")
            for i, v in enumerate(item):
                put(then if i else first)
                encode(v, level + 1)
            put("\n" + " " * (indent * level) + "]")
            return
        put("{")
        for i, (k, v) in enumerate(item.items()):
            put(then if i else first)
            put(_key(k) + ": ")
            encode(v, level + 1)
        put("\n" + " " * (indent * level) + "}")

    encode(value, 0)
    return out


def _key(key) -> str:
    """A dict key as json writes it (non-string keys become strings: 1 -> "1", True -> "true")."""
    return _compact(key) if isinstance(key, str) else _ENCODER.encode({key: 0})[1:-len(":0}")]


def render_json(report) -> str:
    # Report > findings > finding: each finding's fields on their own lines, their values compact.
    return "".join([*_pieces(report.to_dict(), 3, 2), "\n"])
