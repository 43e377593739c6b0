"""Parsing into fragments and channels, shingling, and MinHash identical to datasketch's."""

from __future__ import annotations

import os

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from scanner.fingerprint import Params, abstract_set, concrete_set, fingerprint_unit
from scanner.parse import parse_unit
from scanner.walk import SourceUnit, notebook_cells
from signatures.lsh import KNOWN_BANDS, BandTable, band_keys, band_params, compute_band_params
from signatures.minhash import MinHasher
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
    return parse_unit(SourceUnit(path, src), tokens=True)


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


def test_a_reference_is_parsed_from_its_outline_and_scanned_code_whole():
    """A reference's tree-sitter reads an outline (brackets' insides and string bodies cut), which
    finds the same definitions and docstrings, but cannot see a syntax error inside brackets: the
    scanned side, whose errors the report notes, parses the whole source."""
    from scanner.fingerprint import fingerprint_sources
    from scanner.parse import outline_source, parse_syntax
    from scanner.reference import fragment_rows

    data = (b'"""Module\n   doc."""\nx = f(a b)\n\n@deco(1,\n      2)\ndef g(y: Dict[str, int] = {"k": [1, 2]}):\n'
            b'    """Doc of g."""\n    return [y,\n            y]\n\n\nclass C(B, metaclass=M):\n    def m(self):\n'
            b'        return (1,\n                2)\n')
    cut, _ = outline_source(data)
    assert len(cut) < len(data) * 0.8 and b"a b" not in cut and b"Doc of g" not in cut
    whole, outlined = parse_syntax(data, keep_imports=False), parse_syntax(data, keep_imports=False, outline=True)
    assert whole.error_lines == (3,) and outlined.error_lines == ()
    assert outlined.defs == whole.defs and outlined.docstrings == whole.docstrings
    assert [data[s:e] for _, _, s, e in outlined.docstrings] == [b'"""Module\n   doc."""', b'"""Doc of g."""']
    scanned, = fingerprint_sources([SourceUnit("m.py", data)], Params())
    reference, = fingerprint_sources([SourceUnit("m.py", data)], Params(), as_reference=True)
    assert scanned.unit.error_lines == [3] and reference.unit.error_lines == []
    assert np.array_equal(reference.prints.fragment_rows, fragment_rows(scanned.unit.fragments))
    with pytest.raises(ValueError):
        parse_syntax(data, keep_imports=True, outline=True)


@pytest.mark.parametrize("ending", [b"\r", b"\r\n", b"\r\r\n"])
def test_carriage_returns_end_lines_as_python_reads_them(ending):
    """Python reads a lone \r as a line end (a file with \r alone runs): read otherwise, such a file
    was one line of syntax errors, and a copy in it went unfound."""
    text = SRC.replace(b"\r\n", b"\n")
    lf = parse_unit(SourceUnit("m.py", text))
    other = parse_unit(SourceUnit("m.py", text.replace(b"\n", ending)))
    step = 2 if ending == b"\r\r\n" else 1  # \r then \r\n: two line ends, as Python counts them
    assert other.error_lines == lf.error_lines == []
    assert other.fragments[0].end_line == step * lf.fragments[0].end_line  # the module: every line
    assert [(f.kind, f.symbol, f.start_line, f.end_line) for f in other.fragments[1:]] == [
        (f.kind, f.symbol, step * (f.start_line - 1) + 1, step * (f.end_line - 1) + 1) for f in lf.fragments[1:]]
    assert len(lf.fragments) == 6 and lf.hashes is not None
    assert np.array_equal(other.hashes[0], lf.hashes[0]) and np.array_equal(other.hashes[1], lf.hashes[1])
    assert other.lines.tolist() == [step * (line - 1) + 1 for line in lf.lines.tolist()]
    assert [(step * (ln - 1) + 1, t) for ln, t in lf.comments] == other.comments


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


