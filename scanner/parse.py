"""Parse Python into fragments (tree-sitter) and two token channels (a byte-level lexer).

Channels (DESIGN §4), one token per lexical token, each with its 1-based line:
- abstract: identifiers -> ID, strings -> STR, numbers -> NUM; robust to renaming;
- concrete: identifiers and literals as written; strong evidence when names survive.
Comments and docstrings (string-only statements) are not tokens; they are kept aside for
attribution. Invalid code never raises: tree-sitter yields ERROR nodes, which we record.

Why two tools: tree-sitter gives the structure (definitions with their decorators, imports,
errors) from a query that runs in C; walking every node from Python to collect tokens cost as
much as the parse itself (2.5 MB/s in all), while one compiled regular expression over the
bytes lexes at ~9 MB/s. Both work on bytes, so tree-sitter's byte offsets index the lexer's
tokens directly.

The lexer and the token hashing also exist compiled (scanner/_lex.c, ~13x faster on transformers):
the compiled one returns token hashes only, the Python one (`parse_unit(..., tokens=True)`, or
when the extension was not built) keeps the token strings as well. Both give identical hashes,
lines and comments (tests/test_speedups.py).
"""

from __future__ import annotations

import keyword
import re
from itertools import compress
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from scanner.walk import SourceUnit

if TYPE_CHECKING:
    import numpy as np

# Concrete string literals are capped so that a huge literal does not become a huge token.
_MAX_LITERAL = 200
# Hard keywords (and True/False/None) are the same in both channels; soft keywords
# (match, case, type, _) are names, as they are everywhere but in their own statements.
_KEYWORDS = frozenset(keyword.kwlist)
# One token per match: the group, without the whitespace before it. Newlines, continuations and
# comments are tokens too (they give line numbers, then leave the channels). Alternatives are
# ordered by frequency (operators, then newlines...), which makes `findall` ~30 % faster; string
# literals come before names because of their prefixes (r"", b'', f""). String bodies are matched
# possessively, one run of plain characters at a time: a backtracking `(?:x|y)*` keeps state per
# character, and a 50 MB string literal cost 7 GB and 25 s; a possessive run costs nothing. Each
# alternative inside a body is decided by its first character, so nothing matches differently.
_TOKEN = re.compile(
    rb"""[ \t\f]*(
     \*\*=|//=|>>=|<<=|\.\.\.|->|:=|[-+*/%&|^@<>=!]=|\*\*|//|<<|>>|[-+*/%&|^~<>()\[\]{},:;=@]|\.(?![0-9])
    |\r?\n|\r|\\\r?\n
    |(?:[rRbBuUfFtT]{1,2})?(?:\"\"\"(?:[^"\\]++|\\.|"(?!""))*+\"\"\"|\'\'\'(?:[^'\\]++|\\.|'(?!''))*+\'\'\'
        |"(?:[^"\\\r\n]++|\\.)*+"|'(?:[^'\\\r\n]++|\\.)*+')
    |[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*
    |0[xXoObB][0-9a-fA-F_]+|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?[jJ]?
    |\#[^\r\n]*
    |[^ \t\f\r\n]
    )""",
    re.VERBOSE | re.DOTALL,
)
_STRUCTURE_QUERY = """
[(function_definition) (class_definition)] @def
[(import_statement) (import_from_statement)] @import
"""


def _compiled_lexer():
    """scanner._lex when it was built for this Python's keywords, else None."""
    from signatures import compiled

    module = compiled("scanner._lex")
    return module if module is not None and module.KEYWORDS == tuple(keyword.kwlist) else None


_COMPILED = _compiled_lexer()


@dataclass
class Fragment:
    kind: str  # module | cell | class | function | method
    symbol: str | None  # qualified name, e.g. "Attention.forward"; None for module/cell
    start_line: int  # 1-based, inclusive, decorators included
    end_line: int
    tok_start: int  # token slice [tok_start, tok_end) in the unit's channels
    tok_end: int
    parent: int | None  # index of the enclosing fragment in ParsedUnit.fragments
    depth: int

    @property
    def tokens(self) -> int:
        return self.tok_end - self.tok_start


@dataclass
class Import:
    line: int
    module: str  # dotted module, e.g. "transformers.models.llama.modeling_llama"
    names: tuple[str, ...]  # imported names for `from m import a, b`; () for `import m`


