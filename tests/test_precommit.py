"""The hook through the real `pre-commit` framework, offline: pre-commit installs this repository
into its own virtualenv from a wheelhouse that .ci/run downloads (PIP_NO_INDEX, PIP_FIND_LINKS)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, git, git_env, make_repo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def precommit_env(tmp_path_factory) -> dict[str, str]:
    wheels = Path(os.environ.get("PROVSCAN_WHEELHOUSE", ROOT / ".ci" / "cache" / "wheels"))
    missing = [what for what, ok in (("pre-commit", shutil.which("pre-commit") is not None),
                                     (f"the wheelhouse {wheels}", wheels.is_dir() and any(wheels.glob("numpy-*.whl"))))
               if not ok]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing {', '.join(missing)}: .ci/run installs them")
        pytest.skip(f"missing {', '.join(missing)} (run .ci/run once)")
    home = tmp_path_factory.mktemp("pre-commit-home")
    env = git_env()
    env.update(PRE_COMMIT_HOME=str(home), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels),
               PROVSCAN_CACHE_DIR=str(home / "provscan-cache"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _configure_index(project: Path, index: Path, env: dict) -> None:
    """An index of the upstream example, named in the project's .provscan.toml."""
    subprocess.run([sys.executable, "-m", "scanner", "index", "add", "upstream", str(EXAMPLES / "upstream"),
                    "--index", str(index)], check=True, capture_output=True, env=env, cwd=ROOT)
    (project / ".provscan.toml").write_text(f'index = "{index}"\n', encoding="utf-8")


@pytest.fixture()
def repo(tmp_path, precommit_env) -> Path:
    """A project with the example package committed, an index of the upstream example, and the
    hook installed from this repository."""
    project = tmp_path / "project"
    make_repo(project, files={"README.md": "AcmeLM\n"})
    _configure_index(project, tmp_path / "index", precommit_env)
    rev = git(ROOT, "rev-parse", "HEAD")
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {ROOT}\n    rev: {rev}\n    hooks:\n      - id: provscan\n", encoding="utf-8")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "configure provscan")
    subprocess.run(["pre-commit", "install"], cwd=project, env=precommit_env, check=True, capture_output=True)
    return project


def commit(project: Path, env: dict, *paths: str) -> subprocess.CompletedProcess:
    git(project, "add", *paths)
    return subprocess.run(["git", "commit", "-m", "change"], cwd=project, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)  # git hooks write to stderr


def _copy(project: Path, credit: str = "") -> str:
    text = (EXAMPLES / "suspect" / "acmelm" / "attention.py").read_text(encoding="utf-8")
    for name in ("def expand_heads(", "class AcmeSelfAttention("):
        text = text.replace(name, credit + name, 1)
    (project / "acmelm").mkdir(exist_ok=True)
    (project / "acmelm" / "attention.py").write_text(text, encoding="utf-8")
    return "acmelm/attention.py"


def test_try_repo_runs_the_hook_from_this_repository(tmp_path, precommit_env):
    project = tmp_path / "try"
    make_repo(project, copy_from=EXAMPLES / "suspect")
    _configure_index(project, tmp_path / "index", precommit_env)
    done = subprocess.run(["pre-commit", "try-repo", str(ROOT), "provscan", "--files", "acmelm/attention.py"],
                          cwd=project, env=precommit_env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "acmelm/attention.py:22: unattributed-copy: upstream tinylm/modeling_tinylm.py:138-196 (1.00)" in done.stdout


def test_commit_of_an_unattributed_copy_is_blocked_until_it_is_credited(repo, precommit_env):
    done = commit(repo, precommit_env, _copy(repo))
    assert done.returncode != 0
    assert "acmelm/attention.py:14: unattributed-copy: upstream tinylm/modeling_tinylm.py:105-114 (1.00)" in done.stdout
    done = commit(repo, precommit_env, _copy(repo, "# provscan: source=upstream\n"))
    assert done.returncode == 0, done.stdout
    assert "provscan" in done.stdout and "Passed" in done.stdout


def test_a_baseline_lets_accepted_copies_through_and_unrelated_files_pass(repo, precommit_env):
    path = _copy(repo)
    subprocess.run([sys.executable, "-m", "scanner", "baseline", "--output", ".provscan-baseline.json"],
                   cwd=repo, env={**precommit_env, "PYTHONPATH": str(ROOT)}, check=True, capture_output=True)
    with (repo / ".provscan.toml").open("a", encoding="utf-8") as fh:
        fh.write('baseline = ".provscan-baseline.json"\n')
    done = commit(repo, precommit_env, path, ".provscan.toml", ".provscan-baseline.json")
    assert done.returncode == 0, done.stdout
    (repo / "acmelm" / "own.py").write_text("def answer():\n    return 42\n", encoding="utf-8")
    done = commit(repo, precommit_env, "acmelm/own.py")
    assert done.returncode == 0, done.stdout


def test_a_malformed_configuration_fails_the_commit_naming_the_key(repo, precommit_env):
    (repo / ".provscan.toml").write_text('index = "x"\nfail_on = "any"\n', encoding="utf-8")
    (repo / "acmelm").mkdir(exist_ok=True)
    (repo / "acmelm" / "own.py").write_text("def answer():\n    return 42\n", encoding="utf-8")
    done = commit(repo, precommit_env, "acmelm/own.py", ".provscan.toml")
    assert done.returncode != 0 and "unknown key 'fail_on'" in done.stdout
