"""Obfuscated variants of a copied fragment, written by us from its AST (never executed).

Each transformation is one a copier might apply to hide a copy:

- rename: every identifier the fragment defines or uses locally, attributes included, renamed
  consistently (imported modules and builtins keep their names: renaming them breaks the code);
- reorder: adjacent independent statements swapped (neither reads what the other writes);
- loops: `x = [e for t in it]` <-> `x = []` + `for t in it: x.append(e)`;
- extract: each function's returned expression moved into a small nested helper;
- deadcode: an unused assignment after every other statement;
- reformat: the code printed back by ast.unparse (comments, blank lines, line breaks and
  quotes change).

Every variant is printed by ast.unparse, so "reformat" is also part of the others.
"""

from __future__ import annotations

import ast
import builtins
import copy
import textwrap

TRANSFORMS = ("rename", "reorder", "loops", "extract", "deadcode", "reformat")
_KEEP = set(dir(builtins)) | {"self", "cls", "super", "torch", "nn", "F", "np", "tf", "jnp", "jax", "flax", "math",
                              "logger", "config", "__init__", "forward", "__call__", "setup"}


def _names_in(node: ast.AST) -> tuple[set[str], set[str]]:
    """(read, written) names of a statement."""
    read, written = set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (written if isinstance(n.ctx, (ast.Store, ast.Del)) else read).add(n.id)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
            written.add(ast.unparse(n))
        elif isinstance(n, ast.Attribute):
            read.add(ast.unparse(n))
        elif isinstance(n, ast.Call):
            written.add("<call>")  # a call may have effects: nothing moves past it
            read.add("<call>")
    return read, written


class _Rename(ast.NodeTransformer):
    def __init__(self, keep: set[str]) -> None:
        self.keep, self.map = keep, {}

    def _new(self, name: str) -> str:
        if name in self.keep or name.startswith("__"):
            return name
        return self.map.setdefault(name, f"v{len(self.map)}")

    def visit_Name(self, node):
        node.id = self._new(node.id)
        return node

    def visit_arg(self, node):
        node.arg = self._new(node.arg)
        return self.generic_visit(node)

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            node.attr = self._new(node.attr)
        return node

    def visit_FunctionDef(self, node):
        node.name = self._new(node.name)
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.name = self._new(node.name)
        return self.generic_visit(node)

    def visit_keyword(self, node):  # keyword argument names belong to the callee
        return self.generic_visit(node)


def _bodies(tree: ast.AST):
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield node, name, block


def _reorder(tree: ast.AST) -> None:
    for node, name, block in _bodies(tree):
        out, i = list(block), 0
        while i + 1 < len(out):
            a, b = out[i], out[i + 1]
            simple = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr)
            if isinstance(a, simple) and isinstance(b, simple):
                ra, wa = _names_in(a)
                rb, wb = _names_in(b)
                if not (wa & rb or wb & ra or wa & wb or "<call>" in ra | rb):
                    out[i], out[i + 1] = b, a
                    i += 2
                    continue
            i += 1
        setattr(node, name, out)


def _loops(tree: ast.AST) -> None:
    for node, name, block in _bodies(tree):
        out, i = [], 0
        while i < len(block):
            s = block[i]
            nxt = block[i + 1] if i + 1 < len(block) else None
            # x = [e for t in it]  ->  x = []; for t in it: x.append(e)
            if (isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
                    and isinstance(s.value, ast.ListComp) and len(s.value.generators) == 1
                    and not s.value.generators[0].ifs and not s.value.generators[0].is_async):
                target, gen = s.targets[0].id, s.value.generators[0]
                out.append(ast.parse(f"{target} = []").body[0])
                append = ast.Expr(ast.Call(ast.Attribute(ast.Name(target, ast.Load()), "append", ast.Load()),
                                           [s.value.elt], []))
                out.append(ast.For(gen.target, gen.iter, [append], [], None))
                i += 1
                continue
            # x = []; for t in it: x.append(e)  ->  x = [e for t in it]
            if (isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
                    and isinstance(s.value, ast.List) and not s.value.elts and isinstance(nxt, ast.For)
                    and not nxt.orelse and len(nxt.body) == 1 and isinstance(nxt.body[0], ast.Expr)):
                call = nxt.body[0].value
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "append"
                        and isinstance(call.func.value, ast.Name) and call.func.value.id == s.targets[0].id
                        and len(call.args) == 1 and not call.keywords):
                    comp = ast.ListComp(call.args[0], [ast.comprehension(nxt.target, nxt.iter, [], 0)])
                    out.append(ast.Assign([s.targets[0]], comp, lineno=s.lineno))
                    i += 2
                    continue
            out.append(s)
            i += 1
        setattr(node, name, out)


def _extract(tree: ast.AST) -> None:
    for node in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        body = node.body
        if not body or not isinstance(body[-1], ast.Return) or body[-1].value is None:
            continue
        expr = body[-1].value
        used = sorted({n.id for n in ast.walk(expr) if isinstance(n, ast.Name) and n.id not in _KEEP - {"self", "config"}})
        helper = ast.parse(f"def _helper({', '.join(used)}):\n    return None").body[0]
        helper.body[0].value = expr
        call = ast.Return(ast.Call(ast.Name("_helper", ast.Load()), [ast.Name(u, ast.Load()) for u in used], []))
        node.body = body[:-1] + [helper, call]


def _deadcode(tree: ast.AST) -> None:
    counter = [0]
    for node, name, block in list(_bodies(tree)):
        out = []
        for i, s in enumerate(block):
            out.append(s)
            if i % 2 == 0 and not isinstance(s, (ast.Return, ast.Raise, ast.Continue, ast.Break)):
                counter[0] += 1
                out.append(ast.parse(f"_unused_{counter[0]} = {counter[0] * 7} if False else None").body[0])
        setattr(node, name, out)


def obfuscate(source: str, transform: str) -> str | None:
    """The fragment's source after one transformation, or None when it cannot be parsed."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError):
        return None
    tree = copy.deepcopy(tree)
    if transform == "rename":
        _Rename((_KEEP - {"config"}) | _imported(tree)).visit(tree)
    elif transform == "reorder":
        _reorder(tree)
    elif transform == "loops":
        _loops(tree)
    elif transform == "extract":
        _extract(tree)
    elif transform == "deadcode":
        _deadcode(tree)
    elif transform != "reformat":
        raise ValueError(transform)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _imported(tree: ast.AST) -> set[str]:
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in n.names)
    return names
