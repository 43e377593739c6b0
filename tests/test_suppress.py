"""Inline directives (`# provscan: ignore[KIND] REASON`, `# provscan: source=...`) and the
GitHub annotation format, on copies of the example trees."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reports.github import render_github
from scanner.attribute import Attribution
from scanner.cli import main
from scanner.report import Finding, Report
from tests.conftest import EXAMPLES, by_symbol, scan_json


def _suspect(tmp_path: Path, before_expand_heads: str) -> Path:
    tree = tmp_path / "suspect"
    shutil.copytree(EXAMPLES / "suspect", tree)
    path = tree / "acmelm" / "attention.py"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("def expand_heads(", before_expand_heads + "def expand_heads(", 1), encoding="utf-8")
    return tree


def test_ignore_with_a_reason_suppresses_that_kind_and_the_report_lists_it(tmp_path):
    tree = _suspect(tmp_path, "# provscan: ignore[unattributed-copy] vendored under our Apache-2.0 NOTICE entry\n")
    _, report = scan_json(tmp_path, tree, EXAMPLES / "upstream")
    assert "expand_heads" not in by_symbol(report, "unattributed-copy")
    [sup] = [s for s in report["suppressed"] if s["symbol"] == "expand_heads"]
    assert sup["kind"] == "unattributed-copy"
    assert sup["suppression"] == {"line": 14, "reason": "vendored under our Apache-2.0 NOTICE entry"}
    assert report["summary"]["suppressed"] == 1
    # Other kinds and other fragments are untouched.
    assert "AcmeSelfAttention" in by_symbol(report, "unattributed-copy")
    assert any(f["kind"] == "notice-removed" and f["path"] == "acmelm/attention.py" for f in report["findings"])
    out = tmp_path / "report.txt"
    assert main(["scan", str(tree), "--reference", str(EXAMPLES / "upstream"), "--output", str(out)]) == 1
    assert "suppressed: acmelm/attention.py:15: unattributed-copy (vendored under our Apache-2.0 NOTICE entry)" in out.read_text()
    sarif_out = tmp_path / "report.sarif"
    main(["scan", str(tree), "--reference", str(EXAMPLES / "upstream"), "--format", "sarif", "--output", str(sarif_out)])
    results = json.loads(sarif_out.read_text())["runs"][0]["results"]
    [judged] = [r for r in results if "suppressions" in r]
    assert judged["suppressions"] == [{"kind": "inSource", "justification": "vendored under our Apache-2.0 NOTICE entry"}]
    assert judged["locations"][0]["physicalLocation"]["region"]["startLine"] == 15


def test_ignore_without_a_reason_or_of_another_kind_suppresses_nothing(tmp_path):
    tree = _suspect(tmp_path, "# provscan: ignore[unattributed-copy]\n")
    _, report = scan_json(tmp_path, tree, EXAMPLES / "upstream")
    assert "expand_heads" in by_symbol(report, "unattributed-copy") and report["suppressed"] == []
    assert {"path": "acmelm/attention.py", "kind": "suppression-without-reason", "line": 14} == {
        k: v for k, v in report["notes"][-1].items() if k != "detail"}
    tree2 = _suspect(tmp_path / "b", "# provscan: ignore[attributed-copy] not the kind this copy has\n")
    _, report = scan_json(tmp_path, tree2, EXAMPLES / "upstream")
    assert "expand_heads" in by_symbol(report, "unattributed-copy") and report["suppressed"] == []


def test_source_tag_naming_the_reference_is_fragment_level_attribution(tmp_path):
    tree = _suspect(tmp_path, "# provscan: source=upstream\n")
    _, report = scan_json(tmp_path, tree, EXAMPLES / "upstream")
    f = by_symbol(report, "attributed-copy")["expand_heads"]
    assert f["attribution"]["evidence"][0]["level"] == "fragment"
    assert f["attribution"]["evidence"][0]["text"] == "# provscan: source=upstream"
    tree2 = _suspect(tmp_path / "b", "# provscan: source=somewhere-else\n")
    _, report = scan_json(tmp_path, tree2, EXAMPLES / "upstream")
    assert "expand_heads" in by_symbol(report, "unattributed-copy")


def test_github_annotations_cannot_be_split_by_the_scanned_text():
    f = Finding(id="1", kind="unattributed-copy", severity="error", path="pkg/a,b:c.py", cell=None, start_line=3,
                end_line=9, symbol="f", clone_type="exact", similarity=1.0, similarity_concrete=1.0, reference=None,
                attribution=Attribution("unattributed", []), message="copied\n::error::injected 100%")
    note = Finding(id="2", kind="attributed-copy", severity="note", path="ok.py", cell=None, start_line=1,
                   end_line=2, symbol=None, clone_type="exact", similarity=1.0, similarity_concrete=1.0,
                   reference=None, attribution=Attribution("attributed", []), message="fine")
    out = render_github(Report("0.1.0", {"source": "x"}, [], [f, note], [], [], [], 0.1))
    lines = out.splitlines()
    assert lines == [
        "::error file=pkg/a%2Cb%3Ac.py,line=3,endLine=9,title=provscan unattributed-copy::copied%0A::error::injected 100%25",
        "::notice file=ok.py,line=1,endLine=2,title=provscan attributed-copy::fine",
    ]
