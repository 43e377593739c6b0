"""The cache of parse results by content (scanner.parsecache): what it gives back is what a fresh
parse gives, a rescan parses only changed files, and a damaged cache costs a parse, never a result."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, scan_json, write_tree
from fixtures import renamed_attention
import scanner.parse
from scanner.parse import parse_syntax, parse_unit
from scanner.parsecache import FILE_NAME, ParseCache, cache_key, decode, encode
from scanner.walk import SourceUnit


def _corpus() -> list[SourceUnit]:
    """This repository's Python, the same with random edits (syntax errors, stray comments,
    decorators, docstring quotes), and a notebook cell."""
    units = [SourceUnit(str(p.relative_to(ROOT)), p.read_bytes())
             for p in sorted(ROOT.glob("*/*.py")) if p.parts[-2] in ("scanner", "signatures", "reports", "tests", "bench")]
    rng = random.Random(5)
    for unit in list(units[:60]):
        data = bytearray(unit.data)
        for _ in range(6):
            at = rng.randrange(len(data) or 1)
            data[at:at + 1] = rng.choice([b"(", b":", b"#", b"\n", b"def ", b'"""', b"@x\n", b"\xff", b"\\\n"])
        units.append(SourceUnit(unit.path + ".edited", bytes(data)))
    units.append(SourceUnit("nb.ipynb", b'"""cell doc"""\nimport os\ndef f(x):\n    """f doc"""\n    return x\n', cell=2))
    return units


def _same_unit(a, b) -> None:
    for name in ("path", "cell", "text", "abstract", "concrete", "fragments", "comments", "imports", "error_lines",
                 "invalid_utf8"):
        assert getattr(a, name) == getattr(b, name), name
    assert np.array_equal(a.lines, b.lines)
    assert (a.hashes is None) == (b.hashes is None)
    if a.hashes is not None:
        assert all(np.array_equal(x, y) for x, y in zip(a.hashes, b.hashes))


def test_a_kept_parse_result_gives_the_unit_a_fresh_parse_gives():
    units = _corpus()
    assert len(units) > 100
    broken = 0
    for unit in units:
        for keep_imports, outline in ((True, False), (False, False), (False, True)):
            syntax = parse_syntax(unit.data, keep_imports, outline)
            kept = decode(encode(syntax), len(unit.data))
            assert kept == syntax
            _same_unit(parse_unit(unit, keep_imports=keep_imports, syntax=kept),
                       parse_unit(unit, keep_imports=keep_imports, syntax=syntax))
            if not outline:
                _same_unit(parse_unit(unit, keep_imports=keep_imports, syntax=kept),
                           parse_unit(unit, keep_imports=keep_imports))
            broken += bool(syntax.error_lines)
    assert broken >= 20  # the edits did break code: the retry without comments and the error lines are covered


def test_keys_are_per_content_and_per_keep_imports():
    a, b = b"def f():\n    return 1\n", b"def f():\n    return 2\n"
    assert cache_key(a, True) == cache_key(a, True)
    assert len({cache_key(a, True), cache_key(a, False), cache_key(b, True)}) == 3


@pytest.mark.parametrize("value", [
    b"\xff\xfe", b"{}", b"[]", b"[[],[],[]]", b"[1,2,3,4]", b"[[[0,5,1,1,\"f\"]],[],[],[]]",
    b"[[[0,999,1,2,\"f\",false]],[],[],[]]",  # past the end of the bytes
    b"[[[0,5,0,2,\"f\",false]],[],[],[]]",  # line 0
    b"[[[0,5,1,2,\"f\",0]],[],[],[]]",  # not a bool
    b"[[[5,4,1,2,\"f\",true]],[],[],[]]",  # ends before it starts
    b"[[],[[1,1,0,50]],[],[]]", b"[[],[],[[1,\"m\",[1]]],[]]", b"[[],[],[],[0]]", b"[[],[],[],[true]]",
    b"[" * 100000,
])
def test_an_entry_that_is_not_a_parse_result_of_the_bytes_is_refused(value):
    with pytest.raises(ValueError):
        decode(value, 20)


