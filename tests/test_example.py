"""The shipped example: every way of copying in examples/suspect is found and judged right."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scanner.fingerprint import Params

from tests.conftest import EXAMPLES, by_symbol, scan_json

MODELING = "tinylm/modeling_tinylm.py"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    code, rep = scan_json(tmp_path_factory.mktemp("example"), EXAMPLES / "suspect", EXAMPLES / "upstream")
    assert code == 1  # unattributed copies are errors
    return rep


# (scanned path, symbol, lines) -> (reference path, reference lines, clone type, attribution status)
EXPECTED = {
    ("acmelm/norm.py", "TinyLMRMSNorm", 20, 40): (MODELING, 26, 46, "exact", "attributed"),
    ("acmelm/norm.py", "rotate_half", 43, 47): (MODELING, 77, 81, "exact", "attributed"),
    ("acmelm/attention.py", "expand_heads", 14, 19): (MODELING, 105, 114, "renamed", "unattributed"),
    ("acmelm/attention.py", "AcmeSelfAttention", 22, 62): (MODELING, 138, 196, "renamed", "unattributed"),
    ("acmelm/mlp.py", "AcmeMLP", 12, 32): (MODELING, 117, 135, "modified", "unattributed"),
    ("acmelm/rotary.py", "AcmeRotaryEmbedding", 12, 34): (MODELING, 49, 74, "modified", "attributed"),
    ("acmelm/rotary.py", "apply_rotary", 38, 44): (MODELING, 84, 102, "renamed", "attributed"),
    ("acmelm/model.py", "AcmeModel", 26, 85): (MODELING, 242, 301, "modified", "unattributed"),
    ("acmelm/model.py", "AcmeForCausalLM", 88, 124): (MODELING, 304, 340, "modified", "unattributed"),
    ("acmelm/sampling.py", "sample_top_p", 8, 28): ("tinylm/generation.py", 19, 39, "exact", "unattributed"),
}


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=lambda k: f"{k[0]}:{k[1]}")
def test_copy_findings(report, key):
    path, symbol, start, end = key
    ref_path, ref_start, ref_end, clone, status = EXPECTED[key]
    found = [f for f in report["findings"] if f["path"] == path and f["symbol"] == symbol]
    assert len(found) == 1, found
    f = found[0]
    assert (f["start_line"], f["end_line"]) == (start, end)
    r = f["reference"]
    assert (r["name"], r["path"], r["start_line"], r["end_line"]) == ("upstream", ref_path, ref_start, ref_end)
    assert f["clone_type"] == clone
    assert f["attribution"]["status"] == status
    assert f["kind"] == ("attributed-copy" if status == "attributed" else "unattributed-copy")
    assert f["severity"] == ("note" if status == "attributed" else "error")
    assert r["license"] == "Apache-2.0"
    assert any("The TinyLM Authors" in c for c in r["copyright"])
    if clone in ("exact", "renamed"):
        assert f["similarity"] == 1.0
    else:
        assert Params().min_similarity <= f["similarity"] < 1.0
    # Matched line ranges lie inside both fragments.
    for block in f["matched_lines"]:
        assert start <= block["start_line"] <= block["end_line"] <= end
        assert ref_start <= block["reference_start_line"] <= block["reference_end_line"] <= ref_end


def test_evidence_is_quoted(report):
    f = by_symbol(report)["AcmeRotaryEmbedding"]
    ev = f["attribution"]["evidence"]
    assert ev[0]["level"] == "fragment" and ev[0]["line"] == 11
    assert ev[0]["text"].startswith("# Adapted from tinylm.modeling_tinylm.TinyLMRotaryEmbedding")
    norm = by_symbol(report)["TinyLMRMSNorm"]["attribution"]["evidence"]
    assert [(e["level"], e["line"]) for e in norm] == [("file", 1)]
    assert "The TinyLM Authors" in norm[0]["text"]


def test_copied_class_is_one_finding_with_members(report):
    f = by_symbol(report)["AcmeSelfAttention"]
    members = {m["symbol"]: m for m in f["members"]}
    assert set(members) == {"AcmeSelfAttention.__init__", "AcmeSelfAttention.forward"}
    assert members["AcmeSelfAttention.forward"]["reference"]["symbol"] == "TinyLMAttention.forward"
    assert not any(x["symbol"].startswith("AcmeSelfAttention.") for x in report["findings"] if x["symbol"])


def test_notice_removed(report):
    notices = {f["path"]: f for f in report["findings"] if f["kind"] == "notice-removed"}
    # Every file that copies TinyLM code without keeping "Copyright 2025 The TinyLM Authors".
    assert set(notices) == {"acmelm/attention.py", "acmelm/mlp.py", "acmelm/model.py", "acmelm/rotary.py",
                            "acmelm/sampling.py"}
    model = notices["acmelm/model.py"]
    assert (model["start_line"], model["end_line"]) == (26, 124)
    assert model["severity"] == "error"
    assert "The TinyLM Authors" in model["message"]


def test_independent_code_is_not_flagged(report):
    flagged = {f["path"] for f in report["findings"]}
    assert "acmelm/independent.py" not in flagged
    assert "acmelm/utils.py" not in flagged
    assert "acmelm/cli.py" not in flagged  # missing-license is off by default


def test_missing_license_on_the_example(tmp_path):
    _, rep = scan_json(tmp_path, EXAMPLES / "suspect", EXAMPLES / "upstream", args=("--missing-license",))
    missing = [f for f in rep["findings"] if f["kind"] == "missing-license"]
    assert [(f["path"], f["severity"]) for f in missing] == [("acmelm/cli.py", "warning")]


def test_report_contract(report):
    assert report["schema"] == "provscan/report/v1"
    assert report["tool"]["name"] == "provscan"
    assert report["scanned"]["files"] == 10 and report["scanned"]["fragments"] > 30
    (ref,) = report["references"]
    assert ref["name"] == "upstream" and ref["license"] == "Apache-2.0" and ref["fragments"] > 20
    kinds = report["summary"]["findings_by_kind"]
    assert kinds == {"attributed-copy": 4, "notice-removed": 5, "unattributed-copy": 7}
    assert sum(kinds.values()) == len(report["findings"])
    ids = [f["id"] for f in report["findings"]]
    assert len(set(ids)) == len(ids)
    for f in report["findings"]:
        for key in ("id", "kind", "severity", "path", "start_line", "end_line", "symbol", "clone_type",
                    "similarity", "reference", "attribution", "message"):
            assert key in f
    lic = {row["path"]: row for row in report["licenses"]}
    assert lic["acmelm/norm.py"]["copyright"] == ["The TinyLM Authors"]
    assert lic["acmelm/model.py"]["copyright"] == [] and lic["acmelm/model.py"]["spdx"] == "Apache-2.0"


def test_ids_stable_across_runs(tmp_path, report):
    _, again = scan_json(tmp_path, EXAMPLES / "suspect", EXAMPLES / "upstream")
    assert [f["id"] for f in again["findings"]] == [f["id"] for f in report["findings"]]


def test_console_script_text_output_and_exit_codes(tmp_path):
    cmd = [sys.executable, "-m", "scanner", "scan", str(EXAMPLES / "suspect"), "--reference", str(EXAMPLES / "upstream")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""  # no progress noise when stderr is not a terminal
    out = proc.stdout
    assert "acmelm/attention.py\n" in out
    assert "unattributed-copy  AcmeSelfAttention  [renamed, similarity 1.00]" in out
    assert "reference: upstream:tinylm/modeling_tinylm.py:138-196 TinyLMAttention (Apache-2.0)" in out
    assert out.rstrip().splitlines()[-1].startswith("16 finding(s) in 10 file(s) against 1 reference(s)")
    never = subprocess.run(cmd + ["--fail-on", "never"], capture_output=True, text=True)
    assert never.returncode == 0
    assert never.stdout.splitlines()[:-1] == out.splitlines()[:-1]  # same report; only the timing differs
