"""Parsing into fragments and channels, shingling, and MinHash identical to datasketch's."""

from __future__ import annotations

import numpy as np
from datasketch import MinHash, MinHashLSH

from scanner.fingerprint import Params, abstract_set, concrete_set, fingerprint_unit
from scanner.parse import parse_unit
from scanner.walk import SourceUnit, notebook_cells
from signatures.minhash import MinHasher, to_hash32
from signatures.shingles import shingle_hashes, token_hashes

SRC = b'''"""Module docstring."""
import os, torch.nn as nn
from a.b import c as d, e


@register("x")
@other
class Outer(Base):
    """Class docstring."""

    size = 3  # trailing comment

    def method(self, value=2.5):
        # a comment
        return f"v{value}" + 'a' 'b', True, None

    class Inner:
        def deep(self):
            return 1


def helper(x):
    return x + 1
'''


def parsed(src: bytes = SRC, path: str = "m.py"):
    return parse_unit(SourceUnit(path, src))


def words(tokens) -> list[str]:
    return [t.decode() for t in tokens]


def test_fragments_and_line_ranges_include_decorators():
    unit = parsed()
    got = [(f.kind, f.symbol, f.start_line, f.end_line) for f in unit.fragments]
    assert got == [
        ("module", None, 1, 23),
        ("class", "Outer", 6, 19),
        ("method", "Outer.method", 13, 15),
        ("class", "Outer.Inner", 17, 19),
        ("method", "Outer.Inner.deep", 18, 19),
        ("function", "helper", 22, 23),
    ]
    outer = unit.fragments[1]
    assert words(unit.abstract[outer.tok_start : outer.tok_start + 5]) == ["@", "ID", "(", "STR", ")"]
    assert unit.fragments[2].parent == 1 and unit.fragments[4].parent == 3


def test_channels_drop_comments_and_docstrings_but_keep_them_aside():
    unit = parsed()
    m = unit.fragments[2]
    assert words(unit.abstract[m.tok_start : m.tok_end]) == [
        "def", "ID", "(", "ID", ",", "ID", "=", "NUM", ")", ":", "return", "STR", "+", "STR", ",", "True", ",", "None"]
    assert words(unit.concrete[m.tok_start : m.tok_start + 8]) == ["def", "method", "(", "self", ",", "value", "=", "2.5"]
    assert unit.lines[m.tok_start] == 13 and unit.lines[m.tok_end - 1] == 15
    assert "docstring" not in " ".join(words(unit.concrete))
    texts = [t for _, t in unit.comments]
    assert '"""Module docstring."""' in texts and "# a comment" in texts and "# trailing comment" in texts


def test_imports_recorded():
    imports = [(i.line, i.module, i.names) for i in parsed().imports]
    assert imports == [(2, "os", ()), (2, "torch.nn", ()), (3, "a.b", ("c", "e"))]


def test_syntax_errors_do_not_raise():
    unit = parsed(b"def ok(a):\n    return a\n\ndef bad(:\n    pass\n\nclass C:\n    def m(self):\n        return 2\n")
    assert unit.error_lines
    assert {f.symbol for f in unit.fragments} >= {"ok", "C", "C.m"}


def test_invalid_utf8_and_nul_bytes_do_not_raise():
    unit = parsed(b"x = '\xff\xfe'\n\x00\ndef f():\n    return 1\n")
    assert unit.invalid_utf8
    assert "f" in {f.symbol for f in unit.fragments}


def test_deep_nesting_does_not_recurse():
    unit = parsed(b"x = " + b"(" * 3000 + b"1" + b")" * 3000 + b"\n")
    assert unit.abstract.count(b"(") == 3000


def test_renaming_keeps_the_abstract_channel():
    a = parsed(b"def f(a, b):\n    c = a * b + 1\n    return c\n")
    b = parsed(b"def g(x, y):\n    z = x * y + 7\n    return z\n")
    assert a.abstract == b.abstract and a.concrete != b.concrete


def test_notebook_cells_blank_magics():
    nb = b'{"cells": [{"cell_type": "code", "source": ["%time\\n", "x = 1\\n"]}, {"cell_type": "markdown", "source": "t"}]}'
    cells, reason = notebook_cells(nb)
    assert reason is None and cells == [(1, b"\nx = 1\n")]
    assert notebook_cells(b"{not json")[1] == "notebook is not valid JSON"


def test_shingles_are_stable_and_positional():
    toks = token_hashes(["def", "ID", "(", "ID", ")", ":"])
    sh = shingle_hashes(toks, 3)
    assert len(sh) == 4 and sh.dtype == np.uint64
    again = shingle_hashes(token_hashes(["x", "def", "ID", "(", "ID", ")", ":"]), 3)
    assert np.array_equal(again[1:], sh)  # a shingle's hash depends only on its tokens
    assert len(shingle_hashes(toks[:2], 3)) == 0
    # Pinned values: hashes must not depend on the process (no hash()); a change breaks stored indexes.
    assert int(token_hashes(["ID"])[0]) == 0x3BBB7E0818BCC4F6
    assert int(shingle_hashes(token_hashes(["def", "ID", "("]), 3)[0]) == 0x44041D41314FCD31


def test_minhash_is_bit_identical_to_datasketch():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 2**32, 3000, dtype=np.uint64).astype(np.uint32)
    ours = MinHasher(num_perm=128, seed=1).signature(values)
    theirs = MinHash(num_perm=128, seed=1, hashfunc=lambda x: x)
    theirs.update_batch([int(v) for v in values])
    assert theirs.scheme == "affine32"
    assert np.array_equal(ours, theirs.hashvalues)
    assert np.array_equal(MinHasher(64, seed=9).permutations, MinHash(num_perm=64, seed=9).permutations)


def test_lsh_finds_similar_fragments_only():
    params = Params()
    hasher = MinHasher(params.num_perm, params.seed)
    lsh = MinHashLSH(threshold=params.lsh_threshold, num_perm=params.num_perm)
    base = parsed(SRC)
    prints = fingerprint_unit(base, params)
    sig = hasher.signature(to_hash32(abstract_set(prints, base.fragments[0], params.k)))
    lsh.insert("base", hasher.to_datasketch(sig))
    other = parsed(b"import json\n\n\ndef load(path):\n    with open(path) as fh:\n        return json.load(fh)\n" * 3)
    op = fingerprint_unit(other, params)
    osig = hasher.signature(to_hash32(abstract_set(op, other.fragments[0], params.k)))
    assert lsh.query(hasher.to_datasketch(sig)) == ["base"]
    assert lsh.query(hasher.to_datasketch(osig)) == []


def test_concrete_and_abstract_sets():
    params = Params()
    unit = parsed()
    pr = fingerprint_unit(unit, params)
    frag = unit.fragments[2]
    assert len(abstract_set(pr, frag, params.k)) <= frag.tokens - params.k + 1
    assert len(concrete_set(pr, frag, params.k)) == frag.tokens - params.k + 1  # all distinct here
