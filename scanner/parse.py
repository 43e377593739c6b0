"""Parse Python with tree-sitter into fragments and two token channels.

Channels (DESIGN §4), one token per leaf, each with its 1-based line:
- abstract: identifiers -> ID, strings -> STR, numbers -> NUM; robust to renaming;
- concrete: identifiers and literals as written; strong evidence when names survive.
Comments and docstrings (string-only statements) are not tokens; they are kept aside for
attribution. Invalid code never raises: tree-sitter yields ERROR nodes, which we record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from scanner.walk import SourceUnit

_DEFINITIONS = {"function_definition", "class_definition"}
_STRINGS = {"string", "concatenated_string"}
_NUMBERS = {"integer", "float"}
# Concrete string literals are capped so that a huge literal does not become a huge token.
_MAX_LITERAL = 200


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
    abstract: list[str]
    concrete: list[str]
    lines: list[int]  # line of each token
    fragments: list[Fragment]
    comments: list[tuple[int, str]]  # (line, text) of comments and docstring lines
    imports: list[Import]
    error_lines: list[int] = field(default_factory=list)  # lines holding syntax errors
    invalid_utf8: bool = False

    @property
    def line_count(self) -> int:
        return self.text.count("\n") + (0 if self.text.endswith("\n") else 1)


@lru_cache(maxsize=1)
def _parser():
    import tree_sitter_python
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_python.language()))


def _text(node) -> str:
    return node.text.decode("utf-8", errors="replace")


def _is_docstring(node) -> bool:
    """A statement that is only a string literal: a docstring or a string used as a comment."""
    if node.type != "expression_statement" or node.named_child_count != 1:
        return False
    return node.named_children[0].type in _STRINGS


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


def parse_unit(unit: SourceUnit) -> ParsedUnit:
    data = unit.data
    try:
        text = data.decode("utf-8")
        invalid = False
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        invalid = True
    tree = _parser().parse(data)
    root = tree.root_node

    abstract: list[str] = []
    concrete: list[str] = []
    lines: list[int] = []
    comments: list[tuple[int, str]] = []
    imports: list[Import] = []
    errors: list[int] = []
    n_lines = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    fragments = [Fragment("cell" if unit.cell else "module", None, 1, n_lines, 0, 0, None, 0)]
    # Open definitions: (fragment index, node id of the definition, name).
    open_defs: list[tuple[int, int, str]] = []

    def enter(node) -> bool:
        """Handle a node on the way down; return whether to visit its children."""
        t = node.type
        if node.child_count == 0:  # leaves first: most nodes are leaves
            if node.is_missing:
                errors.append(node.start_point[0] + 1)
                return False
            line = node.start_point[0] + 1
            text = node.text.decode("utf-8", errors="replace")
            if t == "identifier":
                abstract.append("ID")
            elif t == "comment":
                comments.append((line, text))
                return False
            elif t in _NUMBERS:
                abstract.append("NUM")
            elif t == "line_continuation" or node.parent is None or not text.strip():
                return False
            else:  # keywords, operators, punctuation, True/False/None: the same in both channels
                abstract.append(text)
            concrete.append(text)
            lines.append(line)
            return False
        if t in _STRINGS:
            abstract.append("STR")
            concrete.append(_text(node)[:_MAX_LITERAL])
            lines.append(node.start_point[0] + 1)
            return False
        if t in _DEFINITIONS:
            name_node = node.child_by_field_name("name")
            name = _text(name_node) if name_node is not None else "?"
            outer = node.parent if node.parent is not None and node.parent.type == "decorated_definition" else node
            parent_frag = open_defs[-1][0] if open_defs else 0
            parent_kind = fragments[parent_frag].kind
            kind = "class" if t == "class_definition" else ("method" if parent_kind == "class" else "function")
            qual = ".".join([d[2] for d in open_defs] + [name])
            start_tok = _decorator_tokens.get(outer.id, len(abstract))
            fragments.append(
                Fragment(kind, qual, outer.start_point[0] + 1, node.end_point[0] + 1, start_tok, start_tok,
                         parent_frag, len(open_defs) + 1)
            )
            open_defs.append((len(fragments) - 1, node.id, name))
            return True
        if t == "decorated_definition":
            # Decorator tokens belong to the definition's fragment: remember where they start.
            _decorator_tokens[node.id] = len(abstract)
            return True
        if t == "expression_statement" and _is_docstring(node):
            s = node.start_point[0] + 1
            for offset, line in enumerate(_text(node).split("\n")):
                comments.append((s + offset, line))
            return False
        if t == "import_statement" or t == "import_from_statement":
            imports.extend(_imports(node))
        elif t == "ERROR":
            errors.append(node.start_point[0] + 1)
        return True

    def leave(node) -> None:
        if open_defs and open_defs[-1][1] == node.id:
            frag_index = open_defs.pop()[0]
            fragments[frag_index].tok_end = len(abstract)

    _decorator_tokens: dict[int, int] = {}
    cursor = root.walk()
    while True:
        node = cursor.node
        if enter(node) and cursor.goto_first_child():
            continue
        leave(node)
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                break
            leave(cursor.node)
        else:
            continue
        break
    fragments[0].tok_end = len(abstract)
    comments.sort()
    return ParsedUnit(unit.path, unit.cell, text, abstract, concrete, lines, fragments, comments, imports,
                      sorted(set(errors)), invalid)
