"""Project configuration, `provscan hook` and baselines, in repositories the tests build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, make_repo

ROOT = Path(__file__).resolve().parents[1]


def provscan(cwd: Path, *args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {"PROVSCAN_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cache),
           "PROVSCAN_HOOK_SERVER": "0"}
    return subprocess.run([sys.executable, "-m", "scanner", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture()
def project(tmp_path) -> tuple[Path, Path]:
    """A git repository holding the example suspect package, and an index of the upstream example."""
    repo = tmp_path / "project"
    make_repo(repo, copy_from=EXAMPLES / "suspect")
    cache = tmp_path / "cache"
    index = tmp_path / "index"
    done = provscan(repo, "index", "add", "upstream", str(EXAMPLES / "upstream"), "--index", str(index), cache=cache)
    assert done.returncode == 0, done.stderr
    (repo / ".provscan.toml").write_text(f'index = "{index}"\n', encoding="utf-8")
    return repo, cache


def test_hook_prints_one_line_per_finding_and_fails_on_unattributed_copies(project):
    repo, cache = project
    done = provscan(repo, "hook", "acmelm/attention.py", "README.md", cache=cache)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert ("acmelm/attention.py:14: unattributed-copy: upstream tinylm/modeling_tinylm.py:105-114 (1.00) \u2014 "
            "credit it at the copy ('# provscan: source=NAME', an SPDX snippet tag) and keep its notice") in lines
    assert all(line.startswith("acmelm/attention.py:") for line in lines)
    # A file without copies passes; so does an empty list.
    assert provscan(repo, "hook", "acmelm/utils.py", cache=cache).returncode == 0
    assert provscan(repo, "hook", cache=cache).returncode == 0


def test_hook_passes_once_the_copies_are_credited(project):
    repo, cache = project
    path = repo / "acmelm" / "attention.py"
    text = path.read_text(encoding="utf-8")
    for name in ("def expand_heads(", "class AcmeSelfAttention("):
        text = text.replace(name, "# provscan: source=upstream\n" + name, 1)
    path.write_text(text, encoding="utf-8")
    done = provscan(repo, "hook", "acmelm/attention.py", cache=cache)
    assert done.returncode == 0, done.stdout
    # The notice is still missing: said, as a warning.
    assert "notice-removed" in done.stdout and "unattributed-copy" not in done.stdout


def test_hook_without_an_index_says_how_to_build_one(tmp_path):
    repo = tmp_path / "project"
    make_repo(repo, copy_from=EXAMPLES / "suspect")
    done = provscan(repo, "hook", "acmelm/attention.py", cache=tmp_path / "cache")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "provscan index add NAME SOURCE" in done.stderr


def test_baseline_accepts_current_findings_and_lists_stale_ones(project):
    repo, cache = project
    done = provscan(repo, "baseline", "--output", ".provscan-baseline.json", cache=cache)
    assert done.returncode == 0, done.stderr
    recorded = json.loads((repo / ".provscan-baseline.json").read_text())
    assert recorded["schema"] == "provscan/baseline/v1" and len(recorded["findings"]) == 16
    with (repo / ".provscan.toml").open("a", encoding="utf-8") as fh:
        fh.write('baseline = ".provscan-baseline.json"\n')
    assert provscan(repo, "hook", "acmelm/attention.py", cache=cache).returncode == 0
    report = provscan(repo, "scan", ".", "--format", "json", cache=cache)
    assert report.returncode == 0 and json.loads(report.stdout)["findings"] == []
    # A new copy is reported; a removed one leaves a stale entry.
    upstream = (EXAMPLES / "upstream" / "tinylm" / "modeling_tinylm.py").read_text(encoding="utf-8").split("\n")
    body = "\n".join(line for line in upstream if not line.startswith("#"))  # its notice stripped
    (repo / "acmelm" / "vendored.py").write_text(body, encoding="utf-8")
    (repo / "acmelm" / "sampling.py").write_text("# nothing copied here any more\n", encoding="utf-8")
    done = provscan(repo, "scan", ".", "--format", "json", cache=cache)
    report = json.loads(done.stdout)
    assert done.returncode == 1 and {f["path"] for f in report["findings"]} == {"acmelm/vendored.py"}
    assert {e["path"] for e in report["baseline"]["stale"]} == {"acmelm/sampling.py"}
    hook = provscan(repo, "hook", "acmelm/sampling.py", cache=cache)
    assert hook.returncode == 0 and "stale baseline entry" in hook.stdout


@pytest.mark.parametrize("config, key", [
    ('fail_on = "any"\n', "fail_on"),
    ('fail-on = "sometimes"\n', "fail-on"),
    ('min-similarity = 2\n', "min-similarity"),
    ('[license-policy]\nrequire-spdx = "yes"\n', "license-policy.require-spdx"),
    ('[license-policy]\nholder = "x"\n', "license-policy.holder"),
])
def test_bad_configuration_names_the_key(tmp_path, config, key):
    repo = tmp_path / "project"
    make_repo(repo, copy_from=EXAMPLES / "suspect")
    (repo / ".provscan.toml").write_text(config, encoding="utf-8")
    done = provscan(repo, "scan", ".", "--reference", str(EXAMPLES / "upstream"), cache=tmp_path / "cache")
    assert done.returncode == 2 and f"'{key}'" in done.stderr and done.stderr.count("\n") == 1


def test_pyproject_configuration_flags_override_and_licence_policy(tmp_path):
    repo = tmp_path / "project"
    make_repo(repo, copy_from=EXAMPLES / "suspect")
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "acme"\n\n[tool.provscan]\nfail-on = "never"\nignore = ["acmelm/attention.py"]\n'
        f'references = ["{EXAMPLES / "upstream"}"]\n\n'
        '[tool.provscan.license-policy]\nrequire-spdx = true\ncopyright-holder = "Acme AI Inc."\n', encoding="utf-8")
    cache = tmp_path / "cache"
    done = provscan(repo, "scan", ".", "--format", "json", cache=cache)
    assert done.returncode == 0, done.stderr  # fail-on never, from the configuration
    report = json.loads(done.stdout)
    assert "acmelm/attention.py" not in {f["path"] for f in report["findings"]}
    assert {"path": "acmelm/attention.py", "reason": "ignored by the project configuration"} in report["skipped"]
    policy = {f["path"]: f["message"] for f in report["findings"] if f["kind"] == "license-policy"}
    # mlp.py has both; cli.py has neither; norm.py kept TinyLM's header (another holder, no SPDX line).
    assert "acmelm/mlp.py" not in policy
    assert "no SPDX-License-Identifier" in policy["acmelm/cli.py"] and "Acme AI Inc." in policy["acmelm/cli.py"]
    assert "Acme AI Inc." in policy["acmelm/norm.py"]
    assert provscan(repo, "scan", ".", "--fail-on", "unattributed", cache=cache).returncode == 1  # the flag wins
