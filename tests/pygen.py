"""Random, syntactically valid Python programs for the property tests and bench/fuzz.py.

Generation is driven by one `choose(n) -> int in [0, n)` callable, so the same code serves
hypothesis (`choose = lambda n: draw(st.integers(0, n - 1))`: examples shrink towards the first
option of every choice, i.e. towards small programs) and plain `random.Random.randrange`.

A program is a list of top-level items, each a list of `Line`s; identifiers are `Name(i)`
placeholders into a pool, so that `render` can rename them consistently, and rendering options
(`Style`) vary indentation, blank lines, trailing whitespace, comments and docstrings without
touching a single token of the code.
"""

from __future__ import annotations

import builtins
import keyword
from collections.abc import Callable
from dataclasses import dataclass, field

Choose = Callable[[int], int]

_RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | {"self", "cls"}
_SYLLABLES = ("ka", "lo", "mi", "zu", "ter", "ax", "qe", "val", "idx", "buf", "n", "x", "y", "_", "Net", "Layer",
              "é", "λ", "数据", "ñu")
_BUILTIN_CALLS = ("len", "range", "print", "isinstance", "min", "max", "sorted", "abs", "sum", "int", "str")
_NUMBERS = ("0", "1", "2", "3", "10", "255", "3.5", "1e-3", "0x1F", "2j", "1_000", ".5", "0o17", "0b101", "7.")
_STRING_CHARS = "abcxyz #é-_.:"
_COMMENT_CHARS = "abc xyz#'\"\\é数-:;()[]{}"


@dataclass(frozen=True)
class Name:
    """Placeholder for identifier number `i` of the pool."""

    i: int


@dataclass
class Line:
    depth: int
    parts: tuple  # str | Name; may hold newlines inside strings, brackets or after a backslash
    kind: str = "code"  # code | comment | docstring | blank
    comment: str | None = None  # an inline comment of the base program
    string_newline: bool = False  # a newline inside a string literal (a line ending change alters the token)


Program = list  # list[list[Line]]: top-level items


def lines_of(program: Program) -> list[Line]:
    return [line for item in program for line in item]


def name_pool(choose: Choose, size: int, avoid: set[str] = frozenset()) -> list[str]:
    """size distinct identifiers: not keywords, soft keywords or builtins, nor in avoid."""
    pool: list[str] = []
    taken = set(avoid)
    while len(pool) < size:
        name = "".join(_SYLLABLES[choose(len(_SYLLABLES))] for _ in range(1 + choose(3)))
        if choose(4) == 0:
            name += str(choose(100))
        if not name.isidentifier() or name in _RESERVED or name.startswith("__"):
            name = "v" + name
        if not name.isidentifier() or name in _RESERVED:
            continue
        while name in taken:
            name += "_"
        taken.add(name)
        pool.append(name)
    return pool