def _instrumented(monkeypatch) -> list[int]:
    """Counts the parses (the real parse runs)."""
    parsed: list[int] = []
    real = scanner.parse.parse_syntax

    def counting(data, keep_imports=True, outline=False):
        parsed.append(len(data))
        return real(data, keep_imports, outline)

    monkeypatch.setattr("scanner.fingerprint.parse_syntax", counting)
    return parsed


def _project(tmp_path: Path) -> tuple[Path, Path]:
    ref = write_tree(tmp_path / "ref", {"pkg/attention.py": renamed_attention(), "pkg/util.py": "def helper(a, b):\n    return a + b\n"})
    src = write_tree(tmp_path / "src", {
        "mine/attention.py": renamed_attention(),
        "mine/own.py": "".join(f"def own_{i}(x):\n    return x * {i} + {i}\n\n" for i in range(30)),
        "mine/empty.py": "",
    })
    return ref, src


def _no_times(report: dict) -> dict:
    report.pop("elapsed_s", None)
    report.get("summary", {}).pop("elapsed_s", None)
    return report


def test_a_rescan_parses_only_the_changed_files_and_reports_the_same(tmp_path, monkeypatch):
    ref, src = _project(tmp_path)
    parsed = _instrumented(monkeypatch)
    cache = Path(os.environ["PROVSCAN_CACHE_DIR"]) / FILE_NAME
    code, fresh = scan_json(tmp_path, src, ref, args=("--workers", "1", "--no-parse-cache"))
    assert code == 1 and fresh["findings"] and not cache.exists()  # --no-parse-cache: nothing kept
    first = len(parsed)
    assert first == 5  # 2 reference files and 3 scanned
    parsed.clear()
    code, cold = scan_json(tmp_path, src, ref, args=("--workers", "1"))
    assert len(parsed) == 5 and cache.exists()
    # What it keeps of scanned code (names, imports) is readable by the user alone, its journal too.
    for path in cache.parent.glob(FILE_NAME + "*"):
        assert path.stat().st_mode & 0o077 == 0, path
    parsed.clear()
    code, warm = scan_json(tmp_path, src, ref, args=("--workers", "1"))
    assert parsed == []  # nothing parsed again
    assert _no_times(fresh) == _no_times(cold) == _no_times(warm)
    (src / "mine" / "own.py").write_text("def changed(x):\n    return x\n")
    parsed.clear()
    code, changed = scan_json(tmp_path, src, ref, args=("--workers", "1"))
    assert parsed == [len(b"def changed(x):\n    return x\n")]
    code, afresh = scan_json(tmp_path, src, ref, args=("--workers", "1", "--no-parse-cache"))
    assert _no_times(changed) == _no_times(afresh)


def test_the_pool_uses_and_fills_the_cache(tmp_path, monkeypatch):
    from scanner.fingerprint import Params, fingerprint_sources
    from scanner.walk import walk_tree

    units = walk_tree(ROOT / "scanner").units * 6  # enough to use the pool; each file 6 times: one entry each
    cache = ParseCache(tmp_path)
    cold = fingerprint_sources(units, Params(), workers=2, cache=cache)
    assert cache.hits == 0
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        (entries,) = db.execute("SELECT COUNT(*) FROM syntax").fetchone()
    python = [u for u in units if u.path.endswith(".py")]  # configs (the presets) are not parsed by tree-sitter-python
    assert entries == len({u.data for u in python}) == len(python) // 6 > 10
    warm = fingerprint_sources(units, Params(), workers=2, cache=cache)
    assert cache.hits == len(python)
    plain = fingerprint_sources(units, Params(), workers=2)
    for a, b, c in zip(cold, warm, plain):
        _same_unit(a.unit, b.unit)
        _same_unit(a.unit, c.unit)
        for name in ("abs_tok", "con_tok", "lines", "eligible", "sigs"):
            assert np.array_equal(getattr(a.prints, name), getattr(b.prints, name))
        assert a.license == b.license == c.license and a.syntax is b.syntax is None


