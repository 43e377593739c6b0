"""Faults, with real processes: `index add` killed with SIGKILL at seeded random points, a full
disk (a file size limit, a small tmpfs), a redis-server killed with SIGKILL mid-scan and mid-write
and restarted from its append-only file, and a git remote that never answers.

After every fault the command exits 2 with one line on stderr (or is dead, for kill -9), and the
index still holds exactly the references committed before it, whose data loads and scans give the
same findings as before.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scanner.cli import main
from tests.conftest import EXAMPLES, RedisServer, need
from tests.test_index import _big_reference, cli, comparable

UPSTREAM = EXAMPLES / "upstream"
SUSPECT = EXAMPLES / "suspect"
IN_CI = os.environ.get("CI") == "true"


# --------------------------------------------------------------------------- helpers


def run_main(*argv: str) -> tuple[int, str, str]:
    """The CLI in this process (no interpreter start-up): exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def snapshot(index: str | Path) -> dict[str, int]:
    """`index list`: must exit 0; the references' names and fragment counts."""
    code, out, err = run_main("index", "list", "--index", str(index), "--format", "json")
    assert code == 0, err
    return {r["name"]: r["fragments"] for r in json.loads(out)}


def manifest_ids(index: Path) -> set[str]:
    return {e["id"] for e in json.loads((index / "provscan-index.json").read_text())["references"]}


def findings(tmp_path: Path, index: str | Path) -> list[tuple]:
    """A scan of the example suspect against every reference in the index (must not fail)."""
    out = tmp_path / "scan.json"
    code, _, err = run_main("scan", str(SUSPECT), "--index", str(index), "--format", "json", "--output", str(out),
                            "--workers", "1")
    assert code in (0, 1), err
    return comparable(json.loads(out.read_text()))


def add(name: str, source: str | Path, index: str | Path) -> None:
    """`index add` in this process (setting up and checking; the faulted commands run as processes)."""
    code, _, err = run_main("index", "add", name, str(source), "--index", str(index))
    assert code == 0, err


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("provscan: error: ") and all(w in line for w in words), line
    return line


def require_redis_server() -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (.ci/run installs it)")
        pytest.skip("redis-server is not installed")


# --------------------------------------------------------------------------- kill -9 of index add

KILLS_SPREAD = 12  # at seeded random times spread over the whole add
KILLS_IN_WRITE = 5  # at seeded random delays after its temp folder appears (writing, renaming, committing)
KILLS_AFTER_COMMIT = 3  # just after its manifest changed (removing a replaced reference, collecting garbage)


def _stamp(manifest: Path) -> tuple[int, int]:
    st = manifest.stat()  # a new manifest is a new file (os.replace): another inode
    return st.st_ino, st.st_mtime_ns


def _new_tmp(refs: Path, known: set[str]) -> bool:
    with contextlib.suppress(OSError):
        return any(p.name.startswith(".tmp-") and p.name not in known for p in refs.iterdir())
    return False


def _measure_add(argv: list[str], index: Path) -> tuple[float, float, float]:
    """Run one add to completion: (duration, when its temp folder appeared, when the manifest changed)."""
    refs, manifest = index / "refs", index / "provscan-index.json"
    stamp = _stamp(manifest)
    known = {p.name for p in refs.iterdir()}
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t_tmp = t_commit = None
    while proc.poll() is None:
        now = time.monotonic() - start
        if t_tmp is None and _new_tmp(refs, known):
            t_tmp = now
        if t_commit is None and _stamp(manifest) != stamp:
            t_commit = now
        time.sleep(0.001)
    duration = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr.read()
    return duration, t_tmp or duration, t_commit or duration


_CUT_SHORT = """
import os, sys
from pathlib import Path

from scanner import __version__
from scanner.fingerprint import Params
from signatures.store import open_store

index = Path(sys.argv[1])
(ref,) = open_store(index, Params().index_key(), __version__).load()
tokens = ref.arrays["abs_tok"]  # memory-mapped
(path,) = index.glob("refs/*/abs_tok.npy")
os.truncate(path, 0)  # another process cuts the file short while it is mapped
print("read", int(tokens[-1]))  # a page past the new end: SIGBUS
"""