@pytest.mark.parametrize("seed", [0, 1, 42, 2**31, 2**32 - 1])
def test_minhash_permutations_are_datasketchs_for_every_seed(seed):
    """The permutations come from MT19937 drawn by hand (numpy.random costs 17 ms to import):
    the same values as datasketch's RandomState draws, past the first twist of the state too."""
    for num_perm in (1, 128, 311, 700):
        gen = np.random.RandomState(seed)
        a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        hasher = MinHasher(num_perm, seed)
        assert np.array_equal(hasher.permutations, np.array([a, b])), num_perm
    assert np.array_equal(MinHasher(256, seed).permutations, MinHash(256, seed=seed, scheme="affine32").permutations)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_numpy_refuses_is_refused(seed):
    with pytest.raises(ValueError):
        np.random.RandomState(seed)
    with pytest.raises(ValueError):
        MinHasher(128, seed)


def test_banded_lsh_gives_exactly_datasketchs_candidates():
    params = Params()
    hasher = MinHasher(params.num_perm, params.seed)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**32, 300, dtype=np.uint64).astype(np.uint32)
    sets = [np.concatenate([base[rng.random(300) < rng.random()], rng.integers(0, 2**32, 50, dtype=np.uint64).astype(np.uint32)])
            for _ in range(300)]
    sigs = np.vstack([hasher.signature(s) for s in sets])
    lsh = MinHashLSH(threshold=params.lsh_threshold, num_perm=params.num_perm)
    for i in range(200):
        lsh.insert(i, hasher.to_datasketch(sigs[i]))
    b, r = band_params(params.lsh_threshold, params.num_perm)
    assert (b, r) == (lsh.b, lsh.r)
    table = BandTable.build(band_keys(sigs[:200], b, r), np.arange(200))
    rows, ids = table.query(band_keys(sigs[200:], b, r))
    ours = {(int(q) + 200, int(c)) for q, c in zip(rows, ids)}
    theirs = {(i, key) for i in range(200, 300) for key in lsh.query(hasher.to_datasketch(sigs[i]))}
    assert ours == theirs and len(ours) > 100


@pytest.mark.parametrize("num_perm", [16, 64, 128, 256])
def test_band_parameters_equal_datasketchs_choice(num_perm):
    from datasketch.lsh import _optimal_param

    for threshold in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        assert band_params(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5), threshold
        assert compute_band_params(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5), threshold


