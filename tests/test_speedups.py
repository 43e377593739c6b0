"""The compiled twins (scanner/_lex.c, signatures/_native.c) give exactly what the Python code gives.

Every index and every scan goes through the compiled code when it is built, and the Python code is
the readable reference: a difference of one token hash would change fingerprints silently. They
are compared on real code (this repository and the Python standard library of the interpreter
running the tests), on generated programs, and on random bytes drawn from the characters the
lexer's rules turn on (quotes, prefixes, backslashes, carriage returns, digits, dots...).
In CI the extensions must have been built (`pip install -e .` compiles them), or these tests fail.
"""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from scanner import parse
from scanner.parse import parse_unit
from scanner.walk import SourceUnit
from signatures import minhash, shingles
from signatures.shingles import token_hashes
from tests import pygen
from tests.conftest import need
from tests.test_properties import fast, tapes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def lexc():
    module = need("scanner._lex")
    assert parse._COMPILED is module, "the compiled lexer is built but parse.py does not use it"
    return module


@pytest.fixture(scope="module")
def nativec():
    module = need("signatures._native")
    assert minhash._compiled is module and shingles._compiled is module
    return module


def python_twin(module, fn, *args, **kwargs):
    """fn(*args, **kwargs) with module's compiled twin switched off: what the Python/numpy code gives."""
    saved, module._compiled = module._compiled, None
    try:
        return fn(*args, **kwargs)
    finally:
        module._compiled = saved


def both(data: bytes):
    """(compiled, pure-Python) parse of the same bytes."""
    return parse_unit(SourceUnit("m.py", data)), parse_unit(SourceUnit("m.py", data), tokens=True)


def python_outline(data: bytes) -> tuple[bytes, bytes]:
    saved, parse._COMPILED = parse._COMPILED, None
    try:
        return parse.outline_source(data)
    finally:
        parse._COMPILED = saved


def assert_same_structure(data: bytes) -> None:
    """Anchors: the compiled lexer's are the Python lexer's; on a clean tree, entering it at them
    finds exactly the definitions and imports that the structure query (visiting every node) finds.
    Outlines: the compiled one is the Python one, and a reference's parse of the outline finds what
    the parse of the source finds, wherever the source parses without errors (or the outline with)."""
    assert parse._COMPILED.anchors(data) == [
        m.start(1) for m in parse._TOKEN.finditer(data) if m.group(1) in parse._ANCHOR_WORDS], data[:200]
    root = parse._parser().parse(data).root_node
    if not root.has_error:
        spans = lambda nodes: [(n.type, n.start_byte, n.end_byte) for n in nodes]  # noqa: E731
        found, queried = parse.structure(root, data), parse.query_structure(root)
        assert spans(found[0]) == spans(queried[0]), data[:200]
        assert spans(found[1]) == spans(queried[1]), data[:200]
    cut, cuts = parse._COMPILED.outline(data)
    assert (cut, cuts) == python_outline(data), data[:200]
    assert len(cut) <= len(data) and cut.count(b"\n") == data.count(b"\n"), data[:200]
    if not root.has_error or parse._parser().parse(cut).root_node.has_error:
        outlined = parse.parse_syntax(data, keep_imports=False, outline=True)
        assert outlined == parse.parse_syntax(data, keep_imports=False), data[:200]


def assert_same(data: bytes) -> int:
    assert_same_structure(data)
    fast_unit, slow = both(data)
    assert fast_unit.hashes is not None and slow.hashes is None
    abstract, concrete = fast_unit.hashes
    assert np.array_equal(abstract, token_hashes(slow.abstract)), data[:200]
    assert np.array_equal(concrete, token_hashes(slow.concrete)), data[:200]
    assert np.array_equal(fast_unit.lines, slow.lines)
    assert fast_unit.comments == slow.comments
    assert fast_unit.fragments == slow.fragments
    return len(abstract)


def test_xxh64_is_xxhash_for_every_length_path(lexc):
    rng = random.Random(7)
    for size in list(range(0, 70)) + [100, 255, 256, 1000, 4099]:
        for _ in range(5):
            data = rng.randbytes(size)
            assert lexc.xxh64(data) == xxhash.xxh64_intdigest(data), size