def test_an_index_built_from_kept_parses_is_the_index_built_afresh(tmp_path):
    from conftest import main

    ref = write_tree(tmp_path / "ref", {f"pkg/m{i}.py": renamed_attention().replace("class ", f"class V{i}") for i in range(4)})
    arrays = []
    for n, extra in enumerate(((), (), ("--no-parse-cache",))):
        assert main(["index", "add", "ref", str(ref), "--index", str(tmp_path / f"idx{n}"), *extra]) == 0
        [folder] = (tmp_path / f"idx{n}" / "refs").iterdir()
        arrays.append({p.name: p.read_bytes() for p in sorted(folder.glob("*.npy"))})
    assert arrays[0] == arrays[1] == arrays[2] and len(arrays[0]) >= 10


def test_a_damaged_cache_costs_a_parse_not_a_result(tmp_path, monkeypatch, capsys):
    ref, src = _project(tmp_path)
    cache = Path(os.environ["PROVSCAN_CACHE_DIR"]) / FILE_NAME
    _, expected = scan_json(tmp_path, src, ref, args=("--no-parse-cache",))
    parsed = _instrumented(monkeypatch)
    # Entries that are not parse results of their bytes: each is a miss, parsed and replaced.
    _, first = scan_json(tmp_path, src, ref)
    with sqlite3.connect(cache) as db:
        keys = [k for (k,) in db.execute("SELECT key FROM syntax")]
        for key, value in zip(keys, [b"garbage", b"[[[0,99999,1,1,\"x\",false]],[],[],[]]", b"[1]", b"[[],[],[],[-1]]"] * 3):
            db.execute("UPDATE syntax SET value = ? WHERE key = ?", (value, key))
    parsed.clear()
    _, damaged = scan_json(tmp_path, src, ref)
    assert len(parsed) == len(keys) == 5
    parsed.clear()
    _, repaired = scan_json(tmp_path, src, ref)
    assert parsed == []
    # A file that is not a database: replaced by a new cache.
    cache.write_bytes(b"this is not SQLite" * 100)
    _, garbage = scan_json(tmp_path, src, ref)
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM syntax").fetchone()[0] == 5
    # A cache directory that cannot be one (a file stands there): no cache, same report.
    blocked = tmp_path / "blocked"
    blocked.write_text("a file")
    _, uncached = scan_json(tmp_path, src, ref, args=("--cache-dir", str(blocked / "sub")))
    for report in (first, damaged, repaired, garbage, uncached):
        assert _no_times(report) == _no_times(expected)
    assert "Traceback" not in capsys.readouterr().err


def test_the_least_recently_used_entries_go_first(tmp_path, monkeypatch):
    import scanner.parsecache as pc

    cache = ParseCache(tmp_path)
    syntaxes = [(cache_key(f"x = {i}\n".encode(), True), parse_syntax(f"x = {i}\n".encode())) for i in range(12)]
    cache.put(syntaxes[:11])
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        for i, (key, _) in enumerate(syntaxes[:11]):  # used long ago, in this order; the first used last
            db.execute("UPDATE syntax SET used = ? WHERE key = ?", (5000 if i == 0 else 1000 + i, key))
        pages = db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    monkeypatch.setattr(pc, "MAX_BYTES", pages - 1)  # what is there is already too much
    cache.put(syntaxes[11:])  # 12 entries: the least recently used quarter goes
    found = cache.get([k for k, _ in syntaxes], [len(f"x = {i}\n") for i in range(12)])
    assert [i for i, s in enumerate(found) if s is not None] == [0, 4, 5, 6, 7, 8, 9, 10, 11]
    assert found[0] == syntaxes[0][1]
    monkeypatch.setattr(pc, "MAX_BYTES", 2**30)
    cache.put(syntaxes[1:4])  # under the bound: nothing goes
    assert all(s is not None for s in cache.get([k for k, _ in syntaxes], [len(f"x = {i}\n") for i in range(12)]))
