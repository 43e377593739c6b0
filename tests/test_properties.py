"""Properties of fingerprints, matching and the JSON report, on generated Python programs.

Programs come from tests/pygen.py, driven by a hypothesis byte string (`tapes`): each choice of
the generator reads the next byte, and a shrunk (shorter, smaller) tape gives a smaller program.
Every test is derandomised (the same examples on every run) and keeps no example database.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from scanner.cli import main
from scanner.fingerprint import Params, abstract_set, concrete_set, eligible, fingerprint_unit
from scanner.match import ShingleSets, _jaccard, verify
from scanner.parse import parse_unit
from scanner.report import report_schema
from scanner.walk import SourceUnit
from tests import pygen

PARAMS = Params()
TINY = Params(min_tokens=5, min_lines=1)  # nearly every fragment gets a signature


def fast(examples: int):
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class Tape:
    """pygen's `choose`, reading a hypothesis byte string; 0 (the first option) once it runs out."""

    def __init__(self, data: bytes) -> None:
        self.data, self.i = data, 0

    def __call__(self, n: int) -> int:
        if n <= 1 or self.i >= len(self.data):
            return 0
        value = self.data[self.i]
        self.i += 1
        if n > 256 and self.i < len(self.data):
            value = value << 8 | self.data[self.i]
            self.i += 1
        return value % n


tapes = st.binary(min_size=256, max_size=4096).map(Tape)


def fingerprint(text: str, params: Params = PARAMS):
    unit = parse_unit(SourceUnit("m.py", text.encode("utf-8")))
    return unit, fingerprint_unit(unit, params)


def n_lines(text: str) -> int:
    return max(1, text.count("\n") + (0 if text.endswith("\n") else 1))


def signatures(prints) -> dict[int, np.ndarray]:
    return {int(fi): prints.sigs[row] for row, fi in enumerate(prints.eligible)}


# ------------------------------------------------------------------------------------------------
# Fingerprints
# ------------------------------------------------------------------------------------------------

@fast(100)
@given(tapes, st.data())
def test_renaming_identifiers_consistently_keeps_the_abstract_fingerprint(tape, data):
    program, pool = pygen.program(tape)
    # A bijection onto the old names (permuted) and fresh ones, some of them non-ASCII.
    candidates = pool + pygen.name_pool(tape, len(pool), avoid=set(pool))
    order = data.draw(st.permutations(range(len(candidates))))
    renamed = [candidates[i] for i in order[: len(pool)]]
    before, after = pygen.render(program, pool), pygen.render(program, renamed)
    note(before)
    note(after)
    for params in (PARAMS, TINY):
        (u1, p1), (u2, p2) = fingerprint(before, params), fingerprint(after, params)
        assert [(f.kind, f.start_line, f.end_line, f.tok_start, f.tok_end) for f in u1.fragments] == \
               [(f.kind, f.start_line, f.end_line, f.tok_start, f.tok_end) for f in u2.fragments]
        for f in u1.fragments:
            s = slice(f.tok_start, f.tok_end)
            assert np.array_equal(p1.abs_tok[s], p2.abs_tok[s]), f.symbol
        assert p1.eligible.tolist() == p2.eligible.tolist()
        s1, s2 = signatures(p1), signatures(p2)
        for fi in s1:
            assert np.array_equal(s1[fi], s2[fi]), u1.fragments[fi].symbol


