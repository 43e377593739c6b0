"""Load: eight scans of eight different repositories, started together against one shared index
(embedded, then Redis), give exactly the reports the same scans give one at a time."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, make_repo
from tests.fixtures import (
    LOSS_BODY_TEXT,
    OTHER_ATTENTION,
    REF_ATTENTION,
    REF_HEADER,
    renamed_attention,
)
from tests.test_faults import run_main

SCANS = 8
SUSPECT = EXAMPLES / "suspect"

# Pieces a repository is made of: copies of the "orbit" reference (exact, without its notice,
# renamed, credited, one function), copies of the example upstream (the suspect's files), and
# independent code of the same shape.
PIECES = {
    "exact": ("models/attention.py", REF_HEADER + REF_ATTENTION),
    "notice-removed": ("layers/attn.py", "# Copyright 2025 Zeta Labs\n" + REF_ATTENTION),
    "renamed": ("mix/zeta.py", renamed_attention()),
    "credited": ("adapted/attention.py", REF_HEADER + "# Adapted from orbit.models.attention\n" + REF_ATTENTION),
    "loss": ("train/loss.py", LOSS_BODY_TEXT),
    "independent": ("own/fused.py", OTHER_ATTENTION),
}
SUSPECT_FILES = sorted(str(p.relative_to(SUSPECT)) for p in SUSPECT.rglob("*.py"))


def _repositories(root: Path) -> list[Path]:
    """Eight different repositories, each with findings, from seeded mixes of the pieces."""
    rng = random.Random(8)
    repos = []
    for i in range(SCANS):
        names = sorted(rng.sample(sorted(PIECES), rng.randint(2, 4)))
        if names == ["independent"] or i == 0:
            names = sorted(set(names) | {"exact"})
        files = {f"pkg{i}/{PIECES[n][0]}": PIECES[n][1] for n in names}
        for rel in rng.sample(SUSPECT_FILES, i % 4):  # and some of the example suspect's copies of upstream
            files[f"vendor{i}/{rel}"] = (SUSPECT / rel).read_text()
        files["README.md"] = f"repository {i}: {', '.join(names)}\n"
        make_repo(root / f"repo{i}", files)
        repos.append(root / f"repo{i}")
    return repos


def _scan_argv(repo: Path, index: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "scanner", "scan", str(repo), "--index", index, "--format", "json",
            "--output", str(out), "--fail-on", "never"]


def _report(path: Path) -> dict:
    """The JSON report without what depends on timing."""
    report = json.loads(path.read_text())
    report["summary"].pop("elapsed_s")
    return report


def _one_at_a_time(repos: list[Path], index: str, out: Path) -> list[dict]:
    """The same scans, one after the other (in this process: the same code, without eight start-ups)."""
    reports = []
    for i, repo in enumerate(repos):
        code, _, err = run_main(*_scan_argv(repo, index, out / f"seq{i}.json")[3:])
        assert code == 0, err
        reports.append(_report(out / f"seq{i}.json"))
    return reports


def _together(repos: list[Path], index: str, out: Path) -> list[dict]:
    procs = [subprocess.Popen(_scan_argv(repo, index, out / f"par{i}.json"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i, repo in enumerate(repos)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    return [_report(out / f"par{i}.json") for i in range(len(repos))]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The repositories and the references' sources."""
    root = tmp_path_factory.mktemp("load")
    orbit = root / "orbit"
    make_repo(orbit, {"orbit/models/attention.py": REF_HEADER + REF_ATTENTION, "orbit/__init__.py": "",
                      "LICENSE": "Copyright 2024 The Orbit Research Team\n\nLicensed under the Apache License, "
                                 "Version 2.0 (the \"License\");\n"})
    return _repositories(root / "repos"), {"orbit": orbit, "upstream": EXAMPLES / "upstream"}


def _check(repos: list[Path], index: str, out: Path) -> list[dict]:
    out.mkdir()
    together = _together(repos, index, out)
    alone = _one_at_a_time(repos, index, out)
    for i, (a, b) in enumerate(zip(alone, together)):
        assert a == b, f"repo{i}: a concurrent scan differs from the same scan alone"
    # Different repositories, all with findings: the scans really are eight different ones.
    assert all(r["findings"] for r in alone)
    assert len({json.dumps(r["findings"], sort_keys=True) for r in alone}) == SCANS
    assert all({ref["name"] for ref in r["references"]} == {"orbit", "upstream"} for r in alone)
    return alone


def test_concurrent_scans_against_one_embedded_index(tmp_path, corpus):
    repos, sources = corpus
    index = str(tmp_path / "idx")
    for name, source in sources.items():
        code, _, err = run_main("index", "add", name, str(source), "--index", index)
        assert code == 0, err
    _check(repos, index, tmp_path / "out")


def test_concurrent_scans_against_one_redis_index(tmp_path, corpus, redis_server):
    repos, sources = corpus
    url = f"{redis_server.url}?prefix=load{os.getpid()}"
    for name, source in sources.items():
        code, _, err = run_main("index", "add", name, str(source), "--index", url)
        assert code == 0, err
    _check(repos, url, tmp_path / "out")