def test_keywords_are_this_pythons(lexc):
    import keyword

    assert lexc.KEYWORDS == tuple(keyword.kwlist)


def test_same_tokens_on_this_repository(lexc):
    files = sorted(p for d in ("scanner", "signatures", "reports", "tests") for p in (ROOT / d).rglob("*.py"))
    files += sorted((ROOT / "bench").glob("*.py"))  # not bench/cache: downloaded third-party code
    assert len(files) > 40
    assert sum(assert_same(f.read_bytes()) for f in files) > 50_000


def test_same_tokens_on_the_standard_library(lexc):
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))[::7]
    total = 0
    for f in files:
        data = f.read_bytes()
        if len(data) > 300_000:
            continue
        total += assert_same(data)
        if total > 400_000:
            break
    assert total > 100_000


# The characters the lexer's rules turn on, weighted towards the tricky ones.
ALPHABET = (b"\"\"\"'''\\\\\r\n\n\n   \t\f#rRbBuUfFtTxXoOjJeE_.0123456789+-*/<>=!:@()[]{},;~%&|^ab\x80\xff\x00\x0b"
            + b"def class import from return if else x y self")


def test_same_tokens_on_random_bytes(lexc):
    rng = random.Random(11)
    for _ in range(3000):
        size = rng.randrange(0, 120)
        data = bytes(rng.choice(ALPHABET) for _ in range(size))
        assert_same(data)


@fast(150)
@given(tapes, st.integers(0, 3))
def test_same_tokens_on_generated_programs(tape, style_seed):
    need("scanner._lex")
    program, names = pygen.program(tape)
    style = pygen.random_style(tape, program) if style_seed else None
    assert_same(pygen.render(program, names, style).encode("utf-8"))


@pytest.mark.parametrize("data", [
    b"", b"\r", b"\\", b"x = '", b'"""abc', b'"""a""""', b"'''\\", b'rb"x" fr\'y\' brf"z"', b"0x 0xg 0b1j 1e 1e+ 1e_ 1.__x",
    b"...5 ..5 .5j 5.e-3J", b"a\\\r\nb\\\rc", b"s = 'a\\\nb'\n", b"'a' 'b'\n'c'\n", b"\xff\xfe = 1 # \xff\n",
    b"x = 'a' * 300\ny = '" + b"z" * 500 + b"'\n", b'def f():\n    "doc"\n    "not doc"\n    return 1\n',
    # Outlines: tails, one-line cuts no shorter than what they replace, continued and formatted
    # strings, mapping patterns (an outline with errors), unbalanced brackets, CRLF, comments inside.
    b'def f(\n    a,\n    b):\n    """Doc\n    more.\n    """\n    return g(a)[\n        0]\n',
    b"x = (\n a)\ny = [\n\n  b]\nz = ''\nw = 'a'\nv = (1)\n", b"s = 'a\\\nb'\ndef f():\n    return f'{x}' + t'{y}'\n",
    b"match p:\n    case {'k': v}:\n        pass\n    case [a, *b]:\n        pass\ndef g():\n    return (1,\n 2)\n",
    b"x = (1, [2)\ndef f(): pass\n", b"def f(a,\r\n      b):\r\n    '''d\r\n    '''\r\n    return (a  # c\r\n)\r\n",
    b"@deco(\n    x=1)\nclass A(B,\n        metaclass=M):\n    'doc'\n    def m(self, *a, **k) -> Dict[str, int]:\n        pass\n",
])
def test_same_tokens_on_edge_cases(lexc, data):
    assert_same(data)


def test_minhash_is_numpy(nativec):
    hasher = minhash.MinHasher(128, 1)
    rng = np.random.default_rng(3)
    for n in (0, 1, 2, 31, 1000, 20_000):
        values = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        compiled = hasher.signature(values)
        numpy_values = python_twin(minhash, hasher.signature, values)
        assert compiled.dtype == np.uint32 and np.array_equal(compiled, numpy_values), n