@fast(100)
@given(tapes)
def test_whitespace_and_comment_edits_keep_both_fingerprints(tape):
    program, pool = pygen.program(tape)
    style = pygen.random_style(tape, program)
    before, after = pygen.render(program, pool), pygen.render(program, pool, style)
    note(before)
    note(after)
    for params in (PARAMS, TINY):
        (u1, p1), (u2, p2) = fingerprint(before, params), fingerprint(after, params)
        # The same tokens in both channels, file-wide and fragment by fragment.
        assert np.array_equal(p1.abs_tok, p2.abs_tok) and np.array_equal(p1.con_tok, p2.con_tok)
        assert [(f.kind, f.symbol, f.tok_start, f.tok_end) for f in u1.fragments] == \
               [(f.kind, f.symbol, f.tok_start, f.tok_end) for f in u2.fragments]
        s1, s2 = signatures(p1), signatures(p2)
        for fi, (f1, f2) in enumerate(zip(u1.fragments, u2.fragments)):
            tall = [f.end_line - f.start_line + 1 >= params.min_lines for f in (f1, f2)]
            if all(tall):  # blank lines and comments may only change whether it is tall enough
                assert (fi in s1) == (fi in s2) == eligible(f1, params), f1.symbol
            if fi in s1 and fi in s2:
                assert np.array_equal(s1[fi], s2[fi]), f1.symbol


@fast(100)
@given(tapes)
def test_a_fragment_verifies_against_itself_with_similarity_1(tape):
    program, pool = pygen.program(tape)
    unit, prints = fingerprint(pygen.render(program, pool))
    for fi in prints.eligible.tolist():
        f = unit.fragments[fi]
        abstract = abstract_set(prints, f.tok_start, f.tok_end, PARAMS.k)
        sets = ShingleSets(abstract, abstract, concrete_set(prints, f.tok_start, f.tok_end, PARAMS.k))
        assert _jaccard(abstract, abstract) == (1.0, len(abstract))
        assert verify(sets, sets, PARAMS) == (1.0, 1.0)
        # Even when every shingle is reference boilerplate, the names it keeps let it through.
        boiler = ShingleSets(abstract, abstract[:0], sets.concrete)
        assert verify(boiler, boiler, PARAMS) == (1.0, 1.0)


# ------------------------------------------------------------------------------------------------
# End-to-end scans (in-process, like tests/conftest.py scan_json)
# ------------------------------------------------------------------------------------------------

def _scan(out_dir: Path, source: Path, *refs: Path, args: tuple[str, ...] = ()) -> dict:
    out = out_dir / f"report-{len(list(out_dir.glob('report-*.json')))}.json"
    argv = ["scan", str(source), "--format", "json", "--output", str(out), "--workers", "1", *args]
    for ref in refs:
        argv += ["--reference", str(ref)]
    code = main(argv)
    assert code in (0, 1), f"scan failed with exit {code}"
    return json.loads(out.read_text(encoding="utf-8"))


def _reported(report: dict) -> list[dict]:
    """Every reported scanned range: findings and their members, with the finding's path."""
    out = []
    for f in report["findings"] + report["suppressed"]:
        out.append({**f, "_path": f["path"]})
        out += [{**m, "_path": f["path"]} for m in f.get("members", [])]
    return out


@fast(15)
@given(tapes)
def test_a_program_scanned_against_itself_is_an_exact_copy_of_itself(tape):
    program, pool = pygen.program(tape)
    text = pygen.render(program, pool)
    unit, prints = fingerprint(text)
    wanted = [unit.fragments[fi] for fi in prints.eligible.tolist() if unit.fragments[fi].kind != "module"]
    assume(prints.eligible.size)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "code").mkdir()
        (root / "code" / "m.py").write_text(text, encoding="utf-8")
        report = _scan(root, root / "code", root / "code")
    by_range = {(r["symbol"], r["start_line"], r["end_line"]): r for r in _reported(report)}
    tokens = {(f.start_line, f.end_line): (prints.con_tok[f.tok_start:f.tok_end], prints.abs_tok[f.tok_start:f.tok_end])
              for f in unit.fragments}
    for f in wanted:
        assert (f.symbol, f.start_line, f.end_line) in by_range, f"{f.kind} {f.symbol} not reported"
    for r in by_range.values():
        assert r["similarity"] == 1.0, r
        ref = r["reference"]
        con, abs_ = tokens[(r["start_line"], r["end_line"])]
        ref_con, ref_abs = tokens[(ref["start_line"], ref["end_line"])]
        # The best copy of an exact copy is itself, or another fragment with the same shingles.
        expected = "exact" if np.array_equal(con, ref_con) else "renamed" if np.array_equal(abs_, ref_abs) else "modified"
        assert r["clone_type"] == expected, r
        if (ref["start_line"], ref["end_line"]) == (r["start_line"], r["end_line"]):
            assert r["clone_type"] == "exact"


