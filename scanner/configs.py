"""Config files (JSON, YAML, TOML) as trees: key-path/value fragments, model architectures, and
a cross-check of a config against the tensor shapes of its weights.

Three uses:

1. **Fingerprinting like code.** `parse_config_unit` returns the same `ParsedUnit` that
   `scanner.parse.parse_unit` returns for Python, so fingerprinting, indexing, matching and
   reports work on configs unchanged. Each leaf (a scalar, or an array of scalars) becomes
   the tokens ``[key-path components..., b"=", value...]``:

   - both channels keep the KEYS (they are a config's schema, as keywords are a language's);
   - the abstract channel replaces each value by its type (``NUM``, ``STR``, ``BOOL``,
     ``NULL``, ``ALIAS`` for a YAML alias, ``ERR`` where a syntax error left none), the
     concrete channel keeps it, normalised so that the same value
     gives the same token whatever the format or spelling (``1e-05``, ``1.0e-5`` and
     ``0.00001`` are one number; strings are quoted, so ``"1"`` is not ``1``);
   - an array of scalars is one leaf, its values a run: ``[path, =, [, v1, v2, ..., ]]``;
     an element of an array of mappings/arrays adds the path component ``[]`` (no index, so
     inserting an element does not change every later path);
   - the key path is the whole path from the document root, cut to its last
     ``MAX_PATH_TOKENS`` components (a leading ``...`` marks a cut), so a leaf's tokens stay
     bounded whatever the nesting;
   - leaves are emitted **sorted by key path** (arrays keep their order), so reordering keys
     (json.dump of a dict built in another order, a hand-edited YAML) changes nothing, and
     every mapping's leaves are one contiguous token slice: a section is a fragment. Each
     token keeps the line it is on, so when a file's keys are not in sorted order, ``lines``
     is not monotonic (HF's save_pretrained sorts keys: its configs are). ``canonical=False``
     emits in document order instead (monotonic lines, order-sensitive shingles).

   A config copied with ``model_type``/``architectures`` renamed therefore has the same
   abstract tokens and loses only the concrete shingles that cover the renamed values. The
   flip side: the abstract channel of a config is its schema, which every config of a family
   shares (two Llama-family config.json files with different sizes: abstract 0.69, concrete
   0.33). A config match is evidence only when its concrete similarity is at least
   CONFIG_MIN_CONCRETE (a renamed copy: 0.81).

2. **Architecture.** `architecture` reads the fields that define a transformer's shape under
   one name whatever the family calls them (``n_embd``, ``d_model`` and ``dim`` are
   ``hidden_size``...), and `compare_architecture` says whether a scanned config is a copy of
   a reference's (``config-copy``), close to it (``similar``) or not (``different``), listing
   identical, differing and renamed fields.

3. **Weights.** `check_against_weights` compares declared sizes with the stored tensor shapes
   (names and shapes only, e.g. from a safetensors header) and lists contradictions.

Nothing here raises on bad input: syntax errors become ERROR nodes whose lines are reported,
and the walks are iterative (no recursion, whatever the nesting depth).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from scanner.parse import Fragment, ParsedUnit, decode_source, error_lines
from scanner.walk import SourceUnit

# -- which files ------------------------------------------------------------------------------------

CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".toml")
# Files with a config suffix that hold data, not configuration: tokenizer vocabularies and merges
# (tokenizer.json is 2-20 MB, vocab.json ~1 MB), weight maps (*.safetensors.index.json and
# pytorch_model.bin.index.json list every tensor), lock files, training logs. They are large,
# generated, and identical across every model that shares a tokenizer or a dependency set, so
# they would only add noise and cost. Matched on the lower-cased file name.
_DATA_NAMES = frozenset({
    "tokenizer.json", "vocab.json", "merges.json", "trainer_state.json", "package-lock.json",
    "npm-shrinkwrap.json", "pnpm-lock.yaml",
})
_DATA_SUFFIXES = (".index.json", "-lock.json", "-lock.yaml", ".lock.json", "_vocab.json", "-vocab.json")
# Packaging and tooling files: they describe how a project is built and linted, which projects
# copy from each other freely (and which say nothing about a model's provenance).
_TOOLING_NAMES = frozenset({"pyproject.toml", "poetry.lock", "uv.lock", "pixi.toml", "mkdocs.yml", "mkdocs.yaml",
                            "codecov.yml", "environment.yml", "environment.yaml", "readthedocs.yml", "tsconfig.json",
                            "package.json", "cargo.toml"})
# Directories that never hold the project's own configuration.
_DATA_DIRS = frozenset({"node_modules", ".git", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints"})


def is_config(path: str) -> bool:
    """Whether a file is scanned as a config: a .json, .yaml, .yml or .toml file that is not a
    known data file (tokenizer.json, vocab.json, *.index.json weight maps, lock files,
    trainer_state.json) and not under node_modules or a VCS directory. Notebooks (.ipynb, JSON
    inside) are not configs: walk.py reads their code cells.

    >>> is_config("config.json"), is_config("model.safetensors.index.json"), is_config("a/tokenizer.json")
    (True, False, False)
    """
    parts = path.replace("\\", "/").split("/")
    name = parts[-1].lower()
    if not name.endswith(CONFIG_SUFFIXES):
        return False
    if name in _DATA_NAMES or name.endswith(_DATA_SUFFIXES) or name in _TOOLING_NAMES:
        return False
    # Dotfiles and dot-directories (.github workflows, .pre-commit-config.yaml, .provscan.toml)
    # configure the tools around a project, not its models.
    return not any(part in _DATA_DIRS or part.startswith(".") for part in parts)


def config_format(path: str) -> str | None:
    """"json", "yaml" or "toml" from the file name; None for anything else."""
    name = path.lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith((".yaml", ".yml")):
        return "yaml"
    if name.endswith(".toml"):
        return "toml"
    return None


@cache
def _parser(fmt: str):
    from tree_sitter import Language, Parser

    if fmt == "json":
        import tree_sitter_json as grammar
    elif fmt == "yaml":
        import tree_sitter_yaml as grammar
    else:
        import tree_sitter_toml as grammar
    return Parser(Language(grammar.language()))


# -- an intermediate tree, the same for the three formats -------------------------------------------

_SCALAR, _MAP, _SEQ = 0, 1, 2
_NUM, _STR, _BOOL, _NULL, _ALIAS, _ERR = b"NUM", b"STR", b"BOOL", b"NULL", b"ALIAS", b"ERR"
_MAX_LITERAL = 200  # concrete string tokens are cut here (a chat template is kilobytes)
_MAX_KEY = 100
MAX_PATH_TOKENS = 6  # key-path components per leaf (the deepest ones)
MAX_SECTION_DEPTH = 3  # sections are mappings/arrays at key paths of 1..3 components
MAX_SECTIONS = 2000  # per file; more (a huge data JSON) stay in the module fragment only
_MAX_VALUE_DEPTH = 64  # the Python value of a config is cut below this depth (None there)
# Concrete (value) similarity a config fragment match needs: the abstract channel of a config is
# its schema (see the module docstring). Same as Params.boilerplate_min_concrete.
CONFIG_MIN_CONCRETE = 0.5


class _Node:
    """A value: a scalar (abs/con tokens and its Python value), a mapping or a sequence."""

    __slots__ = ("kind", "key", "line", "key_line", "end_line", "abs", "con", "value", "children", "index")

    def __init__(self, kind: int, key: bytes | None, line: int, key_line: int, end_line: int) -> None:
        self.kind = kind
        self.key = key  # the key in its mapping (bytes), None in a sequence or at the root
        self.line = line  # first line of the value
        self.key_line = key_line  # line of its key (== line without one)
        self.end_line = end_line
        self.abs = self.con = b""
        self.value: Any = None
        self.children: list[_Node] = []
        self.index: dict[bytes, _Node] | None = None  # TOML: key -> child, to merge tables


def _scalar(abs_tok: bytes, con: bytes, value: Any, key: bytes | None, line: int, key_line: int) -> _Node:
    node = _Node(_SCALAR, key, line, key_line, line)
    node.abs, node.con, node.value = abs_tok, con, value
    return node


def _line(ts) -> int:
    return ts.start_point[0] + 1


def _end_line(ts) -> int:
    row, col = ts.end_point
    if col == 0 and row > ts.start_point[0]:
        return row  # ends at the start of the next line: the last line it covers is the previous one
    return row + 1


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _cut(data: bytes, limit: int) -> bytes:
    return data if len(data) <= limit else data[:limit]


def _string_node(text: str, key: bytes | None, line: int, key_line: int) -> _Node:
    con = b'"' + _cut(text.encode("utf-8", "surrogatepass"), _MAX_LITERAL) + b'"'
    return _scalar(_STR, con, text, key, line, key_line)


def _number_node(value: int | float, key: bytes | None, line: int, key_line: int) -> _Node:
    return _scalar(_NUM, _number_token(value), value, key, line, key_line)


def _number_token(value: int | float) -> bytes:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value)).encode()  # 10000.0 and 10000 are one token
        return repr(value).encode()
    return str(value).encode()


def _parse_number(text: str) -> int | float | None:
    """A JSON/YAML/TOML number: decimal, hex/octal/binary, underscores, inf/nan; None if not one."""
    t = text.strip().replace("_", "")
    low = t.lower()
    if low in (".inf", "+.inf", "inf", "+inf"):
        return math.inf
    if low in ("-.inf", "-inf"):
        return -math.inf
    if low in (".nan", "nan", "+nan", "-nan"):
        return math.nan
    try:
        if re.fullmatch(r"[-+]?(0[xob][0-9a-f]+|[0-9]+)", low):
            sign = -1 if low.startswith("-") else 1
            body = low.lstrip("+-")
            return sign * int(body, 0) if body.startswith(("0x", "0o", "0b")) else int(low)
        return float(t)
    except (ValueError, OverflowError):
        return None


# -- JSON ---------------------------------------------------------------------------------------------

def _json_key(ts, src: bytes) -> bytes:
    if ts is None:
        return b"?"
    if ts.type == "string":
        raw = src[ts.start_byte:ts.end_byte]
        try:
            text = json.loads(_decode(raw))
            if isinstance(text, str):
                return _cut(text.encode("utf-8", "surrogatepass"), _MAX_KEY)
        except (ValueError, RecursionError):
            pass
        return _cut(raw.strip(b'"'), _MAX_KEY)
    return _cut(src[ts.start_byte:ts.end_byte] or b"?", _MAX_KEY)


def _json_make(ts, key: bytes | None, key_line: int, todo: list, src: bytes) -> _Node:
    """The node of a JSON value; containers are queued in todo to be filled."""
    t = ts.type
    line = _line(ts)
    if ts.is_missing:  # inserted by error recovery: zero width, no value
        return _scalar(_ERR, _ERR, None, key, line, key_line)
    if t == "object" or t == "array":
        node = _Node(_MAP if t == "object" else _SEQ, key, line, key_line, _end_line(ts))
        todo.append((ts, node))
        return node
    if t == "string":
        raw = src[ts.start_byte:ts.end_byte]  # the source's bytes, not the exponent-patched ones
        try:
            text = json.loads(_decode(raw))
        except (ValueError, RecursionError):
            text = _decode(raw.strip(b'"'))
        return _string_node(text if isinstance(text, str) else _decode(raw), key, line, key_line)
    if t == "number":
        value = _parse_number(_decode(ts.text))
        if value is None:
            return _scalar(_NUM, _cut(ts.text, _MAX_LITERAL), None, key, line, key_line)
        return _number_node(value, key, line, key_line)
    if t == "true" or t == "false":
        return _scalar(_BOOL, t.encode(), t == "true", key, line, key_line)
    if t == "null":
        return _scalar(_NULL, b"null", None, key, line, key_line)
    return _scalar(_ERR, _ERR, None, key, line, key_line)


def _children(ts, comments: list[tuple[int, str]]) -> list:
    """Named children of ts, with ERROR nodes opened (their recoverable pairs and values count),
    comments set aside. Iterative: ERROR nodes can nest."""
    out = []
    pending = list(reversed(ts.named_children))
    while pending:
        child = pending.pop()
        t = child.type
        if t == "comment":
            _add_comment(comments, child)
        elif t == "ERROR":
            pending.extend(reversed(child.named_children))
        else:
            out.append(child)
    return out


def _add_comment(comments: list[tuple[int, str]], ts) -> None:
    first = _line(ts)
    for offset, piece in enumerate(_decode(ts.text).split("\n")):
        comments.append((first + offset, piece.rstrip("\r")))


def _json_tree(root, comments, src: bytes) -> list[_Node]:
    docs: list[_Node] = []
    todo: list = []
    loose: _Node | None = None  # pairs outside any object (a document that lost its braces): one mapping
    for ts in _children(root, comments):
        if ts.type == "pair":
            if loose is None:
                loose = _Node(_MAP, None, _line(ts), _line(ts), _end_line(ts))
                docs.append(loose)
            _json_pair(loose, ts, todo, src)
            loose.end_line = max(loose.end_line, _end_line(ts))
            continue
        loose = None
        docs.append(_json_make(ts, None, _line(ts), todo, src))
    while todo:
        ts, node = todo.pop()
        for child in _children(ts, comments):
            if node.kind == _MAP:
                if child.type == "pair":
                    _json_pair(node, child, todo, src)
            elif child.type != "pair":
                node.children.append(_json_make(child, None, _line(child), todo, src))
    return docs


def _json_pair(node: _Node, pair, todo: list, src: bytes) -> None:
    key_ts = pair.child_by_field_name("key")
    value_ts = pair.child_by_field_name("value")
    key = _json_key(key_ts, src)
    key_line = _line(pair)
    if value_ts is None or value_ts.type == "ERROR":
        node.children.append(_scalar(_ERR, _ERR, None, key, key_line, key_line))
    else:
        node.children.append(_json_make(value_ts, key, key_line, todo, src))


_PLUS_EXPONENT = re.compile(rb"(?<=[0-9])([eE])\+(?=[0-9])")


class _Pairs(list):
    """A JSON object as json.loads' object_pairs_hook sees it: every pair, duplicates included."""


