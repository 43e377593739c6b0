"""The HTML report opened in real headless Chromium (Debian `chromium`, installed by .ci/run)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scanner.attribute import Attribution
from scanner.cli import main
from scanner.report import Finding, Location, Report
from tests.conftest import EXAMPLES


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed")
    return path


def _chrome(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chrome-profile"
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--no-first-run",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=120, check=True)


def open_page(chromium: str, tmp_path: Path, page: Path, fragment: str = "") -> tuple[str, list[str]]:
    """(the DOM after the page's script ran, console messages)."""
    done = _chrome(chromium, tmp_path, "--dump-dom", page.as_uri() + (f"#{fragment}" if fragment else ""))
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert 'data-ready="1"' in done.stdout, "the report's script did not finish"
    return done.stdout, console


def _html(tmp_path: Path, source: Path, ref: Path) -> Path:
    out = tmp_path / "report.html"
    assert main(["scan", str(source), "--reference", str(ref), "--format", "html", "--output", str(out),
                 "--fail-on", "never"]) == 0
    return out


def _json(tmp_path: Path) -> dict:
    import json

    out = tmp_path / "report.json"
    main(["scan", str(EXAMPLES / "suspect"), "--reference", str(EXAMPLES / "upstream"), "--format", "json",
          "--output", str(out), "--fail-on", "never"])
    return json.loads(out.read_text(encoding="utf-8"))


def _cards(dom: str) -> list[str]:
    return re.findall(r'<div class="finding" data-kind="([^"]+)"', dom)


def test_example_report_renders_filters_and_has_no_console_errors(chromium, tmp_path):
    page = _html(tmp_path, EXAMPLES / "suspect", EXAMPLES / "upstream")
    html = page.read_text(encoding="utf-8")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    dom, console = open_page(chromium, tmp_path, page)
    assert console == []
    assert len(_cards(dom)) == 16 and "16 of 16 findings" in dom
    # Both sides of a renamed copy, with the matched lines highlighted.
    # Both sides of a renamed copy in one table, the matched block starting on the same row.
    rows = re.findall(r'<tr class="hit">(.*?)</tr>', dom)
    assert any("def expand_heads(t, factor):" in r and "def repeat_kv(hidden_states, n_rep):" in r for r in rows)
    assert "<svg" in dom and "acmelm/attention.py (3)" in dom
    dom, console = open_page(chromium, tmp_path, page, "kind=unattributed-copy")
    assert console == [] and set(_cards(dom)) == {"unattributed-copy"} and len(_cards(dom)) == 7
    assert "7 of 16 findings" in dom
    dom, _ = open_page(chromium, tmp_path, page, "status=attributed")
    statuses = re.findall(r'<div class="finding" data-kind="[^"]+" data-id="[^"]+" data-status="([^"]*)"', dom)
    expected = sum(f["attribution"]["status"] == "attributed" for f in _json(tmp_path)["findings"] if f.get("attribution"))
    assert set(statuses) == {"attributed"} and len(statuses) == expected >= 4
    shot = tmp_path / "report.png"
    _chrome(chromium, tmp_path, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


HOSTILE = '''
def render_banner(title, width):
    """Banner."""
    head = "</script><script>alert(1)</script>" + title
    body = "{{ 7*7 }} {% if true %}x{% endif %}" * width
    tail = "\x1b[31mred\x1b[0m \x1b]0;pwned\x07"
    lines = [head, body, tail]
    for index in range(width):
        lines.append(str(index) * width)
    return "\\n".join(lines) + title.upper() + str(width)
'''


def test_hostile_code_renders_as_inert_text(chromium, tmp_path):
    ref, suspect = tmp_path / "ref", tmp_path / "suspect"
    (ref / "lib").mkdir(parents=True)
    suspect.mkdir()
    (ref / "lib" / "banner.py").write_text(HOSTILE, encoding="utf-8")
    (suspect / "banner.py").write_text(HOSTILE.replace("render_banner", "make_banner"), encoding="utf-8")
    page = _html(tmp_path, suspect, ref)
    html = page.read_text(encoding="utf-8")
    assert html.count("<script") == 2 and "\x1b" not in html
    dom, console = open_page(chromium, tmp_path, page)
    assert console == []
    assert dom.count("<script") == 2  # ours: the data and the program; nothing from the scanned code
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "{{ 7*7 }}" in dom and "49" not in dom.split('id="findings"')[1].split("def make_banner")[0]
    assert "\x1b" not in dom and "\\x1b[31mred" in dom


def test_five_thousand_findings_are_paged(chromium, tmp_path):
    from reports.html import render_html

    ref = Location("upstream", "lib/model.py", 10, 20, "Model.forward", license="MIT", copyright=["Copyright X"])
    findings = [Finding(id=f"{i:016x}", kind="unattributed-copy" if i % 3 else "attributed-copy",
                        severity="error" if i % 3 else "note", path=f"pkg/m{i // 10}.py", cell=None,
                        start_line=1 + i % 10 * 20, end_line=15 + i % 10 * 20, symbol=f"C{i}.forward",
                        clone_type="modified", similarity=0.9, similarity_concrete=0.7, reference=ref,
                        attribution=Attribution("unattributed" if i % 3 else "attributed", []), message=f"finding {i}")
                for i in range(5000)]
    lines = [f"line {n}" for n in range(1, 400)]
    report = Report("0.1.0", {"source": "big", "files": 500, "fragments": 9000}, [], findings, [], [], [], 1.0,
                    texts=lambda side, name, path: lines)
    page = tmp_path / "big.html"
    page.write_text(render_html(report), encoding="utf-8")
    dom, console = open_page(chromium, tmp_path, page)
    assert console == [] and len(_cards(dom)) == 50 and "5000 of 5000 findings" in dom and "page 1 of 100" in dom
    dom, _ = open_page(chromium, tmp_path, page, "kind=attributed-copy&page=3")
    assert set(_cards(dom)) == {"attributed-copy"} and "page 3 of 34" in dom and "finding 1500" in dom


def test_side_by_side_rows_start_each_matched_block_on_one_row():
    from reports.html import _aligned

    scanned = [[n, f"s{n}"] for n in range(10, 17)]  # 10..16
    reference = [[n, f"r{n}"] for n in range(100, 110)]  # 100..109
    rows = _aligned(scanned, reference, [[10, 12, 100, 102], [15, 16, 106, 109]])
    assert rows[0] == [10, "s10", 100, "r100", True] and rows[2] == [12, "s12", 102, "r102", True]
    # Unmatched lines between the blocks are paired, then the second block starts on one row.
    assert rows[3][:4] == [13, "s13", 103, "r103"] and rows[4][:4] == [14, "s14", 104, "r104"]
    assert rows[5][:4] == [None, "", 105, "r105"] and not rows[5][4]
    assert rows[6] == [15, "s15", 106, "r106", True]
    assert rows[-1] == [None, "", 109, "r109", True]
    assert [r[0] for r in rows if r[0] is not None] == list(range(10, 17))
    assert [r[2] for r in rows if r[2] is not None] == list(range(100, 110))