def _within(name: str, start: int, end: int, lines: dict[str, int], outer: tuple[int, int] | None = None) -> None:
    assert name in lines, name
    assert 1 <= start <= end <= lines[name], (name, start, end, lines[name])
    if outer is not None:
        assert outer[0] <= start and end <= outer[1], (name, start, end, outer)


def check_line_ranges(report: dict, scanned: dict[str, int], reference: dict[str, int]) -> int:
    """Every reported range lies within its file (and inside the finding that holds it); returns
    how many ranges were checked."""
    checked = 0
    for f in report["findings"] + report["suppressed"]:
        _within(f["path"], f["start_line"], f["end_line"], scanned)
        ref = f["reference"]
        if ref is None:
            continue
        _within(ref["path"], ref["start_line"], ref["end_line"], reference)
        outer, ref_outer = (f["start_line"], f["end_line"]), (ref["start_line"], ref["end_line"])
        if f["kind"] == "notice-removed":  # spans the file's copies; its reference is the first one
            continue
        for block in f.get("matched_lines", []):
            _within(f["path"], block["start_line"], block["end_line"], scanned, outer)
            _within(ref["path"], block["reference_start_line"], block["reference_end_line"], reference, ref_outer)
        for m in f.get("members", []):
            _within(f["path"], m["start_line"], m["end_line"], scanned, outer)
            _within(m["reference"]["path"], m["reference"]["start_line"], m["reference"]["end_line"], reference)
            for o in m.get("other_locations", {}).get("locations", []):
                _within(o["path"], o["start_line"], o["end_line"], reference)
        for o in f.get("other_locations", {}).get("locations", []):
            _within(o["path"], o["start_line"], o["end_line"], reference)
        checked += 1
    return checked


@fast(20)
@given(tapes)
def test_reported_line_ranges_lie_within_their_files(tape):
    references = [pygen.program(tape) for _ in range(1 + tape(2))]
    ref_texts = {f"pkg/ref{i}.py": pygen.render(p, pool, pygen.random_style(tape, p) if tape(2) else None)
                 for i, (p, pool) in enumerate(references)}
    suspects = {}
    for i in range(1 + tape(3)):
        program, pool = references[tape(len(references))]
        items, names = pygen.modify(tape, program, pool)
        if tape(3) == 0:  # two references' code in one file
            other, other_pool = references[tape(len(references))]
            more, more_names = pygen.modify(tape, other, other_pool)
            items = items + [[_shift(line, len(names)) for line in item] for item in more]
            names = names + more_names
        style = pygen.random_style(tape, items) if tape(2) else None
        suspects[f"s{i}.py"] = pygen.render(items, names, style)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for side, files in (("ref", ref_texts), ("sus", suspects)):
            for rel, text in files.items():
                (root / side / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / side / rel).write_bytes(text.encode("utf-8"))
        report = _scan(root, root / "sus", root / "ref")
    checked = check_line_ranges(report, {k: n_lines(v) for k, v in suspects.items()},
                                {k: n_lines(v) for k, v in ref_texts.items()})
    note(f"{checked} findings checked")


def _shift(line: pygen.Line, offset: int) -> pygen.Line:
    parts = tuple(pygen.Name(p.i + offset) if isinstance(p, pygen.Name) else p for p in line.parts)
    return pygen.Line(line.depth, parts, line.kind, line.comment, line.string_newline)


# ------------------------------------------------------------------------------------------------
# The JSON report and its schema
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def validator():
    schema = report_schema()
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _errors(validator, doc) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


_REF_HEADER = "# Copyright 2024 The Upstreamlib Authors.\n# SPDX-License-Identifier: Apache-2.0\n"


