"""acquire: local dirs, git/hf over file:// URLs, pypi from local find-links; safe unpacking.

Everything is built here from scratch (real git repos, real wheels/sdists, hostile archives);
nothing touches the network.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
import textwrap
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanner.acquire import (
    _best_version,
    _fallback_version_key,
    acquire,
    default_cache_dir,
    parse_git_spec,
    read_head_commit,
)
from scanner.archive import _write_member, default_wanted, extract_archive
from scanner.errors import SourceError

MiB = 1024 * 1024


# --------------------------------------------------------------------------- helpers


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.com",
        GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1",
    )
    return env


def git(cwd: Path, *args: str) -> str:
    """Run the test's own git commands (not the code under test)."""
    proc = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=cwd, env=_git_env(), check=True, capture_output=True, text=True,
    )
    return proc.stdout.strip()


def write(path: Path, text: str, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


def assert_one_line(err: pytest.ExceptionInfo[SourceError]) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg and "\r" not in msg and msg == msg.strip(), repr(msg)
    assert "Traceback" not in msg and "cmdline:" not in msg
    return msg


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The user's own git/pip configuration must not change what these tests see.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_NO_BUILD_ISOLATION",
                "HF_ENDPOINT", "GIT_SSH_COMMAND", "PROVSCAN_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


@dataclass
class Origin:
    path: Path
    url: str
    marker: Path  # written by any hook that runs
    c1: str  # first commit (lightweight tag "light")
    c2: str  # annotated tag v1
    c3: str  # tip of feature/x
    c4: str  # tip of main


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Origin:
    base = tmp_path_factory.mktemp("origin")
    repo = base / "myrepo"
    marker = base / "hook-ran"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo / "README.md", "# my repo\n")
    write(repo / "src/a.py", "# Copyright 2024 Test\nx = 1\n")
    hook = f"#!/bin/sh\ntouch '{marker}'\n"
    write(repo / ".githooks/post-checkout", hook, 0o755)  # committed hook dir
    os.symlink("/etc/passwd", repo / "link.txt")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "c1")
    git(repo, "tag", "light")
    c1 = git(repo, "rev-parse", "HEAD")
    write(repo / "src/b.py", "y = 2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "c2")
    git(repo, "tag", "-a", "v1", "-m", "release 1")
    c2 = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-qb", "feature/x")
    write(repo / "feat.py", "z = 3\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "c3")
    c3 = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    write(repo / "src/a.py", "# Copyright 2024 Test\nx = 10\n")
    git(repo, "commit", "-qam", "c4")
    c4 = git(repo, "rev-parse", "HEAD")
    # Hooks armed only now, so the setup's own checkouts did not fire them.
    write(repo / ".git/hooks/post-checkout", hook, 0o755)
    git(repo, "config", "core.hooksPath", ".githooks")
    return Origin(repo, repo.as_uri(), marker, c1, c2, c3, c4)


# --------------------------------------------------------------------------- spec parsing


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("https://github.com/org/repo", ("https://github.com/org/repo", None)),
        ("https://github.com/org/repo.git@v1.2", ("https://github.com/org/repo.git", "v1.2")),
        ("https://user@host/repo", ("https://user@host/repo", None)),
        ("https://user@host/repo@main", ("https://user@host/repo", "main")),
        ("https://host/repo@feature/x", ("https://host/repo", "feature/x")),
        ("git@github.com:org/repo.git", ("git@github.com:org/repo.git", None)),
        ("git@github.com:org/repo.git@v1", ("git@github.com:org/repo.git", "v1")),
        ("ssh://git@host:2222/org/repo@abc1234", ("ssh://git@host:2222/org/repo", "abc1234")),
        ("file:///tmp/x@deadbeef", ("file:///tmp/x", "deadbeef")),
        ("file:///tmp/x", ("file:///tmp/x", None)),
        ("https://host", ("https://host", None)),
    ],
)
def test_parse_git_spec(spec: str, expected: tuple[str, str | None]) -> None:
    assert parse_git_spec(spec) == expected