@dataclass
class ParsedUnit:
    path: str
    cell: int | None
    text: str  # decoded source (invalid UTF-8 replaced)
    abstract: list[bytes]  # tokens as bytes, when kept (tokens=True or a config); see hashes
    concrete: list[bytes]
    lines: "np.ndarray"  # int32 line of each token
    fragments: list[Fragment]
    comments: list[tuple[int, str]]  # (line, text) of comments and docstring lines
    imports: list[Import]
    error_lines: list[int] = field(default_factory=list)  # lines holding syntax errors
    invalid_utf8: bool = False
    # (abstract, concrete) uint64 token hashes when the compiled lexer gave no token strings;
    # None: hash abstract and concrete (signatures.shingles.token_hashes).
    hashes: "tuple[np.ndarray, np.ndarray] | None" = None

    @cached_property
    def line_texts(self) -> list[str]:
        return self.text.split("\n")


@lru_cache(maxsize=1)
def _language():
    import tree_sitter_python
    from tree_sitter import Language

    return Language(tree_sitter_python.language())


@lru_cache(maxsize=1)
def _parser():
    from tree_sitter import Parser

    return Parser(_language())


@lru_cache(maxsize=1)
def _query():
    from tree_sitter import Query

    return Query(_language(), _STRUCTURE_QUERY)


def _text(node) -> str:
    return node.text.decode("utf-8", errors="replace")


def _dotted(node) -> str:
    return "".join(_text(node).split())


def _imports(node) -> list[Import]:
    line = node.start_point[0] + 1
    names = []
    for child in node.children_by_field_name("name"):
        if child.type == "aliased_import":
            child = child.child_by_field_name("name") or child
        names.append(_dotted(child))
    if node.type == "import_statement":
        return [Import(line, name, ()) for name in names]
    module = node.child_by_field_name("module_name")
    return [Import(line, _dotted(module), tuple(names))] if module is not None else []


@dataclass
class _Tokens:
    abstract: list[bytes]
    concrete: list[bytes]
    lines: "np.ndarray"  # int32 line of each token, non-decreasing
    comments: list[tuple[int, str]]


# Abstract tokens. Kinds starting with '#' leave both channels: newlines (and continuations,
# which also end a line), comments, and a lone carriage return (no line for tree-sitter).
_NL, _COMMENT, _SKIP = b"#nl", b"#comment", b"#skip"
_ID, _NUM, _STR = b"ID", b"NUM", b"STR"
_KEYWORD_BYTES = frozenset(k.encode() for k in _KEYWORDS)
_QUOTES = frozenset(b"'\"")
# Token -> abstract token memo, shared by the units a process lexes; only short tokens are kept.
_ABSTRACT: dict[bytes, bytes] = {}


def _classify(tok: bytes) -> bytes:
    first = tok[0]
    if first == 35:  # '#'
        return _COMMENT
    if tok[-1] == 10 or tok == b"\\\r\n":
        return _NL
    if first == 13:  # a lone '\r'
        return _SKIP
    if tok[-1] in _QUOTES and (first in _QUOTES or tok[1] in _QUOTES or (len(tok) > 2 and tok[2] in _QUOTES)):
        return _STR
    if 48 <= first <= 57 or (first == 46 and len(tok) > 1 and 48 <= tok[1] <= 57):
        return _NUM
    if first == 95 or 65 <= first <= 90 or 97 <= first <= 122 or first >= 128:
        return tok if tok in _KEYWORD_BYTES else _ID
    return tok


def _abstract(tok: bytes) -> bytes:
    a = _classify(tok)
    if len(tok) <= 40:
        if len(_ABSTRACT) > 500_000:
            _ABSTRACT.clear()
        _ABSTRACT[tok] = a
    return a


def _positions(items: list, value: bytes) -> list[int]:
    """Indices of value in items, found by list.index (a C scan): fast when value is rare."""
    out, i = [], -1
    try:
        while True:
            i = items.index(value, i + 1)
            out.append(i)
    except ValueError:
        return out


