"""`provscan hook` through its resident server (scanner/hookserver.py): real processes, a real socket.

Each test gets its own XDG_RUNTIME_DIR, so the socket, and the server, are the test's own; every
server a test starts is stopped at its end.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, make_repo

ROOT = Path(__file__).resolve().parents[1]


class Env:
    def __init__(self, tmp_path: Path, server: str = "1") -> None:
        self.runtime = tmp_path / "run"
        self.runtime.mkdir(mode=0o700)
        self.cache = tmp_path / "cache"
        self.vars = {"PROVSCAN_CACHE_DIR": str(self.cache), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                     "HOME": str(self.cache), "XDG_RUNTIME_DIR": str(self.runtime), "PROVSCAN_HOOK_SERVER": server}

    def run(self, cwd: Path, *args: str, **extra) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "scanner", *args], cwd=cwd, capture_output=True, text=True,
                              env={**self.vars, **extra}, timeout=300)

    def status(self, cwd: Path) -> subprocess.CompletedProcess:
        return self.run(cwd, "server", "status")

    def wait_for_server(self, cwd: Path, up: bool = True, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            done = self.status(cwd)
            if (done.returncode == 0) == up:
                return done.stdout
            time.sleep(0.2)
        raise AssertionError(f"hook server {'never started' if up else 'still running'}")


@pytest.fixture()
def project(tmp_path):
    env = Env(tmp_path)
    repo = tmp_path / "project"
    make_repo(repo, copy_from=EXAMPLES / "suspect")
    index = tmp_path / "index"
    done = env.run(repo, "index", "add", "upstream", str(EXAMPLES / "upstream"), "--index", str(index))
    assert done.returncode == 0, done.stderr
    (repo / ".provscan.toml").write_text(f'index = "{index}"\n', encoding="utf-8")
    yield env, repo
    env.run(repo, "server", "stop")
    env.wait_for_server(repo, up=False)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has exited)."""
    try:
        return "\tZ" not in Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0]
    except (OSError, IndexError):
        return False


def _served(status_line: str) -> int:
    return int(status_line.split(", ")[1].split()[0])