def test_parse_git_spec_empty_revision() -> None:
    with pytest.raises(SourceError) as err:
        parse_git_spec("https://host/repo@")
    assert "empty revision" in assert_one_line(err)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("-uevil", "must not start with '-'"),
        ("--upload-pack=touch {tmp}/pwned", "must not start with '-'"),
        ("ext::sh -c touch% {tmp}/pwned", "transport 'ext::'"),
        ("fd::17", "transport 'fd::'"),
        ("foo::bar", "transport 'foo::'"),
        ("ftp://x/y", "unsupported source"),
        ("gopher://x/y", "unsupported source"),
        ("foo://bar", "unsupported source"),
        ("svn+ssh://host/repo", "unsupported source"),
        ("https://host/repo@", "empty revision"),
        ("https://host/repo@-x", "invalid revision"),
        ("https://host/repo@a..b", "invalid revision"),
        ("https://host/re po", "whitespace or control"),
        ("https://host/repo\x1b[31m", "whitespace or control"),
        ("ssh://-oProxyCommand=touch%20x/repo", "invalid host"),
        ("git@-oProxyCommand=x:repo", "expected USER@HOST:PATH"),
        ("https://host/", "no repository path"),
    ],
)
def test_refused_specs(spec: str, needle: str, tmp_path: Path) -> None:
    spec = spec.replace("{tmp}", str(tmp_path))
    with pytest.raises(SourceError) as err:
        acquire(spec, tmp_path / "cache", timeout=10)
    assert needle in assert_one_line(err)
    assert not (tmp_path / "pwned").exists()
    assert "\x1b" not in str(err.value)


