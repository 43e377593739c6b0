"""Bad input gets one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES, make_repo

UPSTREAM = str(EXAMPLES / "upstream")


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("provscan: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_path(tmp_path):
    assert_one_line_error(run("scan", str(tmp_path / "nope"), "--reference", UPSTREAM), "nope")


def test_missing_reference_path(tmp_path):
    assert_one_line_error(run("scan", str(EXAMPLES / "suspect"), "--reference", str(tmp_path / "gone")), "gone")


def test_unknown_scheme():
    assert_one_line_error(run("scan", "gopher://example.org/repo", "--reference", UPSTREAM), "gopher://")


def test_nonexistent_revision(tmp_path):
    make_repo(tmp_path / "repo", {"a.py": "x = 1\n"})
    assert_one_line_error(run("scan", f"file://{tmp_path / 'repo'}@no-such-branch", "--reference", UPSTREAM),
                          "no-such-branch")


@pytest.mark.parametrize("url", ["-uevil", "--upload-pack=touch /tmp/provscan-pwned", "ext::sh -c touch% /tmp/provscan-pwned",
                                 "fd::17"])
def test_dangerous_urls_refused(tmp_path, url):
    proc = run("scan", str(EXAMPLES / "suspect"), f"--reference={url}")
    assert_one_line_error(proc)
    proc = run("scan", "--reference", UPSTREAM, "--", url)
    assert_one_line_error(proc)


def test_usage_errors():
    assert_one_line_error(run("scan", str(EXAMPLES / "suspect")), "--reference")
    assert_one_line_error(run("scan", str(EXAMPLES / "suspect"), "-r", UPSTREAM, "--format", "pdf"), "--format")
    assert_one_line_error(run("scan", str(EXAMPLES / "suspect"), "-r", UPSTREAM, "--max-file-size", "big"),
                          "max-file-size")
    assert_one_line_error(run("scan", str(EXAMPLES / "suspect"), "-r", UPSTREAM, "--min-similarity", "2"),
                          "min-similarity")


def test_unwritable_output(tmp_path):
    proc = run("scan", str(EXAMPLES / "suspect"), "-r", UPSTREAM, "--output", str(tmp_path / "no" / "dir" / "r.json"))
    assert_one_line_error(proc, "cannot write")


def test_report_to_a_full_device():
    """Standard output on a device that takes nothing (/dev/full): one line, exit 2, whether the
    report fails at the write or at the flush after it."""
    for fmt in ("json", "text"):
        with open("/dev/full", "w") as full:
            proc = subprocess.run([sys.executable, "-m", "scanner", "scan", str(EXAMPLES / "suspect"), "-r", UPSTREAM,
                                   "--format", fmt], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
        proc.stdout = ""
        assert_one_line_error(proc, "cannot write the report", "No space left")


def test_other_output_to_a_full_device():
    """The same for a command that prints a listing (more than the stream's buffer holds)."""
    for fmt in ("text", "json"):
        with open("/dev/full", "w") as full:
            proc = subprocess.run([sys.executable, "-m", "scanner", "index", "presets", "--format", fmt], stdout=full,
                                  stderr=subprocess.PIPE, text=True, timeout=120)
        proc.stdout = ""
        assert_one_line_error(proc, "cannot write", "No space left")


def test_report_to_a_reader_that_has_gone():
    """`provscan scan ... | head`: the reader has closed the pipe (here before the scan starts, so
    every write fails). No traceback, no "Exception ignored" noise, the exit code of the findings."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "scanner", "scan", str(EXAMPLES / "suspect"), "-r", UPSTREAM],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (1, "")  # unattributed copies, as if it had all been read


def test_source_is_a_file(tmp_path):
    f = tmp_path / "file.py"
    f.write_text("x = 1\n")
    assert_one_line_error(run("scan", str(f), "-r", UPSTREAM))