def _lex(data: bytes, docstrings: list[tuple[int, int]]) -> _Tokens:
    """Tokens of both channels; comments and docstrings set aside.

    The hot spot of fingerprinting (millions of tokens per reference), so everything per token
    runs in C: one `findall`, a memoised classification, `itertools.compress` filtering, and
    numpy for line numbers, which count the newline tokens (and newlines inside strings) before
    each token. `docstrings` are the line spans of docstrings, from tree-sitter.
    """
    import numpy as np

    toks = _TOKEN.findall(data)
    kinds = list(map(_ABSTRACT.get, toks))  # a C loop; the few unseen tokens are classified below
    for i in _positions(kinds, None):
        kinds[i] = _abstract(toks[i])
    n = len(toks)
    newline = np.fromiter(map(_NL.__eq__, kinds), dtype=bool, count=n)
    ends_line = newline.astype(np.int32)
    strings_all = _positions(kinds, _STR)
    for i in strings_all:
        inner = toks[i].count(b"\n")
        if inner:
            ends_line[i] = inner
    line_of = (np.cumsum(ends_line) - ends_line + 1).astype(np.int32)
    comment_at = _positions(kinds, _COMMENT)
    comments = [(int(line_of[i]), toks[i].decode("utf-8", errors="replace")) for i in comment_at]
    mask = ~newline  # what leaves the channels: newlines, comments, lone carriage returns
    mask[comment_at] = False
    mask[_positions(kinds, _SKIP)] = False
    keep = mask.tolist()
    abstract = list(compress(kinds, keep))
    concrete = list(compress(toks, keep))
    lines = line_of[mask]
    # Strings: adjacent literals are one (implicit concatenation); docstrings leave the channels.
    strings = _positions(abstract, _STR)
    drop = [j for j in strings if j and abstract[j - 1] is _STR]
    for j in strings:
        if len(concrete[j]) > _MAX_LITERAL:
            concrete[j] = concrete[j][:_MAX_LITERAL]
    if docstrings and strings:
        at = np.asarray(strings)
        string_lines = lines[at]
        for first, last in docstrings:
            lo, hi = np.searchsorted(string_lines, first, "left"), np.searchsorted(string_lines, last, "right")
            drop.extend(at[lo:hi].tolist())
    if drop:
        keep_mask = np.ones(len(abstract), dtype=bool)
        keep_mask[drop] = False
        keep = keep_mask.tolist()
        abstract = list(compress(abstract, keep))
        concrete = list(compress(concrete, keep))
        lines = lines[keep_mask]
    return _Tokens(abstract, concrete, lines, comments)


def error_lines(root) -> list[int]:
    """Lines of ERROR and MISSING nodes; descends only into subtrees that have errors."""
    if not root.has_error:
        return []
    lines: set[int] = set()
    cursor = root.walk()
    while True:
        node = cursor.node
        if node.type == "ERROR" or node.is_missing:
            lines.add(node.start_point[0] + 1)
        if node.has_error and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return sorted(lines)


def _blank_comments(data: bytes) -> bytes:
    """data with every comment (as the lexer sees them) replaced by spaces: same offsets, same lines."""
    out = bytearray(data)
    for m in _TOKEN.finditer(data):
        if data[m.start(1)] == 35:  # '#'
            out[m.start(1):m.end(1)] = b" " * (m.end(1) - m.start(1))
    return bytes(out)


# The anchor tokens of definitions and imports: the keyword, its length, the types of its parent.
_ANCHORS = {ord("d"): (3, "def", ("function_definition",)), ord("c"): (5, "class", ("class_definition",)),
            ord("i"): (6, "import", ("import_statement", "import_from_statement")),
            ord("f"): (4, "from", ("import_from_statement",))}


def anchor_offsets(data: bytes) -> list[int]:
    """Byte offsets of the tokens def, class, import and from (scanner._lex.anchors when built)."""
    if _COMPILED is not None:
        return _COMPILED.anchors(data)
    return [m.start(1) for m in _TOKEN.finditer(data) if m.group(1) in _ANCHOR_WORDS]


_ANCHOR_WORDS = frozenset(word.encode() for _, word, _ in _ANCHORS.values())


def query_structure(root) -> tuple[list, list]:
    """(definitions, imports) as the structure query finds them: every node is visited."""
    from tree_sitter import QueryCursor

    captures = QueryCursor(_query()).captures(root)
    return (sorted(captures.get("def", []), key=lambda n: (n.start_byte, -n.end_byte)),
            sorted(captures.get("import", []), key=lambda n: n.start_byte))


