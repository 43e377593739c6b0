"""Hostile input (issue 7), end to end through the real CLI.

Every case builds its adversarial tree, repository, URL or package here (nothing is downloaded)
and scans it with `python -m scanner scan` in a subprocess whose $HOME, $TMPDIR and cache are
directories of the test. Each case checks:

(a) the scan finishes (exit 0 or 1) or refuses (exit 2, exactly one line on stderr), never a
    traceback;
(b) nothing outside the scanned tree is read and nothing outside the cache is written: a secret
    planted next to the tree (which the tree points at) never reaches the report (JSON and text)
    nor the cache, its access time does not move, no command smuggled in runs, and no file
    appears or changes anywhere else in the test's directory, in $HOME or in $TMPDIR;
(c) the peak RSS of the scan (the largest of the CLI process and every process it reaped:
    fingerprinting workers, git, pip) stays under a stated bound;
(d) what was skipped is listed in the report with its reason;
(e) no terminal control character from the tree (ESC, other C0 controls, C1 such as CSI, bidi
    overrides, raw undecodable bytes) reaches the text output unescaped.

Every case is scanned with --format json; those where the tree controls a string that the text
report prints (a path, a skip reason, a comment quoted as evidence) with --format text too.

Measured on 2 shared cores: most cases peak at 35-60 MiB and take 0.5-2 s a run; 100,000 files
(read up to the walker's budget of source files) 93 MiB and ~5 s; the 50 MB one-line file read
under a raised --max-file-size 230 MiB and ~2 s (6.6 GiB and 40 s before the lexer fix); a 1 GiB
tar.gz bomb ~6 s (inflated through to reach the next member). The whole file: about a minute.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scanner import walk
from tests.fixtures import OTHER_ATTENTION, REF_ATTENTION, REF_HEADER, renamed_attention
from tests.test_acquire import _tar, _ti

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024
GiB = 1024 * MiB

# (c) Peak RSS bounds, a little over twice the largest measured.
RSS_BOUND = 256 * MiB  # every case but the one below (measured 35-93 MiB, the most for 100,000 files)
RSS_BOUND_HUGE = 512 * MiB  # the 50 MB file read under --max-file-size 64MiB (measured 230 MiB)
SCAN_TIMEOUT_S = 240  # per CLI run; a hang (a FIFO opened, a bomb inflated) fails the case
MANY_FILES = 100_000
HUGE_BYTES = 50 * 1000 * 1000
BOMB_BYTES = 1 * GiB
EXTRACT_MEMBER_CAP = 64 * MiB  # scanner.archive's default max_member_bytes

# Unique per run: they cannot be in any report, cache or file by chance.
MARKER = "provscan_secret_" + uuid.uuid4().hex
PWNED = "PWNED-" + uuid.uuid4().hex  # the name of the file an injected command would create

# Terminal controls that must never reach a terminal from the scanned tree: C0 but TAB and LF,
# DEL, C1 (CSI is U+009B), the line/paragraph separators and the bidi overrides and isolates.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

COPY = "# Copyright 2025 Zeta Labs\n" + renamed_attention() + "\n\n" + OTHER_ATTENTION
SECRET = (f"# {MARKER}: Adapted from orbit, which must never be read\n"
          + renamed_attention().replace("ZetaMixer", MARKER) + "\n\n" + OTHER_ATTENTION
          + f"\n\ndef {MARKER}_loss" + REF_ATTENTION.split("def load_balancing_loss")[1])


# --------------------------------------------------------------------------- the world of a case


@dataclass
class World:
    """Everything a case owns, under the test's tmp_path."""

    base: Path
    reference: Path  # the reference tree (module fixture, outside base)
    discard: list[Path] = field(default_factory=list)  # removed when the case ends (100,000 files)
    tree: Path = field(init=False)  # the hostile tree of a local case; base/tree unless moved

    def __post_init__(self) -> None:
        for name in ("tree", "outside", "home", "cache", "cwd", "tmp", "index", "tools"):
            (self.base / name).mkdir()
        self.tree = self.base / "tree"
        write(self.secret, SECRET)
        write(self.outside / "LICENSE", f"Copyright 2024 {MARKER}\n\nMIT License\n")
        write(self.outside / "secret.ipynb", _notebook(SECRET))
        write(self.outside / "sub/other.py", SECRET)
        os.mkfifo(self.outside / "fifo.py")  # opening it to read would block the scan forever

    outside = property(lambda self: self.base / "outside")
    secret = property(lambda self: self.base / "outside/secret.py")
    home = property(lambda self: self.base / "home")
    cache = property(lambda self: self.base / "cache")
    cwd = property(lambda self: self.base / "cwd")
    tmp = property(lambda self: self.base / "tmp")
    index = property(lambda self: self.base / "index")  # PIP_FIND_LINKS for pypi: sources
    pwned = property(lambda self: self.base / PWNED)
    # The harness's files, and the state of tools the scan runs that is theirs to keep: pip runs
    # `rustc --version` for its User-Agent, and a rustup proxy writes $RUSTUP_HOME/settings.toml.
    tools = property(lambda self: self.base / "tools")


@dataclass
class Case:
    source: str
    extra: list[str] = field(default_factory=list)  # more options
    reference: str | None = None  # default: the reference tree
    refuse: str | None = None  # exit 2 expected, with this in the one stderr line
    skips: dict[str, str] = field(default_factory=dict)  # path -> what its listed reason says
    notes: list[str] = field(default_factory=list)  # reasons listed without a path (archive notes)
    copies: set[str] = field(default_factory=set)  # paths that must be found as copies (the tree was read)
    rss: int = RSS_BOUND
    formats: tuple[str, ...] = ("json",)  # json first: the report the checks read
    check: Callable[[World, dict], None] | None = None  # more checks, given the JSON report


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: str
    rss: int  # bytes
    wall: float


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _notebook(code: str) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "source": code.splitlines(keepends=True), "metadata": {},
                                  "outputs": [], "execution_count": None}],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="Test",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    return env