def _function_with_copy(program: pygen.Program, pool: list[str]) -> str | None:
    """The text of an eligible top-level function or class of the program."""
    text = pygen.render(program, pool)
    unit, prints = fingerprint(text)
    for fi in prints.eligible.tolist():
        f = unit.fragments[fi]
        if f.depth == 1:
            return "\n".join(text.split("\n")[f.start_line - 1 : f.end_line]) + "\n"
    return None


@fast(8)
@given(tapes, st.booleans())
def test_json_reports_validate_against_the_shipped_schema(validator, tape, readme):
    program, pool = pygen.program(tape)
    found = _function_with_copy(program, pool)
    assume(found is not None)
    code = found
    renamed = pygen.render(program, [n + "_x" for n in pool])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ref, sus = root / "upstreamlib", root / "suspect"
        (ref / "upstreamlib").mkdir(parents=True)
        (ref / "upstreamlib" / "model.py").write_text(_REF_HEADER + pygen.render(program, pool), encoding="utf-8")
        (ref / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\n", encoding="utf-8")
        files: dict[str, str | bytes] = {
            "plain.py": renamed,  # unattributed (or weak) renamed copy, notice removed
            "credited.py": "# Adapted from upstreamlib/model.py (upstreamlib)\n" + _REF_HEADER + code,
            "judged.py": "# provscan: ignore[unattributed-copy,notice-removed] vetted by legal\n" + code,
            "noreason.py": "# provscan: ignore[*]\n" + code,
            "broken.py": code + "def broken(:\n    return (\n",
            "latin.py": b"# caf\xe9\n" + code.encode("utf-8"),
            "binary.py": b"\x00\x01\x02" + code.encode("utf-8"),
            "ignored/x.py": code,
            "nb.ipynb": json.dumps({"cells": [{"cell_type": "markdown", "source": ["# notes"]},
                                              {"cell_type": "code", "source": code.splitlines(keepends=True)}],
                                    "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
            ".provscan.toml": 'ignore = ["ignored/*"]\n\n[license-policy]\nrequire-spdx = true\n',
        }
        if readme:
            files["README.md"] = "Parts of this package come from upstreamlib.\n"
        for rel, content in files.items():
            (sus / rel).parent.mkdir(parents=True, exist_ok=True)
            (sus / rel).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        (sus / "outside.py").symlink_to(root / "elsewhere.py")
        (root / "elsewhere.py").write_text(code, encoding="utf-8")
        with contextlib.chdir(sus):  # the project configuration is found from the working directory
            assert main(["baseline", str(sus), "--reference", str(ref), "--output", str(root / "b.json"),
                         "--workers", "1", "--missing-license"]) == 0
            baseline = json.loads((root / "b.json").read_text(encoding="utf-8"))
            baseline["findings"] = [e for e in baseline["findings"] if e["path"] == "credited.py"] + [
                {"id": "0123456789abcdef", "kind": "unattributed-copy", "path": "gone.py", "symbol": "gone", "reference": None}]
            (root / "b.json").write_text(json.dumps(baseline), encoding="utf-8")
            report = _scan(root, sus, ref, args=("--missing-license", "--baseline", str(root / "b.json")))
            plain = _scan(root, sus, ref)  # no baseline, default options
    assert _errors(validator, report) == []
    assert _errors(validator, plain) == []
    kinds = {f["kind"] for f in report["findings"]}
    assert {"unattributed-copy", "notice-removed", "license-policy", "missing-license"} <= kinds, kinds
    assert {s["reason"].split(" (")[0] for s in report["skipped"]} >= {
        "binary content", "symlink pointing outside the tree", "ignored by the project configuration"}
    assert {n["kind"] for n in report["notes"]} >= {"syntax-error", "invalid-utf8", "suppression-without-reason"}
    assert report["suppressed"] and report["suppressed"][0]["suppression"]["reason"] == "vetted by legal"
    assert report["baseline"]["accepted"] and [e["id"] for e in report["baseline"]["stale"]] == ["0123456789abcdef"]
    assert any(f.get("cell") == 2 for f in plain["findings"])
    statuses = {f["attribution"]["status"] for f in plain["findings"] if f["kind"].endswith("-copy")}
    assert ("weak" in statuses) == readme and "attributed" in statuses


def test_the_schema_rejects_what_the_contract_forbids(validator, tmp_path):
    from tests.conftest import EXAMPLES

    report = _scan(tmp_path, EXAMPLES / "suspect", EXAMPLES / "upstream", args=("--missing-license",))
    assert _errors(validator, report) == []
    copy = next(i for i, f in enumerate(report["findings"]) if f["kind"] == "unattributed-copy" and f.get("members"))
    broken = [
        ("schema", lambda d: d.update(schema="provscan/report/v2")),
        ("unknown kind", lambda d: d["findings"][copy].update(kind="copy")),
        ("severity", lambda d: d["findings"][copy].update(severity="fatal")),
        ("line 0", lambda d: d["findings"][copy].update(start_line=0)),
        ("clone type", lambda d: d["findings"][copy].update(clone_type="similar")),
        ("null clone type of a copy", lambda d: d["findings"][copy].update(clone_type=None)),
        ("similarity above 1", lambda d: d["findings"][copy].update(similarity=1.5)),
        ("no message", lambda d: d["findings"][copy].pop("message")),
        ("copy without other_locations", lambda d: d["findings"][copy].pop("other_locations")),
        ("other_locations without count", lambda d: d["findings"][copy]["other_locations"].pop("count")),
        ("attribution status", lambda d: d["findings"][copy]["attribution"].update(status="maybe")),
        ("member without reference", lambda d: d["findings"][copy]["members"][0].pop("reference")),
        ("matched lines", lambda d: d["findings"][copy]["matched_lines"][0].pop("reference_end_line")),
        ("summary kind", lambda d: d["summary"]["findings_by_kind"].update(bogus=1)),
        ("skipped entry", lambda d: d["skipped"].append({"path": "x.py"})),
        ("no baseline", lambda d: d.pop("baseline")),
    ]
    for what, breaks in broken:
        doc = json.loads(json.dumps(report))
        breaks(doc)
        assert _errors(validator, doc), what
    # Fields may be added: unknown properties are accepted everywhere.
    doc = json.loads(json.dumps(report))
    doc["new_top_level"] = 1
    doc["findings"][copy]["new_field"] = {"x": 1}
    doc["findings"][copy]["reference"]["new_field"] = []
    assert _errors(validator, doc) == []


# ------------------------------------------------------------------------------------------------
# What the properties and bench/fuzz.py found (minimised)
# ------------------------------------------------------------------------------------------------

def _fragments(src: bytes) -> list[tuple]:
    unit = parse_unit(SourceUnit("m.py", src))
    return [(f.kind, f.symbol, f.start_line, f.end_line) for f in unit.fragments]


def test_a_broken_definition_ending_in_a_line_continuation_ends_within_the_file():
    # tree-sitter ends the def after the continuation's newline (row 2, column 0): line 3 of a 2-line file.
    assert _fragments(b"def u():\n    (()\\\n") == [("module", None, 1, 2), ("function", "u", 1, 2)]


def test_a_docstring_after_a_comment_is_still_a_docstring():
    # Comments are not statements: Python's docstring is the first statement, comments or not.
    for src in (b'# Copyright\n"""Module."""\nimport x\n', b'def f():\n    # note\n    """Doc."""\n    return 1\n'):
        unit = parse_unit(SourceUnit("m.py", src), tokens=True)
        assert not any(t.startswith(b'"""') for t in unit.concrete), src
        assert any(text.startswith('"""') for _, text in unit.comments)


def test_a_comment_between_a_decorator_and_its_def_leaves_the_decorator_in_the_fragment():
    # Valid Python that tree-sitter-python turns into an ERROR (the decorator) when the comment is
    # indented less than the block.
    src = b"class A:\n    x = 1\n    @d\n#    @other\n    def f(self):\n        pass\n"
    assert _fragments(src) == [("module", None, 1, 6), ("class", "A", 1, 6), ("method", "A.f", 3, 6)]
    assert parse_unit(SourceUnit("m.py", src)).error_lines == []