class Gen:
    """Builds one program from the choices of `choose`."""

    def __init__(self, choose: Choose, names: int) -> None:
        self.c = choose
        self.names = names

    def pick(self, options):
        return options[self.c(len(options))]

    def flag(self, one_in: int = 2) -> bool:
        return self.c(one_in) == 0

    def name(self) -> Name:
        return Name(1 + self.c(self.names - 1))  # Name(0) is the methods' `self`

    # -- expressions -------------------------------------------------------------------------------

    def string(self) -> tuple[list, bool]:
        """(parts, holds a newline)."""
        text = "".join(self.pick(_STRING_CHARS) for _ in range(self.c(8)))
        style = self.c(7)
        if style == 0:
            return [f"'{text}'"], False
        if style == 1:
            return [f'"{text}\\n"'], False
        if style == 2:
            return [f"r'{text}\\d'"], False
        if style == 3:
            return ["b'" + text.replace("é", "e") + "'"], False
        if style == 4:
            return ['f"{', self.name(), f'}} {text} {{', self.name(), ' + 1}"'], False
        if style == 5:
            return [f'"""{text}\n{text} line"""'], True
        return [f"'{text}' \"{text}\""], False  # implicit concatenation

    def atom(self) -> tuple[list, bool]:
        k = self.c(6)
        if k <= 2:
            return [self.name()], False
        if k == 3:
            return [self.pick(_NUMBERS)], False
        if k == 4:
            return self.string()
        return [self.name(), ".", self.name()], False

    def expr(self, depth: int = 0) -> tuple[list, bool]:
        if depth >= 2:
            return self.atom()
        k = self.c(14)
        if k <= 3:
            return self.atom()
        a, na = self.expr(depth + 1)
        if k <= 6:
            b, nb = self.expr(depth + 1)
            op = self.pick((" + ", " - ", " * ", " / ", " // ", " % ", " ** ", " @ ", " < ", " >= ", " == ",
                            " != ", " and ", " or ", " in ", " is not ", " | ", " & ", " << "))
            return ["(", *a, op, *b, ")"], na or nb
        if k == 7:  # a call, maybe with keywords, maybe over several lines
            args, nl = self.args(depth)
            func = [self.pick(_BUILTIN_CALLS)] if self.flag(3) else [self.name()]
            return [*func, "(", *args, ")"], nl
        if k == 8:
            return [self.name(), "(", *a, ")[", self.pick(_NUMBERS[:4]), "]"], na
        if k == 9:
            b, nb = self.expr(depth + 1)
            return ["[", *a, ", ", *b, "]"] if self.flag() else ["{'key': ", *b, "}"], na or nb
        if k == 10:
            return ["(", self.pick(("-", "not ", "~")), "(", *a, "))"], na
        if k == 11:
            x = self.name()
            return ["[", x, " * 2 for ", x, " in ", *a, " if ", x, "]"], na
        if k == 12:
            b, nb = self.expr(depth + 1)
            c, nc = self.expr(depth + 1)
            return ["(", *a, " if ", *b, " else ", *c, ")"], na or nb or nc
        return ["(lambda ", self.name(), ": ", *a, ")"], na

    def args(self, depth: int) -> tuple[list, bool]:
        out: list = []
        newline = False
        multiline = self.flag(6)
        keywords, keywords_used = False, self.c(self.names)  # distinct keyword names
        for i in range(self.c(4)):
            if i:
                out.append(",")
                out.append("\n        " if multiline else " ")
            keywords = keywords or self.flag(4)  # no positional argument after a keyword one
            if keywords:
                out += [Name(1 + (keywords_used := keywords_used + 1) % (self.names - 1)), "="]
            e, n = self.expr(depth + 1)
            out += e
            newline = newline or n
        return out, newline

    # -- statements -------------------------------------------------------------------------------

    def simple(self, depth: int, in_function: bool, in_loop: bool) -> Line:
        k = self.c(12 if in_function else 10)
        e, nl = self.expr()
        if k <= 2:
            parts = [self.name(), " = ", *e]
        elif k == 3:
            second, nl2 = self.atom()
            nl = nl or nl2
            parts = [self.name(), ", ", self.name(), " = ", *e, ", ", *second]
        elif k == 4:
            parts = [self.name(), self.pick((" += ", " -= ", " *= ", " |= ")), *e]
        elif k == 5:
            args, nl2 = self.args(0)
            nl = nl or nl2
            parts = [self.name(), ".", self.name(), "(", *args, ")"]
        elif k == 6:
            parts = [self.name(), ": ", self.name(), " = ", *e]
        elif k == 7:
            parts = ["assert ", *e, ", 'message'"]
        elif k == 8:
            # A backslash continuation: the break is no token.
            parts = [self.name(), " = ", *e, " + \\\n            ", self.name()]
        elif k == 9:
            parts = ["pass"] if not in_loop else [self.pick(("break", "continue"))]
        elif k == 10:
            parts = ["return ", *e]
        else:
            parts = ["raise ", self.pick(("ValueError", "KeyError")), "(", *e, ")"]
        comment = self._comment_text() if self.flag(8) else None
        return Line(depth, tuple(parts), comment=comment, string_newline=nl)

    def _comment_text(self) -> str:
        return "# " + "".join(self.pick(_COMMENT_CHARS) for _ in range(self.c(12)))

    def block(self, depth: int, in_function: bool, in_loop: bool, size: int) -> list[Line]:
        out: list[Line] = []
        for _ in range(size):
            out += self.statement(depth, in_function, in_loop)
        return out

    def statement(self, depth: int, in_function: bool, in_loop: bool) -> list[Line]:
        k = self.c(10) if depth < 3 else 0  # no deeper nesting
        if k <= 4:
            line = [self.simple(depth, in_function, in_loop)]
            if self.flag(10):
                line.insert(0, Line(depth, (self._comment_text(),), kind="comment"))
            return line
        inner = 1 + self.c(3)
        e, nl = self.expr()
        if k == 5:
            out = [Line(depth, ("if ", *e, ":"), string_newline=nl)] + self.block(depth + 1, in_function, in_loop, inner)
            if self.flag():
                e2, nl2 = self.expr()
                out += [Line(depth, ("elif ", *e2, ":"), string_newline=nl2)] + self.block(depth + 1, in_function, in_loop, 1)
            if self.flag():
                out += [Line(depth, ("else:",))] + self.block(depth + 1, in_function, in_loop, 1)
            return out
        if k == 6:
            return [Line(depth, ("for ", self.name(), " in ", *e, ":"), string_newline=nl)] + \
                self.block(depth + 1, in_function, True, inner)
        if k == 7:
            return [Line(depth, ("while ", *e, ":"), string_newline=nl)] + self.block(depth + 1, in_function, True, inner)
        if k == 8:
            return ([Line(depth, ("try:",))] + self.block(depth + 1, in_function, in_loop, inner)
                    + [Line(depth, ("except ", self.pick(("ValueError", "Exception")), " as ", self.name(), ":"))]
                    + self.block(depth + 1, in_function, in_loop, 1))
        if in_function and depth < 3:
            return self.function(depth)  # a nested function
        return [Line(depth, ("with ", *e, " as ", self.name(), ":"), string_newline=nl)] + \
            self.block(depth + 1, in_function, in_loop, inner)

    def docstring(self, depth: int) -> Line:
        text = "".join(self.pick(_STRING_CHARS) for _ in range(1 + self.c(20)))
        if self.flag():
            return Line(depth, (f'"""{text}."""',), kind="docstring")
        return Line(depth, (f'"""{text}.\n\nMore about {text}.\n"""',), kind="docstring", string_newline=True)

    def decorators(self, depth: int) -> list[Line]:
        out = []
        for _ in range(self.c(3) if self.flag(3) else 0):
            if self.flag():
                out.append(Line(depth, ("@", self.name())))
            else:
                e, nl = self.atom()
                out.append(Line(depth, ("@", self.name(), ".", self.name(), "(", *e, ")"), string_newline=nl))
        return out

    def function(self, depth: int, method: bool = False) -> list[Line]:
        params: list[list] = [[Name(0)]] if method else []
        defaults = False
        seen = set()
        for _ in range(self.c(4)):
            name = self.name()
            if name in seen:
                continue
            seen.add(name)
            defaults = defaults or self.flag(4)  # once one parameter has a default, all that follow do
            params.append([name, "=", self.pick(_NUMBERS[:5])] if defaults else [name])
        head: list = ["def ", self.name(), "("]
        for i, param in enumerate(params):
            head += ([", "] if i else []) + param
        head.append("):" if self.flag(3) else ") -> " + self.pick(("int", "str", "None")) + ":")
        out = self.decorators(depth) + [Line(depth, tuple(head))]
        if self.flag(3):
            out.append(self.docstring(depth + 1))
        out += self.block(depth + 1, True, False, 3 + self.c(5))
        e, nl = self.expr()
        out.append(Line(depth + 1, ("return ", *e), string_newline=nl))
        return out

    def klass(self) -> list[Line]:
        base = ["(", self.name(), ")"] if self.flag() else []
        out = self.decorators(0) + [Line(0, ("class ", self.name(), *base, ":"))]
        if self.flag():
            out.append(self.docstring(1))
        for _ in range(self.c(3)):
            out.append(self.simple(1, False, False))
        for _ in range(1 + self.c(3)):
            out += self.function(1, method=True)
        return out

    def program(self) -> Program:
        items: Program = []
        if self.flag(3):
            items.append([self.docstring(0)])
        if self.flag():
            items.append([Line(0, ("import ", self.name())),
                          Line(0, ("from ", self.name(), ".", self.name(), " import ", self.name(), ", ", self.name()))])
        for _ in range(1 + self.c(4)):
            k = self.c(5)
            if k <= 1:
                items.append(self.function(0))
            elif k <= 3:
                items.append(self.klass())
            else:
                items.append(self.statement(0, False, False))
        return items