def git(cwd: Path, *args: str) -> str:
    """The test's own git (building fixtures, inspecting clones), never the code under test."""
    return subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always", *args],
                          cwd=cwd, env=_git_env(), check=True, capture_output=True, text=True).stdout.strip()


# --------------------------------------------------------------------------- running the CLI


# Runs the CLI and reports the peak RSS of its whole process tree: RUSAGE_CHILDREN is the largest
# of every descendant reaped (the CLI reaps its fingerprinting workers, git and pip). A child of the
# test itself would not do: its peak would include the test process it was forked from.
_WRAPPER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code if code >= 0 else 128 - code)
"""


def run_cli(world: World, args: list[str]) -> Run:
    """`python -m scanner scan ARGS`, in an environment of the test's own directories."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "GIT_", "PROVSCAN_", "HF_", "XDG_"))}
    env.update(HOME=str(world.home), PROVSCAN_CACHE_DIR=str(world.cache), TMPDIR=str(world.tmp), LC_ALL="C.UTF-8",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               # Strict, as under a user's en_US.UTF-8: an undecodable name written raw is an error.
               PYTHONIOENCODING="utf-8:strict",
               PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(world.index),
               PIP_DISABLE_PIP_VERSION_CHECK="1", GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", NO_COLOR="1",
               RUSTUP_HOME=str(world.tools / "rustup"))
    rss_file = world.tools / "peak-rss"
    with open(world.tools / "stdout", "w+b") as fout, open(world.tools / "stderr", "w+b") as ferr:
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, str(rss_file), sys.executable, "-m", "scanner", "scan",
                                 *args], cwd=world.cwd, env=env, stdin=subprocess.DEVNULL, stdout=fout, stderr=ferr,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=SCAN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session it leads: the CLI, its workers, git, pip
            proc.wait()
            pytest.fail(f"scan did not finish within {SCAN_TIMEOUT_S} s: {args}")
        wall = time.monotonic() - start
        fout.seek(0)
        ferr.seek(0)
        stdout, stderr = fout.read(), ferr.read().decode("utf-8", errors="replace")
    rss = int(rss_file.read_text()) * 1024
    for name in ("stdout", "stderr", "peak-rss"):
        (world.tools / name).unlink()
    return Run(code, stdout, stderr, rss, wall)


# --------------------------------------------------------------------------- what "untouched" means


def _listing(root: Path, skip: set[Path]) -> dict[str, tuple]:
    """Every entry under root (lstat only: listing must not count as reading a file). Iterative:
    a tree may be deeper than the recursion limit; what lies beyond PATH_MAX is not listed."""
    seen: dict[str, tuple] = {}
    stack = [str(root)]
    prefix = len(str(root)) + 1
    skipped = {str(p) for p in skip}
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            if entry.path in skipped:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                link = os.readlink(entry.path) if entry.is_symlink() else None
            except OSError:
                continue
            seen[entry.path[prefix:]] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, link)
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
    return seen


def _age_atimes(root: Path) -> dict[Path, int]:
    """Set every file and directory under root (root included) to an access time an hour before
    its modification: with relatime (or strictatime), any read or listing then moves it."""
    ages = {}
    for p in [root, *root.rglob("*")]:
        st = p.lstat()
        if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            os.utime(p, ns=(st.st_mtime_ns - 3600 * 10**9, st.st_mtime_ns), follow_symlinks=False)
            ages[p] = p.lstat().st_atime_ns
    return ages


def _atime_tracks_reads(where: Path) -> bool:
    probe = where / ".atime-probe"
    probe.write_bytes(b"x")
    st = probe.stat()
    os.utime(probe, ns=(st.st_mtime_ns - 3600 * 10**9, st.st_mtime_ns))
    before = probe.stat().st_atime_ns
    probe.read_bytes()
    moved = probe.stat().st_atime_ns != before
    probe.unlink()
    return moved


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_symlink():
            hits.append(f"{p} (a symlink)")  # nothing in the cache may point anywhere
        elif p.is_file() and needle in p.read_bytes():
            hits.append(str(p))
    return hits


# --------------------------------------------------------------------------- the reference


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "orbit-ref"
    write(root / "orbit/models/attention.py", REF_HEADER + REF_ATTENTION)
    write(root / "orbit/__init__.py", "")
    write(root / "LICENSE", "Copyright 2024 The Orbit Research Team\n\nLicensed under the Apache License, Version 2.0\n")
    return root


# --------------------------------------------------------------------------- cases: local trees