def test_nested_signatures_are_numpy_and_cover_each_subtree(nativec):
    hasher = minhash.MinHasher(128, 1)
    rng = np.random.default_rng(4)
    for n, rows in ((0, 1), (1, 1), (50, 3), (3000, 40), (20_000, 200)):
        values = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        parent = np.array([-1] + [int(rng.integers(-1, r)) for r in range(1, rows)], dtype=np.int32)
        owner = rng.integers(-1, rows, n).astype(np.int32)
        compiled = hasher.nested_signatures(values, owner, parent)
        numpy_values = python_twin(minhash, hasher.nested_signatures, values, owner, parent)
        assert compiled.shape == (rows, 128) and np.array_equal(compiled, numpy_values), (n, rows)
        for r in range(rows):  # a row's signature is that of every hash owned in its subtree
            subtree = {r}
            for c in range(r + 1, rows):
                if parent[c] in subtree:
                    subtree.add(c)
            assert np.array_equal(compiled[r], hasher.signature(values[np.isin(owner, list(subtree))])), (n, r)
    with pytest.raises(ValueError):  # a parent after its child would be folded too late
        nativec.nested_signatures(values[:2], np.array([0, 1], dtype=np.int32), np.array([-1, 1], dtype=np.int32),
                                  hasher._a, hasher._b, np.empty((2, 128), dtype=np.uint32))


def test_segment_unique_is_numpy(nativec):
    rng = np.random.default_rng(6)
    for runs in (0, 1, 5, 300):
        lengths = rng.integers(0, 60, runs)
        lengths[::4] = 0  # empty runs (functions shorter than a shingle)
        values = rng.integers(0, 40, int(lengths.sum())).astype(np.uint64) * np.uint64(2**59 + 7)  # repeats
        ends = np.cumsum(lengths).astype(np.int64)
        compiled = shingles.segment_unique(values, ends)
        numpy_values = python_twin(shingles, shingles.segment_unique, values, ends)
        assert np.array_equal(compiled[0], numpy_values[0]) and np.array_equal(compiled[1], numpy_values[1]), runs
        for i, (lo, hi) in enumerate(zip([0, *ends[:-1]], ends)):
            start = compiled[1][i - 1] if i else 0
            assert np.array_equal(compiled[0][start:compiled[1][i]], np.unique(values[lo:hi]))
    # Values crowded into few top-bit buckets, and long runs (the bucket pass, its introsort fallback).
    for values in (rng.integers(0, 2**20, 5000).astype(np.uint64), rng.integers(0, 2**64, 70000, dtype=np.uint64),
                   np.concatenate([rng.integers(0, 2**64, 300, dtype=np.uint64), np.full(400, 2**63, dtype=np.uint64)])):
        compiled = shingles.segment_unique(values, np.array([len(values)], dtype=np.int64))
        assert np.array_equal(compiled[0], np.unique(values)) and compiled[1].tolist() == [len(np.unique(values))]
    with pytest.raises(ValueError):
        nativec.segment_unique(np.zeros(3, dtype=np.uint64), np.array([2, 1], dtype=np.int64))


def test_range_sets_are_numpy(nativec):
    rng = np.random.default_rng(8)
    tokens = rng.integers(0, 12, 3000).astype(np.uint64)  # a small alphabet: shingles repeat
    for ranges in (0, 1, 7, 400):
        starts = rng.integers(0, 3000, ranges)
        ends = np.minimum(starts + rng.integers(0, 90, ranges), 3000)
        ends[::5] = starts[::5] + rng.integers(0, 5, len(ends[::5]))  # ranges shorter than a shingle
        ends = np.minimum(ends, 3000)
        for k in (1, 5):
            values, sizes = shingles.range_sets(tokens, starts, ends, k)
            numpy_values = python_twin(shingles, shingles.range_sets, tokens, starts, ends, k)
            assert np.array_equal(values, numpy_values[0]) and np.array_equal(sizes, numpy_values[1]), (ranges, k)
            at = np.cumsum(sizes) - sizes
            for i, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist())):
                expect = np.unique(shingles.shingle_hashes(tokens[lo:hi], k))
                assert np.array_equal(values[at[i]:at[i] + sizes[i]], expect)
    with pytest.raises(ValueError):
        nativec.range_sets(tokens, np.array([5], dtype=np.int64), np.array([3001], dtype=np.int64), 5)