def structure(root, data: bytes, imports: bool = True) -> tuple[list, list]:
    """(definitions, imports): function/class definition and import nodes, in document order.

    The structure query walks every node of the tree (3.1 s of CPU on transformers, against ~9 s for
    the parse itself).
    A clean tree is instead entered at the lexer's def/class/import/from tokens: each keyword's
    parent is the statement, when it is one (`yield from`, `raise ... from` and `from __future__`
    are not). Lexer and grammar agree on what is code in a tree without errors (tests compare the
    two on real and generated code); a tree with errors keeps the query, which sees every node.
    """
    if root.has_error:
        return query_structure(root)
    defs, import_nodes = [], []
    last_import = -1
    for at in anchor_offsets(data):
        length, word, parents = _ANCHORS[data[at]]
        if not imports and length in (4, 6):  # from, import
            continue
        node = root.descendant_for_byte_range(at, at + length)
        parent = node.parent
        if parent is None or parent.type not in parents or node.type != word:
            continue
        if word in ("def", "class"):
            defs.append(parent)
        elif parent.start_byte != last_import:  # `from m import x`: two anchors, one statement
            import_nodes.append(parent)
            last_import = parent.start_byte
    return defs, import_nodes


def _first_statement(body):
    """The first statement of a module or block: comments (tree-sitter extras) are not statements, so
    a docstring after a comment (`# Copyright ...` above a module docstring) is still the docstring."""
    if body is None:
        return None
    for i in range(body.named_child_count):
        child = body.named_child(i)
        if child.type != "comment":
            return child
    return None


_LONE_CR = re.compile(rb"\r(?!\n)")


def python_newlines(data: bytes) -> bytes:
    """data with each lone carriage return made a newline.

    Python reads \r\n, \r and \n alike as line ends (a file with \r alone runs), while tree-sitter
    and the lexer count \n: unread, such a file was one long line that parsed to errors, and the
    copies in it went unfound. The length is the same, so byte offsets stay."""
    return _LONE_CR.sub(b"\n", data) if b"\r" in data else data