def test_unsupported_source_message(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        acquire("foo://bar", tmp_path)
    assert assert_one_line(err) == (
        "unsupported source 'foo://bar': expected a directory, a git URL, hf:ORG/NAME or pypi:NAME[==VERSION]"
    )


# --------------------------------------------------------------------------- local


def test_local_plain_directory(tmp_path: Path) -> None:
    d = tmp_path / "proj"
    write(d / "x.py", "pass\n")
    got = acquire(str(d))
    assert (got.root, got.kind, got.commit, got.name, got.source) == (d.resolve(), "local", None, "proj", str(d))
    assert got.version is None and got.url is None and got.notes == []


def test_local_git_work_tree_commit_without_git(tmp_path: Path) -> None:
    d = tmp_path / "wt"
    d.mkdir()
    git(d, "init", "-q")
    write(d / "a.py", "a = 1\n")
    git(d, "add", "-A")
    git(d, "commit", "-qm", "one")
    head = git(d, "rev-parse", "HEAD")
    assert acquire(str(d)).commit == head  # loose ref
    git(d, "pack-refs", "--all")
    assert not (d / ".git/refs/heads/main").exists()
    assert acquire(str(d)).commit == head  # packed-refs
    git(d, "checkout", "-q", "--detach")
    assert acquire(str(d)).commit == head  # detached HEAD
    git(d, "checkout", "-q", "main")
    wt2 = tmp_path / "second"
    git(d, "worktree", "add", "-q", "-b", "other", str(wt2))
    write(wt2 / "b.py", "b = 2\n")
    git(wt2, "add", "-A")
    git(wt2, "commit", "-qm", "two")
    assert (wt2 / ".git").is_file()
    assert acquire(str(wt2)).commit == git(wt2, "rev-parse", "HEAD")  # .git file + commondir
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    assert acquire(str(empty)).commit is None  # unborn branch


def test_local_missing_and_not_a_directory(tmp_path: Path, origin: Origin) -> None:
    with pytest.raises(SourceError) as err:
        acquire(str(tmp_path / "nope"))
    assert assert_one_line(err) == f"no such directory: {tmp_path / 'nope'}"
    f = write(tmp_path / "file.py", "x\n")
    with pytest.raises(SourceError) as err:
        acquire(str(f))
    assert "not a directory" in assert_one_line(err)
    with pytest.raises(SourceError) as err:
        acquire(f"{origin.path}@v1")
    assert "file://" in assert_one_line(err)  # hints at the URL form for a revision


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVSCAN_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PROVSCAN_CACHE_DIR")
    assert "provscan" in str(default_cache_dir())


# --------------------------------------------------------------------------- git


def test_git_default_branch(origin: Origin, tmp_path: Path) -> None:
    got = acquire(origin.url, tmp_path / "cache")
    assert (got.kind, got.commit, got.name, got.url, got.source) == ("git", origin.c4, "myrepo", origin.url, origin.url)
    assert (got.root / "src/a.py").read_text().endswith("x = 10\n")
    assert got.root.parent == tmp_path / "cache" / "git"
    assert got.root.name.endswith("-" + origin.c4)
    assert read_head_commit(got.root) == origin.c4  # detached at the recorded commit


@pytest.mark.parametrize(
    ("rev", "which", "present", "absent"),
    [
        ("feature/x", "c3", "feat.py", None),
        ("v1", "c2", "src/b.py", "feat.py"),
        ("refs/tags/v1", "c2", "src/b.py", None),
        ("light", "c1", "src/a.py", "src/b.py"),
        ("main", "c4", "src/b.py", "feat.py"),
        ("FULL", "c1", "README.md", "src/b.py"),  # not a branch tip: shallow fetch by sha
        ("SHORT", "c2", "src/b.py", None),  # short sha: full fetch + rev-parse
    ],
)
def test_git_revisions(origin: Origin, tmp_path: Path, rev: str, which: str, present: str, absent: str | None) -> None:
    commit = getattr(origin, which)
    rev = {"FULL": commit, "SHORT": commit[:7]}.get(rev, rev)
    got = acquire(f"{origin.url}@{rev}", tmp_path / "cache")
    assert got.commit == commit
    assert (got.root / present).is_file()
    if absent:
        assert not (got.root / absent).exists()
    assert read_head_commit(got.root) == commit


def test_git_cache_reused_without_fetching(origin: Origin, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    stale = cache / "git/.tmp-clone-killed"  # left by a run that died mid-clone two days ago
    stale.mkdir(parents=True)
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    first = acquire(f"{origin.url}@feature/x", cache)
    assert not stale.exists()
    marker = first.root / ".git" / "provscan-complete"
    mtime = marker.stat().st_mtime_ns
    write(first.root / "sentinel.txt", "only in this checkout\n")  # a re-clone would lose it
    second = acquire(f"{origin.url}@feature/x", cache)
    assert second.root == first.root and second.commit == first.commit
    assert (second.root / "sentinel.txt").exists()
    assert marker.stat().st_mtime_ns == mtime
    assert [p.name for p in (cache / "git").iterdir()] == [first.root.name]  # no temp dirs left


def test_git_full_sha_reused_after_origin_is_gone(origin: Origin, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--bare", str(origin.path), str(mirror))
    url = mirror.as_uri()
    cache = tmp_path / "cache"
    first = acquire(f"{url}@{origin.c2}", cache)
    assert first.name == "mirror" and first.commit == origin.c2
    short = acquire(f"{url}@{origin.c2[:10]}", cache)
    assert short.root == first.root
    subprocess.run(["rm", "-rf", str(mirror)], check=True)
    again = acquire(f"{url}@{origin.c2}", cache)  # no network needed for a pinned commit
    assert again.root == first.root and (again.root / "src/b.py").is_file()
    assert acquire(f"{url}@{origin.c2[:10]}", cache).root == first.root  # short sha seen before
    with pytest.raises(SourceError) as err:
        acquire(f"{url}@main", cache)  # a branch must be resolved remotely
    assert "does not appear to be a git repository" in assert_one_line(err)


@pytest.mark.parametrize("rev", ["nope", "deadbeef", "0123456789abcdef0123456789abcdef01234567"])
def test_git_missing_revision(origin: Origin, tmp_path: Path, rev: str) -> None:
    with pytest.raises(SourceError) as err:
        acquire(f"{origin.url}@{rev}", tmp_path / "cache")
    assert assert_one_line(err) == f"cannot clone {origin.url}: revision '{rev}' not found"
    assert [p.name for p in (tmp_path / "cache/git").iterdir()] == []  # temp clone removed


def test_git_unreachable_repository(tmp_path: Path) -> None:
    url = (tmp_path / "missing").as_uri()
    with pytest.raises(SourceError) as err:
        acquire(url, tmp_path / "cache")
    msg = assert_one_line(err)
    assert msg.startswith(f"cannot clone {url}: ") and "does not appear to be a git repository" in msg


def test_git_hooks_and_user_config_never_run_code(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user's global config tries every way we know to run code on clone/checkout.
    marker = tmp_path / "user-hook-ran"
    hooks = tmp_path / "user-hooks"
    script = f"#!/bin/sh\ntouch '{marker}'\n"
    for name in ("post-checkout", "post-merge", "reference-transaction", "fsmonitor"):
        write(hooks / name, script, 0o755)
    write(tmp_path / "template/hooks/post-checkout", script, 0o755)
    gitconfig = write(tmp_path / "gitconfig", textwrap.dedent(f"""\
        [core]
            hooksPath = {hooks}
            fsmonitor = {hooks / 'fsmonitor'}
        [init]
            templateDir = {tmp_path / 'template'}
        """))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    got = acquire(f"{origin.url}@{origin.c1[:8]}", tmp_path / "cache")  # full-fetch path too
    acquire(origin.url, tmp_path / "cache")
    assert (got.root / ".githooks/post-checkout").is_file()  # present as data only
    assert not origin.marker.exists()
    assert not marker.exists()


def test_git_symlinks_checked_out_as_plain_files(origin: Origin, tmp_path: Path) -> None:
    got = acquire(origin.url, tmp_path / "cache")
    link = got.root / "link.txt"
    assert not link.is_symlink() and link.read_text() == "/etc/passwd"


def test_git_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A "remote" that never answers: ssh replaced by a sleeping command, no network involved.
    monkeypatch.setenv("GIT_SSH_COMMAND", "sleep 5; true")
    start = time.monotonic()
    with pytest.raises(SourceError) as err:
        acquire("ssh://git@example.invalid/org/repo@main", tmp_path / "cache", timeout=1)
    assert assert_one_line(err) == "timed out after 1 s cloning ssh://git@example.invalid/org/repo"
    assert time.monotonic() - start < 4.5


def test_git_password_is_masked(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        acquire("https://user:s3cret@host/repo@bad..rev", tmp_path / "cache")
    assert "s3cret" not in assert_one_line(err)


# --------------------------------------------------------------------------- hf


def test_hf_via_endpoint(origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = tmp_path / "hub"
    git(tmp_path, "clone", "-q", "--bare", str(origin.path), str(hub / "acme/tiny-model"))
    data = hub / "datasets/acme/corpus"
    data.mkdir(parents=True)
    git(data, "init", "-q")
    write(data / "data.json", "{}\n")
    git(data, "add", "-A")
    git(data, "commit", "-qm", "data")
    monkeypatch.setenv("HF_ENDPOINT", hub.as_uri())
    cache = tmp_path / "cache"

    got = acquire("hf:acme/tiny-model", cache)
    assert (got.kind, got.name, got.commit) == ("hf", "acme/tiny-model", origin.c4)
    assert got.url == f"{hub.as_uri()}/acme/tiny-model" and got.source == "hf:acme/tiny-model"
    assert acquire("hf:acme/tiny-model@v1", cache).commit == origin.c2
    ds = acquire("hf:datasets/acme/corpus", cache)
    assert ds.kind == "hf" and (ds.root / "data.json").is_file() and ds.name == "acme/corpus"
    with pytest.raises(SourceError) as err:
        acquire("hf:acme/missing", cache)
    assert assert_one_line(err).startswith(f"cannot clone {hub.as_uri()}/acme/missing: ")


@pytest.mark.parametrize(
    "spec",
    ["hf:", "hf:acme", "hf:acme/", "hf:/model", "hf:acme/../x", "hf:acme/a..b", "hf:acme/m/extra",
     "hf:models/acme/m", "hf:acme/m@", "hf:-acme/m", "hf:acme/m@-x"],
)
def test_hf_malformed(spec: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        acquire(spec, tmp_path / "cache")
    msg = assert_one_line(err)
    assert "malformed Hugging Face source" in msg or "invalid revision" in msg


# --------------------------------------------------------------------------- pypi


@dataclass
class Dists:
    wheels: Path  # wheel + sdist of tinypkg 0.1
    sdists: Path  # sdist 0.1 (built), 0.2 and 0.3rc1 (hand-made)
    only_01: Path  # only the built sdist
    sdist: Path


def _handmade_sdist(dest: Path, version: str) -> Path:
    path = dest / f"tinypkg-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        body = f"# Copyright 2024 Test\nVERSION = {version!r}\n".encode()
        ti = tarfile.TarInfo(f"tinypkg-{version}/tinypkg/__init__.py")
        ti.size = len(body)
        tf.addfile(ti, io.BytesIO(body))
    return path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    import build  # noqa: F401  (in the [test] extra: a missing one must fail, not skip)
    base = tmp_path_factory.mktemp("pypi")
    proj = base / "tinypkg"
    write(proj / "pyproject.toml", textwrap.dedent("""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "tinypkg"
        version = "0.1"
        """))
    # Writes a marker when run with TINYPKG_MARKER set: acquire must never run it.
    write(proj / "setup.py", textwrap.dedent("""\
        import os
        from setuptools import setup
        if os.environ.get("TINYPKG_MARKER"):
            open(os.environ["TINYPKG_MARKER"], "w").close()
        setup()
        """))
    write(proj / "tinypkg/__init__.py", "# Copyright 2024 Tiny Authors\n# SPDX-License-Identifier: MIT\nVALUE = 1\n")
    write(proj / "LICENSE", "MIT License\n")
    out = base / "wheels"
    env = {k: v for k, v in os.environ.items() if k != "TINYPKG_MARKER"}
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(proj)],
                   check=True, capture_output=True, env=env)
    sdist = out / "tinypkg-0.1.tar.gz"
    assert sdist.is_file() and (out / "tinypkg-0.1-py3-none-any.whl").is_file()
    sdists = base / "sdists"
    sdists.mkdir()
    (sdists / sdist.name).write_bytes(sdist.read_bytes())
    _handmade_sdist(sdists, "0.2")
    _handmade_sdist(sdists, "0.3rc1")
    only = base / "only01"
    only.mkdir()
    (only / sdist.name).write_bytes(sdist.read_bytes())
    return Dists(out, sdists, only, sdist)


def _offline(monkeypatch: pytest.MonkeyPatch, find_links: Path) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(find_links))


def test_pypi_wheel(dists: Dists, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch, dists.wheels)
    got = acquire("pypi:tinypkg==0.1", tmp_path / "cache")
    assert (got.kind, got.version, got.name, got.commit) == ("pypi", "0.1", "tinypkg", None)
    assert got.url == "tinypkg-0.1-py3-none-any.whl"
    assert "Tiny Authors" in (got.root / "tinypkg/__init__.py").read_text()
    assert (got.root / "tinypkg-0.1.dist-info/METADATA").is_file()
    assert got.root.parent == tmp_path / "cache/pypi"
    again = acquire("pypi:TinyPkg==0.1.0", tmp_path / "cache")  # normalised name and version
    assert again.root == got.root and again.version == "0.1"


def test_pypi_pinned_version_reused_without_the_index(dists: Dists, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch, dists.wheels)
    got = acquire("pypi:tinypkg==0.1", tmp_path / "cache")
    empty = tmp_path / "empty-index"
    empty.mkdir()
    _offline(monkeypatch, empty)  # the index no longer has it: only the cache can answer
    again = acquire("pypi:tinypkg==0.1", tmp_path / "cache")
    assert (again.root, again.version, again.url) == (got.root, "0.1", got.url)
    with pytest.raises(SourceError):
        acquire("pypi:tinypkg==0.2", tmp_path / "cache")


def test_pypi_pinned_sdist_reused_keeps_its_root(dists: Dists, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch, dists.only_01)
    got = acquire("pypi:tinypkg==0.1", tmp_path / "cache")
    empty = tmp_path / "empty-index"
    empty.mkdir()
    _offline(monkeypatch, empty)
    again = acquire("pypi:tinypkg==0.1", tmp_path / "cache")
    assert again.root == got.root and again.root.name.startswith("tinypkg-0.1")


def test_pypi_cwd_cannot_shadow_pip(dists: Dists, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Scanning from inside an untrusted tree: its pip/ package must not be what runs.
    marker = tmp_path / "fake-pip-ran"
    evil = tmp_path / "evil"
    for name in ("__init__.py", "__main__.py"):
        write(evil / "pip" / name, f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(evil)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", os.path.relpath(dists.wheels, evil))  # relative, as users write it
    got = acquire("pypi:tinypkg==0.1", tmp_path / "cache")
    assert got.url == "tinypkg-0.1-py3-none-any.whl"
    assert not marker.exists()


def test_pypi_sdist_fallback_never_runs_setup_py(
    dists: Dists, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _offline(monkeypatch, dists.only_01)
    marker = tmp_path / "setup-py-ran"
    monkeypatch.setenv("TINYPKG_MARKER", str(marker))
    # Builds without isolation need no index, so pip *could* run setup.py here if it were
    # ever allowed to consider the sdist (pip's inverted env flag: "0" disables isolation).
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")
    got = acquire("pypi:tinypkg==0.1", tmp_path / "cache")
    assert not marker.exists()
    assert (got.version, got.url, got.root.name) == ("0.1", "tinypkg-0.1.tar.gz", "tinypkg-0.1")
    assert (got.root / "tinypkg/__init__.py").is_file() and (got.root / "setup.py").is_file()
    assert (got.root / "LICENSE").is_file()
    assert any("sdist" in n and "without running" in n for n in got.notes)
    assert acquire("pypi:tinypkg==0.1", tmp_path / "cache").root == got.root
    assert not marker.exists()


def test_pypi_sdist_unpinned_picks_highest_final(
    dists: Dists, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _offline(monkeypatch, dists.sdists)
    got = acquire("pypi:tinypkg", tmp_path / "cache")
    assert got.version == "0.2" and "VERSION = '0.2'" in (got.root / "tinypkg/__init__.py").read_text()


def test_pypi_simple_index_with_hashes(dists: Dists, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = hashlib.sha256(dists.sdist.read_bytes()).hexdigest()
    files = tmp_path / "files"
    files.mkdir()
    (files / dists.sdist.name).write_bytes(dists.sdist.read_bytes())
    page = tmp_path / "simple/tinypkg/index.html"
    link = f'<a href="../../files/{dists.sdist.name}#sha256={digest}">{dists.sdist.name}</a>'
    write(page, f"<!DOCTYPE html><html><body>{link}</body></html>")
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "simple").as_uri() + "/")
    got = acquire("pypi:tinypkg==0.1", tmp_path / "cache")
    assert got.version == "0.1" and (got.root / "tinypkg/__init__.py").is_file()

    write(page, link.replace(digest, "0" * 64))
    with pytest.raises(SourceError) as err:
        acquire("pypi:tinypkg==0.1", tmp_path / "cache2")
    assert "sha256" in assert_one_line(err)


def test_pypi_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    _offline(monkeypatch, tmp_path / "empty")
    with pytest.raises(SourceError) as err:
        acquire("pypi:tinypkg==9.9", tmp_path / "cache")
    msg = assert_one_line(err)
    assert msg.startswith("cannot fetch pypi:tinypkg==9.9: no wheel (") and "no sdist" in msg


@pytest.mark.parametrize(
    "spec",
    ["pypi:", "pypi:foo bar", "pypi:foo==1.0; rm -rf /", "pypi:foo>=1", "pypi:-x", "pypi:foo==",
     "pypi:foo[extra]", "pypi:foo==1.*", "pypi:foo==../../x", "pypi:foo@https://x/y.whl"],
)
def test_pypi_malformed(spec: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        acquire(spec, tmp_path / "cache")
    msg = assert_one_line(err)
    assert "malformed PyPI source" in msg or "whitespace" in msg


def test_version_ordering() -> None:
    order = ["0.9", "1.0.dev1", "1.0a1", "1.0b2", "1.0rc1", "1.0", "1.0.post1", "1.1", "1.10", "2!0.1"]
    keys = [_fallback_version_key(v) for v in order]
    assert keys == sorted(keys)
    assert _fallback_version_key("1.0") == _fallback_version_key("1.0.0")
    assert _best_version(["1.9", "1.10", "1.2"]) == "1.10"


# --------------------------------------------------------------------------- archives


def _zip(path: Path, members: list[tuple[str, bytes] | zipfile.ZipInfo | tuple[zipfile.ZipInfo, bytes]]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are deliberate in one test
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for m in members:
                if isinstance(m, tuple):
                    zf.writestr(m[0], m[1])
    return path


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


def _ti(name: str, kind: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("pkg/../../evil.py", "escapes the extraction directory"),
        ("../evil.py", "escapes the extraction directory"),
        ("/etc/evil.py", "is an absolute path"),
        ("pkg\\..\\..\\evil.py", "contains a backslash"),
        ("C:/evil.py", "has a drive letter"),
    ],
)
@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_archive_refuses_escaping_members(tmp_path: Path, name: str, why: str, fmt: str) -> None:
    if fmt == "zip":
        archive = _zip(tmp_path / "bad.zip", [("ok.py", b"x = 1\n"), (name, b"boom\n")])
    else:
        archive = _tar(tmp_path / "bad.tar.gz", [(_ti("ok.py"), b"x = 1\n"), (_ti(name), b"boom\n")])
    out = tmp_path / "out"
    with pytest.raises(SourceError) as err:
        extract_archive(archive, out / "dest")
    msg = assert_one_line(err)
    assert msg.startswith(f"refusing {archive.name}: member ") and why in msg
    assert list(out.iterdir()) == []  # nothing left behind, not even the temp dir
    assert not (tmp_path / "evil.py").exists()


def test_archive_zip_symlink_and_special_members_skipped(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("pkg/link.py")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    fifo = zipfile.ZipInfo("pkg/fifo.py")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    exe = zipfile.ZipInfo("pkg/run.py")
    exe.create_system = 3
    exe.external_attr = (stat.S_IFREG | stat.S_ISUID | 0o777) << 16
    archive = _zip(tmp_path / "a.whl", [
        (link, b"/etc/passwd"), (fifo, b""), (exe, b"print(1)\n"), ("pkg/ok.py", b"x = 1\n"),
        ("pkg/native.so", b"\x7fELF"), ("LICENSE", b"MIT\n"), ("pkg/dup.py", b"1"), ("pkg/dup.py", b"2"),
        ("pkg/x.py", b"file"), ("pkg/x.py/y.py", b"under a file"),
    ])
    dest = tmp_path / "dest"
    notes = extract_archive(archive, dest)
    assert _files(dest) == ["LICENSE", "pkg/dup.py", "pkg/ok.py", "pkg/run.py", "pkg/x.py"]
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    mode = (dest / "pkg/run.py").stat().st_mode
    assert mode & 0o7133 == 0  # no exec, setuid or world-write bits from the archive
    text = "\n".join(notes)
    assert "symlink member(s): 'pkg/link.py'" in text
    assert "special member(s): 'pkg/fifo.py'" in text
    assert "file types a scan does not read: 'pkg/native.so'" in text
    assert "duplicate or conflicting member(s): 'pkg/dup.py', 'pkg/x.py/y.py'" in text
    assert all("\n" not in n for n in notes)


def test_archive_tar_links_and_devices_skipped(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar.gz", [
        (_ti("pkg-1.0/"), None),
        (_ti("pkg-1.0/ok.py", mode=0o4777), b"x = 1\n"),
        (_ti("pkg-1.0/sym.py", tarfile.SYMTYPE, linkname="/etc/passwd"), None),
        (_ti("pkg-1.0/up.py", tarfile.SYMTYPE, linkname="../../../../etc/passwd"), None),
        (_ti("pkg-1.0/hard.py", tarfile.LNKTYPE, linkname="/etc/passwd"), None),
        (_ti("pkg-1.0/dev.py", tarfile.CHRTYPE, devmajor=1, devminor=3), None),
        (_ti("pkg-1.0/fifo.py", tarfile.FIFOTYPE), None),
        (_ti("./pkg-1.0/./README"), b"hi\n"),
    ])
    dest = tmp_path / "dest"
    notes = extract_archive(archive, dest)
    assert _files(dest) == ["pkg-1.0/README", "pkg-1.0/ok.py"]
    assert (dest / "pkg-1.0/ok.py").stat().st_mode & 0o7133 == 0
    text = "\n".join(notes)
    assert "2 symlink member(s)" in text and "1 hardlink member(s)" in text
    assert "2 device, fifo or other special member(s)" in text


def test_archive_zip_bomb_stops_at_cap(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("bomb.txt", "w") as f:
            chunk = bytes(MiB)
            for _ in range(200):
                f.write(chunk)
        zf.writestr("ok.py", "x = 1\n")
    assert archive.stat().st_size < 2 * MiB
    dest = tmp_path / "dest"
    notes = extract_archive(archive, dest, max_member_bytes=MiB)
    assert _files(dest) == ["ok.py"]
    assert "larger than 1048576 bytes: 'bomb.txt'" in "\n".join(notes)


def test_archive_lying_header_never_writes_past_cap(tmp_path: Path) -> None:
    # Declared size 100 bytes, real content 8 MiB: streaming must not trust the header.
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("liar.txt", bytes(8 * MiB))
    raw = bytearray(archive.read_bytes())
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24:cd + 28] = (100).to_bytes(4, "little")
    raw[22:26] = (100).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    out = tmp_path / "out"
    try:
        extract_archive(archive, out / "dest", max_member_bytes=MiB)
    except SourceError as err:
        assert "\n" not in str(err)
    written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert written <= MiB


def test_archive_streaming_cap_on_endless_member(tmp_path: Path) -> None:
    # Python's zip/tar readers already stop at the declared size; this is the second line
    # of defence, fed a real endless stream.
    with open("/dev/zero", "rb") as endless:
        written, complete = _write_member(endless, tmp_path / "out.bin", MiB, 10 * MiB)
    assert (written, complete) == (MiB, False)
    assert (tmp_path / "out.bin").stat().st_size == MiB


def test_default_wanted() -> None:
    for path in ("a/b.py", "x.pyi", "n.ipynb", "c.JSON", "LICENSE", "pkg/COPYING.lib", "NOTICE",
                 "README", "docs/index.rst", "x.dist-info/METADATA", "PKG-INFO", "licence.txt"):
        assert default_wanted(path), path
    for path in ("a.so", "b.png", "model.safetensors", "c.pyc", ".py", "setup"):
        assert not default_wanted(path), path


def test_archive_member_and_size_caps(tmp_path: Path) -> None:
    many = [(f"m{i}.py", b"x") for i in range(20)]
    with pytest.raises(SourceError) as err:
        extract_archive(_zip(tmp_path / "many.zip", many), tmp_path / "d1", max_members=10)
    assert "exceed the limit of 10" in assert_one_line(err)
    tar_many = [(_ti(f"m{i}.py"), b"x") for i in range(20)]
    with pytest.raises(SourceError) as err:
        extract_archive(_tar(tmp_path / "many.tar.gz", tar_many), tmp_path / "d2", max_members=10)
    assert "more than 10 members" in assert_one_line(err)
    big = [(f"b{i}.py", bytes(100_000)) for i in range(5)]
    with pytest.raises(SourceError) as err:
        extract_archive(_zip(tmp_path / "big.zip", big), tmp_path / "d3", max_total_bytes=250_000)
    assert "exceeds 250000 bytes" in assert_one_line(err)
    assert not (tmp_path / "d1").exists() and not (tmp_path / "d3").exists()


def test_archive_bad_inputs(tmp_path: Path) -> None:
    junk = write(tmp_path / "junk.zip", "not a zip")
    with pytest.raises(SourceError) as err:
        extract_archive(junk, tmp_path / "d")
    assert assert_one_line(err).startswith("cannot unpack junk.zip: ")
    with pytest.raises(SourceError):
        extract_archive(write(tmp_path / "x.rar", "rar"), tmp_path / "d")
    ok = _zip(tmp_path / "ok.zip", [("a.py", b"1")])
    (tmp_path / "exists").mkdir()
    with pytest.raises(SourceError) as err:
        extract_archive(ok, tmp_path / "exists")
    assert "already exists" in assert_one_line(err)
    assert extract_archive(ok, tmp_path / "fresh", wanted=lambda p: False) != []
    assert _files(tmp_path / "fresh") == []


@pytest.mark.parametrize("url, shown", [
    ("https://user:s3cret@example.org/o/r", "https://user:***@example.org/o/r"),
    ("https://ghp_0123456789abcdefghijklmn@example.org/o/r@main", "https://***@example.org/o/r@main"),
    ("git@example.org:o/r.git", "git@example.org:o/r.git"),
    ("https://alice@example.org/o/r", "https://alice@example.org/o/r"),
])
def test_redact_hides_credentials_for_reports(url: str, shown: str) -> None:
    from scanner.acquire import redact

    assert redact(url) == shown