def test_cached_range_sets_answer_like_fresh_ones(nativec):
    """RangeSets, compiled and not, keeps each range's set once, in any order of asking, across its
    buffer's growth."""
    rng = np.random.default_rng(10)
    tokens = rng.integers(0, 50, 40000).astype(np.uint64)
    starts = rng.integers(0, 39000, 500)
    ends = starts + rng.integers(0, 1000, 500)
    compiled = shingles.RangeSets(tokens, starts, ends, 5)
    numpy_sets = python_twin(shingles, shingles.RangeSets, tokens, starts, ends, 5)
    assert compiled.native is not None and numpy_sets.native is None
    numpy_sets._FIRST = 64  # grow many times (the compiled arena grows from 65,536 values: 500 ranges pass that)
    for _ in range(40):
        ids = rng.integers(0, 500, int(rng.integers(0, 40)))
        query = np.unique(shingles.shingle_hashes(tokens[rng.integers(0, 39000):][:800], 5))
        informative = query[::3]
        fresh = [np.unique(shingles.shingle_hashes(tokens[starts[i]:ends[i]], 5)) for i in ids.tolist()]
        for sets in (compiled, numpy_sets):
            sizes, inter, inter_informative = sets.intersections(ids, query, informative)
            assert sizes.tolist() == [len(f) for f in fresh]
            assert inter.tolist() == [len(np.intersect1d(f, query)) for f in fresh]
            assert inter_informative.tolist() == [len(np.intersect1d(f, informative)) for f in fresh]
    with pytest.raises(IndexError):
        compiled.intersections(np.array([500]), query)
    with pytest.raises(ValueError):
        nativec.RangeSets(tokens, np.array([5], dtype=np.int64), np.array([40001], dtype=np.int64), 5)