def decode_source(data: bytes) -> tuple[str, bool]:
    """(text, whether invalid UTF-8 was replaced)."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), True


def _lex_hashes(data: bytes, docstrings: list[tuple[int, int]]):
    """The compiled lexer: (abstract hashes, concrete hashes, lines, comments)."""
    import numpy as np

    abstract, concrete, lines, comments = _COMPILED.lex(data, docstrings)
    return (np.frombuffer(abstract, dtype=np.uint64), np.frombuffer(concrete, dtype=np.uint64),
            np.frombuffer(lines, dtype=np.int32), comments)


@dataclass(frozen=True)
class Syntax:
    """What parse_unit takes from tree-sitter, as plain values: a function of the source bytes
    alone (and of keep_imports), so it can be kept by content (scanner.parsecache) and the parse
    skipped when the same bytes come again.

    defs: (start byte, end byte, first line with decorators, last line, name, is a class), in
    document order; docstrings: (first line, last line, start byte, end byte) of string-only first
    statements, the module's first, then each definition's; imports: (line, module, names).
    """

    defs: tuple[tuple[int, int, int, int, str, bool], ...]
    docstrings: tuple[tuple[int, int, int, int], ...]
    imports: tuple[tuple[int, str, tuple[str, ...]], ...]
    error_lines: tuple[int, ...]


def parse_syntax(data: bytes, keep_imports: bool = True, outline: bool = False) -> Syntax:
    """tree-sitter's part of parse_unit: definitions, docstrings, imports and syntax errors.

    outline: parse outline_source(data) instead, when it parses without errors; else data. For a
    stored reference, whose syntax errors are not reported and whose imports are not kept (an
    outline cuts the names of `from m import (a, b)`): keep_imports must be False.
    """
    if outline and keep_imports:
        raise ValueError("an outline does not keep imports")
    data = python_newlines(data)
    if outline:
        cut, cuts = outline_source(data)
        if cuts:
            root = _parser().parse(cut).root_node
            if not root.has_error:
                return _syntax(root, cut, keep_imports, cuts)
            root = None
    root = _parser().parse(data).root_node
    if root.has_error and b"#" in data:
        # tree-sitter-python mis-parses some valid code around comments (a comment line indented
        # less than the block, between a decorator and its def, turns the decorator into an ERROR).
        # Comments carry no structure: when the code parses cleanly without them, use that tree.
        # One tree at a time (a large broken file's tree is most of its memory): the first is
        # dropped before the retry and parsed again only if the retry fails too.
        root = None
        root = _parser().parse(_blank_comments(data)).root_node
        if root.has_error:
            root = None
            root = _parser().parse(data).root_node
    return _syntax(root, data, keep_imports)


def _syntax(root, data: bytes, keep_imports: bool, cuts: bytes = b"") -> Syntax:
    """The Syntax of a tree of data; cuts: the offset map when data is an outline (outline_source)."""
    def_nodes, import_nodes = structure(root, data, keep_imports)
    if not keep_imports:
        import_nodes = []  # a tree with errors: the query found them anyway
    docstrings = []
    for body in [root] + [d.child_by_field_name("body") for d in def_nodes]:
        first_statement = _first_statement(body)
        if (first_statement is not None and first_statement.type == "expression_statement"
                and first_statement.named_child_count == 1
                and first_statement.named_children[0].type in ("string", "concatenated_string")):
            docstrings.append((first_statement.start_point[0] + 1, first_statement.end_point[0] + 1,
                               first_statement.start_byte, first_statement.end_byte))
    defs = []
    for node in def_nodes:
        up = node.parent  # tree-sitter finds a parent by walking down from the root: ask once
        outer = up if up is not None and up.type == "decorated_definition" else node
        name_node = node.child_by_field_name("name")
        # The last line is that of the node's last byte: a node that ends at column 0 (broken code
        # whose definition swallowed a trailing line continuation) ends on the line before.
        end_row, end_column = node.end_point
        start_line = outer.start_point[0] + 1
        defs.append((node.start_byte, node.end_byte, start_line, max(start_line, end_row + (1 if end_column else 0)),
                     _text(name_node) if name_node is not None else "?", node.type == "class_definition"))
    imports = [(imp.line, imp.module, imp.names) for node in import_nodes for imp in _imports(node)]
    if cuts:  # byte offsets back to the source's (lines are the same: an outline keeps every newline)
        starts = _source_offsets(cuts, [d[0] for d in defs] + [d[2] for d in docstrings])
        ends = _source_offsets(cuts, [d[1] for d in defs] + [d[3] for d in docstrings])
        defs = [(s, e) + d[2:] for s, e, d in zip(starts, ends, defs)]
        docstrings = [d[:2] + (s, e) for s, e, d in zip(starts[len(defs):], ends[len(defs):], docstrings)]
    return Syntax(tuple(defs), tuple(docstrings), tuple(imports), tuple(error_lines(root)))


def outline_source(data: bytes) -> tuple[bytes, bytes]:
    """(outline, offset map): the source with what definitions do not depend on cut short, for
    tree-sitter, whose cost is per token: 0.6x the parse time on transformers.

    Cut: the inside of each outermost bracket pair, (...), [...] and {...}, and the body of each
    string literal outside brackets (not f- or t-strings, whose braces hold code; not a one-quote
    string continued with a backslash). Each cut becomes `x`, its newlines, and the last line's
    width in spaces, so lines and the closing bracket's or quote's column stay. Definitions,
    decorators and docstrings are never inside brackets, so in code that parses without errors
    they keep their lines, names and nesting, and their byte offsets map back through the offset
    map (int64 pairs: outline offset after a cut, source minus outline offset from there on).

    What an outline cannot show is a syntax error inside brackets: parse_syntax falls back to the
    source when the outline has errors, but an outline without errors does not prove the source
    has none. So only stored references, whose syntax errors are not reported, are outlined; the
    scanned code is parsed whole.
    """
    if _COMPILED is not None:
        return _COMPILED.outline(data)
    import numpy as np

    out, pairs = [], []
    copied = written = 0
    depth = open_end = inner = 0

    def cut(a: int, b: int) -> None:
        nonlocal copied, written
        piece = data[a:b]
        nl = piece.count(b"\n")
        tail = b - piece.rfind(b"\n") - 1 - a if nl else 0
        if 1 + nl + tail >= b - a:
            return
        out.append(data[copied:a])
        out.append(b"x" + b"\n" * nl + b" " * tail)
        written += a - copied + 1 + nl + tail
        copied = b
        pairs.append((written, copied - written))

    for m in _TOKEN.finditer(data):
        tok, p = m.group(1), m.start(1)
        kind = _classify(tok)
        if tok in (b"(", b"[", b"{"):
            if depth == 0:
                open_end, inner = p + 1, 0
            else:
                inner += 1
            depth += 1
        elif tok in (b")", b"]", b"}"):
            if depth == 1 and inner:
                cut(open_end, p)
            if depth > 1:
                inner += 1
            depth = max(0, depth - 1)
        elif depth:
            inner += kind is not _NL
        elif kind is _STR and len(tok) >= 2:
            q = min(i for i in (tok.find(b'"'), tok.find(b"'")) if i >= 0)
            body, end = p + q + 1, p + len(tok) - 1
            if len(tok) - q >= 6 and tok[q + 1] == tok[q + 2] == tok[q]:
                body, end = p + q + 3, p + len(tok) - 3
            continued = body == p + q + 1 and (b"\n" in data[body:end] or b"\r" in data[body:end])
            if not any(c in b"fFtT" for c in tok[:q]) and not continued and end > body:
                cut(body, end)
    out.append(data[copied:])
    return b"".join(out), np.asarray(pairs, dtype=np.int64).tobytes()


def _source_offsets(cuts: bytes, offsets: list[int]) -> list[int]:
    """Outline offsets (outline_source) as source offsets."""
    import numpy as np

    pairs = np.frombuffer(cuts, dtype=np.int64).reshape(-1, 2)
    at = np.searchsorted(pairs[:, 0], offsets, "right") - 1
    return (np.asarray(offsets, dtype=np.int64) + np.where(at >= 0, pairs[at, 1], 0)).tolist()


def parse_unit(unit: SourceUnit, tokens: bool = False, keep_imports: bool = True,
               syntax: Syntax | None = None) -> ParsedUnit:
    """Fragments, token channels and comments of one Python unit.

    tokens: keep the token strings (the Python lexer), for inspection; otherwise the compiled
    lexer, when built, gives the token hashes only. keep_imports: False leaves ParsedUnit.imports
    empty (a stored reference does not keep them). syntax: parse_syntax(unit.data, keep_imports),
    when already known.
    """
    data = python_newlines(unit.data)
    text, invalid = decode_source(data)
    if syntax is None:
        syntax = parse_syntax(data, keep_imports)
    comments: list[tuple[int, str]] = []
    for first, _, start, end in syntax.docstrings:
        for offset, piece in enumerate(data[start:end].decode("utf-8", errors="replace").split("\n")):
            comments.append((first + offset, piece))
    docstrings = [(first, last) for first, last, _, _ in syntax.docstrings]
    if _COMPILED is not None and not tokens:
        abs_hash, con_hash, lines, lexed_comments = _lex_hashes(data, docstrings)
        toks = _Tokens([], [], lines, lexed_comments)
        hashes, n_tokens = (abs_hash, con_hash), len(lines)
    else:
        toks = _lex(data, docstrings)
        hashes, n_tokens = None, len(toks.abstract)
    comments = sorted(comments + toks.comments)
    lines = toks.lines
    n_lines = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    fragments = [Fragment("cell" if unit.cell else "module", None, 1, n_lines, 0, n_tokens, None, 0)]
    imports = [Import(line, module, names) for line, module, names in syntax.imports]
    # Definitions in document order; a stack of the open ones gives nesting and qualified names.
    # A definition owns the tokens of its lines: in Python no other statement shares them.
    stack: list[tuple[int, int, str]] = []  # (end byte, fragment index, name)
    for start_byte, end_byte, start_line, end_line, name, is_class in syntax.defs:
        while stack and stack[-1][0] <= start_byte:
            stack.pop()
        parent = stack[-1][1] if stack else 0
        kind = "class" if is_class else ("method" if fragments[parent].kind == "class" else "function")
        qualified = ".".join([entry[2] for entry in stack] + [name])
        fragments.append(Fragment(kind, qualified, start_line, end_line, 0, 0, parent, len(stack) + 1))
        stack.append((end_byte, len(fragments) - 1, name))
    if len(fragments) > 1:  # token ranges of all definitions in two calls (numpy calls cost microseconds each)
        defined = fragments[1:]
        starts = lines.searchsorted([f.start_line for f in defined], "left").tolist()
        ends = lines.searchsorted([f.end_line for f in defined], "right").tolist()
        for frag, tok_start, tok_end in zip(defined, starts, ends):
            frag.tok_start, frag.tok_end = tok_start, tok_end
    return ParsedUnit(unit.path, unit.cell, text, toks.abstract, toks.concrete, lines, fragments, comments,
                      imports, list(syntax.error_lines), invalid, hashes)