def program(choose: Choose, names: int | None = None) -> tuple[Program, list[str]]:
    """(program, its identifier pool)."""
    n = names if names is not None else 4 + choose(12)
    return Gen(choose, n).program(), name_pool(choose, n)


@dataclass
class Style:
    """How to write a program: everything here leaves the tokens alone."""

    indent: str = "    "
    newline: str = "\n"  # "\r\n" only for programs without a newline inside a string
    blank_before: dict[int, list[str]] = field(default_factory=dict)  # line index -> whitespace-only lines
    comments_before: dict[int, list[str]] = field(default_factory=dict)  # line index -> full-line comments
    inline: dict[int, str] = field(default_factory=dict)  # line index -> comment added at its end
    trailing: dict[int, str] = field(default_factory=dict)  # line index -> spaces/tabs at its end
    keep_comments: bool = True  # the base program's own comments
    docstrings: dict[int, str] = field(default_factory=dict)  # line index -> new docstring text
    final_newline: bool = True


def render(program: Program, names: list[str], style: Style | None = None) -> str:
    style = style or Style()
    out: list[str] = []
    for i, line in enumerate(lines_of(program)):
        pad = style.indent * line.depth
        out += style.blank_before.get(i, [])
        out += [pad[: len(pad) // 2] + c for c in style.comments_before.get(i, [])]
        if line.kind == "comment" and not style.keep_comments:
            continue
        if line.kind == "docstring" and i in style.docstrings:
            text = pad + '"""' + style.docstrings[i] + '"""'
        else:
            text = pad + "".join(names[p.i] if isinstance(p, Name) else p for p in line.parts)
        if line.comment and style.keep_comments:
            text += "  " + line.comment
        if i in style.inline:
            text += "  " + style.inline[i]
        out.append(text + style.trailing.get(i, ""))
    text = "\n".join(out) + ("\n" if style.final_newline else "")
    return text.replace("\n", style.newline) if style.newline != "\n" else text


def has_string_newline(program: Program) -> bool:
    """Whether a string literal holds a line break (a line-ending change would alter that token)."""
    import io
    import tokenize

    if any(line.string_newline for line in lines_of(program)):
        return True
    size = 1 + max([p.i for line in lines_of(program) for p in line.parts if isinstance(p, Name)], default=0)
    text = render(program, [f"n{i}" for i in range(size)])
    try:
        return any(tok.type == tokenize.STRING and "\n" in tok.string
                   for tok in tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return True  # cannot tell: keep the line endings


def random_style(choose: Choose, program: Program) -> Style:
    """Whitespace and comment edits: blank lines, trailing whitespace, comments added or removed,
    another indentation, docstrings rewritten, line endings (where no string holds a newline)."""
    lines = lines_of(program)
    n = len(lines)
    pick = lambda options: options[choose(len(options))]  # noqa: E731
    comment = lambda: "#" + "".join(pick(_COMMENT_CHARS) for _ in range(choose(15)))  # noqa: E731
    style = Style(indent=pick(("    ", "  ", " ", "\t", "        ", "   ")),
                  keep_comments=choose(2) == 0, final_newline=choose(4) != 0)
    for _ in range(choose(6)):
        style.blank_before.setdefault(choose(n), []).append(pick(("", "   ", "\t", " \t ")))
    for _ in range(choose(6)):
        style.comments_before.setdefault(choose(n), []).append(comment())
    for _ in range(choose(4)):
        style.inline[choose(n)] = comment()
    for _ in range(choose(6)):
        style.trailing[choose(n)] = pick((" ", "\t", "   ", " \t"))
    for i, line in enumerate(lines):
        if line.kind == "docstring" and choose(2) == 0:
            style.docstrings[i] = pick(("", "Edited.", "Two\n    lines.", "with 'quotes' and é"))
    if choose(3) == 0 and not has_string_newline(program) and not any("\n" in v for v in style.docstrings.values()):
        style.newline = "\r\n"
    return style


def modify(choose: Choose, program: Program, pool: list[str]) -> tuple[Program, list[str]]:
    """A suspect derived from a reference program: some names renamed, statements deleted,
    duplicated or changed, items reordered or dropped. The result may not even parse."""
    items = [list(item) for item in program]
    names = list(pool)
    for _ in range(choose(len(names) + 1)):
        names[choose(len(names))] += "_r"
    for _ in range(choose(4)):
        if not items:
            break
        item = items[choose(len(items))]
        if not item:
            continue
        at = choose(len(item))
        k = choose(4)
        if k == 0 and len(item) > 1:
            del item[at]
        elif k == 1:
            item.insert(at, item[at])
        elif k == 2:
            line = item[at]
            item[at] = Line(line.depth, tuple("42" if p in _NUMBERS else p for p in line.parts), line.kind,
                            line.comment, line.string_newline)
        else:
            item.insert(at, Line(item[at].depth, (Name(1 + choose(len(names) - 1)), " = 7")))
    if len(items) > 1 and choose(2) == 0:
        i, j = choose(len(items)), choose(len(items))
        items[i], items[j] = items[j], items[i]
    if len(items) > 1 and choose(3) == 0:
        del items[choose(len(items))]
    return items, names
