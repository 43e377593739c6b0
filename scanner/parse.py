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
"""

from __future__ import annotations

import keyword
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from scanner.walk import SourceUnit

# Concrete string literals are capped so that a huge literal does not become a huge token.
_MAX_LITERAL = 200
# Hard keywords (and True/False/None) are the same in both channels; soft keywords
# (match, case, type, _) are names, as they are everywhere but in their own statements.
_KEYWORDS = frozenset(keyword.kwlist)
_TOKEN = re.compile(
    rb"""[ \t\f]*(?:\\\r?\n[ \t\f]*)*(?:
     (?P<nl>\r?\n|\r)
    |(?P<comment>\#[^\r\n]*)
    |(?P<str>(?:[rRbBuUfFtT]{1,2})?(?:\"\"\"(?:[^\\]|\\.)*?\"\"\"|\'\'\'(?:[^\\]|\\.)*?\'\'\'
        |"(?:[^"\\\r\n]|\\.)*"|'(?:[^'\\\r\n]|\\.)*'))
    |(?P<name>[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)
    |(?P<num>0[xXoObB][0-9a-fA-F_]+|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?[jJ]?)
    |(?P<op>\*\*=|//=|>>=|<<=|\.\.\.|->|:=|[-+*/%&|^@<>=!]=|\*\*|//|<<|>>|[-+*/%&|^~<>()\[\]{},:;.=@])
    |(?P<other>[^ \t\f\r\n])
    )""",
    re.VERBOSE | re.DOTALL,
)
_OPEN = frozenset((b"(", b"[", b"{"))
_CLOSE = frozenset((b")", b"]", b"}"))
_STRUCTURE_QUERY = """
[(function_definition) (class_definition)] @def
[(import_statement) (import_from_statement)] @import
"""


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
    abstract: list[bytes]  # tokens as bytes; emptied once the unit is fingerprinted (hashes are kept)
    concrete: list[bytes]
    lines: "np.ndarray"  # int32 line of each token
    fragments: list[Fragment]
    comments: list[tuple[int, str]]  # (line, text) of comments and docstring lines
    imports: list[Import]
    error_lines: list[int] = field(default_factory=list)  # lines holding syntax errors
    invalid_utf8: bool = False

    @property
    def line_count(self) -> int:
        return self.text.count("\n") + (0 if self.text.endswith("\n") else 1)

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
    starts: list[int]  # byte offset of each token
    lines: "np.ndarray"  # int32 line of each token
    comments: list[tuple[int, str]]


# Group numbers of _TOKEN, compared as integers in the hot loop.
_NL, _COMMENT, _STR, _NAME, _NUM, _OP, _OTHER = range(1, 8)
_KEYWORD_BYTES = frozenset(k.encode() for k in _KEYWORDS)
_ID, _NUM_TOKEN, _STR_TOKEN, _SEMI = b"ID", b"NUM", b"STR", b";"


def _lex(data: bytes) -> _Tokens:
    """Tokens of both channels; comments and string-only statements (docstrings) set aside.

    The loop is the hot spot of fingerprinting (a few million tokens per reference), hence the
    integer group numbers, bound methods and bytes tokens (hashed as they are, never decoded).
    """
    import numpy as np

    abstract: list[bytes] = []
    concrete: list[bytes] = []
    starts: list[int] = []
    comment_at: list[tuple[int, bytes]] = []  # (byte offset, text)
    add_a, add_c, add_s = abstract.append, concrete.append, starts.append
    depth = 0  # bracket depth: newlines inside brackets do not end a statement
    line_start = True  # at the start of a logical line: a string here may be a whole statement
    run: list[tuple[int, int]] = []  # adjacent string literals (implicit concatenation)
    run_at_start = False

    def flush(statement_ends: bool) -> None:
        """Emit the string run: aside as a docstring if it is the whole statement, else as one STR."""
        first, last = run[0][0], run[-1][1]
        if run_at_start and statement_ends:
            comment_at.append((first, data[first:last]))
        else:
            add_a(_STR_TOKEN)
            add_c(data[first:last][:_MAX_LITERAL])
            add_s(first)
        run.clear()

    for m in _TOKEN.finditer(data):
        k = m.lastindex
        if k == _NAME or k == _OP or k == _NUM or k == _OTHER:
            raw = m.group(k)
            if run:
                flush(raw == _SEMI and depth == 0)
            if k == _NAME:
                add_a(raw if raw in _KEYWORD_BYTES else _ID)
                line_start = False
            elif k == _NUM:
                add_a(_NUM_TOKEN)
                line_start = False
            else:
                if raw in _OPEN:
                    depth += 1
                elif raw in _CLOSE and depth:
                    depth -= 1
                add_a(raw)
                line_start = raw == _SEMI and depth == 0
            add_c(raw)
            add_s(m.start(k))
        elif k == _NL:
            if depth == 0:
                if run:
                    flush(True)
                line_start = True
        elif k == _STR:
            if not run:
                run_at_start = line_start
            run.append(m.span(k))
            line_start = False
        else:  # comment
            comment_at.append((m.start(k), m.group(k)))
    if run:
        flush(True)
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    lines = (np.searchsorted(newlines, np.asarray(starts, dtype=np.int64)) + 1).astype(np.int32)
    comments: list[tuple[int, str]] = []
    for offset, raw in comment_at:
        line = int(np.searchsorted(newlines, offset)) + 1
        for i, piece in enumerate(raw.decode("utf-8", errors="replace").split("\n")):
            comments.append((line + i, piece))
    comments.sort()
    return _Tokens(abstract, concrete, starts, lines, comments)


def _error_lines(root) -> list[int]:
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


def parse_unit(unit: SourceUnit) -> ParsedUnit:
    from tree_sitter import QueryCursor

    data = unit.data
    try:
        text = data.decode("utf-8")
        invalid = False
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        invalid = True
    root = _parser().parse(data).root_node
    toks = _lex(data)
    n_lines = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    fragments = [Fragment("cell" if unit.cell else "module", None, 1, n_lines, 0, len(toks.abstract), None, 0)]
    captures = QueryCursor(_query()).captures(root)
    imports = [imp for node in sorted(captures.get("import", []), key=lambda n: n.start_byte) for imp in _imports(node)]
    # Definitions in document order; a stack of the open ones gives nesting and qualified names.
    stack: list[tuple[int, int, str]] = []  # (end byte, fragment index, name)
    for node in sorted(captures.get("def", []), key=lambda n: (n.start_byte, -n.end_byte)):
        outer = node.parent if node.parent is not None and node.parent.type == "decorated_definition" else node
        while stack and stack[-1][0] <= node.start_byte:
            stack.pop()
        parent = stack[-1][1] if stack else 0
        name_node = node.child_by_field_name("name")
        name = _text(name_node) if name_node is not None else "?"
        kind = "class" if node.type == "class_definition" else (
            "method" if fragments[parent].kind == "class" else "function")
        tok_start = bisect_left(toks.starts, outer.start_byte)
        tok_end = bisect_left(toks.starts, node.end_byte)
        qualified = ".".join([entry[2] for entry in stack] + [name])
        fragments.append(Fragment(kind, qualified, outer.start_point[0] + 1, node.end_point[0] + 1, tok_start,
                                  tok_end, parent, len(stack) + 1))
        stack.append((node.end_byte, len(fragments) - 1, name))
    return ParsedUnit(unit.path, unit.cell, text, toks.abstract, toks.concrete, toks.lines, fragments, toks.comments,
                      imports, _error_lines(root), invalid)