@pytest.fixture(scope="module")
def copied_corpus(tmp_path_factory):
    """A reference of real code (this repository's) with renamed and edited copies of it: groups of
    identical fragments whose members differ in names, near-copies, boilerplate."""
    import re

    from scanner.acquire import acquire
    from scanner.match import ReferenceCorpus
    from scanner.pipeline import ScanOptions, load_references, load_tree

    rng = random.Random(3)
    files = {}
    for path in sorted((ROOT / "scanner").glob("*.py"))[:12] + sorted((ROOT / "signatures").glob("*.py")):
        text = path.read_text()
        files[f"orig/{path.name}"] = text
        for copy in range(3):  # renamed copies: same abstract tokens, other names
            names = sorted(set(re.findall(r"\b[a-z_]{4,}\b", text)))
            renamed = dict(zip(rng.sample(names, len(names) // 3), rng.sample(names, len(names) // 3)))
            files[f"renamed{copy}/{path.name}"] = re.sub(r"\b[a-z_]{4,}\b", lambda m: renamed.get(m[0], m[0]), text)
        lines = text.split("\n")  # an edited copy: every 9th line dropped
        files[f"edited/{path.name}"] = "\n".join(line for i, line in enumerate(lines) if i % 9 != 4 or not line.strip())
    root = tmp_path_factory.mktemp("copied")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    options = ScanOptions()
    refs, _ = load_references([(None, str(root))], options)
    scanned = load_tree(acquire(str(root / "edited")), None, options)
    return ReferenceCorpus(options.params, refs), scanned


def test_a_lookup_split_over_threads_finds_what_one_finds(copied_corpus, monkeypatch):
    """A large batch is looked up in two halves on two threads: the same candidates, in the same order."""
    import scanner.match as M

    corpus, _ = copied_corpus
    ref = corpus.refs[0]
    rows = np.arange(len(ref.arrays["sigs"]))
    queries, levels = ref.arrays["sigs"][rows], ref.levels[ref.arrays["indexed"][rows]]
    assert len(queries) > 200
    for batch in (queries, queries[:-1]):  # an even and an odd number of rows
        monkeypatch.setattr(M, "_SPLIT_LOOKUP", 10**9)
        whole = corpus.candidates(batch, levels[:len(batch)])
        monkeypatch.setattr(M, "_SPLIT_LOOKUP", 2)
        halves = corpus.candidates(batch, levels[:len(batch)])
        assert list(halves) == list(whole) and len(whole) == len(batch)  # every indexed fragment finds itself
        for row, locs in whole.items():
            assert [(p, x.tolist()) for p, x in halves[row]] == [(p, x.tolist()) for p, x in locs]


@pytest.mark.parametrize("change", [{}, {"min_shared": 10_000}, {"min_shared": 0}, {"boilerplate_min_concrete": 0.9},
                                    {"min_similarity": 0.2}, {"config": True}, {"min_shared": 60}])
def test_verify_groups_is_python(nativec, copied_corpus, change):
    """The compiled verification gives the same copies, similarities and order as the Python one, on
    every scanned fragment against all the groups of its level (batches of every size)."""
    import dataclasses

    import scanner.match as M

    corpus, scanned = copied_corpus
    change = dict(change)
    config = change.pop("config", False)
    corpus = M.ReferenceCorpus(dataclasses.replace(corpus.params, **change), corpus.refs)
    ref = corpus.refs[0]
    reps_of_level = {level: np.flatnonzero((ref.groups == np.arange(len(ref.groups))) & (ref.levels == level))
                     for level in set(ref.levels.tolist())}
    rng = np.random.default_rng(4)
    compared = verified = 0
    for unit, prints in zip(scanned.units, scanned.prints):
        frags = [unit.fragments[int(fi)] for fi in prints.eligible]
        for frag, s_sets in zip(frags, corpus.unit_shingle_sets(prints, frags)):
            pool = reps_of_level[M._LEVEL[frag.kind]]
            for size in (1, 7, 40, len(pool)):
                reps = rng.permutation(pool)[:size].astype(np.int64)
                pos = np.zeros(len(reps), dtype=np.int64)
                compiled = M._verify_groups(corpus, s_sets, pos, reps, config)
                python = python_twin(M, M._verify_groups, corpus, s_sets, pos, reps, config)
                assert (compiled is None) == (python is None)
                if compiled is not None:
                    for a, b in zip(compiled, python):
                        assert a.dtype == b.dtype and np.array_equal(a, b)
                    verified += 1
                compared += 1
    assert compared >= 200 and verified >= 50, (compared, verified)  # the corpus is this repository's code: it changes




def test_ranking_is_python(nativec, copied_corpus):
    """The compiled ranking of one reference's verified copies is the Python one: similarities
    rounded as Python's round(x, 6) rounds them (near ties below a millionth, exact halves, -0.0),
    then the copy's own note, path and line, equal keys in their first order."""
    import scanner.match as M

    corpus, _ = copied_corpus
    ref = corpus.refs[0]
    rng = np.random.default_rng(7)
    n_frag = len(ref.frags)
    tricky = [0.5, 0.4999995, 0.4999994999, 0.5000004, 0.1234565, 0.1234575, 1 / 3, 2 / 3, 0.0, -0.0, 1.0, -1.0,
              0.3333335, 0.3333325, 1e-7, 5e-7, -5e-7, 0.0000005000001]
    for trial in range(400):
        n = int(rng.integers(2, 60))
        kinds = rng.integers(0, 3, size=2)
        sims = [rng.choice(tricky, size=n), rng.choice([0.4, 0.45, 0.5], size=n) + rng.integers(0, 3, size=n) * 1e-7,
                rng.random(n)]
        sim = np.asarray(sims[kinds[0]], dtype=np.float64)
        csim = np.asarray(sims[kinds[1]], dtype=np.float64)
        csim[rng.random(n) < 0.3] = -1.0  # not needed: not compared
        if trial % 3 == 0:
            sim.sort()  # runs of equal values, as a group's members come
        fid = rng.integers(0, n_frag, size=n).astype(np.int64)
        v = M.Verified(sim, csim, np.zeros(n, dtype=np.int64), fid)
        compiled = M._ranked(v, corpus)
        python = python_twin(M, M._ranked, v, corpus)
        assert compiled.dtype == python.dtype and np.array_equal(compiled, python), (sim, csim, fid)
    # Copies whose keys are all equal keep their order.
    v = M.Verified(np.full(5, 0.7), np.full(5, -1.0), np.zeros(5, dtype=np.int64), np.full(5, 3, dtype=np.int64))
    assert M._ranked(v, corpus).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="rank_copies"):
        nativec.rank_copies(np.ones(2), np.ones(2), np.asarray([0, n_frag], dtype=np.int64), *ref.rank_columns)


def test_band_query_and_agreement_are_numpy(nativec):
    from signatures import lsh

    rng = np.random.default_rng(8)
    for n, q, bands in ((0, 5, 4), (1, 1, 1), (50, 30, 4), (3000, 500, 32)):
        keys = rng.integers(0, 40, (n, bands)).astype(np.uint64)  # few distinct keys: big buckets
        table = lsh.BandTable.build(keys, rng.permutation(n).astype(np.int32) * 3)
        qkeys = rng.integers(0, 60, (q, bands)).astype(np.uint64)  # some keys are in no band
        compiled = table.query(qkeys)
        numpy_values = python_twin(lsh, table.query, qkeys)
        assert compiled[0].dtype == compiled[1].dtype == np.int64
        assert np.array_equal(compiled[0], numpy_values[0]) and np.array_equal(compiled[1], numpy_values[1]), (n, q)
    # A large table and a few queries (one file's, as the hook sends): the merge gallops over the gaps.
    n, bands = 20_000, 8
    keys = rng.integers(0, 2**62, (n, bands)).astype(np.uint64)
    keys[rng.integers(0, n, 2000)] = keys[rng.integers(0, n, 2000)]  # some repeated keys
    table = lsh.BandTable.build(keys, np.arange(n, dtype=np.int32))
    for q in (1, 3, 40):
        qkeys = rng.integers(0, 2**62, (q, bands)).astype(np.uint64)
        hits = rng.random((q, bands)) < 0.5
        qkeys[hits] = keys[rng.integers(0, n, q), :][:, :bands][hits]  # a key of the table, in its band
        qkeys[0, 0] = table.keys[0, -1]  # the last key of a band
        compiled, numpy_values = table.query(qkeys), python_twin(lsh, table.query, qkeys)
        assert len(compiled[0]) >= q and np.array_equal(compiled[0], numpy_values[0])
        assert np.array_equal(compiled[1], numpy_values[1])
    with pytest.raises(ValueError):  # a negative id that a query finds is refused, not used
        bad = lsh.BandTable(table.keys, np.where(table.ids == table.ids[0, 0], -1, table.ids).astype(np.int32))
        bad.query(table.keys[:, :1].T.copy())
    width = 128
    ref, query = rng.integers(0, 4, (300, width), dtype=np.uint8), rng.integers(0, 4, (40, width), dtype=np.uint8)
    ref_rows, query_rows = rng.integers(0, 300, 5000), rng.integers(0, 40, 5000)
    compiled = lsh.agreement(ref, ref_rows, query, query_rows)
    numpy_values = python_twin(lsh, lsh.agreement, ref, ref_rows, query, query_rows, chunk=777)
    assert compiled.dtype == np.int16 and np.array_equal(compiled, numpy_values)
    # The filter of candidate pairs by level and agreement, against its numpy twin.
    n_frag = 300
    sig_row = np.full(n_frag, -1, dtype=np.int32)
    indexed = rng.permutation(n_frag)[:200]
    sig_row[indexed] = np.arange(200, dtype=np.int32)
    ref_sigs = rng.integers(0, 3, (200, width), dtype=np.uint8)
    levels, q_levels = rng.integers(0, 3, n_frag).astype(np.int8), rng.integers(0, 3, 40).astype(np.int8)
    for pairs in (0, 1, 5000):
        rows = np.sort(rng.integers(0, 40, pairs)).astype(np.int64)
        fids = rng.choice(indexed, pairs).astype(np.int64)
        for need in (0, 40.5, 43, 200):
            compiled = lsh.filter_candidates(rows, fids, levels, q_levels, sig_row, ref_sigs, query, need)
            numpy_values = python_twin(lsh, lsh.filter_candidates, rows, fids, levels, q_levels, sig_row, ref_sigs, query, need)
            assert compiled[0].dtype == compiled[1].dtype == np.int64
            assert np.array_equal(compiled[0], numpy_values[0]) and np.array_equal(compiled[1], numpy_values[1])
            assert pairs < 5000 or need == 200 or 0 < len(compiled[0]) < pairs  # the filters keep some, drop some
    with pytest.raises(ValueError):  # a pair of a fragment that is not indexed is refused, not read
        lsh.filter_candidates(np.array([0]), np.flatnonzero(sig_row < 0)[:1], levels, q_levels, sig_row, ref_sigs, query, 0)
    with pytest.raises(ValueError):  # a row out of range is refused, not read
        nativec.agreement(ref, np.array([300]), query, np.array([0]), width)


def test_aligned_runs_intersections_and_sorted_unique_are_python(nativec):
    rng = np.random.default_rng(9)

    for _ in range(300):
        alphabet = int(rng.integers(1, 30))  # small alphabets: repeats, runs, crossings
        s_seq = rng.integers(0, alphabet, int(rng.integers(0, 200))).astype(np.uint64)
        r_seq = rng.integers(0, alphabet, int(rng.integers(0, 200))).astype(np.uint64)
        if rng.random() < 0.5 and len(s_seq) > 20:  # a shared block, as in real copies
            r_seq = np.concatenate([r_seq[:30], s_seq[5:20], r_seq[30:]])
        assert shingles.aligned_runs(s_seq, r_seq) == python_twin(shingles, shingles.aligned_runs, s_seq, r_seq)
        a = np.unique(rng.integers(0, 300, int(rng.integers(0, 150))).astype(np.uint64))
        others = [np.unique(rng.integers(0, 300, int(rng.integers(0, m))).astype(np.uint64))
                  for m in rng.integers(1, 400, int(rng.integers(0, 12)))]
        # The others end to end in shuffled order, between unused values.
        flat, starts = [], []
        for i in rng.permutation(len(others)).tolist():
            flat.append(rng.integers(0, 300, int(rng.integers(0, 5))).astype(np.uint64))
            starts.append((i, sum(map(len, flat))))
            flat.append(others[i])
        flat = np.concatenate(flat) if flat else np.empty(0, dtype=np.uint64)
        at = np.asarray([start for _, start in sorted(starts)], dtype=np.int64)
        sizes = np.asarray([len(o) for o in others], dtype=np.int64)
        compiled = shingles.intersections_at(a, flat, at, sizes)
        assert compiled.dtype == np.int64
        assert np.array_equal(compiled, python_twin(shingles, shingles.intersections_at, a, flat, at, sizes))
        assert compiled.tolist() == [len(np.intersect1d(a, o)) for o in others]
        values = rng.integers(0, alphabet, int(rng.integers(0, 50))).astype(np.uint64)
        assert np.array_equal(shingles.sorted_unique(values), np.unique(values))


def test_aligned_blocks_are_python(nativec):
    """Aligned line ranges: shared blocks, equal tokens, reorderings, repeats, lines that do not
    increase (configs)."""
    rng = np.random.default_rng(13)
    for trial in range(400):
        alphabet = int(rng.integers(2, 30))
        s_tok = rng.integers(0, alphabet, int(rng.integers(0, 150))).astype(np.uint64)
        r_tok = rng.integers(0, alphabet, int(rng.integers(0, 150))).astype(np.uint64)
        if len(s_tok) > 40 and rng.random() < 0.7:  # a copied block, maybe two
            r_tok = np.concatenate([r_tok[:20], s_tok[5:35], r_tok[20:], s_tok[:10]])
        elif rng.random() < 0.25:  # an exact or renamed copy (the compiled code's shortcut), lines laid out anew
            r_tok = s_tok.copy()
        lines = [np.cumsum(rng.integers(0, 3, len(t))).astype(np.int32) + 1 for t in (s_tok, r_tok)]
        if rng.random() < 0.3:  # a config: lines in key order, not increasing
            lines = [rng.permutation(x).astype(np.int32) for x in lines]
        for k in (1, 3, 5):
            compiled = shingles.aligned_blocks(s_tok, lines[0], r_tok, lines[1], k)
            python = python_twin(shingles, shingles.aligned_blocks, s_tok, lines[0], r_tok, lines[1], k)
            assert compiled == python, (trial, k)
    tokens, five_lines = np.arange(6, dtype=np.uint64), np.arange(5, dtype=np.int32)
    with pytest.raises(ValueError):  # a line per token on each side
        nativec.aligned_blocks(tokens, five_lines, tokens, np.arange(6, dtype=np.int32), 5)


def test_shingle_hashes_are_numpy(nativec):
    rng = np.random.default_rng(5)
    for n in (0, 1, 4, 5, 6, 1000):
        tokens = rng.integers(0, 2**64, n, dtype=np.uint64)
        for k in (1, 3, 5):
            compiled = shingles.shingle_hashes(tokens, k)
            numpy_values = python_twin(shingles, shingles.shingle_hashes, tokens, k)
            assert compiled.dtype == np.uint64 and np.array_equal(compiled, numpy_values), (n, k)
    # A slice (an offset view) is hashed from its own first token.
    assert np.array_equal(shingles.shingle_hashes(tokens[7:40], 5), shingles.shingle_hashes(tokens[7:40].copy(), 5))


def test_verify_groups_is_python_on_random_sets(nativec):
    """The same on random sets and thresholds: every branch of the choice (boilerplate groups kept or
    not, more similar than the plain ones or not), which real code reaches only now and then."""
    import types

    import scanner.match as M
    from scanner.fingerprint import Params
    from scanner.reference import Reference

    rng = np.random.default_rng(12)
    tokens = rng.integers(0, 40, 30000).astype(np.uint64)  # k = 1, few values: Jaccard indices of every size
    for trial in range(1500):
        n = int(rng.integers(1, 60))
        starts = rng.integers(0, 29000, n)
        ends = starts + rng.integers(0, 60, n)
        groups = np.sort(rng.integers(0, max(1, n // 2), n))  # fragment i belongs to group groups[i]
        first = np.searchsorted(groups, groups)  # each group's representative: its first fragment
        order = np.argsort(first, kind="stable")
        ref = types.SimpleNamespace(member_reps=first[order].astype(np.int32), member_fids=order.astype(np.int32))
        ref.members = types.MethodType(Reference.members, ref)
        # Thresholds near the sets' sizes: boilerplate and plain groups side by side, either more similar.
        params = Params(k=1, min_similarity=float(rng.uniform(0.0, 0.7)), min_shared=int(rng.integers(0, 12)),
                        boilerplate_min_concrete=float(rng.uniform(0.0, 0.5)))
        sets = {channel: shingles.RangeSets(tokens, starts, ends, 1) for channel in ("abstract", "concrete")}
        corpus = types.SimpleNamespace(params=params, refs=[ref], range_sets=lambda pos, channel: sets[channel])
        lo = int(rng.integers(0, 29000))
        query = np.unique(shingles.shingle_hashes(tokens[lo:lo + int(rng.integers(0, 60))], 1))
        concrete = np.unique(shingles.shingle_hashes(tokens[lo + 1:lo + int(rng.integers(0, 60))], 1))
        s_sets = M.ShingleSets(query, query[rng.random(len(query)) < 0.5], concrete)
        reps = rng.permutation(np.unique(first))[:int(rng.integers(1, 40))].astype(np.int64)
        pos = np.zeros(len(reps), dtype=np.int64)
        config = bool(rng.random() < 0.2)
        compiled = M._verify_groups(corpus, s_sets, pos, reps, config)
        python = python_twin(M, M._verify_groups, corpus, s_sets, pos, reps, config)
        assert (compiled is None) == (python is None), trial
        if compiled is not None:
            for a, b in zip(compiled, python):
                assert a.dtype == b.dtype and np.array_equal(a, b), trial


_COMMENT_WORDS = ["# Copied", "from", "adapted", "Adapted FROM", "based on", "ported of", "copy of", "generated",
                  "Automatically generated from", "provscan: source=", "https://example.org/x", "://", "ba\u017fed",
                  "ta\u212aen", "\u0130", "on", "of", "x", " ", "\t", "GENERATED  from", "Lifted   from", "#provscan:source=y"]


@given(st.lists(st.sampled_from(_COMMENT_WORDS), max_size=8).map(" ".join))
@fast(400)
def test_comment_signals_shortcuts_are_the_patterns(text):
    """The lowercase word tests that skip the patterns never skip a comment a pattern matches
    (non-ASCII comments, whose case folding differs, always run them)."""
    from scanner import attribute as A

    tag = A.SOURCE_TAG_RE.search(text)
    assert A.comment_signals(text) == (tuple(A.URL_RE.findall(text)), A.GENERATED_RE.search(text) is not None,
                                       A.PROVENANCE_RE.search(text) is not None, tag.group("source") if tag else None)
