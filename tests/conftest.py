"""Shared fixtures: run the CLI in-process, build real git repositories in temp dirs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from scanner.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# Hook runs stay in process unless a test asks for the resident server (tests/test_hookserver.py,
# with a private socket folder): a server started by one test would serve the next ones and
# outlive the session.
os.environ["PROVSCAN_HOOK_SERVER"] = "0"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Clones and downloads go to a per-test cache, never the user's."""
    monkeypatch.setenv("PROVSCAN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def need(module: str):
    """A test dependency: imported, or the test fails in CI (CI=true) and skips elsewhere."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} is a test dependency (pip install -e '.[test]')")
        pytest.skip(f"{module} is not installed")


def git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="Test",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    return env


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=cwd, env=git_env(), check=True,
                          capture_output=True, text=True).stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None, copy_from: Path | None = None) -> str:
    """A real git repository with one commit; returns the commit id."""
    path.mkdir(parents=True, exist_ok=True)
    if copy_from is not None:
        shutil.copytree(copy_from, path, dirs_exist_ok=True)
    for rel, text in (files or {}).items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return git(path, "rev-parse", "HEAD")


def write_tree(path: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(textwrap.dedent(content))
    return path


def scan_json(tmp_path: Path, source: str | Path, *refs: str | Path, args: tuple[str, ...] = ()) -> tuple[int, dict]:
    """Run `provscan scan` in-process with JSON output; return (exit code, report)."""
    out = tmp_path / f"report-{len(list(tmp_path.glob('report-*.json')))}.json"
    argv = ["scan", str(source), "--format", "json", "--output", str(out), *args]
    for ref in refs:
        argv += ["--reference", str(ref)]
    code = main(argv)
    assert code in (0, 1), f"scan failed with exit {code}"
    return code, json.loads(out.read_text())


def by_symbol(report: dict, kind: str | None = None) -> dict[str, dict]:
    return {f["symbol"]: f for f in report["findings"] if f["symbol"] and (kind is None or f["kind"] == kind)}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server on a free loopback port, with an append-only file so that data
    survives a kill -9 (to test what a crashed writer leaves)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        import time

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return self
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def flush(self) -> None:
        import redis

        redis.Redis(host="127.0.0.1", port=self.port).flushall()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (.ci/run installs it)")
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.kill()