def _link(target: str | Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


def case_symlink_loops(w: World) -> Case:
    t = w.tree
    write(t / "ok.py", COPY)
    _link("b.py", t / "a.py")
    _link("a.py", t / "b.py")
    _link("self.py", t / "self.py")
    _link(".", t / "loop")
    _link("..", t / "up")
    _link("../..", t / "d/e/back")
    _link("../../ok.py", t / "d/e/alias.py")  # stays inside: read like the file it names
    _link("d/hop.py", t / "chain.py")
    _link("../chain.py", t / "d/hop.py")
    _link("nowhere.py", t / "dangling.py")
    return Case(str(t), copies={"ok.py", "d/e/alias.py"}, formats=("json", "text"), skips={
        "a.py": "symlink loop", "b.py": "symlink loop", "self.py": "symlink loop", "chain.py": "symlink loop",
        "d/hop.py": "symlink loop", "loop": "symlink to a directory", "d/e/back": "symlink to a directory",
        "up": "outside the tree", "dangling.py": "dangling symlink"})


def case_symlinks_outside(w: World) -> Case:
    t = w.tree
    write(t / "ok.py", COPY)
    links = {
        "secret.py": w.secret, "rel_secret.py": os.path.relpath(w.secret, t), "LICENSE": w.outside / "LICENSE",
        "README.md": w.secret, "nb.ipynb": w.outside / "secret.ipynb", "outdir": w.outside,
        "pkg/sub": w.outside / "sub", "hop.py": w.secret, "fifo.py": w.outside / "fifo.py",
        "passwd.py": "/etc/passwd", "etc": "/etc", "zero.py": "/dev/zero", "urandom.py": "/dev/urandom",
        "environ.py": "/proc/self/environ", "stdin.py": "/dev/stdin", "root": "/",
    }
    for name, target in links.items():
        _link(target, t / name)
    _link("../hop.py", t / "pkg/inner.py")  # inside, then out
    skips = {name: "outside the tree" for name in links} | {"pkg/inner.py": "outside the tree"}

    def check(w: World, report: dict) -> None:
        text = json.dumps(report)
        assert "root:x:0:0" not in text  # /etc/passwd
        assert str(w.home) not in text  # /proc/self/environ

    return Case(str(t), copies={"ok.py"}, skips=skips, check=check, formats=("json", "text"))


def case_special_files(w: World) -> Case:
    t = w.tree
    write(t / "ok.py", COPY)
    os.mkfifo(t / "fifo.py")
    _link("fifo.py", t / "to_fifo.py")
    skips = {"fifo.py": "not a regular file", "to_fifo.py": "not a regular file"}
    for name, kind, dev in (("zero.py", stat.S_IFCHR, (1, 5)), ("null.ipynb", stat.S_IFCHR, (1, 3)),
                            ("loop0.py", stat.S_IFBLK, (7, 0))):
        try:
            os.mknod(t / name, kind | 0o666, os.makedev(*dev))
        except PermissionError:
            continue  # not root: the FIFO and the socket still stand for special files
        skips[name] = "not a regular file"
        _link(name, t / ("to_" + name))
        skips["to_" + name] = "not a regular file"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(t / "sock.py"))
        skips["sock.py"] = "not a regular file"
    except OSError:
        pass  # a path too long for AF_UNIX
    finally:
        sock.close()
    # git metadata the scanner reads itself (to name the commit): a FIFO HEAD must not hang it.
    (t / ".git/refs/heads").mkdir(parents=True)
    os.mkfifo(t / ".git/HEAD")

    def check(w: World, report: dict) -> None:
        assert report["scanned"]["commit"] is None

    return Case(str(t), copies={"ok.py"}, skips=skips, check=check, formats=("json", "text"))


