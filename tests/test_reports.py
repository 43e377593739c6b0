"""SARIF and Markdown reports of real scans (the example trees, and trees the tests write)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from reports.markdown import LIMIT, render_markdown
from scanner.attribute import Attribution
from scanner.cli import main
from scanner.report import Finding, Location, Report
from tests.conftest import EXAMPLES


def _scan(tmp_path: Path, source: Path, fmt: str, *refs: Path) -> str:
    out = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}.{fmt}"
    argv = ["scan", str(source), "--format", fmt, "--output", str(out), "--fail-on", "never"]
    for ref in refs:
        argv += ["--reference", str(ref)]
    assert main(argv) == 0
    return out.read_text(encoding="utf-8")


def test_output_to_a_named_pipe_writes_into_it_and_leaves_it_a_pipe(tmp_path):
    """--output /dev/stdout, /dev/null or a pipe: the atomic write (a temp file renamed over the
    target) would replace the device or pipe itself with a regular file. A pipe stands in for them:
    the test may not touch /dev."""
    pipe = tmp_path / "report.pipe"
    os.mkfifo(pipe)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()), daemon=True)
    reader.start()
    argv = ["scan", str(EXAMPLES / "suspect"), "--reference", str(EXAMPLES / "upstream"), "--format", "json",
            "--output", str(pipe), "--fail-on", "never"]
    assert main(argv) == 0
    reader.join(10)
    assert not reader.is_alive(), "nothing was written into the pipe"
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["report.pipe"]  # no temp file left beside it
    findings = json.loads(got[0])["findings"]
    assert len(findings) == 16
    assert findings == json.loads(_scan(tmp_path, EXAMPLES / "suspect", "json", EXAMPLES / "upstream"))["findings"]


def test_sarif_of_the_example_scan(tmp_path):
    sarif = json.loads(_scan(tmp_path, EXAMPLES / "suspect", "sarif", EXAMPLES / "upstream"))
    findings = json.loads(_scan(tmp_path, EXAMPLES / "suspect", "json", EXAMPLES / "upstream"))["findings"]
    assert sarif["version"] == "2.1.0" and len(sarif["runs"]) == 1
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for rule in rules:
        assert rule["name"] and rule["shortDescription"]["text"] and rule["fullDescription"]["text"] and rule["help"]["text"]
    results = run["results"]
    assert len(results) == len(findings) == 16
    bases = run["originalUriBaseIds"]
    for result, finding in zip(results, findings):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == finding["kind"]
        assert result["level"] == finding["severity"]
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"] == {"uri": finding["path"], "uriBaseId": "SRCROOT"}
        assert loc["region"] == {"startLine": finding["start_line"], "endLine": finding["end_line"]}
        assert result["partialFingerprints"]["primaryLocationLineHash"] == f"{finding['id']}:1"
        related = result["relatedLocations"][0]["physicalLocation"]
        assert related["artifactLocation"]["uriBaseId"] in bases
        assert "://" not in related["artifactLocation"]["uri"] and not related["artifactLocation"]["uri"].startswith("/")
        assert related["artifactLocation"]["uri"] == finding["reference"]["path"]
        assert related["region"]["startLine"] == finding["reference"]["start_line"]
        props = result["properties"]
        assert props["reference"] == "upstream" and props["license"] == "Apache-2.0"
        assert props["similarity"] == finding["similarity"]
        if finding["kind"].endswith("-copy"):
            assert props["attribution"] == finding["attribution"]["status"]
    levels = {r["level"] for r in results}
    assert levels == {f["severity"] for f in findings} and {"error", "note"} <= levels


def test_sarif_fingerprints_survive_lines_inserted_above(tmp_path):
    tree = tmp_path / "suspect"
    shutil.copytree(EXAMPLES / "suspect", tree)
    before = json.loads(_scan(tmp_path, tree, "sarif", EXAMPLES / "upstream"))["runs"][0]["results"]
    target = tree / "acmelm" / "attention.py"
    target.write_text("# a new header line\n" * 7 + target.read_text(encoding="utf-8"), encoding="utf-8")
    after = json.loads(_scan(tmp_path, tree, "sarif", EXAMPLES / "upstream"))["runs"][0]["results"]

    def keyed(results):
        return {r["partialFingerprints"]["primaryLocationLineHash"]: r for r in results}

    b, a = keyed(before), keyed(after)
    assert b.keys() == a.keys() and len(b) == len(before)  # stable and unique
    moved = [k for k, r in b.items() if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "acmelm/attention.py"]
    assert moved
    for k in moved:
        assert (a[k]["locations"][0]["physicalLocation"]["region"]["startLine"]
                == b[k]["locations"][0]["physicalLocation"]["region"]["startLine"] + 7)


def test_markdown_of_the_example_scan_quotes_both_sides(tmp_path):
    md = _scan(tmp_path, EXAMPLES / "suspect", "markdown", EXAMPLES / "upstream")
    assert md.startswith("## provscan: 16 findings")
    assert "| unattributed-copy | 7 |" in md and "| upstream | " in md
    assert md.count("<details>") == md.count("</details>") == 16
    # The renamed copy of repeat_kv: the scanned excerpt and the reference excerpt, each fenced.
    block = md[md.index("expand_heads</summary>"):]
    block = block[:block.index("</details>")]
    assert "def expand_heads(t, factor):" in block and "def repeat_kv(hidden_states, n_rep):" in block
    assert block.count("```python") == 2


def _finding(i: int, path: str) -> Finding:
    ref = Location("upstream", "lib/model.py", 10, 60, "Model.forward", license="MIT", copyright=["Copyright X"])
    return Finding(id=f"{i:016x}", kind="unattributed-copy", severity="error", path=path, cell=None,
                   start_line=1 + i, end_line=51 + i, symbol=f"Copy{i}.forward", clone_type="modified",
                   similarity=0.9, similarity_concrete=0.7, reference=ref, attribution=Attribution("unattributed", []),
                   message=f"copy {i} | with a pipe <b>and html</b>")


def test_markdown_stays_under_the_comment_limit_and_says_what_it_left_out():
    lines = [f"    x{i} = compute({i})  # a line of code" for i in range(400)]
    findings = [_finding(i, "pkg/<script>alert(1)</script>|x.py") for i in range(2000)]
    report = Report("0.1.0", {"source": "repo"}, [{"name": "upstream", "source": "ref", "license": "MIT"}],
                    findings, [], [], [], 0.1)
    md = render_markdown(report, lambda side, name, path: lines)
    assert len(md) <= LIMIT
    shown = md.count("<details>")
    assert 0 < shown < 2000
    assert f"{2000 - shown} more findings left out" in md
    assert "<script>" not in md and "<b>" not in md and "\\|" in md
    assert "# ... 11 more lines" in md  # excerpts capped at 40 lines of the 51


def test_markdown_without_reference_text_says_so(tmp_path):
    report = Report("0.1.0", {"source": "repo"}, [], [_finding(0, "a.py")], [], [], [], 0.1)
    md = render_markdown(report, None)
    assert md.count("(source text not available)") == 2


def _validate_spdx(path: Path) -> dict:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    messages = validate_full_spdx_document(parse_file(str(path)))
    assert messages == [], [m.validation_message for m in messages]
    return json.loads(path.read_text(encoding="utf-8"))


def test_spdx_snippets_of_the_example_scan_validate_and_point_at_the_copied_bytes(tmp_path):
    import hashlib

    out = tmp_path / "report.spdx.json"
    out.write_text(_scan(tmp_path, EXAMPLES / "suspect", "spdx", EXAMPLES / "upstream"), encoding="utf-8")
    doc = _validate_spdx(out)
    findings = json.loads(_scan(tmp_path, EXAMPLES / "suspect", "json", EXAMPLES / "upstream"))["findings"]
    copies = [f for f in findings if f["kind"].endswith("-copy")]
    files = {f["SPDXID"]: f for f in doc["files"]}
    assert {f["fileName"] for f in doc["files"]} == {"./" + p.relative_to(EXAMPLES / "suspect").as_posix()
                                                     for p in (EXAMPLES / "suspect").rglob("*.py")}
    for entry in doc["files"]:
        data = (EXAMPLES / "suspect" / entry["fileName"][2:]).read_bytes()
        assert entry["checksums"] == [{"algorithm": "SHA1", "checksumValue": hashlib.sha1(data).hexdigest()}]
    assert len(doc["snippets"]) == len(copies)
    for snippet, finding in zip(doc["snippets"], copies):
        entry = files[snippet["snippetFromFile"]]
        assert entry["fileName"] == "./" + finding["path"]
        by_bytes, by_lines = snippet["ranges"]
        assert (by_lines["startPointer"]["lineNumber"], by_lines["endPointer"]["lineNumber"]) == (
            finding["start_line"], finding["end_line"])
        data = (EXAMPLES / "suspect" / finding["path"]).read_bytes()
        lines = data.split(b"\n")[finding["start_line"] - 1:finding["end_line"]]
        assert data[by_bytes["startPointer"]["offset"] - 1:by_bytes["endPointer"]["offset"]] == b"\n".join(lines)
        assert snippet["licenseConcluded"] == "Apache-2.0"
        assert "The TinyLM Authors" in snippet["copyrightText"]
        ref = finding["reference"]
        assert f"{ref['name']}:{ref['path']}:{ref['start_line']}-{ref['end_line']}" in snippet["comment"]


def test_spdx_names_a_licence_ref_with_its_extracted_text(tmp_path):
    body = "".join(f"    total = total + weights[{i}] * inputs[{i}] - bias * {i}\n" for i in range(12))
    code = f"def mix(weights, inputs, bias):\n    total = 0\n{body}    return total / len(weights)\n"
    header = ("# Copyright (c) Meta Platforms, Inc. and affiliates.\n# This software may be used and distributed "
              "according to the terms of the Llama 2 Community License Agreement.\n\n")
    ref = tmp_path / "ref"
    (ref / "llama").mkdir(parents=True)
    (ref / "llama" / "ops.py").write_text(header + code, encoding="utf-8")
    licence = ("LLAMA 2 COMMUNITY LICENSE AGREEMENT\nLlama 2 Version Release Date: July 18, 2023\n\n"
               "\"Agreement\" means the terms and conditions for use of the Llama Materials set forth herein.\n")
    (ref / "LICENSE").write_text(licence, encoding="utf-8")
    suspect = tmp_path / "suspect"
    suspect.mkdir()
    (suspect / "ops.py").write_text(code.replace("mix", "blend"), encoding="utf-8")
    out = tmp_path / "report.spdx.json"
    out.write_text(_scan(tmp_path, suspect, "spdx", ref), encoding="utf-8")
    doc = _validate_spdx(out)
    [snippet] = doc["snippets"]
    assert snippet["licenseConcluded"] == "LicenseRef-Llama-2-Community"
    [info] = doc["hasExtractedLicensingInfos"]
    assert info["licenseId"] == "LicenseRef-Llama-2-Community" and info["extractedText"] == licence
    assert "Meta Platforms" in snippet["copyrightText"]


def test_sarif_validates_against_the_sarif_2_1_0_schema(tmp_path):
    import os

    import jsonschema

    schema_path = Path(os.environ.get("PROVSCAN_SARIF_SCHEMA", Path(__file__).parents[1] / ".ci/cache/sarif-2.1.0-rtm.5.json"))
    if not schema_path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the SARIF schema is missing ({schema_path}): .ci/run fetches it")
        pytest.skip("the SARIF schema is not fetched (run .ci/run once)")
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    sarif = json.loads(_scan(tmp_path, EXAMPLES / "suspect", "sarif", EXAMPLES / "upstream"))
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(sarif)]
    assert errors == []
    sarif["runs"][0]["results"][0]["level"] = "fatal"  # the schema does check what we rely on
    assert list(validator.iter_errors(sarif))


def test_json_writer_is_jsons_own_output_down_to_its_depth():
    """reports.json_report.dumps indents the first levels and writes deeper containers compact
    (orjson, json's encoder for what orjson cannot write); indented all the way down it is exactly
    json.dumps(indent=2), and at any depth the same value. JSON has no NaN: non-finite floats are null."""
    import json
    import math
    import random

    from reports.json_report import dumps

    rnd = random.Random(1)

    def value(level):
        r = rnd.random()
        if level > 4 or r < 0.3:
            return rnd.choice([1, 2.5, 'é"x\n', None, True, False, -3, "", "\u2028<script>", float("nan"), float("inf"),
                               -float("inf"), -0.0, 1e300, 2**70, 0.1 + 0.2])
        if r < 0.65:
            return [value(level + 1) for _ in range(rnd.randrange(0, 4))]
        return {rnd.choice(["a", "b", "ü", "c d"]) + str(i): value(level + 1) for i in range(rnd.randrange(0, 4))}

    def finite(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        return [finite(x) for x in v] if isinstance(v, list) else v

    for _ in range(2000):
        v = value(0)
        assert dumps(v, depth=99) == json.dumps(finite(v), indent=2, ensure_ascii=False)
        for depth in range(5):
            written = dumps(v, depth=depth)
            assert json.dumps(json.loads(written)) == json.dumps(finite(v))  # the same value
            assert "NaN" not in written and "Infinity" not in written
    # Integers beyond 64 bits, which orjson refuses, inside a compact container: json's encoder.
    assert dumps([[2**70, float("nan")], {"é": 1}], depth=1) == f'[\n  [{2**70},null],\n  {{"é":1}}\n]'
    assert dumps({"a": {"b": [1, 2]}, "c": []}, depth=1) == '{\n  "a": {"b":[1,2]},\n  "c": []\n}'
    assert dumps({1: [1, {True: None}]}, depth=99) == json.dumps({1: [1, {True: None}]}, indent=2)