def test_an_index_file_cut_short_while_mapped_exits_2_with_one_line(tmp_path):
    """SIGBUS, which a memory-mapped file cut short raises, kills a process without a word (and
    Python cannot catch it): the compiled module's handler prints one line and exits 2."""
    need("signatures._native")
    index = tmp_path / "idx"
    proc = cli("index", "add", "tinylm", str(UPSTREAM), "--index", str(index))
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([sys.executable, "-c", _CUT_SHORT, str(index)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert run.stdout == ""  # the read never returned
    (line,) = run.stderr.splitlines()
    assert line.startswith("provscan: error: a memory-mapped file was cut short") and "rebuild the index" in line


def test_kill_9_during_index_add_at_random_points(tmp_path):
    """At each kill the index holds exactly what was committed before it; a later add cleans up."""
    index = tmp_path / "idx"
    refs = index / "refs"
    add("first", UPSTREAM, index)
    big = _big_reference(tmp_path / "big", 40)

    def add_second(where: Path) -> list[str]:
        return [sys.executable, "-m", "scanner", "index", "add", "second", str(big), "--index", str(where), "--workers", "1"]

    argv = add_second(index)
    first_only = snapshot(index)
    expected = {json.dumps(first_only, sort_keys=True): findings(tmp_path, index)}

    # One complete add into a copy: how long it takes, when it writes, and what it commits.
    probe = tmp_path / "probe"
    shutil.copytree(index, probe)
    duration, t_tmp, t_commit = _measure_add(add_second(probe), probe)
    with_second = snapshot(probe)
    assert set(with_second) == {"first", "second"} and with_second["first"] == first_only["first"]
    expected[json.dumps(with_second, sort_keys=True)] = findings(tmp_path, probe)

    rng = random.Random(7_2024)
    window = max(t_commit - t_tmp, 0.002) * 1.5
    plan = ([("time", duration * (i + rng.random()) / KILLS_SPREAD) for i in range(KILLS_SPREAD)]
            + [("write", rng.uniform(0, window)) for _ in range(KILLS_IN_WRITE)]
            + [("commit", rng.uniform(0, 0.01)) for _ in range(KILLS_AFTER_COMMIT)])
    rng.shuffle(plan)
    plan.append(("write", 0.0))  # the last one surely leaves a temp folder for the next add to remove
    manifest = index / "provscan-index.json"
    outcomes = []
    for how, delay in plan:
        before = snapshot(index)
        ids_before = manifest_ids(index)
        known = {p.name for p in refs.iterdir()}
        stamp = _stamp(manifest)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if how == "write":
            while proc.poll() is None and not _new_tmp(refs, known):
                time.sleep(0.0005)
        elif how == "commit":
            while proc.poll() is None and _stamp(manifest) == stamp:
                time.sleep(0.0005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = snapshot(index)  # `index list` exits 0: the index loads
        committed = after != before or manifest_ids(index) != ids_before
        # Exactly the references committed before the kill: the old state, or the new one complete.
        assert after in (before, {**before, "second": with_second["second"]}), (how, delay, before, after)
        assert findings(tmp_path, index) == expected[json.dumps(after, sort_keys=True)], (how, delay)
        left = {p.name for p in refs.iterdir()} - manifest_ids(index) - known
        outcomes.append((how, round(delay, 3), proc.returncode, committed, len(left)))
        if "second" in after and rng.random() < 0.5:  # next time the add adds rather than replaces
            assert run_main("index", "remove", "second", "--index", str(index))[0] == 0

    assert len(outcomes) == KILLS_SPREAD + KILLS_IN_WRITE + KILLS_AFTER_COMMIT + 1 >= 20
    assert any(not committed for _, _, _, committed, _ in outcomes), outcomes  # killed before its commit
    assert any(committed for _, _, _, committed, _ in outcomes), outcomes  # killed after it
    assert any(left for *_, left in outcomes), outcomes  # killed mid-write: it left files behind
    assert any(p.name.startswith(".tmp-") for p in refs.iterdir()), outcomes

    # A later writer succeeds and removes everything killed writers left behind.
    state = snapshot(index)
    proc = cli("index", "add", "third", str(UPSTREAM), "--index", str(index))
    assert proc.returncode == 0, proc.stderr
    assert snapshot(index) == {**state, "third": first_only["first"]}
    assert {p.name for p in refs.iterdir()} == manifest_ids(index)
    assert not list(index.glob(".provscan-index.json.*"))
    print(f"\n{len(outcomes)} kills over a {duration:.2f} s add (temp folder at {t_tmp:.2f} s, commit at "
          f"{t_commit:.2f} s): {sum(o[3] for o in outcomes)} after the commit, "
          f"{sum(1 for o in outcomes if o[4])} left files that the next add removed; {outcomes}")


# --------------------------------------------------------------------------- a full disk


def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: writes past `limit` fail with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _assert_untouched(tmp_path: Path, index: Path, state: dict, scan: list) -> None:
    assert snapshot(index) == state
    assert {p.name for p in (index / "refs").iterdir()} == manifest_ids(index)  # nothing half-written left
    assert not list(index.glob(".provscan-index.json.*"))
    assert findings(tmp_path, index) == scan


def test_file_size_limit_during_index_add_and_report(tmp_path):
    index = tmp_path / "idx"
    add("first", UPSTREAM, index)
    state, scan = snapshot(index), findings(tmp_path, index)
    argv = [sys.executable, "-m", "scanner", "index", "add", "second", str(SUSPECT), "--index", str(index)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, preexec_fn=_file_size_limit(16 * 1024))
    one_line_error(proc, f"cannot write index {index}", "File too large")
    _assert_untouched(tmp_path, index, state, scan)
    # The report file of a scan, too: the previous report stays whole, no partial one replaces it.
    report = tmp_path / "report.json"
    report.write_text("previous report\n")
    proc = subprocess.run([sys.executable, "-m", "scanner", "scan", str(SUSPECT), "--index", str(index), "--format",
                           "json", "--output", str(report)], capture_output=True, text=True, timeout=120,
                          preexec_fn=_file_size_limit(4 * 1024))
    one_line_error(proc, f"cannot write {report}", "File too large")
    assert report.read_text() == "previous report\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report.json.")] == []
    add("second", SUSPECT, index)  # without the limit the same add succeeds
    assert set(snapshot(index)) == {"first", "second"}


@contextlib.contextmanager
def _tmpfs(mountpoint: Path, size: str):
    mountpoint.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        if IN_CI:
            pytest.fail(f"cannot mount a tmpfs in CI: {proc.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _leave_free(disk: Path, free: int) -> None:
    """Fill the file system with a real (not sparse) file until `free` bytes are left."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    with open(filler, "wb") as fh:
        left = _free(disk) - free
        while left > 0:
            left -= fh.write(b"\xa5" * min(left, 1 << 20))
    assert _free(disk) == free


def test_full_tmpfs_during_index_add(tmp_path):
    """ENOSPC at three points of an add: its first array, half-way, and the manifest after every array fitted."""
    page = os.sysconf("SC_PAGE_SIZE")
    sizes = tmp_path / "sizes"  # what adding the reference writes, measured on an ordinary disk
    add("first", UPSTREAM, sizes)
    old = manifest_ids(sizes)
    add("second", SUSPECT, sizes)
    (folder,) = [sizes / "refs" / i for i in manifest_ids(sizes) - old]
    pages = sum(-(-f.stat().st_size // page) for f in folder.iterdir())
    with _tmpfs(tmp_path / "disk", "4m") as disk:
        index = disk / "idx"
        add("first", UPSTREAM, index)
        state, scan = snapshot(index), findings(tmp_path, index)
        argv = [sys.executable, "-m", "scanner", "index", "add", "second", str(SUSPECT), "--index", str(index)]
        for free_pages in (0, pages // 2, pages):  # with every page of the new folder free, the manifest has none
            _leave_free(disk, free_pages * page)
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            one_line_error(proc, f"cannot write index {index}", "No space left on device")
            _assert_untouched(tmp_path, index, state, scan)
            assert _free(disk) == free_pages * page  # what it wrote was removed
        (disk / "filler").unlink()
        add("second", SUSPECT, index)
        assert set(snapshot(index)) == {"first", "second"}


# --------------------------------------------------------------------------- Redis killed


class KillRelay:
    """A TCP relay in front of a redis-server: it passes traffic both ways until the clients' requests
    match `pattern` for the `nth` time; then it forwards what came before that request, lets the
    server act on it, kills the server with SIGKILL and drops every connection (as the server's
    death does). This picks the moment of the kill exactly, between any two commands."""

    def __init__(self, server: RedisServer, pattern: bytes, nth: int = 1) -> None:
        self.server, self.pattern, self.nth = server, re.compile(pattern, re.DOTALL), nth
        self.seen = 0
        self.fired = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, prefix: str) -> str:
        return f"redis://127.0.0.1:{self.port}/0?prefix={prefix}&timeout=10"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.server.port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client), daemon=True).start()

    def _replies(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def _requests(self, src: socket.socket, dst: socket.socket) -> None:
        tail = b""
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                window = tail + data
                with self._lock:
                    if self.fired.is_set():
                        return
                    for m in self.pattern.finditer(window):
                        if m.end() <= len(tail):
                            continue  # seen with the previous chunk
                        self.seen += 1
                        if self.seen == self.nth:
                            dst.sendall(data[:max(0, m.start() - len(tail))])
                            self._fire()
                            return
                dst.sendall(data)
                tail = window[-512:]

    def _fire(self) -> None:
        self.fired.set()
        time.sleep(0.2)  # the server acts on (and persists) what reached it
        self.server.kill()
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


def _cmd(name: str, key: str) -> bytes:
    """A RESP request pattern: command `name` on a key matching the regex `key`."""
    return rb"\*\d+\r\n\$\d+\r\n" + name.encode() + rb"\r\n\$\d+\r\n" + key.encode() + rb"\r\n"


P = "crash"
REF_KEY = P + r":ref:[0-9a-f]{32}:"
WRITE_POINTS = {  # the order in which `index add` writes, as seen on the wire
    "its metadata, after its arrays": (_cmd("SET", REF_KEY + "meta"), 1),
    "some of its LSH entries": (_cmd("SADD", P + r":lsh_bucket_[^\r]*"), 20),
    "the manifest, after all its data": (_cmd("SET", P + ":manifest"), 1),
}
SCAN_POINTS = {  # the order in which a scan reads
    "the manifest": (_cmd("GET", P + ":manifest"), 1),
    "the reference's arrays": (rb"\r\nMGET\r\n", 1),
    "the LSH query, half-way": (_cmd("SMEMBERS", P + r":lsh_bucket_[^\r]*"), 600),
}


@pytest.fixture
def crashing_redis(tmp_path):
    require_redis_server()
    server = RedisServer(tmp_path / "redis").start()  # append-only file, fsync always: survives kill -9
    yield server
    server.kill()


def test_redis_killed_mid_write_leaves_no_half_reference(tmp_path, crashing_redis):
    server = crashing_redis
    url = f"{server.url}?prefix={P}&timeout=10"
    add("first", UPSTREAM, url)
    state, scan = snapshot(url), findings(tmp_path, url)
    ref = _big_reference(tmp_path / "ref", 2)
    import redis

    client = redis.Redis(host="127.0.0.1", port=server.port)
    for point, (pattern, nth) in WRITE_POINTS.items():
        relay = KillRelay(server, pattern, nth)
        proc = cli("index", "add", "second", str(ref), "--index", relay.url(P), timeout=120)
        assert relay.fired.is_set(), f"never reached {point}"
        one_line_error(proc, "Redis index", "failed")
        server.start()  # the same directory: back from its append-only file
        assert snapshot(url) == state, point
        assert findings(tmp_path, url) == scan, point
        if point.startswith("the manifest"):  # the whole reference is stored, and still invisible
            assert len(client.keys(f"{P}:ref:*:meta".encode())) >= 2
    add("second", ref, url)  # a later add of the same name works
    assert set(snapshot(url)) == {"first", "second"}


def test_redis_killed_mid_scan_exits_2_and_keeps_its_data(tmp_path, crashing_redis):
    server = crashing_redis
    url = f"{server.url}?prefix={P}&timeout=10"
    add("first", UPSTREAM, url)
    state, scan = snapshot(url), findings(tmp_path, url)
    for point, (pattern, nth) in SCAN_POINTS.items():
        relay = KillRelay(server, pattern, nth)
        proc = cli("scan", str(SUSPECT), "--index", relay.url(P), "--format", "json", timeout=120)
        assert relay.fired.is_set(), f"never reached {point}"
        one_line_error(proc, "Redis index", "failed")
        assert proc.stdout == ""
        server.start()
        assert snapshot(url) == state, point
        assert findings(tmp_path, url) == scan, point


# --------------------------------------------------------------------------- a remote that hangs


class HangingRemote:
    """A server on 127.0.0.1 that never completes an answer: `silent` accepts and says nothing,
    `stalled-http` starts a git smart-HTTP reference advertisement and stops after its first line."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.conns: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.mode == "stalled-http":
                with contextlib.suppress(OSError):
                    request = b""
                    while b"\r\n\r\n" not in request and (data := conn.recv(4096)):
                        request += data
                    line = b"001e# service=git-upload-pack\n"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\n"
                                 b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 + b"%x\r\n" % len(line) + line + b"\r\n")

    def close(self) -> None:
        self._listener.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("mode,command", [("silent", "scan"), ("stalled-http", "scan"), ("silent", "index add")])
def test_hanging_remote_times_out(tmp_path, mode, command):
    remote = HangingRemote(mode)
    url = f"http://127.0.0.1:{remote.port}/org/repo.git"
    timeout = 2
    if command == "scan":
        argv = ["scan", url, "--reference", str(UPSTREAM)]
    else:
        argv = ["index", "add", "repo", url, "--index", str(tmp_path / "idx")]
    try:
        start = time.monotonic()
        proc = cli(*argv, "--timeout", str(timeout), timeout=60)
        elapsed = time.monotonic() - start
        line = one_line_error(proc, f"timed out after {timeout} s", url)
        assert line == f"provscan: error: timed out after {timeout} s cloning {url}"
        assert remote.conns, "git never connected"
        assert elapsed < timeout + 4, elapsed  # the timeout, plus start-up and a margin for a loaded machine
        for conn in remote.conns:  # git was stopped, not left hanging on the connection
            conn.settimeout(5)
            try:
                while conn.recv(1 << 16):
                    pass
            except TimeoutError:
                pytest.fail("a git process is still connected to the remote after provscan exited")
    finally:
        remote.close()
    if command == "index add":
        assert snapshot(tmp_path / "idx") == {}