def test_the_table_of_known_band_parameters_is_what_they_compute_to():
    from datasketch.lsh import _optimal_param

    assert KNOWN_BANDS, "the default parameters' bands are precomputed for the hook"
    for (threshold, num_perm), bands in KNOWN_BANDS.items():
        assert bands == compute_band_params(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_fingerprints_identical_whatever_the_worker_count(tmp_path):
    from pathlib import Path

    from scanner.fingerprint import fingerprint_sources
    from scanner.walk import walk_tree

    units = walk_tree(Path(__file__).resolve().parents[1] / "scanner").units * 6  # enough to use the pool
    one = fingerprint_sources(units, Params(), workers=1)
    two = fingerprint_sources(units, Params(), workers=2)
    assert len(one) == len(two) == len(units) >= 64
    for a, b in zip(one, two):
        assert a.unit.path == b.unit.path and a.unit.fragments == b.unit.fragments
        for name in ("abs_tok", "con_tok", "lines", "eligible", "sigs"):
            assert np.array_equal(getattr(a.prints, name), getattr(b.prints, name))
        assert a.license == b.license


def test_meanwhile_runs_once_in_this_process_while_the_workers_fingerprint():
    """The scan loads its index while the workers fingerprint: fingerprint_sources runs `meanwhile`
    once, here, with the workers alive, and the same results come; what it raises ends the
    fingerprinting and leaves no worker behind. Without a pool it runs before the first unit."""
    import multiprocessing
    from pathlib import Path

    from scanner.fingerprint import fingerprint_sources
    from scanner.walk import walk_tree

    units = walk_tree(Path(__file__).resolve().parents[1] / "scanner").units * 6  # enough to use the pool
    calls = []

    def meanwhile():
        calls.append((os.getpid(), len(multiprocessing.active_children())))

    plain = fingerprint_sources(units, Params(), workers=2)
    got = fingerprint_sources(units, Params(), workers=2, meanwhile=meanwhile)
    assert calls == [(os.getpid(), 2)]
    assert [d.unit.fragments for d in got] == [d.unit.fragments for d in plain]
    assert all(np.array_equal(a.prints.sigs, b.prints.sigs) for a, b in zip(got, plain))

    def failing():
        raise RuntimeError("the index is corrupt")

    with pytest.raises(RuntimeError, match="corrupt"):
        fingerprint_sources(units, Params(), workers=2, meanwhile=failing)
    assert multiprocessing.active_children() == []

    calls.clear()
    fingerprint_sources(units[:3], Params(), workers=2, meanwhile=meanwhile)
    assert calls == [(os.getpid(), 0)]


def test_the_pool_does_not_wake_its_maintenance_thread_for_every_result(monkeypatch):
    """multiprocessing.Pool's maintenance thread polls whenever the result pipe holds data: the
    parent burns a core's share while results stream in. fork_pool's waits for worker exits and
    state changes only; the stock pool, on the same work, wakes once per result or more."""
    import multiprocessing.pool

    from scanner import fingerprint

    wakes = []
    stock_wait = multiprocessing.pool.Pool._wait_for_updates

    def counted(sentinels, change_notifier, timeout=None):
        wakes.append(1)
        return stock_wait(sentinels, change_notifier, timeout)

    monkeypatch.setattr(multiprocessing.pool.Pool, "_wait_for_updates", staticmethod(counted))
    monkeypatch.setattr(fingerprint, "_TASKS", [bytes(200_000)] * 200)  # results big enough to stream

    def wakes_for(pool) -> int:
        wakes.clear()
        with pool:
            results = list(pool.imap(_echo_task, range(200), chunksize=1))
        assert [len(r) for r in results] == [200_000] * 200
        return len(wakes)

    quiet = wakes_for(fingerprint.fork_pool(2))
    stock = wakes_for(multiprocessing.get_context("fork").Pool(2))
    assert quiet <= 5 < 50 <= stock, (quiet, stock)


def _echo_task(i: int) -> bytes:
    from scanner import fingerprint

    return fingerprint._TASKS[i]


def test_concrete_and_abstract_sets():
    params = Params()
    unit = parsed()
    pr = fingerprint_unit(unit, params)
    frag = unit.fragments[2]
    assert len(abstract_set(pr, frag.tok_start, frag.tok_end, params.k)) <= frag.tokens - params.k + 1
    assert len(concrete_set(pr, frag.tok_start, frag.tok_end, params.k)) == frag.tokens - params.k + 1
    # Signatures: one row per eligible fragment (the module and the class here).
    assert list(pr.eligible) == [0, 1] and pr.sigs.shape == (2, params.num_perm)


def test_nested_signatures_equal_the_signature_of_each_whole_fragment():
    """Signatures built from children's (a MinHash is a minimum) equal hashing each fragment whole."""
    from pathlib import Path

    from scanner.fingerprint import eligible, signature

    params = Params()
    hasher = MinHasher(params.num_perm, params.seed)
    source = Path(__file__).resolve().parents[1] / "scanner" / "pipeline.py"
    unit = parse_unit(SourceUnit("pipeline.py", source.read_bytes()))
    pr = fingerprint_unit(unit, params)
    expected = [fi for fi, f in enumerate(unit.fragments) if eligible(f, params)]
    assert list(pr.eligible) == expected and len(expected) > 10
    assert any(unit.fragments[fi].parent is not None and unit.fragments[unit.fragments[fi].parent].kind == "class"
               for fi in expected) or any(unit.fragments[fi].kind == "module" for fi in expected)
    for row, fi in enumerate(pr.eligible):
        frag = unit.fragments[fi]
        assert np.array_equal(pr.sigs[row], signature(hasher, abstract_set(pr, frag.tok_start, frag.tok_end, params.k)))


@pytest.mark.parametrize("source", [
    b"def e():(n)def g(:",  # broken code: two definitions on one line share its tokens (found by bench/fuzz.py)
    b"class A:\n    def f(self): x = 1; y = 2\n    def g(self): pass\ndef h(): return [i for i in range(9)]\n",
])
def test_signatures_of_fragments_that_share_lines_are_still_their_whole_sets(source):
    from scanner.fingerprint import eligible, signature

    params = Params(k=2, min_tokens=1, min_lines=1)
    hasher = MinHasher(params.num_perm, params.seed)
    unit = parse_unit(SourceUnit("m.py", source))
    pr = fingerprint_unit(unit, params)
    assert list(pr.eligible) == [fi for fi, f in enumerate(unit.fragments) if eligible(f, params) and f.tokens >= 2]
    assert len(pr.eligible) >= 3
    for row, fi in enumerate(pr.eligible):
        frag = unit.fragments[fi]
        assert np.array_equal(pr.sigs[row], signature(hasher, abstract_set(pr, frag.tok_start, frag.tok_end, params.k)))


def _header_licence(src: bytes):
    from scanner.fingerprint import fingerprint_sources

    [done] = fingerprint_sources([SourceUnit("m.py", src)], Params(), workers=1)
    return done.license


def test_file_notices_are_read_from_comment_blocks_docstrings_and_notice_lines_only():
    code = b"x = compute(1, 2)\n" * 20
    header = b"# Copyright 2024 Example Corp.\n#\n# Licensed under the Apache License, Version 2.0 (the \"License\");\n"
    info = _header_licence(header + code)
    assert info.spdx == "Apache-2.0" and [(c.line, c.holder) for c in info.copyrights] == [(1, "Example Corp.")]
    # A notice block below some code still counts, with its own line numbers.
    info = _header_licence(code + b"# SPDX-License-Identifier: MIT\n# Copyright (c) 2023 Other Lab\n")
    assert info.spdx == "MIT" and [(c.line, c.holder) for c in info.copyrights] == [(22, "Other Lab")]
    # A notice held by code, and one in the module docstring.
    info = _header_licence(b'"""Tools.\n\nCopyright 2021 Doc Holder\n"""\n__copyright__ = "Copyright 2020 Code Holder"\n' + code)
    assert [(c.line, c.holder) for c in info.copyrights] == [(3, "Doc Holder"), (5, "Code Holder")]
    # Ordinary comments and code are not notices; past the head (200 lines) nothing is read.
    assert _header_licence(b"# compute the sum\n" + code).spdx is None
    assert _header_licence(code * 10 + b"# SPDX-License-Identifier: MIT\n").spdx is None


def _header_text_by_blocks(unit, head_lines: int = 200) -> str:
    """_header_text as first written: every block of consecutive comment and docstring lines
    checked for a notice word; lines of code with one kept on their own."""
    from scanner.fingerprint import _NOTICE_WORDS

    lines = unit.line_texts[:head_lines]
    kept = ["" if not any(w in line.lower() for w in _NOTICE_WORDS) else line for line in lines]
    blocks: list[list[int]] = []
    for ln, _ in unit.comments:
        if ln > len(lines):
            break
        if blocks and ln in (blocks[-1][-1], blocks[-1][-1] + 1):
            blocks[-1].append(ln)
        else:
            blocks.append([ln])
    for block in blocks:
        if any(w in "\n".join(lines[i - 1] for i in block).lower() for w in _NOTICE_WORDS):
            for i in block:
                kept[i - 1] = lines[i - 1]
    return "\n".join(kept)


def test_header_text_keeps_the_notice_blocks_a_block_by_block_reading_keeps():
    """Notices, blocks of comments and docstrings around them, and trailing blank lines dropped,
    on generated headers: notices in comment blocks, docstrings, code, and past line 200."""
    import random

    from scanner.fingerprint import _header_text
    from scanner.licenses import analyse

    rng = random.Random(5)
    pieces = ["# Copyright 2024 The Authors", "# Licensed under the Apache License, Version 2.0", "#",
              "# plain comment", "# SPDX-License-Identifier: MIT", "x = 1", "__copyright__ = '(C) 2020 Z'",
              '"""Docstring line', 'with a LICENSE word"""', "def f():", "    # (c) Someone", "    return 2",
              "", "# \N{COPYRIGHT SIGN} 2019 Q", "y = 'licence'  # trailing", '"""Plain docstring."""']
    kept_some = 0
    for _ in range(300):
        n = rng.choice([3, 20, 60, 199, 200, 201, 260])
        text = "\n".join(rng.choice(pieces) for _ in range(n)) + rng.choice(["", "\n", "\n\n"])
        unit = parse_unit(SourceUnit("h.py", text.encode()))
        expected = _header_text_by_blocks(unit)
        got = _header_text(unit)
        assert got == expected.rstrip("\n")
        assert _header_text(unit, unit.line_texts) == got  # from a stored reference's split lines
        assert analyse(got, head_lines=None) == analyse(expected, head_lines=None)
        kept_some += bool(got.strip())
    assert kept_some > 250