def case_deep_nesting(w: World) -> Case:
    t = w.tree
    n = 10_000
    write(t / "ok.py", COPY)
    write(t / "parens.py", "x = " + "(" * n + "1" + ")" * n + "\n")
    write(t / "lists.py", "x = " + "[" * n + "]" * n + "\n")
    write(t / "dicts.py", "x = " + "{1: " * n + "1" + "}" * n + "\n")
    write(t / "calls.py", "x = " + "f(" * n + "1" + ")" * n + "\n")
    write(t / "subscripts.py", "x = a" + "[0]" * n + "\n")
    write(t / "attributes.py", "x = a" + ".b" * n + "\n")
    write(t / "unary.py", "x = " + "-" * n + "1\n")
    write(t / "lambdas.py", "f = " + "lambda: " * n + "1\n")
    write(t / "binops.py", "x = " + " + ".join(["1"] * (5 * n)) + "\n")
    write(t / "unclosed.py", "x = " + "(" * n + "\n" + COPY)
    write(t / "fstrings.py", "x = " + "f'{" * 200 + "1" + "}'" * 200 + "\n")
    write(t / "defs.py", "".join("\t" * i + f"def f{i}():\n" for i in range(1000)) + "\t" * 1000 + "pass\n")
    write(t / "classes.py", "".join("\t" * i + f"class C{i}:\n" for i in range(1000)) + "\t" * 1000 + "pass\n")
    write(t / "deep.ipynb", '{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    write(t / "cell.ipynb", _notebook("x = " + "(" * n + "1" + ")" * n + "\n"))
    # A directory chain longer than PATH_MAX (17 names of 250 bytes, not thousands of levels: the
    # recursive shutil.rmtree of Python 3.11, which pytest cleans up with, must still remove it).
    fd = os.open(t, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(17):
            os.mkdir("d" * 250, dir_fd=fd)
            inner = os.open("d" * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        leaf = os.open("deepest.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, COPY.encode())
        os.close(leaf)
    finally:
        os.close(fd)

    def check(w: World, report: dict) -> None:
        assert any("unreadable directory" in s["reason"] for s in report["skipped"]), report["skipped"]
        assert report["scanned"]["files"] >= 14
        assert any(n["path"] == "unclosed.py" and n["kind"] == "syntax-error" for n in report["notes"])

    return Case(str(t), copies={"ok.py"}, skips={"deep.ipynb": "not valid JSON"}, check=check)


def _huge_line(path: Path, body: bytes) -> None:
    """One line of HUGE_BYTES, written in chunks (the test never holds it whole)."""
    with open(path, "wb") as f:
        f.write(b"x = '")
        left = HUGE_BYTES - 7
        while left > 0:
            chunk = body * min(left // len(body) or 1, MiB // len(body))
            chunk = chunk[:left]
            f.write(chunk)
            left -= len(chunk)
        f.write(b"'\n")


def case_huge_line(w: World) -> Case:
    """A 50 MB one-line file: over the default size cap, so it is listed, never read."""
    write(w.tree / "ok.py", COPY)
    _huge_line(w.tree / "huge.py", b"0123456789abcdef")
    return Case(str(w.tree), copies={"ok.py"}, skips={"huge.py": "larger than the size cap"})


def case_huge_line_read(w: World) -> Case:
    """The same file with the cap raised over it: read, parsed and fingerprinted whole. (A single
    50 MB string literal made the lexer's regular expression keep state per character: 7 GiB.)"""
    write(w.tree / "ok.py", COPY)
    _huge_line(w.tree / "huge.py", b"0123456789abcdef")

    def check(w: World, report: dict) -> None:
        assert report["scanned"]["files"] == 2

    return Case(str(w.tree), ["--max-file-size", "64MiB"], copies={"ok.py"}, rss=RSS_BOUND_HUGE, check=check)


def case_bad_bytes(w: World) -> Case:
    t = w.tree
    pad = ("# padding to push what follows past the binary sniff\n" * 200).encode()
    write(t / "nul.py", b"x = 1\x00\x00\x00" + COPY.encode())
    write(t / "late_nul.py", COPY.encode() + pad + b"s = '\x00'\n")
    write(t / "latin1.py", b"# caf\xe9 \xff\xfe\n" + COPY.encode())
    write(t / "surrogates.py", b"x = '\xed\xa0\x80 \xc0\xaf \xf8\x88\x80\x80\x80'\n" + COPY.encode() + b"\xe2\x82")
    write(t / "bom.py", b"\xef\xbb\xbf" + COPY.encode())
    write(t / "utf16.py", "\ufeff".encode("utf-16-le") + COPY.encode("utf-16-le"))
    write(t / "cr_only.py", COPY.replace("\n", "\r").encode())
    write(t / "controls.py", "# \x1b[2J\x1b]0;pwned\x07 \x9b31m \u202egnp.py Adapted from orbit \x1b]8;;http://x\x07\n"
          + COPY.replace("# Copyright 2025 Zeta Labs", "# Copyright 2025 \x1b[31mZeta\x1b[0m Labs\r\x1b[K")
          + "\ns = '\x1b[5m\x9b1m\x7f'\n")
    write(t / "bad.ipynb", b'{"cells": [{"cell_type": "code", "source": "x = \xff\xfe"}]}')
    write(t / "nul.ipynb", b'{"cells": [\x00]}')
    write(t / "escapes.ipynb", _notebook("# \ud800 \x1b[2J\n" + COPY))
    return Case(str(t), formats=("json", "text"), copies={"late_nul.py", "latin1.py", "surrogates.py", "bom.py", "controls.py",
                                                           "cr_only.py"},
                skips={"nul.py": "binary content", "utf16.py": "binary content", "nul.ipynb": "not valid JSON"},
                check=lambda w, r: _assert_note(r, "latin1.py", "invalid-utf8"))


def _assert_note(report: dict, path: str, kind: str) -> None:
    assert any(n["path"] == path and n["kind"] == kind for n in report["notes"]), report["notes"]


HOSTILE_NAMES = ["-rf.py", "--output=x.py", "a\nb.py", "\x1b[31mred.py", "\x1b]0;title\x07.py", "\x9b31mcsi.py",
                 "\rcr.py", "bell\x07.py", "\u202egnp.py", "tab\t.py", " lead.py", "%s%n{0}.py", "$(touch x).py",
                 "x" * 240 + ".py", "\x1b[2J/inner.py", "-/--help.py"]


def case_hostile_names(w: World) -> Case:
    """Names with newlines, escapes, C1 controls, bidi overrides, leading dashes, format strings
    and bytes that are not UTF-8, for files, for the scanned directory and for the reference."""
    src = w.base / os.fsdecode(b"src-\xff\x1b[2J\x9b")  # not UTF-8: it arrives as surrogate escapes
    for name in HOSTILE_NAMES:
        write(src / name, COPY)
    write(src / os.fsdecode(b"\xff\xfe\x9b31m-latin1.py"), COPY)
    write(src / "\x1b[5mblink\n.py", b"\x00binary")
    _link(w.secret, src / "\x1b[2J\nlink.py")
    ref = w.base / os.fsdecode(b"orbit-\xfe\x1b]0;x\x07")
    shutil.copytree(w.reference, ref)
    shown = "\\xff\\xfe\\x9b31m-latin1.py"  # what the report shows for the undecodable name

    def check(w: World, report: dict) -> None:
        paths = {f["path"] for f in report["findings"]}
        assert set(HOSTILE_NAMES) | {shown} <= paths, paths
        assert report["scanned"]["source"].endswith("src-\\xff\x1b[2J\\x9b")
        assert {r["name"] for r in report["references"]} == {"orbit-\\xfe\x1b]0;x\x07"}

    return Case(str(src), reference=str(ref), copies=set(HOSTILE_NAMES) | {shown}, check=check,
                formats=("json", "text", "markdown"),
                skips={"\x1b[5mblink\n.py": "binary content", "\x1b[2J\nlink.py": "outside the tree"})


def case_option_like_source(w: World) -> Case:
    """Directories named like options and injections are directories: scanned, never run."""
    for name in ("-rf", f"--upload-pack=touch {PWNED}", f"ext::sh -c touch% {PWNED}"):
        write(w.cwd / name / "ok.py", COPY)
    return Case(f"--upload-pack=touch {PWNED}", copies={"ok.py"})


def _roomy_tmp_dir(w: World) -> Path:
    """A directory for 100,000 files: on tmpfs where there is room (on the loaded disk of the
    machine this was written on, creating and deleting them took 20-70 s; on tmpfs, 2 s each way),
    else in the case's own directory. Removed when the case ends, even if it fails."""
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
        roomy = st.f_bavail * st.f_frsize > 2 * GiB and st.f_favail > 4 * MANY_FILES
    except OSError:
        roomy = False
    if not roomy:
        return w.base
    for stale in shm.glob("provscan-hostile-*"):  # left by a run that was killed
        if time.time() - stale.lstat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    where = Path(tempfile.mkdtemp(prefix="provscan-hostile-", dir=shm))
    w.discard.append(where)
    return where


def case_many_files(w: World) -> Case:
    """100,000 tiny files: the walker reads its budget of source files and lists the rest."""
    t = w.tree = _roomy_tmp_dir(w) / "tree"
    write(t / "ok.py", COPY)
    for d in range(MANY_FILES // 1000):
        (t / f"p{d:03d}").mkdir()
        dir_fd = os.open(t / f"p{d:03d}", os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(1000):
                fd = os.open(b"m%04d.py" % i, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
                os.write(fd, b"x = %d\n" % i)
                os.close(fd)
        finally:
            os.close(dir_fd)

    def check(w: World, report: dict) -> None:
        assert report["scanned"]["files"] == walk.MAX_FILES
        budget = [s for s in report["skipped"] if "over the per-tree budget" in s["reason"]]
        listed = [s for s in budget if s["path"]]
        total = len(listed) + sum(int(s["reason"].split()[0]) for s in budget if not s["path"])
        assert total == MANY_FILES + 1 - walk.MAX_FILES

    return Case(str(t), copies={"ok.py"}, check=check, skips={"p019/m0999.py": "over the per-tree budget"},
                notes=["more file(s) not listed: over the per-tree budget"])


# --------------------------------------------------------------------------- cases: git


def _commit_all(repo: Path) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "commit")
    return git(repo, "rev-parse", "HEAD")


def _clones(w: World) -> list[Path]:
    return [p for p in (w.cache / "git").iterdir() if not p.name.startswith(".")]


def case_git_submodules(w: World) -> Case:
    """.gitmodules pointing at a local repository (and at injections): never fetched, never run."""
    sub = w.base / "subrepo"
    sub.mkdir()
    git(sub, "init", "-q")
    write(sub / "secret.py", SECRET)
    sub_commit = _commit_all(sub)
    secret_blob = git(sub, "rev-parse", "HEAD:secret.py")
    origin = w.base / "origin"
    origin.mkdir()
    git(origin, "init", "-q")
    write(origin / "ok.py", COPY)
    git(origin, "submodule", "add", "-q", str(sub), "vendored/sub")
    git(origin, "config", "-f", ".gitmodules", "submodule.vendored/sub.update", f"!touch {w.pwned}")
    for name, url in (("evil1", f"--upload-pack=touch {w.pwned}"), ("evil2", f"ext::sh -c touch% {w.pwned}"),
                      ("evil3", sub.as_uri())):
        git(origin, "config", "-f", ".gitmodules", f"submodule.{name}.path", name)
        git(origin, "config", "-f", ".gitmodules", f"submodule.{name}.url", url)
        git(origin, "update-index", "--add", "--cacheinfo", f"160000,{sub_commit},{name}")
    _commit_all(origin)

    def check(w: World, report: dict) -> None:
        (clone,) = _clones(w)
        assert not (clone / ".git/modules").exists()
        for name in ("vendored/sub", "evil1", "evil2", "evil3"):
            assert not (clone / name).exists() or not any((clone / name).iterdir())
        missing = subprocess.run(["git", "cat-file", "-e", secret_blob], cwd=clone, env=_git_env(), capture_output=True)
        assert missing.returncode != 0  # the submodule's objects never came

    return Case(origin.as_uri(), copies={"ok.py"}, check=check, formats=("json", "text"))


def _filtered_origin(w: World) -> Path:
    origin = w.base / "origin"
    origin.mkdir()
    git(origin, "init", "-q")
    write(origin / ".gitattributes", "*.py filter=evil diff=evil\n* filter=evil\n")
    write(origin / "ok.py", COPY)
    _commit_all(origin)
    # Only now: the origin's own checkouts never ran it. A clone does not get this config.
    git(origin, "config", "filter.evil.smudge", f"touch {w.pwned}; cat")
    git(origin, "config", "filter.evil.clean", f"touch {w.pwned}; cat")
    git(origin, "config", "filter.evil.required", "true")
    return origin


def case_git_filter_origin(w: World) -> Case:
    """.gitattributes names a filter the origin defines: the clone must not run it."""
    return Case(_filtered_origin(w).as_uri(), copies={"ok.py"})


def case_git_filter_user(w: World) -> Case:
    """.gitattributes names a filter the user's own git config defines (as git-lfs or git-crypt
    are): a scanned tree must not be able to make the scan run it."""
    origin = _filtered_origin(w)
    write(w.home / ".gitconfig", f"[filter \"evil\"]\n\tsmudge = touch {w.pwned}; cat\n\tclean = cat\n"
                                 f"\tprocess = touch {w.pwned}\n")
    return Case(origin.as_uri(), copies={"ok.py"})


# --------------------------------------------------------------------------- cases: URLs that are options


def _injection(spec: Callable[[World], str], as_reference: bool, needle: str) -> Callable[[World], Case]:
    def build(w: World) -> Case:
        url = spec(w)
        if as_reference:
            write(w.tree / "ok.py", COPY)
            return Case(str(w.tree), reference=url, refuse=needle, formats=("json",))
        return Case(url, refuse=needle, formats=("json",))
    return build


INJECTIONS = {
    "url-upload-pack": (lambda w: f"--upload-pack=touch {w.pwned}", False, "must not start with '-'"),
    "url-upload-pack-ref": (lambda w: f"--upload-pack=touch {w.pwned}", True, "must not start with '-'"),
    "url-dash-u": (lambda w: f"-utouch {w.pwned}", True, "must not start with '-'"),
    "url-ext": (lambda w: f"ext::sh -c touch% {w.pwned}", False, "transport 'ext::'"),
    "url-fd": (lambda w: "fd::17", True, "transport 'fd::'"),
    "url-rev-option": (lambda w: f"{w.base.as_uri()}/repo@--upload-pack=touch%20{w.pwned}", False, "invalid revision"),
    "url-ssh-proxycommand": (lambda w: f"ssh://-oProxyCommand=touch%20{w.pwned}/x", True, "invalid host"),
    "url-scp-proxycommand": (lambda w: f"git@-oProxyCommand=touch%20{PWNED}:x", False, "expected USER@HOST:PATH"),
    "url-space": (lambda w: f"{w.base.as_uri()}/repo --upload-pack=touch", True, "whitespace or control"),
    "url-newline": (lambda w: f"https://example.invalid/r\n--upload-pack=touch {w.pwned}", False, "whitespace or control"),
    "pypi-option": (lambda w: f"pypi:--index-url=file://{w.base}", True, "malformed PyPI source"),
    "hf-option": (lambda w: "hf:-oProxyCommand/x", False, "malformed Hugging Face source"),
}


# --------------------------------------------------------------------------- cases: packages (pypi:)






def _wheel_meta() -> list[tuple[str, bytes]]:
    return [("evilpkg-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: evilpkg\nVersion: 1.0\n"),
            ("evilpkg-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
            ("evilpkg-1.0.dist-info/RECORD", b"")]


def _zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)


SDIST = "evilpkg-1.0.tar.gz"
WHEEL = "evilpkg-1.0-py3-none-any.whl"
PYPI = "pypi:evilpkg==1.0"


def _nothing_named_pwned(w: World, report: dict) -> None:
    assert not [p for p in w.base.rglob(f"*{PWNED}*")]


def case_sdist_dotdot(w: World) -> Case:
    _tar(w.index / SDIST, [(_ti("evilpkg-1.0/ok.py"), COPY.encode()),
                           (_ti(f"evilpkg-1.0/../../../{PWNED}"), b"boom\n")])
    return Case(PYPI, refuse="escapes the extraction directory", formats=("json",), check=_nothing_named_pwned)


def case_sdist_absolute(w: World) -> Case:
    _tar(w.index / SDIST, [(_ti("evilpkg-1.0/ok.py"), COPY.encode()), (_ti(str(w.pwned)), b"boom\n")])
    return Case(PYPI, refuse="is an absolute path", formats=("json",), check=_nothing_named_pwned)


def case_wheel_dotdot(w: World) -> Case:
    _zip(w.index / WHEEL, [("evilpkg/ok.py", COPY.encode()), *_wheel_meta(), (f"evilpkg/../../../{PWNED}", b"boom\n")])
    return Case(PYPI, refuse="escapes the extraction directory", formats=("json",), check=_nothing_named_pwned)


def case_sdist_links_devices(w: World) -> Case:
    p = "evilpkg-1.0/"
    _tar(w.index / SDIST, [
        (_ti(p), None),
        (_ti(p + "ok.py", mode=0o6777), COPY.encode()),
        (_ti(p + "secret.py", tarfile.SYMTYPE, linkname=str(w.secret)), None),
        (_ti(p + "rel.py", tarfile.SYMTYPE, linkname="../../../../outside/secret.py"), None),
        (_ti(p + "outdir", tarfile.SYMTYPE, linkname=str(w.outside)), None),
        (_ti(p + "outdir/escape.py"), b"boom\n"),  # written through the link if it were made
        (_ti(p + "hard.py", tarfile.LNKTYPE, linkname=str(w.secret)), None),
        (_ti(p + "hard_inside.py", tarfile.LNKTYPE, linkname=p + "ok.py"), None),
        (_ti(p + "passwd.py", tarfile.LNKTYPE, linkname="/etc/passwd"), None),
        (_ti(p + "zero.py", tarfile.CHRTYPE, devmajor=1, devminor=5), None),
        (_ti(p + "loop.py", tarfile.BLKTYPE, devmajor=7, devminor=0), None),
        (_ti(p + "fifo.py", tarfile.FIFOTYPE), None),
        (_ti(p + "\x1b[2J\x9b31m.py", tarfile.SYMTYPE, linkname="/etc/passwd"), None),
    ])

    def check(w: World, report: dict) -> None:
        assert not (w.outside / "escape.py").exists()
        root = next(p for p in (w.cache / "pypi").iterdir() if p.is_dir() and not p.name.startswith("."))
        got = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        assert got == ["evilpkg-1.0", "evilpkg-1.0/ok.py", "evilpkg-1.0/outdir", "evilpkg-1.0/outdir/escape.py"], got
        assert (root / "evilpkg-1.0/ok.py").stat().st_mode & 0o7133 == 0

    return Case(PYPI, copies={"ok.py"}, check=check, formats=("json", "text"), notes=[
        "skipped 4 symlink member(s)", "skipped 3 hardlink member(s)", "skipped 3 device, fifo or other special member(s)"])


def case_wheel_links_devices(w: World) -> Case:
    def special(name: str, mode: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = mode << 16
        return info

    _zip(w.index / WHEEL, [
        ("evilpkg/ok.py", COPY.encode()), *_wheel_meta(),
        (special("evilpkg/secret.py", stat.S_IFLNK | 0o777), str(w.secret).encode()),
        (special("evilpkg/outdir", stat.S_IFLNK | 0o777), str(w.outside).encode()),
        (special("evilpkg/fifo.py", stat.S_IFIFO | 0o644), b""),
        (special("evilpkg/zero.py", stat.S_IFCHR | 0o644), b""),
        (special("evilpkg/run.py", stat.S_IFREG | stat.S_ISUID | 0o777), b"print(1)\n"),
        (special("evilpkg/\x1b[2J.py", stat.S_IFLNK | 0o777), b"/etc/passwd"),
    ])

    def check(w: World, report: dict) -> None:
        root = next(p for p in (w.cache / "pypi").iterdir() if p.is_dir() and not p.name.startswith("."))
        assert not any(p.is_symlink() for p in root.rglob("*"))
        assert (root / "evilpkg/run.py").stat().st_mode & 0o7133 == 0

    return Case(PYPI, copies={"evilpkg/ok.py"}, check=check, formats=("json", "text"), notes=[
        "skipped 3 symlink member(s)", "skipped 2 device, fifo or other special member(s)"])


def _deflated_zeros(size: int) -> tuple[bytes, int, int]:
    """(one raw-deflate block of 1 MiB of zeros, how many to repeat, the trailer): the blocks end
    with a full flush, so repeating one is a valid stream of size zeros. Built in milliseconds."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)
    return block, size // MiB, c.flush()


def _write_zip_bomb(path: Path, name: str, size: int, others: list[tuple[str, bytes]]) -> None:
    """A real zip whose member `name` inflates to `size` zero bytes (its headers say so, CRC
    included), plus small stored members: what a package index could serve."""
    block, count, trailer = _deflated_zeros(size)
    crc = 0
    zeros = bytes(MiB)
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    entries = [(name.encode(), 8, crc, len(block) * count + len(trailer), size, [block] * count + [trailer])]
    entries += [(n.encode(), 0, zlib.crc32(d), len(d), len(d), [d]) for n, d in others]
    central = b""
    with open(path, "wb") as f:
        for fname, method, crc, csize, usize, chunks in entries:
            offset = f.tell()
            f.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, csize, usize, len(fname), 0))
            f.write(fname)
            for chunk in chunks:
                f.write(chunk)
            central += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, csize, usize,
                                   len(fname), 0, 0, 0, 0, 0o644 << 16, offset) + fname
        start = f.tell()
        f.write(central)
        f.write(struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), start, 0))


def case_wheel_bomb(w: World) -> Case:
    _write_zip_bomb(w.index / WHEEL, "evilpkg/bomb.py", BOMB_BYTES, [("evilpkg/ok.py", COPY.encode()), *_wheel_meta()])
    assert (w.index / WHEEL).stat().st_size < 2 * MiB
    with zipfile.ZipFile(w.index / WHEEL) as zf:  # well formed: what it says is what it holds
        assert zf.getinfo("evilpkg/bomb.py").file_size == BOMB_BYTES and zf.read("evilpkg/ok.py") == COPY.encode()

    def check(w: World, report: dict) -> None:
        assert sum(p.stat().st_size for p in w.cache.rglob("*") if p.is_file()) < 10 * MiB

    return Case(PYPI, copies={"evilpkg/ok.py"}, check=check,
                notes=[f"skipped 1 member(s) larger than {EXTRACT_MEMBER_CAP} bytes: 'evilpkg/bomb.py'"])


def case_sdist_bomb(w: World) -> Case:
    """A 1 MB tar.gz holding a 1 GiB member: skipped by its header, but a tarball must still be
    inflated through it to reach the next member."""
    def header(name: str, size: int) -> bytes:
        ti = tarfile.TarInfo(name)
        ti.size = size
        return ti.tobuf(format=tarfile.GNU_FORMAT)

    body = COPY.encode()
    zero_member = gzip.compress(bytes(MiB), compresslevel=9, mtime=0)  # gzip members concatenate
    with open(w.index / SDIST, "wb") as f:
        f.write(gzip.compress(header("evilpkg-1.0/bomb.py", BOMB_BYTES), mtime=0))
        for _ in range(BOMB_BYTES // MiB):
            f.write(zero_member)
        tail = header("evilpkg-1.0/ok.py", len(body)) + body + bytes(-len(body) % 512) + bytes(1024)
        f.write(gzip.compress(tail, mtime=0))
    assert (w.index / SDIST).stat().st_size < 2 * MiB

    def check(w: World, report: dict) -> None:
        assert sum(p.stat().st_size for p in w.cache.rglob("*") if p.is_file()) < 10 * MiB

    return Case(PYPI, copies={"ok.py"}, check=check,
                notes=[f"skipped 1 member(s) larger than {EXTRACT_MEMBER_CAP} bytes: 'evilpkg-1.0/bomb.py'"])


CASES: dict[str, Callable[[World], Case]] = {
    "symlink-loops": case_symlink_loops,
    "symlinks-outside": case_symlinks_outside,
    "special-files": case_special_files,
    "deep-nesting": case_deep_nesting,
    "huge-line-50MB": case_huge_line,
    "huge-line-50MB-read": case_huge_line_read,
    "nul-and-invalid-utf8": case_bad_bytes,
    "hostile-file-names": case_hostile_names,
    "option-like-directory": case_option_like_source,
    "100k-files": case_many_files,
    "git-submodules": case_git_submodules,
    "git-filter-origin-config": case_git_filter_origin,
    "git-filter-user-config": case_git_filter_user,
    **{name: _injection(*spec) for name, spec in INJECTIONS.items()},
    "sdist-dotdot": case_sdist_dotdot,
    "sdist-absolute": case_sdist_absolute,
    "wheel-dotdot": case_wheel_dotdot,
    "sdist-links-devices": case_sdist_links_devices,
    "wheel-links-devices": case_wheel_links_devices,
    "wheel-bomb-1GiB": case_wheel_bomb,
    "sdist-bomb-1GiB": case_sdist_bomb,
}


# --------------------------------------------------------------------------- the matrix


def _assert_refused(run: Run, needle: str) -> None:
    assert run.code == 2, (run.code, run.stderr)
    assert run.stdout == b""
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("provscan: error: "), run.stderr
    assert needle in lines[0], lines[0]
    assert not _CONTROLS.search(lines[0]), repr(lines[0])


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(name: str, tmp_path: Path, reference: Path) -> None:
    w = World(tmp_path, reference)
    case = CASES[name](w)
    try:
        _run_case(name, case, w, tmp_path, reference)
    finally:
        for path in w.discard:
            shutil.rmtree(path, ignore_errors=True)


def _run_case(name: str, case: Case, w: World, tmp_path: Path, reference: Path) -> None:
    args = [f"--reference={case.reference or reference}", *case.extra]
    parent_before = sorted(os.listdir(tmp_path.parent))
    before = _listing(tmp_path, skip={w.cache, w.tmp, w.tools})
    tree_before = _listing(w.tree, skip=set()) if tmp_path not in w.tree.parents else None
    reference_before = _listing(reference, skip=set())
    atimes = _age_atimes(w.outside) if _atime_tracks_reads(tmp_path) else {}
    report: dict = {}
    for fmt in case.formats:
        run = run_cli(w, [*args, "--format", fmt, "--", case.source])
        print(f"{name} [{fmt}]: exit {run.code}, peak RSS {run.rss / MiB:.0f} MiB, {run.wall:.1f} s")
        # (a) finishes, or refuses in one line; never a traceback
        assert "Traceback" not in run.stderr, run.stderr
        if case.refuse is not None:
            _assert_refused(run, case.refuse)
        else:
            assert run.code in (0, 1), (run.code, run.stderr)
            assert run.stderr == "", run.stderr
        # (c) bounded memory
        assert run.rss < case.rss, f"peak RSS {run.rss / MiB:.0f} MiB over {case.rss / MiB:.0f} MiB"
        out = run.stdout.decode("utf-8")  # strict: no raw undecodable bytes (an 8-bit CSI) either
        # (b) the secret never reaches a report
        assert MARKER not in out
        if fmt in ("text", "markdown"):
            # (e) nothing from the tree drives the terminal
            bad = _CONTROLS.search(out)
            assert bad is None, f"control character {bad.group()!r} in the report: {out[max(0, bad.start() - 80):bad.end() + 80]!r}"
        if fmt == "text":
            for path, why in case.skips.items():
                assert any(line.startswith(f"  {_inert(path)}: ") and why in line for line in out.splitlines()), (path, why)
        if fmt == "json" and case.refuse is None:
            report = json.loads(out)
    # (b) nothing read outside the tree (access times), nothing run, nothing written but the cache
    moved = [str(p) for p, atime in atimes.items() if p.lstat().st_atime_ns != atime]
    assert not moved, f"read outside the scanned tree: {moved}"
    assert not w.pwned.exists() and not Path("/tmp", PWNED).exists()
    assert _listing(tmp_path, skip={w.cache, w.tmp, w.tools}) == before
    if tree_before is not None:
        assert _listing(w.tree, skip=set()) == tree_before
    assert list(w.tmp.iterdir()) == []  # $TMPDIR: used, and left as found
    assert _listing(reference, skip=set()) == reference_before
    assert sorted(os.listdir(tmp_path.parent)) == parent_before
    assert _files_containing(w.cache, MARKER.encode()) == []
    if case.refuse is None:
        # (d) skipped files are listed, with their reasons
        skipped = {s["path"]: s["reason"] for s in report["skipped"]}
        for path, why in case.skips.items():
            assert path in skipped and why in skipped[path], (path, why, skipped.get(path))
        for why in case.notes:
            assert any(why in s["reason"] for s in report["skipped"]), (why, report["skipped"])
        copies = {f["path"] for f in report["findings"] if f["kind"].endswith("-copy")}
        assert case.copies <= copies, case.copies - copies
        assert all(MARKER not in f["path"] and not f["path"].startswith(("/", "../")) for f in report["findings"])
    if case.check is not None:
        case.check(w, report)


def _inert(text: str) -> str:
    """How reports/text.py shows a path: the test's own copy of the rule, to find the line."""
    return re.sub("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]",
                  lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                  text).replace("\n", "\\n")


# --------------------------------------------------------------------------- budgets, directly


def test_walk_budgets_list_what_they_leave(tmp_path: Path) -> None:
    for i in range(30):
        write(tmp_path / f"m{i:02d}.py", "x = 1\n" * 100)
    got = walk.walk_tree(tmp_path, max_files=10)
    assert got.files == 10 and [u.path for u in got.units] == [f"m{i:02d}.py" for i in range(10)]
    assert [s.path for s in got.skipped] == [f"m{i:02d}.py" for i in range(10, 30)]
    assert all("budget of 10 source files" in s.reason for s in got.skipped)
    got = walk.walk_tree(tmp_path, max_total_bytes=1500)
    assert got.files == 3 and all("bytes of source" in s.reason for s in got.skipped) and len(got.skipped) == 27


def test_tarball_read_through_is_bounded(tmp_path: Path) -> None:
    """What a tarball's members hold is inflated even when skipped: past the budget, refused
    before a byte of the big member is read (scanner.archive's default budget is 4 GiB)."""
    from scanner.archive import extract_archive
    from scanner.errors import SourceError

    archive = tmp_path / "bomb.tar.gz"
    _tar(archive, [(_ti("pkg/model.bin"), bytes(3 * MiB)), (_ti("pkg/ok.py"), b"x = 1\n")])
    with pytest.raises(SourceError) as err:
        extract_archive(archive, tmp_path / "out", max_read_bytes=2 * MiB)
    assert str(err.value) == f"refusing bomb.tar.gz: its members hold more than {2 * MiB} bytes"
    assert not (tmp_path / "out").exists()
    assert extract_archive(archive, tmp_path / "out2", max_read_bytes=4 * MiB)  # a note: model.bin skipped
    assert (tmp_path / "out2/pkg/ok.py").read_bytes() == b"x = 1\n"