def test_the_first_hook_run_starts_a_server_that_answers_the_next_ones_identically(project):
    env, repo = project
    assert env.status(repo).returncode == 3  # none yet
    direct = env.run(repo, "hook", "acmelm/attention.py", "acmelm/utils.py", PROVSCAN_HOOK_SERVER="0")
    assert env.status(repo).returncode == 3, "a run with the server off must not start one"
    first = env.run(repo, "hook", "acmelm/attention.py", "acmelm/utils.py")
    assert env.wait_for_server(repo).startswith("hook server running: pid ")
    assert _served(env.status(repo).stdout) == 0  # the first run ran in process
    second = env.run(repo, "hook", "acmelm/attention.py", "acmelm/utils.py")
    assert _served(env.status(repo).stdout) == 1
    for done in (first, second):
        assert (done.returncode, done.stdout, done.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    assert direct.returncode == 1 and "unattributed-copy: upstream tinylm/modeling_tinylm.py" in direct.stdout
    # Exit codes, errors and the working directory are the run's own.
    clean = env.run(repo, "hook", "acmelm/utils.py")
    assert (clean.returncode, clean.stdout) == (0, "")
    bad = env.run(repo, "hook", "--fail-on", "sometimes", "acmelm/attention.py")
    assert bad.returncode == 2 and bad.stderr.startswith("provscan: error: ") and len(bad.stderr.splitlines()) == 1
    (repo / ".provscan.toml").write_text('index = "/nonexistent/index"\n', encoding="utf-8")
    missing = env.run(repo, "hook", "acmelm/attention.py")
    assert missing.returncode == 2 and "provscan index add" in missing.stderr
    assert _served(env.status(repo).stdout) == 4


def test_the_server_keeps_the_index_loaded_and_sees_every_change_to_it(project, tmp_path):
    env, repo = project
    index = tmp_path / "index"
    assert env.run(repo, "server", "start").returncode == 0
    first = env.run(repo, "hook", "acmelm/attention.py")
    deadline = time.monotonic() + 30
    while f"index kept loaded: {index}" not in env.status(repo).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"index kept loaded: {index}" in env.status(repo).stdout
    warm = env.run(repo, "hook", "acmelm/attention.py")
    assert (warm.returncode, warm.stdout, warm.stderr) == (first.returncode, first.stdout, first.stderr)
    assert "upstream tinylm/" in warm.stdout
    # The index changes under the server: the next run sees the new one, never the one kept loaded.
    assert env.run(repo, "index", "remove", "upstream", "--index", str(index)).returncode == 0
    assert env.run(repo, "index", "add", "renamed", str(EXAMPLES / "upstream"), "--index", str(index)).returncode == 0
    after = env.run(repo, "hook", "acmelm/attention.py")
    direct = env.run(repo, "hook", "acmelm/attention.py", PROVSCAN_HOOK_SERVER="0")
    assert (after.returncode, after.stdout, after.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    assert "renamed tinylm/" in after.stdout and "upstream tinylm/" not in after.stdout
    # A stored file changed in place (same manifest): a clear error, as without the server.
    env.run(repo, "hook", "acmelm/attention.py")  # the server keeps the new index loaded
    array = sorted(index.glob("refs/*/sigs.npy"))[0]
    with open(array, "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x01\x02\x03\x04")
    broken = env.run(repo, "hook", "acmelm/attention.py")
    assert broken.returncode == 2 and "corrupt" in broken.stderr and len(broken.stderr.splitlines()) == 1


def test_concurrent_hook_runs_through_the_server_are_each_their_own(project):
    env, repo = project
    assert env.run(repo, "server", "start").returncode == 0
    files = [["acmelm/attention.py"], ["acmelm/utils.py"], ["acmelm/attention.py", "acmelm/utils.py"], []] * 2
    direct = [env.run(repo, "hook", *f, PROVSCAN_HOOK_SERVER="0") for f in files]
    with ThreadPoolExecutor(8) as pool:
        served = list(pool.map(lambda f: env.run(repo, "hook", *f), files))
    for a, b in zip(direct, served):
        assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)
    assert _served(env.status(repo).stdout) == len(files)


def test_server_stop_and_idle_exit(project):
    env, repo = project
    assert env.run(repo, "server", "start").returncode == 0
    sockets = list(env.runtime.glob("provscan/hook-*.sock"))
    assert len(sockets) == 1 and stat.S_ISSOCK(sockets[0].stat().st_mode)
    assert stat.S_IMODE((env.runtime / "provscan").stat().st_mode) == 0o700
    assert stat.S_IMODE(sockets[0].stat().st_mode) == 0o600
    pid = int(env.status(repo).stdout.split("pid ")[1].split(",")[0])
    assert env.run(repo, "server", "stop").stdout.strip() == "hook server stopped"
    deadline = time.monotonic() + 30  # gone by itself: no later connection may be what wakes it
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid) and not sockets[0].exists()
    # A server left alone exits by itself.
    proc = subprocess.Popen([sys.executable, "-m", "scanner", "server", "run", "--idle", "1"], cwd=repo,
                            env=env.vars, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.wait(timeout=60) == 0
    # Only one server per installation: a second one exits at once, leaving the first.
    assert env.run(repo, "server", "start").returncode == 0
    pid = env.status(repo).stdout.split("pid ")[1].split(",")[0]
    assert env.run(repo, "server", "run").returncode == 0
    assert env.status(repo).stdout.split("pid ")[1].split(",")[0] == pid


def test_no_server_in_a_folder_others_can_write_and_the_hook_still_runs(project):
    env, repo = project
    folder = env.runtime / "provscan"
    folder.mkdir()
    folder.chmod(0o777)
    refused = env.run(repo, "server", "run", "--idle", "5")
    assert refused.returncode == 2 and "not a private directory" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    done = env.run(repo, "hook", "acmelm/attention.py")
    assert done.returncode == 1 and "unattributed-copy" in done.stdout
    time.sleep(1)
    assert env.status(repo).returncode == 3
    folder.chmod(0o700)


def test_configuration_can_keep_the_hook_in_process(project):
    env, repo = project
    config = (repo / ".provscan.toml").read_text()
    (repo / ".provscan.toml").write_text(config + "hook-server = false\n")
    assert env.run(repo, "hook", "acmelm/attention.py").returncode == 1
    time.sleep(1)
    assert env.status(repo).returncode == 3
    (repo / ".provscan.toml").write_text(config + "hook-server = 1\n")
    bad = env.run(repo, "hook", "acmelm/attention.py")
    assert bad.returncode == 2 and "'hook-server'" in bad.stderr


def test_a_server_of_another_user_is_never_used(monkeypatch):
    """The client checks the peer's uid (SO_PEERCRED): it sends nothing to a socket another user listens on."""
    if os.getuid() != 0:
        pytest.skip("needs root to listen as another user")
    import tempfile

    from scanner import hookserver

    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o777)
    path = folder / "hook.sock"
    code = (f"import os, socket, sys; os.setgid(65534); os.setuid(65534); s = socket.socket(socket.AF_UNIX); "
            f"s.bind({str(path)!r}); s.listen(); c, _ = s.accept(); c.settimeout(20); "
            f"sys.stdout.write(str(len(c.recv(65536))))")
    listener = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setattr(hookserver, "socket_path", lambda: str(path))
        assert hookserver.forward(["hook", "x.py"]) is None  # not ours: run in process
        assert listener.communicate(timeout=30)[0] == "0"  # and it received nothing
    finally:
        listener.kill()
        listener.wait()


@pytest.mark.parametrize("command, collects", [(["server", "status"], True), (["index", "presets"], False)])
def test_the_long_lived_server_keeps_the_cycle_collector_a_command_runs_without(command, collects):
    """A command's run turns the cyclic collector off (its objects live until it ends); the hook
    server lives on for many runs and an index reloaded after each change: its collector stays on."""
    probe = (
        "import gc, sys\n"
        "from scanner import cli\n"
        "def seen(name):\n"
        "    real = getattr(cli, name)\n"
        "    def spy(args):\n"
        "        print('collector', gc.isenabled(), file=sys.stderr)\n"
        "        return real(args)\n"
        "    return spy\n"
        "cli.cmd_server, cli.cmd_index = seen('cmd_server'), seen('cmd_index')\n"
        f"sys.argv = ['provscan', *{command!r}]\n"
        "cli.main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert f"collector {collects}" in proc.stderr, proc.stderr