# Value tokens of JSON text in order: strings, brackets, literals, numbers (commas, colons and
# whitespace are skipped). Inside strings nothing else can match: a string is consumed whole, and
# possessively (a backtracking `(?:x|y)*` keeps state per character: 585 MB for a 5 MB string).
_JSON_TOKEN = re.compile(rb'"(?:[^"\\\n]++|\\.)*+"|[\[\]{}]|-?Infinity|NaN|true|false|null|-?[0-9][0-9.eE+-]*')


def _json_fast(data: bytes) -> list[_Node] | None:
    """The tree of valid JSON without tree-sitter: json.loads (C) for the values, one regular
    expression for the position of each value token, and a walk that consumes both in step.

    Walking tree-sitter's nodes from Python is most of the cost of the tree-sitter path; this
    halves the time of a large file (1.4 MB: 1.8 s instead of 3.5 s on a loaded two-core machine).
    It gives exactly the tree the tree-sitter path gives (tested); None for
    anything it cannot vouch for (invalid JSON, comments, deeper than json's recursion limit,
    a token count that does not match), which then takes the tree-sitter path.
    """
    import numpy as np

    try:
        value = json.loads(data, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return None
    offsets = np.fromiter((m.start() for m in _JSON_TOKEN.finditer(data)), dtype=np.int64)
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    lines = (np.searchsorted(newlines, offsets, "right") + 1).tolist()
    total = len(lines)
    pos = 0

    def scalar(v: Any, key: bytes | None, key_line: int) -> _Node | None:
        nonlocal pos
        if pos >= total:
            return None
        line = lines[pos]
        pos += 1
        if v is True or v is False:
            return _scalar(_BOOL, b"true" if v else b"false", v, key, line, key_line)
        if v is None:
            return _scalar(_NULL, b"null", None, key, line, key_line)
        if isinstance(v, str):
            return _string_node(v, key, line, key_line)
        return _number_node(v, key, line, key_line)

    def opened(v: Any, key: bytes | None, key_line: int) -> _Node | None:
        nonlocal pos
        if pos >= total:
            return None
        node = _Node(_MAP if isinstance(v, _Pairs) else _SEQ, key, lines[pos], key_line, 0)
        pos += 1
        return node

    if not isinstance(value, list):
        root = scalar(value, None, lines[0] if lines else 1)
        return [root] if root is not None and pos == total else None
    root = opened(value, None, lines[0] if lines else 1)
    if root is None:
        return None
    stack: list[tuple[list, _Node, int]] = [(value, root, 0)]
    while stack:
        items, node, i = stack[-1]
        if i == len(items):
            if pos >= total:
                return None
            node.end_line = lines[pos]  # the closing bracket
            pos += 1
            stack.pop()
            continue
        stack[-1] = (items, node, i + 1)
        if node.kind == _MAP:
            name, child = items[i]
            if pos >= total:
                return None
            key_line = lines[pos]  # the key string
            pos += 1
            key = _cut(name.encode("utf-8", "surrogatepass"), _MAX_KEY)
        else:
            child, key = items[i], None
            key_line = lines[pos] if pos < total else 0
        if isinstance(child, list):
            made = opened(child, key, key_line)
            if made is None:
                return None
            node.children.append(made)
            stack.append((child, made, 0))
        else:
            made = scalar(child, key, key_line)
            if made is None:
                return None
            node.children.append(made)
    return [root] if pos == total else None


# -- YAML ---------------------------------------------------------------------------------------------

_YAML_WRAPPERS = frozenset({"block_node", "flow_node"})
_YAML_DECOR = frozenset({"anchor", "tag", "comment"})


def _yaml_content(ts, comments):
    """The content of a block_node/flow_node (its anchor and tag dropped); None if empty."""
    while ts is not None and ts.type in _YAML_WRAPPERS:
        inner = None
        for child in ts.named_children:
            if child.type == "comment":
                _add_comment(comments, child)
            elif child.type not in _YAML_DECOR:
                inner = child
        ts = inner
    return ts


def _yaml_scalar_text(ts) -> str:
    t = ts.type
    raw = _decode(ts.text)
    if t == "double_quote_scalar":
        try:
            text = json.loads(raw.replace("\n", " "))
            if isinstance(text, str):
                return text
        except (ValueError, RecursionError):
            pass
        return raw[1:-1] if len(raw) >= 2 else raw
    if t == "single_quote_scalar":
        return (raw[1:-1] if len(raw) >= 2 else raw).replace("''", "'")
    if t == "block_scalar":
        lines = raw.split("\n")[1:]  # the first line is the | or > header
        indent = min((len(x) - len(x.lstrip(" ")) for x in lines if x.strip()), default=0)
        return "\n".join(x[indent:] for x in lines).strip("\n")
    return raw.strip()


def _yaml_make(ts, key: bytes | None, key_line: int, todo: list, comments) -> _Node:
    content = _yaml_content(ts, comments)
    if content is None:
        line = _line(ts) if ts is not None else key_line
        return _scalar(_NULL, b"null", None, key, line, key_line)
    t = content.type
    line = _line(content)
    if content.is_missing:
        return _scalar(_ERR, _ERR, None, key, line, key_line)
    if t in ("block_mapping", "flow_mapping", "flow_pair", "block_mapping_pair"):
        node = _Node(_MAP, key, line, key_line, _end_line(content))
        todo.append((content, node))
        return node
    if t in ("block_sequence", "flow_sequence"):
        node = _Node(_SEQ, key, line, key_line, _end_line(content))
        todo.append((content, node))
        return node
    if t == "alias":
        return _scalar(_ALIAS, _cut(content.text, _MAX_KEY), None, key, line, key_line)
    if t == "plain_scalar":
        inner = content.named_children[0] if content.named_child_count else content
        it = inner.type
        text = _decode(inner.text).strip()
        if it in ("integer_scalar", "float_scalar"):
            value = _parse_number(text)
            if value is not None:
                return _number_node(value, key, line, key_line)
        elif it == "boolean_scalar":
            value = text.lower() in ("true", "yes", "on", "y")
            return _scalar(_BOOL, b"true" if value else b"false", value, key, line, key_line)
        elif it == "null_scalar":
            return _scalar(_NULL, b"null", None, key, line, key_line)
        return _string_node(text, key, line, key_line)
    if t in ("double_quote_scalar", "single_quote_scalar", "block_scalar"):
        return _string_node(_yaml_scalar_text(content), key, line, key_line)
    return _scalar(_ERR, _ERR, None, key, line, key_line)


def _yaml_key(ts, comments) -> bytes:
    content = _yaml_content(ts, comments)
    if content is None:
        return b"null"
    if content.type in ("plain_scalar", "double_quote_scalar", "single_quote_scalar"):
        return _cut(_yaml_scalar_text(content).encode("utf-8", "surrogatepass"), _MAX_KEY)
    return _cut(b" ".join(content.text.split()), _MAX_KEY)  # a complex key: its text, whitespace folded


def _yaml_tree(root, comments) -> list[_Node]:
    docs: list[_Node] = []
    todo: list = []
    for doc in _children(root, comments):
        if doc.type != "document":
            docs.append(_yaml_make(doc, None, _line(doc), todo, comments))
            continue
        body = [c for c in _children(doc, comments) if c.type in _YAML_WRAPPERS]
        if body:
            docs.append(_yaml_make(body[0], None, _line(body[0]), todo, comments))
        else:
            docs.append(_Node(_MAP, None, _line(doc), _line(doc), _end_line(doc)))
    while todo:
        ts, node = todo.pop()
        if ts.type in ("flow_pair", "block_mapping_pair"):  # a single pair standing for a mapping
            items = [ts]
        else:
            items = _children(ts, comments)
        for child in items:
            ct = child.type
            if node.kind == _MAP:
                if ct in ("block_mapping_pair", "flow_pair"):
                    key_ts = child.child_by_field_name("key")
                    key = _yaml_key(key_ts, comments) if key_ts is not None else b"null"
                    key_line = _line(child)
                    node.children.append(_yaml_make(child.child_by_field_name("value"), key, key_line, todo, comments))
                elif ct in _YAML_WRAPPERS:  # {a, b}: keys without values
                    node.children.append(_scalar(_NULL, b"null", None, _yaml_key(child, comments), _line(child), _line(child)))
            else:
                if ct == "block_sequence_item":
                    inner = [c for c in child.named_children if c.type != "comment"]
                    for c in child.named_children:
                        if c.type == "comment":
                            _add_comment(comments, c)
                    node.children.append(_yaml_make(inner[0] if inner else None, None, _line(child), todo, comments))
                elif ct in _YAML_WRAPPERS or ct == "flow_pair":
                    node.children.append(_yaml_make(child, None, _line(child), todo, comments))
    return docs


# -- TOML ---------------------------------------------------------------------------------------------

_TOML_KEYS = frozenset({"bare_key", "quoted_key", "dotted_key"})


def _toml_key_parts(ts) -> list[bytes]:
    parts = []
    pending = [ts]
    while pending:
        k = pending.pop()
        if k.type == "dotted_key":
            pending.extend(reversed([c for c in k.named_children if c.type in _TOML_KEYS]))
        elif k.type == "quoted_key":
            raw = _decode(k.text)
            text = raw[1:-1] if len(raw) >= 2 else raw
            if raw.startswith('"'):
                try:
                    loaded = json.loads(raw)
                    text = loaded if isinstance(loaded, str) else text
                except (ValueError, RecursionError):
                    pass
            parts.append(_cut(text.encode("utf-8", "surrogatepass"), _MAX_KEY))
        else:
            parts.append(_cut(k.text.strip(), _MAX_KEY))
    return parts


def _toml_string(raw: str) -> str:
    for quote in ('"""', "'''", '"', "'"):
        if raw.startswith(quote) and raw.endswith(quote) and len(raw) >= 2 * len(quote):
            body = raw[len(quote):-len(quote)]
            if quote == '"':
                try:
                    loaded = json.loads(raw)
                    return loaded if isinstance(loaded, str) else body
                except (ValueError, RecursionError):
                    return body
            return body.removeprefix("\n") if len(quote) == 3 else body
    return raw


def _toml_make(ts, key: bytes | None, key_line: int, todo: list) -> _Node:
    t = ts.type
    line = _line(ts)
    if ts.is_missing:
        return _scalar(_ERR, _ERR, None, key, line, key_line)
    if t == "array" or t == "inline_table":
        node = _Node(_SEQ if t == "array" else _MAP, key, line, key_line, _end_line(ts))
        if t == "inline_table":
            node.index = {}
        todo.append((ts, node))
        return node
    text = _decode(ts.text)
    if t == "string":
        return _string_node(_toml_string(text), key, line, key_line)
    if t in ("integer", "float"):
        value = _parse_number(text)
        if value is not None:
            return _number_node(value, key, line, key_line)
    if t == "boolean":
        value = text.strip() == "true"
        return _scalar(_BOOL, b"true" if value else b"false", value, key, line, key_line)
    if t in ("offset_date_time", "local_date_time", "local_date", "local_time"):
        return _string_node(text.strip(), key, line, key_line)
    return _scalar(_ERR, _ERR, None, key, line, key_line)


def _toml_child(parent: _Node, key: bytes, kind: int, line: int) -> _Node:
    """parent's child at key, created as kind if absent (or if a scalar holds the key: invalid
    TOML, the later one wins). Tables declared in pieces ([a] then [a.b], dotted keys) come back
    to the same node; _toml_descend turns an array of tables into its last element."""
    if parent.index is None:
        parent.index = {}
    node = parent.index.get(key)
    if node is None or node.kind == _SCALAR:
        node = _Node(kind, key, line, line, line)
        node.index = {} if kind == _MAP else None
        parent.children.append(node)
        parent.index[key] = node
    return node


def _toml_descend(node: _Node) -> _Node:
    if node.kind == _SEQ:  # [a.b] after [[a]]: the last element of a
        if not node.children or node.children[-1].kind != _MAP:
            element = _Node(_MAP, None, node.line, node.line, node.line)
            element.index = {}
            node.children.append(element)
        return node.children[-1]
    return node


def _toml_pair(table: _Node, pair, todo: list) -> None:
    named = [c for c in pair.named_children if c.type != "comment"]
    if not named or named[0].type not in _TOML_KEYS:
        return
    parts = _toml_key_parts(named[0]) or [b"?"]
    line = _line(pair)
    holder = table
    for part in parts[:-1]:
        holder = _toml_descend(_toml_child(holder, part, _MAP, line))
    value_ts = named[-1] if len(named) > 1 else None
    if value_ts is None or value_ts.type == "ERROR":
        child = _scalar(_ERR, _ERR, None, parts[-1], line, line)
    else:
        child = _toml_make(value_ts, parts[-1], line, todo)
    if holder.index is None:
        holder.index = {}
    holder.children.append(child)
    holder.index[parts[-1]] = child


def _toml_tree(root, comments) -> list[_Node]:
    doc = _Node(_MAP, None, 1, 1, _end_line(root))
    doc.index = {}
    todo: list = []
    for item in _children(root, comments):
        t = item.type
        if t == "pair":
            _toml_pair(doc, item, todo)
        elif t in ("table", "table_array_element"):
            named = _children(item, comments)
            header = named[0] if named and named[0].type in _TOML_KEYS else None
            parts = _toml_key_parts(header) if header is not None else [b"?"]
            line = _line(item)
            holder = doc
            for part in parts[:-1]:
                holder = _toml_descend(_toml_child(holder, part, _MAP, line))
            if t == "table":
                table = _toml_descend(_toml_child(holder, parts[-1], _MAP, line))
            else:
                array = _toml_child(holder, parts[-1], _SEQ, line)
                table = _Node(_MAP, None, line, line, line)
                table.index = {}
                array.children.append(table)
            table.line = min(table.line, line)
            table.end_line = max(table.end_line, line)
            for pair in named[1 if header is not None else 0:]:
                if pair.type == "pair":
                    _toml_pair(table, pair, todo)
                    # a table's node runs on over the blank lines after it: its last pair ends it
                    table.end_line = max(table.end_line, _end_line(pair))
    while todo:
        ts, node = todo.pop()
        for child in _children(ts, comments):
            if node.kind == _MAP:
                if child.type == "pair":
                    _toml_pair(node, child, todo)
            else:
                node.children.append(_toml_make(child, None, _line(child), todo))
    return [doc]


# -- parsing ------------------------------------------------------------------------------------------

@dataclass
class _Parsed:
    fmt: str
    text: str
    invalid_utf8: bool
    docs: list[_Node]
    comments: list[tuple[int, str]]
    error_lines: list[int]


def _parse(data: bytes, fmt: str) -> _Parsed:
    text, invalid = decode_source(data)
    if fmt == "yaml":
        docs, comments, errors = _parse_yaml(data)
        return _Parsed(fmt, text, invalid, docs, sorted(comments), errors)
    if fmt == "json" and not invalid:
        fast = _json_fast(data)
        if fast is not None:
            return _Parsed(fmt, text, invalid, fast, [], [])
    comments: list[tuple[int, str]] = []
    if fmt == "json":
        # tree-sitter-json 0.24.8 rejects a plus-signed exponent (1e+20, as json.dumps writes large
        # floats; fixed upstream in tree-sitter/tree-sitter-json#64): 1e+20 is read as 1e020, the same
        # number in as many bytes. Strings and keys are read from the original bytes.
        root = _parser(fmt).parse(_PLUS_EXPONENT.sub(rb"\g<1>0", data)).root_node
        docs = _json_tree(root, comments, data)
    else:
        root = _parser(fmt).parse(data).root_node
        docs = _toml_tree(root, comments)
    return _Parsed(fmt, text, invalid, docs, sorted(comments), error_lines(root))


# tree-sitter-yaml 0.7.2's scanner writes its indentation stack (4 bytes a level) into tree-sitter's
# 1024-byte serialisation buffer without a bound: about 253 nested block levels write past it and
# crash the process (tree-sitter-grammars/tree-sitter-yaml#48). Its 16-bit row counter makes a
# document of more than 32,768 lines one ERROR node (#49). So YAML is read only up to the first
# line that could open more than _YAML_MAX_BLOCK_DEPTH block levels (that line is reported as an
# error line), and parsed in pieces of at most _YAML_CHUNK_LINES lines, cut before top-level keys.
_YAML_MAX_BLOCK_DEPTH = 200
_YAML_CHUNK_LINES = 30_000


def _yaml_depth_cut(lines: list[bytes]) -> int | None:
    """Index of the first line that may open more than _YAML_MAX_BLOCK_DEPTH block levels, or None.

    An over-estimate of the scanner's stack: levels are (column, kind) entries; a line closes the
    levels at deeper columns (and at its own column, except that a sequence may sit at the column
    of the mapping key that holds it), opens one at its indentation, and one more per compact
    indicator ("- ", "? ", ": ") before its content.
    """
    if max(map(len, lines), default=0) <= _YAML_MAX_BLOCK_DEPTH // 2:
        return None  # a column holds at most two levels (a sequence under a key at its column)
    stack: list[tuple[int, bool]] = []  # (column, is a sequence)
    for number, line in enumerate(lines):
        body = line.lstrip(b" \t")
        if not body or body[:1] == b"#" or body in (b"\r",):
            continue
        indent = len(line) - len(body)
        dash = body[:1] in (b"-", b"?", b":") and body[1:2] in (b"", b" ", b"\t", b"\r")
        while stack and (stack[-1][0] > indent or (stack[-1][0] == indent and not (dash and not stack[-1][1]))):
            stack.pop()
        pos = indent
        while True:
            at = line[pos:pos + 1]
            is_dash = at in (b"-", b"?", b":") and line[pos + 1:pos + 2] in (b"", b" ", b"\t", b"\r", b"\n")
            stack.append((pos, is_dash))
            if not is_dash or len(stack) > _YAML_MAX_BLOCK_DEPTH:
                break
            pos += 1
            while line[pos:pos + 1] in (b" ", b"\t"):
                pos += 1
            if pos >= len(line) or line[pos:pos + 1] in (b"\r", b"#"):
                break
        if len(stack) > _YAML_MAX_BLOCK_DEPTH:
            return number
    return None


def _yaml_chunks(lines: list[bytes]) -> list[tuple[int, int, bool, bool]]:
    """(first line, end line, starts a new document, cut inside a block) of the pieces to parse
    separately: cut before a line that starts at column 0 with a key or a document marker, or,
    with none in the second half of a piece, anywhere (the piece after it loses its nesting)."""
    if len(lines) <= _YAML_CHUNK_LINES:
        return [(0, len(lines), True, False)]
    out: list[tuple[int, int, bool, bool]] = []
    start, forced = 0, False
    while start < len(lines):
        end = min(start + _YAML_CHUNK_LINES, len(lines))
        next_forced = end < len(lines)
        if end < len(lines):
            for cut in range(end, start + _YAML_CHUNK_LINES // 2, -1):
                first = lines[cut][:1]
                if first and first not in b" \t#-]}\r\n" or lines[cut].startswith(b"---"):
                    end, next_forced = cut, False
                    break
        out.append((start, end, not out or lines[start].startswith(b"---"), forced))
        start, forced = end, next_forced
    return out


def _parse_yaml(data: bytes) -> tuple[list[_Node], list[tuple[int, str]], list[int]]:
    lines = data.split(b"\n")
    errors: list[int] = []
    cut = _yaml_depth_cut(lines)
    if cut is not None:
        lines = lines[:cut]
        errors.append(cut + 1)
    docs: list[_Node] = []
    comments: list[tuple[int, str]] = []
    for first, end, new_document, forced in _yaml_chunks(lines):
        root = _parser("yaml").parse(b"\n".join(lines[first:end])).root_node
        piece_comments: list[tuple[int, str]] = []
        piece = _yaml_tree(root, piece_comments)
        errors.extend(line + first for line in error_lines(root))
        if forced:
            errors.append(first + 1)  # read on, but without the nesting it continues
        comments.extend((line + first, text) for line, text in piece_comments)
        if first:
            _shift(piece, first)
        if piece and docs and not new_document and piece[0].kind == docs[-1].kind != _SCALAR:
            docs[-1].children.extend(piece[0].children)  # the same document, continued
            docs[-1].end_line = max(docs[-1].end_line, piece[0].end_line)
            piece = piece[1:]
        docs.extend(piece)
    return docs, comments, sorted(set(errors))


def _shift(docs: list[_Node], offset: int) -> None:
    stack = list(docs)
    while stack:
        node = stack.pop()
        node.line += offset
        node.key_line += offset
        node.end_line += offset
        stack.extend(node.children)


# -- tokens and fragments -----------------------------------------------------------------------------

_EQ, _OPEN, _CLOSE, _ELEMENT, _CUT, _DOC = b"=", b"[", b"]", b"[]", b"...", b"---"


def _sort_key(node: _Node) -> bytes:
    return node.key if node.key is not None else b""


def _symbol(path: tuple, doc: int) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + _decode(part)
    return f"[{doc + 1}].{out}" if doc else out


def parse_config_unit(unit: SourceUnit, *, canonical: bool = True, fmt: str | None = None) -> ParsedUnit:
    """A config file as a ParsedUnit: the structure parse_unit returns for Python.

    Fragments: the file ("module"), then a "section" (symbol: dotted key path, ``[i]`` for an
    array element, ``[n].`` before the paths of the n-th YAML document when n > 1) for every
    mapping or array of mappings that is the value of a top-level key, and nested ones down to
    MAX_SECTION_DEPTH key-path components that hold at least two entries; parents come before
    their children and every fragment is a contiguous token slice. See the module docstring for
    the tokens. canonical=False: document order instead of key order. fmt: "json", "yaml" or
    "toml" (default: from the path's suffix; JSON for an unknown one).
    """
    import numpy as np

    fmt = fmt or config_format(unit.path) or "json"
    parsed = _parse(unit.data, fmt)
    abstract: list[bytes] = []
    concrete: list[bytes] = []
    lines: list[int] = []
    text = parsed.text
    n_lines = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    fragments = [Fragment("cell" if unit.cell else "module", None, 1, n_lines, 0, 0, None, 0)]
    sections = 0
    # Work stack: (node, depth, key path while depth <= MAX_SECTION_DEPTH else None, path tokens,
    # fragment that holds it, document), or a closing entry with node None that ends a section.
    for doc_index, doc in enumerate(parsed.docs):
        if doc_index:
            abstract.append(_DOC)
            concrete.append(_DOC)
            lines.append(doc.line)
        stack: list = [(doc, 0, (), (), 0, doc_index)]
        while stack:
            node, depth, path, ptoks, holder, di = stack.pop()
            if node is None:  # end of section `holder`
                frag = fragments[holder]
                frag.tok_end = len(abstract)
                if frag.tok_end > frag.tok_start:
                    span = lines[frag.tok_start:frag.tok_end]
                    frag.start_line = min(frag.start_line, min(span))
                    frag.end_line = max(frag.end_line, max(span))
                continue
            kind = node.kind
            if kind == _SCALAR:
                _leaf(abstract, concrete, lines, ptoks, node, [(node.abs, node.con, node.line)])
                continue
            children = node.children
            if not children:
                if depth == 0:
                    continue  # an empty document says nothing
                empty = b"{}" if kind == _MAP else b"[]"
                _leaf(abstract, concrete, lines, ptoks, node, [(empty, empty, node.line)])
                continue
            if kind == _SEQ and all(c.kind == _SCALAR for c in children):
                run = [(_OPEN, _OPEN, node.line)] + [(c.abs, c.con, c.line) for c in children]
                run.append((_CLOSE, _CLOSE, children[-1].line))
                _leaf(abstract, concrete, lines, ptoks, node, run)
                continue
            if (path is not None and depth >= 1 and sections < MAX_SECTIONS
                    and (depth == 1 or len(children) >= 2)
                    and (kind == _MAP or any(c.kind != _SCALAR for c in children))):
                sections += 1
                fragments.append(Fragment("section", _symbol(path, di), min(node.key_line, node.line),
                                          max(node.end_line, node.line), len(abstract), len(abstract), holder,
                                          fragments[holder].depth + 1))
                holder = len(fragments) - 1
                stack.append((None, 0, None, (), holder, di))
            deeper = path is not None and depth < MAX_SECTION_DEPTH
            if kind == _MAP:
                ordered = sorted(children, key=_sort_key) if canonical else children
                for child in reversed(ordered):
                    key = child.key if child.key is not None else b"?"
                    stack.append((child, depth + 1, path + (key,) if deeper else None, _path_tokens(ptoks, key),
                                  holder, di))
            else:
                element = _path_tokens(ptoks, _ELEMENT)
                for i in range(len(children) - 1, -1, -1):
                    stack.append((children[i], depth + 1, path + (i,) if deeper else None, element, holder, di))
    fragments[0].tok_end = len(abstract)
    return ParsedUnit(unit.path, unit.cell, text, abstract, concrete, np.asarray(lines, dtype=np.int32), fragments,
                      parsed.comments, [], parsed.error_lines, parsed.invalid_utf8)


def _path_tokens(ptoks: tuple, part: bytes) -> tuple:
    """The path tokens of a child: its parent's plus part, cut to the last MAX_PATH_TOKENS."""
    if ptoks and ptoks[0] is _CUT:
        return (_CUT,) + ptoks[2:] + (part,)
    if len(ptoks) < MAX_PATH_TOKENS:
        return ptoks + (part,)
    return (_CUT,) + ptoks[1:] + (part,)


def _leaf(abstract: list, concrete: list, lines: list, ptoks: tuple, node: _Node,
          values: list[tuple[bytes, bytes, int]]) -> None:
    key_line = node.key_line
    abstract.extend(ptoks)
    concrete.extend(ptoks)
    abstract.append(_EQ)
    concrete.append(_EQ)
    lines.extend([key_line] * (len(ptoks) + 1))
    for a, c, line in values:
        abstract.append(a)
        concrete.append(c)
        lines.append(max(line, key_line))


# -- Python values -----------------------------------------------------------------------------------

@dataclass
class ConfigTree:
    """A config file's content as Python values (dicts, lists, scalars), parsed without recursion."""

    format: str  # json | yaml | toml
    documents: list[Any]  # one per YAML document; one for JSON and TOML
    error_lines: list[int] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # dotted key path (up to 3 keys) -> line of the key

    @property
    def value(self) -> Any:
        """The first document that is a mapping (else the first document, else {})."""
        for doc in self.documents:
            if isinstance(doc, dict):
                return doc
        return self.documents[0] if self.documents else {}


def load_config(unit: SourceUnit, fmt: str | None = None) -> ConfigTree:
    """Parse a config into Python values. Duplicate keys: the last wins (as json.loads does);
    YAML aliases stay unresolved (None: resolving them invites exponential expansion); values
    nested deeper than 64 levels are cut to None."""
    fmt = fmt or config_format(unit.path) or "json"
    parsed = _parse(unit.data, fmt)
    tree = ConfigTree(fmt, [], parsed.error_lines)
    for doc in parsed.docs:
        tree.documents.append(_to_python(doc, tree.lines if not tree.documents else None))
    return tree


def _to_python(root: _Node, lines: dict[str, int] | None) -> Any:
    if root.kind == _SCALAR:
        return root.value
    top: Any = {} if root.kind == _MAP else []
    stack = [(root, top, 0, "")]
    while stack:
        node, obj, depth, prefix = stack.pop()
        for child in node.children:
            if child.kind == _SCALAR or depth >= _MAX_VALUE_DEPTH:
                value = child.value if child.kind == _SCALAR else None
            else:
                value = {} if child.kind == _MAP else []
            dotted = ""
            if node.kind == _MAP:
                name = _decode(child.key or b"")
                obj[name] = value
                if depth < 3:  # dotted names only near the top: building them deeper costs depth squared
                    dotted = f"{prefix}.{name}" if prefix else name
                    if lines is not None:
                        lines[dotted] = child.key_line
            else:
                obj.append(value)
                if depth < 3:
                    dotted = f"{prefix}[{len(obj) - 1}]"
            if child.kind != _SCALAR and depth < _MAX_VALUE_DEPTH:
                stack.append((child, value, depth + 1, dotted))
    return top


# -- architecture -------------------------------------------------------------------------------------

# Canonical field -> the names families use for it, canonical first (architecture() is idempotent).
ARCH_FIELDS: dict[str, tuple[str, ...]] = {
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim"),
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "n_layers", "num_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "n_heads", "num_heads"),
    "num_key_value_heads": ("num_key_value_heads", "n_kv_heads", "num_kv_heads", "multi_query_group_num"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size"),
    "vocab_size": ("vocab_size", "padded_vocab_size"),
    "head_dim": ("head_dim",),
    "rope_theta": ("rope_theta", "rotary_emb_base", "rope_base"),
    "rope_scaling": ("rope_scaling",),
    "norm_eps": ("norm_eps", "rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "layernorm_epsilon"),
    "num_experts": ("num_experts", "n_routed_experts", "num_local_experts", "moe_num_experts"),
    "num_experts_per_tok": ("num_experts_per_tok", "moe_top_k"),
    "moe_intermediate_size": ("moe_intermediate_size",),
    "n_shared_experts": ("n_shared_experts",),
    "shared_expert_intermediate_size": ("shared_expert_intermediate_size",),
    "hidden_act": ("hidden_act", "activation_function", "hidden_activation"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions", "seq_length"),
    "sliding_window": ("sliding_window",),
    "tie_word_embeddings": ("tie_word_embeddings",),
    "attention_bias": ("attention_bias",),
    "num_nextn_predict_layers": ("num_nextn_predict_layers",),
}
# Fields that name a model rather than shape it: a copy renames these.
NAMING_FIELDS = ("model_type", "architectures", "_name_or_path", "auto_map", "model_name")
# The size of the model: a config-copy needs MIN_CORE of them present (not null) in both configs.
CORE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
# Four, not five: GPT-2-style configs leave the MLP width implicit (n_inner: null means 4 x n_embd),
# and four numbers (width, depth, heads, vocabulary) already fix the parameter count; fewer would
# let two configs that merely share a common width (4096) and vocabulary (32000) count as copies.
MIN_CORE = 4
# Nested language-model configs of multimodal models (LLaVA, Qwen-VL: text_config; InternVL: llm_config).
LM_CONFIG_KEYS = ("text_config", "llm_config", "language_config")
# Values so common (defaults, the Llama-7B shape) that sharing them says little.
_COMMON_VALUES: dict[str, tuple] = {
    "vocab_size": (32000, 50257, 50304),
    "rope_theta": (10000,),
    "norm_eps": (1e-5, 1e-6, 1e-12),
    "rope_scaling": (None,),
    "sliding_window": (None,),
    "num_experts": (None, 0),
}
DISTINCTIVE_FIELDS = ("vocab_size", "rope_theta", "rope_scaling", "norm_eps", "num_experts", "num_experts_per_tok",
                      "moe_intermediate_size", "n_shared_experts", "shared_expert_intermediate_size", "sliding_window")
_ACTIVATIONS = {"swish": "silu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


def is_model_config(arch: Mapping | None) -> bool:
    """A model's config: at least MIN_CORE of the size fields are set (not training YAMLs etc.)."""
    return bool(arch) and sum(arch.get(n) is not None for n in CORE_FIELDS) >= MIN_CORE


def architecture(config: ConfigTree | ParsedUnit | SourceUnit | Mapping) -> dict[str, Any]:
    """The architecture fields of a config under canonical names (ARCH_FIELDS), plus its naming
    fields (NAMING_FIELDS) as they are. A nested language-model config (text_config, llm_config,
    language_config) takes precedence over top-level fields; the top level fills what it lacks.
    Values are normalised: integral floats become ints, activation synonyms one name, rope_scaling's
    "type" becomes "rope_type"; transformers 5's rope_parameters gives rope_theta and rope_scaling.
    Fields absent from the config are absent from the result; null values are kept (None).
    """
    raw = _raw_config(config)
    if not isinstance(raw, Mapping):
        return {}
    sources = [raw]
    for key in LM_CONFIG_KEYS:
        nested = raw.get(key)
        if isinstance(nested, Mapping):
            sources.insert(0, nested)
            break
    out: dict[str, Any] = {}
    for name, synonyms in ARCH_FIELDS.items():
        for source in sources:
            found = next((s for s in synonyms if s in source), None)
            if found is not None:
                out[name] = _normalise(name, source[found])
                break
    for source in sources:
        params = source.get("rope_parameters")
        if isinstance(params, Mapping):
            if "rope_theta" not in out and "rope_theta" in params:
                out["rope_theta"] = _normalise("rope_theta", params["rope_theta"])
            if "rope_scaling" not in out:
                rest = {k: v for k, v in params.items() if k != "rope_theta"}
                out["rope_scaling"] = None if rest.get("rope_type", "default") == "default" and len(rest) <= 1 \
                    else _normalise("rope_scaling", rest)
            break
    for name in NAMING_FIELDS:
        if name in raw:
            out[name] = raw[name]
    return out


def _raw_config(config) -> Any:
    if isinstance(config, ConfigTree):
        return config.value
    if isinstance(config, ParsedUnit):
        return load_config(SourceUnit(config.path, config.text.encode("utf-8", "surrogatepass"))).value
    if isinstance(config, SourceUnit):
        return load_config(config).value
    return config


def _normalise(name: str, value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, str):
        if name == "hidden_act":
            low = value.strip().lower()
            return _ACTIVATIONS.get(low, low)
        return value
    if isinstance(value, Mapping) and name == "rope_scaling":
        out = {}
        for k, v in value.items():
            k = "rope_type" if k == "type" else str(k)
            out[k] = _normalise("", v) if not isinstance(v, Mapping | list) else v
        return dict(sorted(out.items()))
    return value


@dataclass
class ConfigComparison:
    identical: dict[str, Any]  # architecture field -> the shared value
    differing: dict[str, tuple[Any, Any]]  # field -> (scanned, reference)
    renamed: dict[str, tuple[Any, Any]]  # naming field that differs -> (scanned, reference)
    verdict: str  # config-copy | similar | different
    message: str
    missing: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field in one config only -> (scanned, reference)
    distinctive: list[str] = field(default_factory=list)  # identical fields whose values are not common defaults


def compare_architecture(scanned: Mapping, reference: Mapping) -> ConfigComparison:
    """Compare two configs' architectures (raw configs or architecture() results).

    - config-copy: at least MIN_CORE core fields (CORE_FIELDS) set in both, and every
      architecture field set in both is identical; naming fields may differ or not (renamed);
    - similar: at least MIN_CORE core fields set in both, at most one of them differs, and
      identical fields outnumber differing ones two to one (a fine-tune that grew the vocabulary
      or extended the context);
    - different: anything else.
    Fields present in one config only are listed in missing and do not decide the verdict, except
    num_key_value_heads and head_dim, whose defaults (num_attention_heads, hidden/heads) are
    filled in when the other config declares them.
    """
    s, r = architecture(scanned), architecture(reference)
    _fill_defaults(s, r)
    _fill_defaults(r, s)
    identical: dict[str, Any] = {}
    differing: dict[str, tuple[Any, Any]] = {}
    missing: dict[str, tuple[Any, Any]] = {}
    for name in ARCH_FIELDS:
        if name in s and name in r:
            if _same(s[name], r[name]):
                identical[name] = s[name]
            else:
                differing[name] = (s[name], r[name])
        elif name in s or name in r:
            missing[name] = (s.get(name), r.get(name))
    renamed = {n: (s.get(n), r.get(n)) for n in NAMING_FIELDS if (n in s or n in r) and s.get(n) != r.get(n)}
    core = [n for n in CORE_FIELDS if s.get(n) is not None and r.get(n) is not None]
    core_differ = [n for n in core if n in differing]
    distinctive = [n for n in DISTINCTIVE_FIELDS if n in identical and not _common(n, identical[n])]
    if len(core) >= MIN_CORE and not differing:
        verdict = "config-copy"
    elif len(core) >= MIN_CORE and len(core_differ) <= 1 and len(identical) >= 2 * len(differing):
        verdict = "similar"
    else:
        verdict = "different"
    return ConfigComparison(identical, differing, renamed, verdict,
                            _message(verdict, identical, differing, renamed, missing, distinctive, core), missing,
                            distinctive)


def _fill_defaults(side: dict, other: dict) -> None:
    heads, hidden = side.get("num_attention_heads"), side.get("hidden_size")
    if "num_key_value_heads" not in side and "num_key_value_heads" in other and heads is not None:
        side["num_key_value_heads"] = heads
    if ("head_dim" not in side and "head_dim" in other and _as_int(heads) and _as_int(hidden)
            and hidden % heads == 0):
        side["head_dim"] = hidden // heads


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    try:
        return bool(a == b)
    except RecursionError:
        return False


def _common(name: str, value: Any) -> bool:
    if name not in _COMMON_VALUES:
        return False
    return any(_same(value, c) for c in _COMMON_VALUES[name])


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(verdict, identical, differing, renamed, missing, distinctive, core) -> str:
    names = "; ".join(f"{n} {_short(a)} (reference {_short(b)})" for n, (a, b) in renamed.items())
    if verdict == "config-copy":
        weight = (f"distinctive: {', '.join(f'{n}={_short(identical[n])}' for n in distinctive)}" if distinctive
                  else "only common values, which many unrelated models share: weak evidence on its own")
        text = f"Architecture identical to the reference's in all {len(identical)} shared fields ({weight})"
        text += f"; renamed: {names}" if names else "; same names"
        if missing:
            text += f"; set in one config only: {', '.join(missing)}"
        return text + "."
    diff = ", ".join(f"{n} {_short(a)} vs {_short(b)}" for n, (a, b) in list(differing.items())[:6])
    if verdict == "similar":
        return (f"Architecture close to the reference's: {len(identical)} fields identical, {len(differing)} differ"
                f" ({diff}){'; renamed: ' + names if names else ''}.")
    if len(core) < MIN_CORE:
        return f"Too few size fields in both configs to compare ({len(core)} of {', '.join(CORE_FIELDS)})."
    return f"Architecture differs from the reference's in {len(differing)} fields ({diff})."


# -- weights ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Contradiction:
    field: str  # the architecture field the stored shape contradicts
    declared: Any  # what the config says
    stored: Any  # what the weights say
    tensor_name: str  # the first tensor that shows it
    message: str


# Embedding tensors by checkpoint scheme: name suffix -> (scheme, layers container under the same prefix).
_EMBEDDINGS = (
    ("embed_tokens.weight", "hf", "layers"),  # Llama, Mistral, Qwen, Gemma, DeepSeek, Mixtral...
    ("wte.weight", "gpt2", "h"),  # GPT-2, GPT-J, CodeGen (transformer.wte / transformer.h.N)
    ("tok_embeddings.weight", "meta", "layers"),  # Meta's original Llama checkpoints (params.json)
    ("embed_in.weight", "neox", "layers"),  # GPT-NeoX, Pythia
)
_LM_HEADS = ("lm_head.weight", "output.weight", "embed_out.weight")
_FINAL_NORMS = ("norm.weight", "ln_f.weight", "final_layer_norm.weight")
_QUANTISED_MARKERS = (".absmax", ".quant_map", ".quant_state", ".nested_absmax", ".SCB")
# Stored embedding rows may exceed the declared vocabulary by padding: Megatron pads to a multiple
# of 128 x tensor-parallel size (at most 8 in practice), others to 64. Up to this many extra rows,
# and a multiple of 64, is padding; anything else is a contradiction.
_MAX_VOCAB_PADDING = 1024
_LAYER = re.compile(r"^(?P<n>\d+)\.(?P<rest>.+)$")
_EXPERT = re.compile(r"^(?P<moe>mlp|block_sparse_moe|feed_forward)\.experts\.(?P<e>\d+)\.(?P<proj>[A-Za-z0-9_]+)\.weight$")
_PACKED_EXPERTS = re.compile(r"^(?P<moe>mlp|block_sparse_moe|feed_forward)\.experts\.(?P<proj>gate_up_proj|down_proj|w1|w2|w3)$")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class _Checks:
    """Collects mismatches per (field, role): one Contradiction each, with how many tensors show it."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str], list] = {}  # (field, role) -> [declared, stored, first tensor, count, what]
        self.order: list[tuple[str, str]] = []

    def expect(self, field_name: str, role: str, declared: Any, stored: Any, tensor: str, what: str) -> None:
        if declared is None or stored is None or declared == stored:
            return
        key = (field_name, role)
        entry = self.found.get(key)
        if entry is None:
            self.found[key] = [declared, stored, tensor, 1, what]
            self.order.append(key)
        else:
            entry[3] += 1

    def results(self) -> list[Contradiction]:
        out = []
        for key in self.order:
            declared, stored, tensor, count, what = self.found[key]
            more = f" (and {count - 1} more tensors)" if count > 1 else ""
            out.append(Contradiction(key[0], declared, stored, tensor,
                                     f"{what}: config declares {declared}, {tensor} stores {stored}{more}."))
        return out


def check_against_weights(arch: Mapping, tensors: Iterable[tuple[str, tuple[int, ...]]]) -> list[Contradiction]:
    """Contradictions between a config's declared sizes and its weights' stored shapes.

    arch: architecture() of the config (a raw config is normalised first). tensors: (name, shape)
    of every stored tensor, e.g. from the safetensors headers of all shards. Recognises HF
    naming (model.embed_tokens, model.layers.N.self_attn.q_proj, mlp.gate_proj, mlp.experts.E...,
    block_sparse_moe.experts.E.w1, lm_head; also under a multimodal prefix such as
    model.language_model.), GPT-2 (transformer.wte, transformer.h.N.attn.c_attn, Conv1D shapes),
    Meta's original Llama (tok_embeddings, layers.N.attention.wq, feed_forward.w1, output) and
    GPT-NeoX (gpt_neox.embed_in, attention.query_key_value). Quantised matrices (packed shapes)
    are not compared; layer and expert counts still are. Never raises.
    """
    a = architecture(arch)
    shapes: dict[str, tuple[int, ...]] = {}
    for item in tensors:
        try:
            name, shape = item
            shape = tuple(int(x) for x in shape)
        except (TypeError, ValueError):
            continue
        if isinstance(name, str):
            shapes[name] = shape
    if not shapes:
        return []
    quantised = any(marker in name for name in shapes for marker in _QUANTISED_MARKERS)
    picked = _pick_scheme(shapes)
    if picked is None:
        return []
    prefix, scheme, layers_name, embed_name = picked
    hidden = _as_int(a.get("hidden_size"))
    vocab = _as_int(a.get("vocab_size"))
    heads = _as_int(a.get("num_attention_heads"))
    kv = _as_int(a.get("num_key_value_heads"))
    kv = kv if kv else heads
    head_dim = _as_int(a.get("head_dim"))
    if not head_dim and hidden and heads and hidden % heads == 0:
        head_dim = hidden // heads
    inter = _as_int(a.get("intermediate_size"))
    if scheme == "gpt2" and inter is None and hidden:
        inter = 4 * hidden  # n_inner: null (or absent) means 4 x n_embd
    moe_inter = _as_int(a.get("moe_intermediate_size"))
    experts = _as_int(a.get("num_experts"))
    checks = _Checks()
    matrices = not quantised

    def mat(name: str) -> tuple[int, ...] | None:
        shape = shapes.get(name)
        return shape if matrices and shape is not None and len(shape) == 2 else None

    # Embeddings and output head.
    embed = mat(embed_name)
    if embed is not None:
        _check_vocab(checks, vocab, embed[0], embed_name, "embedding rows")
        checks.expect("hidden_size", "embedding", hidden, embed[1], embed_name, "hidden size vs embedding width")
    head_names = [prefix + h for h in _LM_HEADS] + [h for h in _LM_HEADS]
    if prefix.endswith("model."):
        head_names.append(prefix[: -len("model.")] + "lm_head.weight")
    head_name = next((h for h in head_names if h in shapes), None)
    if head_name is not None and (head := mat(head_name)) is not None:
        _check_vocab(checks, vocab, head[0], head_name, "output head rows")
        checks.expect("hidden_size", "lm_head", hidden, head[1], head_name, "hidden size vs output head width")
    if head_name is None and a.get("tie_word_embeddings") is False and embed_name in shapes and scheme == "hf":
        checks.expect("tie_word_embeddings", "lm_head", False, "no lm_head.weight", embed_name,
                      "untied embeddings declared but no output head stored")
    for norm in _FINAL_NORMS:
        shape = shapes.get(prefix + norm)
        if shape is not None and len(shape) == 1:
            checks.expect("hidden_size", "final_norm", hidden, shape[0], prefix + norm, "hidden size vs final norm")
            break
    # Layers.
    layer_prefix = prefix + layers_name + "."
    per_layer: dict[int, dict[str, tuple[int, ...]]] = {}
    for name, shape in shapes.items():
        if name.startswith(layer_prefix):
            m = _LAYER.match(name[len(layer_prefix):])
            if m:
                per_layer.setdefault(int(m["n"]), {})[m["rest"]] = shape
    if per_layer:
        stored_layers = max(per_layer) + 1
        declared_layers = _as_int(a.get("num_hidden_layers"))
        extra = _as_int(a.get("num_nextn_predict_layers")) or 0  # DeepSeek-V3 stores its MTP layers after the others
        if declared_layers is not None and stored_layers not in (declared_layers, declared_layers + extra):
            first = min((n for n in shapes if n.startswith(f"{layer_prefix}{stored_layers - 1}.")), default=layer_prefix)
            checks.expect("num_hidden_layers", "layers", declared_layers, stored_layers, first,
                          "layer count vs highest stored layer index + 1")
    for n in sorted(per_layer):
        _check_layer(checks, scheme, f"{layer_prefix}{n}.", per_layer[n], matrices, hidden, heads, kv, head_dim,
                     inter, moe_inter, experts, a)
    return checks.results()


def _check_vocab(checks: _Checks, vocab: int | None, rows: int, name: str, what: str) -> None:
    if vocab is None or rows == vocab:
        return
    if rows > vocab and rows % 64 == 0 and rows - vocab < _MAX_VOCAB_PADDING:
        return  # padding
    checks.expect("vocab_size", name.rsplit(".", 2)[-2], vocab, rows, name, f"vocabulary size vs {what}")


def _pick_scheme(shapes: dict[str, tuple[int, ...]]) -> tuple[str, str, str, str] | None:
    """(prefix, scheme, layers container, embedding tensor) of the language model: the embedding
    with the most decoder-layer tensors under its prefix (a vision tower has layers too, but no
    token embedding next to them); a name with language_model/text_model in it wins ties."""
    best = None
    for name in shapes:
        for suffix, scheme, layers in _EMBEDDINGS:
            if name == suffix or name.endswith("." + suffix):
                prefix = name[: -len(suffix)]
                start = prefix + layers + "."
                count = sum(1 for n in shapes if n.startswith(start))
                preferred = "language_model" in prefix or "text_model" in prefix
                score = (count, preferred, -len(prefix))
                if best is None or score > best[0]:
                    best = (score, (prefix, scheme, layers, name))
    return best[1] if best else None


def _check_layer(checks: _Checks, scheme: str, at: str, rest: dict[str, tuple[int, ...]], matrices: bool,
                 hidden, heads, kv, head_dim, inter, moe_inter, experts, a: Mapping) -> None:
    def get(name: str) -> tuple[int, ...] | None:
        shape = rest.get(name)
        return shape if matrices and shape is not None and len(shape) == 2 else None

    q_out = heads * head_dim if heads and head_dim else None
    kv_out = kv * head_dim if kv and head_dim else None
    if scheme in ("hf", "meta"):
        names = (("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                  "self_attn.o_proj.weight") if scheme == "hf" else
                 ("attention.wq.weight", "attention.wk.weight", "attention.wv.weight", "attention.wo.weight"))
        q, k, v, o = (get(n) for n in names)
        if q is not None:
            checks.expect("num_attention_heads", "q_proj", q_out, q[0], at + names[0],
                          f"attention heads x head_dim ({heads} x {head_dim}) vs query projection rows")
            checks.expect("hidden_size", "q_proj_in", hidden, q[1], at + names[0], "hidden size vs query projection width")
        for shape, name in ((k, names[1]), (v, names[2])):
            if shape is not None:
                checks.expect("num_key_value_heads", name.split(".")[-2], kv_out, shape[0], at + name,
                              f"key/value heads x head_dim ({kv} x {head_dim}) vs {name.split('.')[-2]} rows")
        if o is not None:
            checks.expect("hidden_size", "o_proj", hidden, o[0], at + names[3], "hidden size vs output projection rows")
        qkv = get("self_attn.qkv_proj.weight")
        if qkv is not None and q_out and kv_out:
            checks.expect("num_key_value_heads", "qkv_proj", q_out + 2 * kv_out, qkv[0], at + "self_attn.qkv_proj.weight",
                          "(heads + 2 x kv heads) x head_dim vs fused qkv projection rows")
        dense = (("mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight") if scheme == "hf" else
                 ("feed_forward.w1.weight", "feed_forward.w3.weight", "feed_forward.w2.weight"))
        for name in dense[:2]:
            shape = get(name)
            if shape is not None:
                checks.expect("intermediate_size", "mlp_in", inter, shape[0], at + name,
                              "intermediate size vs MLP up/gate projection rows")
        down = get(dense[2])
        if down is not None:
            checks.expect("intermediate_size", "mlp_out", inter, down[1], at + dense[2],
                          "intermediate size vs MLP down projection width")
        gate_up = get("mlp.gate_up_proj.weight")
        if gate_up is not None and inter:
            checks.expect("intermediate_size", "gate_up_proj", 2 * inter, gate_up[0], at + "mlp.gate_up_proj.weight",
                          "2 x intermediate size vs fused gate/up projection rows")
    elif scheme == "gpt2":
        c_attn = get("attn.c_attn.weight")  # Conv1D: (in, out)
        if c_attn is not None:
            checks.expect("hidden_size", "c_attn", hidden, c_attn[0], at + "attn.c_attn.weight",
                          "hidden size vs attention input width")
            if q_out:
                checks.expect("num_attention_heads", "c_attn_out", 3 * q_out, c_attn[1], at + "attn.c_attn.weight",
                              "3 x heads x head_dim vs fused qkv width")
        c_fc = get("mlp.c_fc.weight")
        if c_fc is not None:
            checks.expect("intermediate_size", "c_fc", inter, c_fc[1], at + "mlp.c_fc.weight",
                          "intermediate size vs MLP width")
    elif scheme == "neox":
        qkv = get("attention.query_key_value.weight")
        if qkv is not None and hidden:
            checks.expect("hidden_size", "query_key_value", 3 * hidden, qkv[0], at + "attention.query_key_value.weight",
                          "3 x hidden size vs fused qkv rows")
        up = get("mlp.dense_h_to_4h.weight")
        if up is not None:
            checks.expect("intermediate_size", "dense_h_to_4h", inter, up[0], at + "mlp.dense_h_to_4h.weight",
                          "intermediate size vs MLP up projection rows")
    # Mixture of experts: expert indices, router rows, expert and shared-expert widths.
    expert_ids: dict[int, str] = {}  # expert index -> one of its tensors
    expert_width = moe_inter if moe_inter else inter
    for name, shape in rest.items():
        m = _EXPERT.match(name)
        if m:
            expert_ids.setdefault(int(m["e"]), name)
            if matrices and len(shape) == 2 and m["proj"] in ("gate_proj", "up_proj", "w1", "w3"):
                checks.expect("moe_intermediate_size" if moe_inter else "intermediate_size", "expert_in", expert_width,
                              shape[0], at + name, "expert intermediate size vs expert up/gate projection rows")
            continue
        m = _PACKED_EXPERTS.match(name)
        if m and len(shape) == 3:  # experts packed in one tensor: (experts, ..., ...)
            checks.expect("num_experts", "packed", experts, shape[0], at + name, "expert count vs packed expert tensor")
    if expert_ids:
        top = max(expert_ids)
        checks.expect("num_experts", "experts", experts if "num_experts" in a else "no experts", top + 1,
                      at + expert_ids[top], "expert count vs highest stored expert index + 1")
    for router in ("mlp.gate.weight", "block_sparse_moe.gate.weight", "feed_forward.gate.weight"):
        shape = rest.get(router)
        if shape is not None and len(shape) == 2 and matrices:
            checks.expect("num_experts", "router", experts, shape[0], at + router, "expert count vs router rows")
    shared = get("mlp.shared_expert.gate_proj.weight")  # Qwen-MoE: one shared expert of its own width
    if shared is not None:
        checks.expect("shared_expert_intermediate_size", "shared_expert", _as_int(a.get("shared_expert_intermediate_size")),
                      shared[0], at + "mlp.shared_expert.gate_proj.weight",
                      "shared expert intermediate size vs its gate projection rows")
    shared = get("mlp.shared_experts.gate_proj.weight")  # DeepSeek: n shared experts fused, each moe_intermediate wide
    n_shared = _as_int(a.get("n_shared_experts"))
    if shared is not None and moe_inter and n_shared:
        checks.expect("n_shared_experts", "shared_experts", moe_inter * n_shared, shared[0],
                      at + "mlp.shared_experts.gate_proj.weight",
                      "shared experts x moe intermediate size vs shared experts' gate projection rows")
