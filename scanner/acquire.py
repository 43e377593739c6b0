"""Acquire a SOURCE or REFERENCE as a directory tree to scan (DESIGN §3).

Forms: a local directory; a git URL (https, http, ssh, git, file, scp-style) with an
optional @REV; hf:ORG/NAME[@REV] (a Hugging Face git remote); pypi:NAME[==VERSION].

Everything fetched is untrusted: git runs with hooks, fsmonitor, submodules and the
ext/fd transports off, and package archives are unpacked by scanner.archive without ever
running a build backend. Remote trees are cached under a content key (commit, or file hash),
so a second acquire of the same thing is a directory lookup.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.errors import SourceError

if TYPE_CHECKING:
    import git

# Start-up matters on the pre-commit hook path, which only ever acquires local directories:
# GitPython, urllib, subprocess and html.parser are imported where the remote forms need them.


@dataclass
class Acquired:
    """A tree ready to scan, and where it came from."""

    root: Path  # directory to scan (the work tree, or the unpacked package root)
    source: str  # the spec as the user gave it
    kind: str  # "local" | "git" | "hf" | "pypi"
    commit: str | None  # 40-hex commit for git/hf and local git work trees, else None
    version: str | None  # pypi: resolved version; else None
    url: str | None  # git remote URL (password masked) / distribution file name
    name: str  # short default reference name
    notes: list[str] = field(default_factory=list)  # human-readable notes


def default_cache_dir() -> Path:
    """$PROVSCAN_CACHE_DIR if set, else the platform's per-user cache directory."""
    env = os.environ.get("PROVSCAN_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("provscan"))


def acquire(spec: str, cache_dir: Path | None = None, *, timeout: float = 600.0) -> Acquired:
    """Resolve `spec` to a local directory tree, fetching and caching it when remote.

    Raises SourceError (one-line message) for anything that cannot or must not be acquired.
    """
    deadline = time.monotonic() + timeout
    try:
        got = _acquire(spec, cache_dir, deadline, timeout)
        # Reports are text: a directory name that is not UTF-8 (surrogate escapes from argv or
        # the file system) is shown by its bytes, \xNN, or no report could be written.
        got.source, got.name = _text(got.source), _text(got.name)
        return got
    except SourceError:
        raise
    except (OSError, ValueError, RuntimeError, EOFError) as exc:
        raise SourceError(f"cannot acquire {_printable(_redact(spec))}: {_one_line(exc)}") from exc


def _acquire(spec: str, cache_dir: Path | None, deadline: float, timeout: float) -> Acquired:
    if not spec:
        raise SourceError("empty source: expected a directory, a git URL, hf:ORG/NAME or pypi:NAME[==VERSION]")
    if "\x00" not in spec and os.path.isdir(spec):
        return _acquire_local(spec)
    if "\x00" not in spec and os.path.lexists(spec):
        raise SourceError(f"not a directory: {_printable(spec)}")

    form = _spec_form(spec)
    if form == "path":
        raise SourceError(f"no such directory: {_printable(spec)}{_local_rev_hint(spec)}")
    if spec.startswith("-"):
        raise SourceError(f"refusing source {_quote(spec)}: a source must not start with '-'")
    if form == "transport":
        transport = spec.split("::", 1)[0]
        raise SourceError(f"refusing source {_quote(spec)}: git transport '{_printable(transport)}::' is not allowed")
    if form == "unsupported":
        raise SourceError(
            f"unsupported source {_quote(spec)}: expected a directory, a git URL, "
            "hf:ORG/NAME or pypi:NAME[==VERSION]"
        )
    if _has_bad_chars(spec):
        raise SourceError(f"refusing source {_quote(spec)}: it contains whitespace or control characters")

    cache = _prepare_cache(cache_dir)
    if form == "hf":
        url, rev, name = _parse_hf(spec)
        return _acquire_git(spec, url, rev, "hf", name, cache, deadline, timeout)
    if form == "pypi":
        pkg, version = _parse_pypi(spec)
        return _acquire_pypi(spec, pkg, version, cache, deadline, timeout)
    url, rev = parse_git_spec(spec)
    _check_git_url(url, spec)
    return _acquire_git(spec, url, rev, "git", _repo_name(url), cache, deadline, timeout)


# --------------------------------------------------------------------------- spec parsing

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_TRANSPORT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*::")
_SCP = re.compile(r"^[^@/:\s]+@[^@/:\s]+:.")
_SCHEME_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
_GIT_SCHEMES = frozenset({"https", "http", "ssh", "git", "file"})
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SHORT_SHA = re.compile(r"[0-9a-f]{4,63}")
_REV = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+@-]*")


def _spec_form(spec: str) -> str:
    """Classify a spec that is not an existing path."""
    if spec.startswith("hf:"):
        return "hf"
    if spec.startswith("pypi:"):
        return "pypi"
    if spec.startswith("-"):
        return "option"
    if _TRANSPORT.match(spec):
        return "transport"
    m = _SCHEME.match(spec)
    if m:
        return "git" if m.group(1).lower() in _GIT_SCHEMES else "unsupported"
    if _SCP.match(spec):
        return "git"
    if _SCHEME_PREFIX.match(spec):
        return "unsupported"  # e.g. "svn+ssh:", "github:org/x"
    return "path"


def parse_git_spec(spec: str) -> tuple[str, str | None]:
    """Split "URL@REV" into (URL, REV); REV is None when absent.

    Only an '@' in the path part separates a revision: the '@' of a user name
    (https://user@host/..., git@host:org/repo) does not, and a revision may itself
    contain '/' (URL@feature/x). An empty revision ("URL@") is a SourceError.
    """
    m = _SCHEME.match(spec)
    if m:
        path_start = spec.find("/", m.end())
        if path_start < 0:
            return spec, None
    else:
        colon = spec.find(":")
        path_start = colon + 1 if colon >= 0 else 0
    at = spec.find("@", path_start)
    if at < 0:
        return spec, None
    url, rev = spec[:at], spec[at + 1:]
    if not rev:
        raise SourceError(f"empty revision in {_quote(spec)}: expected URL@BRANCH, URL@TAG or URL@COMMIT")
    return url, rev


def _check_git_url(url: str, spec: str) -> None:
    """Refuse URLs git could misread as options, or that name no repository."""
    m = _SCHEME.match(url)
    if m:
        parts = urllib.parse.urlsplit(url)
        scheme = m.group(1).lower()
        if scheme not in _GIT_SCHEMES:
            raise SourceError(f"unsupported source {_quote(spec)}: scheme '{scheme}' is not a git transport we allow")
        if scheme == "file":
            if parts.netloc not in ("", "localhost") or not parts.path.strip("/"):
                raise SourceError(f"refusing source {_quote(spec)}: expected file:///absolute/path")
            return
        host = parts.hostname or ""
        user = parts.username or ""
        if not host or host.startswith("-") or user.startswith("-"):
            raise SourceError(f"refusing source {_quote(spec)}: missing or invalid host")
        if not parts.path.strip("/"):
            raise SourceError(f"refusing source {_quote(spec)}: no repository path")
        return
    user_host, _, path = url.partition(":")
    user, _, host = user_host.partition("@")
    if not host or host.startswith("-") or user.startswith("-") or not path.strip("/") or path.startswith("-"):
        raise SourceError(f"refusing source {_quote(spec)}: expected USER@HOST:PATH")


def _check_rev(rev: str, spec: str) -> None:
    bad = (
        not _REV.fullmatch(rev)
        or ".." in rev
        or "@{" in rev
        or "//" in rev
        or rev.endswith(("/", ".", ".lock"))
    )
    if bad:
        raise SourceError(f"invalid revision {_quote(rev)} in {_quote(spec)}")


def _repo_name(url: str) -> str:
    if _SCHEME.match(url):
        parts = urllib.parse.urlsplit(url)
        path, host = parts.path, parts.hostname or ""
    else:
        host, _, path = url.partition(":")
    last = path.rstrip("/").rsplit("/", 1)[-1]
    last = last[:-4] if last.endswith(".git") else last
    return last or host or "repo"


_HF_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?"
_HF_PATH = re.compile(rf"(?:(?P<type>datasets|spaces)/)?(?P<org>{_HF_PART})/(?P<name>{_HF_PART})")


def _parse_hf(spec: str) -> tuple[str, str | None, str]:
    """hf:[datasets/|spaces/]ORG/NAME[@REV] -> (git URL, REV, "ORG/NAME")."""
    path, sep, rev = spec[len("hf:"):].partition("@")
    m = _HF_PATH.fullmatch(path)
    if not m or ".." in path or (sep and not rev):
        raise SourceError(
            f"malformed Hugging Face source {_quote(spec)}: expected hf:ORG/NAME[@REV], "
            "hf:datasets/ORG/NAME or hf:spaces/ORG/NAME"
        )
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/{path}"
    _check_git_url(url, f"{spec} (HF_ENDPOINT={endpoint})")
    return url, (rev or None), f"{m.group('org')}/{m.group('name')}"


_PEP508_NAME = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE)
# PEP 440 (appendix B) without the leading "v" and surrounding whitespace it tolerates.
_PEP440 = re.compile(
    r"(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?:[-_.]?(?P<pre_l>a|b|c|rc|alpha|beta|pre|preview)[-_.]?(?P<pre_n>[0-9]+)?)?"
    r"(?:-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?"
    r"(?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?",
    re.IGNORECASE,
)


def _parse_pypi(spec: str) -> tuple[str, str | None]:
    name, sep, version = spec[len("pypi:"):].partition("==")
    if not _PEP508_NAME.fullmatch(name) or (sep and not _PEP440.fullmatch(version)):
        raise SourceError(f"malformed PyPI source {_quote(spec)}: expected pypi:NAME or pypi:NAME==VERSION")
    return name, (version or None)


def _normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------- small helpers


def _printable(text: str, limit: int = 200) -> str:
    """Text safe for a one-line message: control characters escaped, length capped."""
    out = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


def _text(text: str) -> str:
    """text, with the lone surrogates of undecodable bytes shown as \\xNN (valid UTF-8 again)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _quote(text: str) -> str:
    return f"'{_printable(_redact(text))}'"


def _has_bad_chars(text: str) -> bool:
    return any(c.isspace() or not c.isprintable() for c in text)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = str(exc).strip()
    return _printable(text.splitlines()[0] if text else type(exc).__name__, 300)


def _redact(url: str) -> str:
    """Mask a password or token in a URL so it never reaches a report or message."""
    url = re.sub(r"(://[^/@:\s]*):[^/@\s]*@", r"\1:***@", url)
    # A bare token as the user name (https://ghp_xxx@host/...): long, not a plain login.
    return re.sub(r"(https?://)[^/@:\s]{20,}@", r"\1***@", url)


redact = _redact


def _local_rev_hint(spec: str) -> str:
    base, sep, _ = spec.rpartition("@")
    if sep and base and os.path.isdir(base):
        return f" (for a revision of a local repository use file://{os.path.abspath(base)}@REV)"
    return ""


def _prepare_cache(cache_dir: Path | None) -> Path:
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        cache = cache.resolve()  # roots we hand out are absolute
        for sub in ("git", "pypi"):
            (cache / sub).mkdir(exist_ok=True)
            _prune_stale(cache / sub)
    except OSError as exc:
        raise SourceError(f"cannot create cache directory {cache}: {_one_line(exc)}") from exc
    return cache


_STALE_AFTER_S = 24 * 3600


def _prune_stale(directory: Path) -> None:
    """Remove temp dirs left by runs that were killed mid-clone or mid-unpack."""
    now = time.time()
    for p in directory.glob(".tmp-*"):
        try:
            if now - p.lstat().st_mtime > _STALE_AFTER_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            continue


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


# --------------------------------------------------------------------------- local directories


def _acquire_local(spec: str) -> Acquired:
    root = Path(spec).resolve()
    return Acquired(
        root=root,
        source=spec,
        kind="local",
        commit=read_head_commit(root),
        version=None,
        url=None,
        name=root.name or str(root),
    )


_REF_NAME = re.compile(r"refs/[A-Za-z0-9._/+@-]+")


def read_head_commit(work_tree: Path) -> str | None:
    """HEAD's commit for a git work tree, read from .git files without running git.

    Handles a .git directory or a "gitdir:" file (worktrees, submodules), loose refs,
    packed-refs and detached HEADs. Returns None when it is not a repository or HEAD is
    unborn or unreadable.
    """
    try:
        gitdir = _find_gitdir(Path(work_tree))
        if gitdir is None:
            return None
        commondir = gitdir
        if (gitdir / "commondir").is_file():
            commondir = (gitdir / _read_small(gitdir / "commondir").strip()).resolve()
        head = _read_small(gitdir / "HEAD").strip()
        for _ in range(5):  # symbolic refs may chain; bound it
            if _FULL_SHA.fullmatch(head):
                return head
            if not head.startswith("ref:"):
                return None
            ref = head[4:].strip()
            if not _REF_NAME.fullmatch(ref) or ".." in ref:
                return None
            loose = [gitdir / ref, commondir / ref]
            found = next((p for p in loose if p.is_file()), None)
            if found is not None:
                head = _read_small(found).strip()
                continue
            return _packed_ref(commondir / "packed-refs", ref)
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _find_gitdir(work_tree: Path) -> Path | None:
    dotgit = work_tree / ".git"
    if dotgit.is_dir():
        return dotgit
    if dotgit.is_file():
        text = _read_small(dotgit).strip()
        if text.startswith("gitdir:"):
            return (work_tree / text[len("gitdir:"):].strip()).resolve()
    return None


def _open_regular(path: Path):
    """A text stream on a regular file (walk.open_regular): a scanned tree's .git/HEAD may be a
    FIFO (an open would wait forever) or a device."""
    from scanner.walk import open_regular

    return open(open_regular(path), encoding="utf-8", closefd=True)


def _read_small(path: Path, limit: int = 4096) -> str:
    with _open_regular(path) as f:
        return f.read(limit)


def _packed_ref(packed: Path, ref: str) -> str | None:
    if not packed.is_file():
        return None
    with _open_regular(packed) as f:
        for line in f:
            if line.startswith(("#", "^")):
                continue
            sha, _, name = line.strip().partition(" ")
            if name == ref and _FULL_SHA.fullmatch(sha):
                return sha
    return None


# --------------------------------------------------------------------------- git and hf

# Passed through GIT_CONFIG_COUNT/KEY/VALUE (GitPython refuses `-c`). They make a fetched
# tree inert: no hooks (user templates or a committed hooks dir), no fsmonitor daemon, no
# submodules, no command-running transports, symlinks checked out as plain files.
_GIT_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),
    ("protocol.ext.allow", "never"),
    ("protocol.fd.allow", "never"),
    ("core.fsmonitor", "false"),
    ("submodule.recurse", "false"),
    ("advice.detachedHead", "false"),
    ("core.symlinks", "false"),
    ("init.defaultBranch", "main"),
)
_NO_CONVERSION = "* -filter -text -ident -working-tree-encoding\n"
_COMPLETE_MARKER = "provscan-complete"  # inside .git: written last, before the atomic rename
# git's generic advice after a failed connection; the line before it says what went wrong.
_GIT_BOILERPLATE = (
    "Could not read from remote repository.",
    "Please make sure you have the correct access rights",
    "and the repository exists.",
)


def git_env() -> dict[str, str]:
    """Environment additions for every git command run on untrusted remotes."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "GIT_ALLOW_PROTOCOL": "https:http:ssh:git:file",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_COUNT": str(len(_GIT_CONFIG)),
    }
    for i, (key, value) in enumerate(_GIT_CONFIG):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


@dataclass
class _GitRun:
    """Runs git commands against one remote under one deadline, with uniform errors."""

    url: str
    deadline: float
    timeout: float

    @property
    def shown(self) -> str:
        return _printable(_redact(self.url))

    def timed_out(self) -> SourceError:
        return SourceError(f"timed out after {self.timeout:g} s cloning {self.shown}")

    def failed(self, exc: Exception) -> SourceError:
        return SourceError(f"cannot clone {self.shown}: {_git_error_line(exc)}")

    def not_found(self, rev: str) -> SourceError:
        return SourceError(f"cannot clone {self.shown}: revision {_quote(rev)} not found")

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a GitPython command with the time left; a kill becomes a timeout error."""
        from git.exc import GitCommandError

        left = _left(self.deadline)
        if left <= 0:
            raise self.timed_out()
        try:
            return fn(*args, kill_after_timeout=left, **kwargs)
        except GitCommandError as exc:
            text = str(exc)  # GitPython's own wording when it kills a command:
            if _left(self.deadline) <= 0 or "killed because it timed out" in text or "did not complete in" in text:
                raise self.timed_out() from exc
            raise


def _git_error_line(exc: Exception) -> str:
    """The line of git's stderr that says what went wrong, without GitPython's wrapping."""
    text = str(getattr(exc, "stderr", "") or "")
    m = re.fullmatch(r"\s*stderr: '(.*)'\s*", text, re.DOTALL)
    if m:
        text = m.group(1)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not re.sub(r"^fatal: ", "", ln).startswith(_GIT_BOILERPLATE)]
    line = (useful or lines or [f"git failed with status {getattr(exc, 'status', '?')}"])[-1]
    line = re.sub(r"^(fatal|error): ", "", line)
    return _printable(_redact(line), 300)


def _acquire_git(
    spec: str, url: str, rev: str | None, kind: str, name: str, cache: Path, deadline: float, timeout: float
) -> Acquired:
    from git.exc import GitError

    if rev is not None:
        _check_rev(rev, spec)
    run = _GitRun(url, deadline, timeout)
    gitcache = cache / "git"
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    try:
        root, commit, notes = _fetch_commit(run, rev, gitcache, key)
    except GitError as exc:
        raise run.failed(exc) from exc
    return Acquired(
        root=root, source=spec, kind=kind, commit=commit, version=None,
        url=_redact(url), name=name, notes=notes,
    )


def _complete(path: Path) -> bool:
    return (path / ".git" / _COMPLETE_MARKER).is_file()


def _fetch_commit(run: _GitRun, rev: str | None, gitcache: Path, key: str) -> tuple[Path, str, list[str]]:
    """Find or make the cached checkout of `rev`; returns (work tree, commit, notes)."""
    from git.exc import GitCommandError

    want = None if rev in (None, "HEAD") else rev
    ref: str | None = None  # remote ref to fetch shallowly, when the rev names one
    commit: str | None = None
    if want is not None and _FULL_SHA.fullmatch(want.lower()):
        commit = want.lower()
    else:
        # A short sha we already checked out (exactly one match) needs no remote, but only
        # when the remote cannot say otherwise: git lets a ref of that name win.
        short = want is not None and _SHORT_SHA.fullmatch(want.lower()) is not None
        cached = [p for p in gitcache.glob(f"{key}-{want.lower()}*") if _complete(p)] if short and want else []
        try:
            ref, commit = _ls_remote(run, want, gitcache)
        except GitCommandError:
            if len(cached) != 1:
                raise
            return cached[0], cached[0].name.split("-", 1)[1], [f"remote unreachable; used the cached checkout of {want}"]
        if commit is None:
            if want is None:
                raise SourceError(f"cannot clone {run.shown}: the repository has no default branch (is it empty?)")
            if not short:
                raise run.not_found(want)
            if len(cached) == 1:
                return cached[0], cached[0].name.split("-", 1)[1], []
    if commit is not None:
        final = gitcache / f"{key}-{commit}"
        if _complete(final):
            return final, commit, []

    notes: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-clone-", dir=gitcache))
    try:
        repo = _init_repo(run, tmp)
        if ref is not None:
            _fetch(run, repo, ref, shallow=True)
            commit = _rev_parse_commit(run, repo, "FETCH_HEAD")
            if commit is None:
                raise SourceError(f"cannot clone {run.shown}: revision {_quote(want or 'HEAD')} is not a commit")
        else:
            shallow_ok = False
            if commit is not None:  # full sha: most servers (protocol v2) serve it directly
                shallow_ok = _try_fetch_sha(run, repo, commit)
                if not shallow_ok:
                    notes.append(f"shallow fetch of {commit[:12]} refused by the server; fetched all branches and tags")
                    shutil.rmtree(tmp)
                    tmp.mkdir()
                    repo = _init_repo(run, tmp)
            if not shallow_ok:
                _fetch(run, repo, ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"], shallow=False)
                commit = _rev_parse_commit(run, repo, commit or want or "HEAD")
                if commit is None:
                    raise run.not_found(want or "HEAD")
        run.call(repo.git.checkout, "--quiet", "--detach", commit)
        (tmp / ".git" / _COMPLETE_MARKER).write_text(f"{_redact(run.url)}\n{commit}\n", encoding="utf-8")
        final = gitcache / f"{key}-{commit}"
        if _complete(final):
            return final, commit, notes
        if final.exists():
            _discard(final)  # an earlier run died half-way through a rename or was tampered with
        try:
            os.rename(tmp, final)
        except OSError:
            if not _complete(final):
                raise
            # A concurrent run finished the same commit first; use its copy.
        return final, commit, notes
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _discard(path: Path) -> None:
    aside = Path(tempfile.mkdtemp(prefix=".tmp-stale-", dir=path.parent))
    os.rename(path, aside / "old")
    shutil.rmtree(aside, ignore_errors=True)


def _ls_remote(run: _GitRun, want: str | None, cwd: Path) -> tuple[str | None, str | None]:
    """Resolve a branch/tag/ref (or the default branch) to (remote ref, commit) via ls-remote."""
    if want is None:
        # --symref names the default branch, so we fetch refs/heads/X rather than "HEAD"
        # (a HEAD line in FETCH_HEAD makes GitPython log a spurious warning).
        patterns = ["--symref", "--", run.url, "HEAD"]
        out = str(run.call(_git_cmd(cwd).ls_remote, *patterns))
        symref = re.search(r"^ref: (refs/\S+)\tHEAD$", out, re.MULTILINE)
        head = re.search(r"^([0-9a-f]{40}|[0-9a-f]{64})\tHEAD$", out, re.MULTILINE)
        if head is None:
            return None, None
        return (symref.group(1) if symref else None), head.group(1)
    if want.startswith("refs/"):
        candidates = [want]
    else:
        # git's own precedence: a tag wins over a branch of the same name.
        candidates = [f"refs/tags/{want}", f"refs/heads/{want}"]
    patterns = list(candidates)
    patterns += [p + "^{}" for p in patterns if p.startswith("refs/tags/")]
    out = run.call(_git_cmd(cwd).ls_remote, "--", run.url, *patterns)
    refs: dict[str, str] = {}
    for line in str(out).splitlines():
        sha, _, name = line.partition("\t")
        if _FULL_SHA.fullmatch(sha.strip()):
            refs[name.strip()] = sha.strip()
    for ref in candidates:
        if ref in refs:
            return ref, refs.get(ref + "^{}", refs[ref])  # peel annotated tags to their commit
    return None, None


def _git_cmd(cwd: Path) -> git.cmd.Git:
    import git

    g = git.cmd.Git(str(cwd))  # a directory we own: no stranger's .git/config applies
    g.update_environment(**git_env())
    return g


def _init_repo(run: _GitRun, path: Path) -> git.Repo:
    import git

    env = git_env()
    repo = run.call(git.Repo.init, str(path), env={**os.environ, **env})
    repo.git.update_environment(**env)
    # Above every .gitattributes of the fetched tree: no filter runs at checkout, not even one
    # the user configured (a tree can name any filter driver, e.g. the user's git-crypt), and
    # files are checked out byte for byte as committed (no eol, ident or encoding conversion).
    info = path / ".git" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "attributes").write_text(_NO_CONVERSION, encoding="utf-8")
    run.call(repo.create_remote, "origin", run.url)
    return repo


def _fetch(run: _GitRun, repo: git.Repo, refspec: str | list[str], *, shallow: bool) -> None:
    from git.exc import GitCommandError

    opts: dict[str, Any] = {"depth": 1, "no_tags": True} if shallow else {}
    try:
        run.call(repo.remote("origin").fetch, refspec, **opts)
    except GitCommandError as exc:
        raise run.failed(exc) from exc


def _try_fetch_sha(run: _GitRun, repo: git.Repo, sha: str) -> bool:
    from git.exc import GitCommandError

    try:
        run.call(repo.remote("origin").fetch, sha, depth=1, no_tags=True)
    except GitCommandError as exc:
        line = _git_error_line(exc)
        # Only a refusal of the sha itself is worth a full fetch; a dead remote is not.
        if re.search(r"not our ref|couldn't find remote ref|no such remote ref|not found|"
                     r"unadvertised object|upload-pack", line, re.IGNORECASE):
            return False
        raise run.failed(exc) from exc
    return True


def _rev_parse_commit(run: _GitRun, repo: git.Repo, rev: str) -> str | None:
    from git.exc import GitCommandError

    try:
        out = run.call(repo.git.rev_parse, "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    except GitCommandError:
        return None
    sha = str(out).strip()
    return sha if _FULL_SHA.fullmatch(sha) else None


# --------------------------------------------------------------------------- pypi

_DEFAULT_INDEX = "https://pypi.org/simple/"
_MAX_DOWNLOAD = 1024 * 1024 * 1024
_MAX_PAGE = 32 * 1024 * 1024
_SDIST_EXTS = (".tar.gz", ".zip")
_SAFE_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*")
_TRUE = frozenset({"1", "true", "yes", "on"})


def _acquire_pypi(
    spec: str, name: str, version: str | None, cache: Path, deadline: float, timeout: float
) -> Acquired:
    norm = _normalize_name(name)
    pdir = cache / "pypi"
    notes: list[str] = []
    # A pinned version was resolved before: reuse the unpacked copy without asking the index.
    pin = pdir / f"{norm}=={version}.json" if version else None
    if pin is not None and pin.is_file():
        try:
            known = json.loads(pin.read_text(encoding="utf-8"))
            dest = pdir / known["key"]
            if dest.is_dir() and "/" not in known["key"]:
                notes_file = pdir / f"{known['key']}.notes"
                if notes_file.is_file():
                    notes += [ln for ln in notes_file.read_text(encoding="utf-8").splitlines() if ln]
                root = dest / known["subdir"] if known.get("subdir") else dest
                return Acquired(root=root, source=spec, kind="pypi", commit=None, version=known["version"],
                                url=known["file"], name=name, notes=notes)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged pointer only costs a new download
    with tempfile.TemporaryDirectory(prefix=".tmp-download-", dir=pdir) as td:
        pip_dir, sdist_dir = Path(td, "pip"), Path(td, "sdist")
        pip_dir.mkdir()
        sdist_dir.mkdir()
        dist, pip_problem = _pip_download_wheel(spec, name, version, pip_dir, deadline, timeout)
        is_sdist = dist is None
        if dist is None:
            try:
                dist = _fetch_sdist(spec, norm, version, sdist_dir, deadline, timeout)
            except _NoSdist as exc:
                raise SourceError(f"cannot fetch {_printable(spec)}: no wheel ({pip_problem}); no sdist ({exc})") from exc
            notes.append(f"no wheel available ({pip_problem}); unpacked sdist {dist.name} without running its build backend")
        dist_name, dist_version = _split_dist_filename(dist.name)
        if _normalize_name(dist_name) != norm:
            raise SourceError(f"cannot fetch {_printable(spec)}: got {_printable(dist.name)}, which is another project")
        digest = _sha256_file(dist)
        # Keyed by the file's hash, so reuse is safe whether or not the version was pinned.
        key = f"{norm}-{dist_version}-{digest[:12]}"
        dest = pdir / key
        notes_file = pdir / f"{key}.notes"
        if dest.is_dir():
            if notes_file.is_file():
                notes += [ln for ln in notes_file.read_text(encoding="utf-8").splitlines() if ln]
        else:
            from scanner.archive import extract_archive

            extracted = extract_archive(dist, dest)
            notes_file.write_text("".join(n + "\n" for n in extracted), encoding="utf-8")
            notes += extracted
    root = dest
    if is_sdist:
        entries = list(dest.iterdir())
        if len(entries) == 1 and entries[0].is_dir():
            root = entries[0]  # sdists wrap everything in NAME-VERSION/
    if pin is not None:
        tmp_pin = pin.with_suffix(f".tmp{os.getpid()}")
        tmp_pin.write_text(json.dumps({"key": key, "version": dist_version, "file": dist.name,
                                       "subdir": root.name if root != dest else None}), encoding="utf-8")
        os.replace(tmp_pin, pin)
    return Acquired(
        root=root, source=spec, kind="pypi", commit=None, version=dist_version,
        url=dist.name, name=name, notes=notes,
    )


def _pip_download_wheel(
    spec: str, name: str, version: str | None, dest: Path, deadline: float, timeout: float
) -> tuple[Path | None, str]:
    """Ask pip for a wheel only: pip never builds or runs anything for a wheel."""
    import subprocess

    requirement = f"{name}=={version}" if version else name
    cmd = [
        # -P: the current directory (maybe an untrusted tree) must not shadow the pip module.
        sys.executable, "-P", "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--dest", str(dest), "--no-input", "--disable-pip-version-check", "--progress-bar", "off",
        requirement,
    ]
    env = dict(os.environ)
    env.pop("PIP_NO_BINARY", None)  # would fight --only-binary
    left = _left(deadline)
    if left <= 0:
        raise SourceError(f"timed out after {timeout:g} s downloading {_printable(spec)}")
    try:
        proc = subprocess.run(
            cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, errors="replace", timeout=left,
        )
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"timed out after {timeout:g} s downloading {_printable(spec)}") from exc
    except OSError as exc:
        return None, f"pip could not run: {_one_line(exc)}"
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        line = lines[-1] if lines else f"pip exited with status {proc.returncode}"
        return None, "pip: " + _printable(re.sub(r"^(ERROR|WARNING): ", "", line), 300)
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        return None, "pip did not produce exactly one wheel"
    return wheels[0], ""


class _NoSdist(Exception):
    """No usable sdist; str() is the reason, for a combined one-line message."""


@dataclass
class _Candidate:
    filename: str
    location: str  # URL (http, https, file) or local path
    sha256: str | None
    yanked: bool
    version: str


def _html_links(text: str) -> list[tuple[str, bool]]:
    """<a href> targets of a PEP 503 simple page or a find-links page, with their yanked flag."""
    import html.parser

    links: list[tuple[str, bool]] = []

    class LinkParser(html.parser.HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            d = dict(attrs)
            if tag == "a" and d.get("href"):
                links.append((d["href"] or "", "data-yanked" in d))

    LinkParser().feed(text)
    return links


def _fetch_sdist(
    spec: str, norm: str, version: str | None, dest: Path, deadline: float, timeout: float
) -> Path:
    """Find and download NAME-VERSION.tar.gz/.zip from pip's index settings; never build it."""
    env = os.environ
    find_links = (env.get("PIP_FIND_LINKS") or "").split()
    indexes: list[str] = []
    if (env.get("PIP_NO_INDEX") or "").strip().lower() not in _TRUE:
        indexes = [env.get("PIP_INDEX_URL") or _DEFAULT_INDEX] + (env.get("PIP_EXTRA_INDEX_URL") or "").split()
    if not find_links and not indexes:
        raise _NoSdist("PIP_NO_INDEX is set and PIP_FIND_LINKS is empty")

    links: list[tuple[str, str | None, bool]] = []  # (location, sha256, yanked)
    problems: list[str] = []
    for fl in find_links:
        links += _find_links_entries(fl, deadline, problems)
    for index in indexes:
        page = index.rstrip("/") + f"/{norm}/"
        links += _page_links(page, deadline, problems)

    candidates = []
    for location, sha, yanked in links:
        filename = urllib.parse.unquote(location.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        if not filename.lower().endswith(_SDIST_EXTS) or not _SAFE_FILENAME.fullmatch(filename):
            continue
        try:
            fname, fversion = _split_dist_filename(filename)
        except SourceError:
            continue
        if _normalize_name(fname) == norm and _PEP440.fullmatch(fversion):
            candidates.append(_Candidate(filename, location, sha, yanked, fversion))

    where = ", ".join(_printable(_redact(s)) for s in find_links + indexes)
    if version is not None:
        chosen = [c for c in candidates if _versions_equal(c.version, version)]
    else:
        usable = [c for c in candidates if not c.yanked]
        finals = [c for c in usable if not _is_prerelease(c.version)]
        usable = finals or usable
        best = _best_version([c.version for c in usable]) if usable else None
        chosen = [c for c in usable if c.version == best]
    if not chosen:
        why = f"; {problems[0]}" if problems else ""
        raise _NoSdist(f"none for {norm}{'==' + version if version else ''} in {where}{why}")
    chosen.sort(key=lambda c: (not c.filename.endswith(".tar.gz"), c.filename))
    pick = chosen[0]
    target = dest / pick.filename
    _download(pick.location, target, deadline, timeout, spec)
    if pick.sha256 and _sha256_file(target) != pick.sha256.lower():
        raise SourceError(f"cannot fetch {_printable(spec)}: sha256 of {pick.filename} does not match the index")
    return target


def _local_path(location: str) -> Path | None:
    """A find-links entry or link as a local path, when it is one (plain path or file:// URL)."""
    import urllib.request

    if location.startswith("file:"):
        parts = urllib.parse.urlsplit(location)
        return Path(urllib.request.url2pathname(parts.path))
    if "://" not in location:
        return Path(location)
    return None


def _find_links_entries(entry: str, deadline: float, problems: list[str]) -> list[tuple[str, str | None, bool]]:
    local = _local_path(entry)
    if local is not None:
        if local.is_dir():
            return [(str(p), None, False) for p in sorted(local.iterdir()) if p.is_file()]
        if local.is_file() and local.name.lower().endswith(_SDIST_EXTS):
            return [(str(local), None, False)]
    return _page_links(entry, deadline, problems)


def _page_links(page: str, deadline: float, problems: list[str]) -> list[tuple[str, str | None, bool]]:
    """Links of an HTML page (PEP 503), resolved to absolute URLs, with their sha256 fragments."""
    import urllib.error

    local = _local_path(page)
    url = page
    if local is not None:
        if local.is_dir():
            local = local / "index.html"  # what pip reads for a file:// index directory
        if not local.is_file():
            return []
        url = local.resolve().as_uri()
    try:
        data = _read_url(url, deadline, _MAX_PAGE)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:  # 404 only means the index lacks this project
            problems.append(f"{_printable(_redact(page))}: HTTP {exc.code}")
        return []
    except (urllib.error.URLError, OSError, ValueError) as exc:
        problems.append(f"{_printable(_redact(page))}: {_url_error(exc)}")
        return []
    out = []
    for href, yanked in _html_links(data.decode("utf-8", errors="replace")):
        absolute = urllib.parse.urljoin(url, href)
        base, _, frag = absolute.partition("#")
        m = re.search(r"(?:^|&)sha256=([0-9a-fA-F]{64})(?:&|$)", frag)
        out.append((base, m.group(1) if m else None, yanked))
    return out


def _read_url(url: str, deadline: float, limit: int) -> bytes:
    import urllib.request

    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise ValueError(f"unsupported URL scheme '{scheme}'")
    req = urllib.request.Request(url, headers={"User-Agent": "provscan", "Accept": "text/html"})
    with urllib.request.urlopen(req, timeout=max(_left(deadline), 0.1)) as resp:
        data = resp.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"page larger than {limit} bytes")
    return data


def _download(location: str, target: Path, deadline: float, timeout: float, spec: str) -> None:
    """Copy a local file or fetch a URL to target, capped at _MAX_DOWNLOAD bytes."""
    import urllib.error
    import urllib.request

    local = _local_path(location)
    try:
        if local is not None:
            src_cm: Any = open(local, "rb")
        else:
            scheme = urllib.parse.urlsplit(location).scheme.lower()
            if scheme not in ("http", "https"):
                raise SourceError(f"cannot fetch {_printable(spec)}: unsupported link scheme '{scheme}'")
            req = urllib.request.Request(location, headers={"User-Agent": "provscan"})
            src_cm = urllib.request.urlopen(req, timeout=max(_left(deadline), 0.1))
        written = 0
        with src_cm as src, open(target, "xb") as out:
            while chunk := src.read(1024 * 1024):
                written += len(chunk)
                if written > _MAX_DOWNLOAD:
                    raise SourceError(f"cannot fetch {_printable(spec)}: {target.name} is larger than {_MAX_DOWNLOAD} bytes")
                if _left(deadline) <= 0:
                    raise SourceError(f"timed out after {timeout:g} s downloading {_printable(spec)}")
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(f"cannot fetch {_printable(spec)}: {target.name}: {_url_error(exc)}") from exc


def _url_error(exc: BaseException) -> str:
    """One line for a urllib/OS error (URLError hides the useful part in .reason)."""
    import urllib.error

    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return _one_line(reason)
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {_printable(str(reason or ''), 100)}".strip()
    if reason:
        return _printable(str(reason), 300)
    return _one_line(exc)


def _split_dist_filename(filename: str) -> tuple[str, str]:
    """(project name, version) from a wheel or sdist file name."""
    lower = filename.lower()
    if lower.endswith(".whl"):
        parts = filename[:-4].split("-")
        if len(parts) in (5, 6):
            return parts[0], parts[1]
    else:
        for ext in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
            if lower.endswith(ext):
                name, sep, version = filename[: -len(ext)].rpartition("-")
                if sep and name and version:
                    return name, version
    raise SourceError(f"cannot tell the version of {_printable(filename)}")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


# Version ordering: `packaging` when importable (pip depends on it, so it nearly always is),
# else a PEP 440 key of our own that is right for every common version shape.

_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


def _fallback_version_key(version: str) -> tuple[Any, ...]:
    m = _PEP440.fullmatch(version)
    if not m:
        return (-1,)
    release = [int(p) for p in m.group("release").split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()  # 1.0 == 1
    post_n = m.group("post_n1") or m.group("post_n2")
    post = int(post_n or 0) if (m.group("post_n1") or m.group("post_l")) else -1
    dev = int(m.group("dev_n") or 0) if m.group("dev_l") else sys.maxsize
    if m.group("pre_l"):
        pre: tuple[int, int] = (_PRE_RANK[m.group("pre_l").lower()], int(m.group("pre_n") or 0))
    elif m.group("dev_l") and post < 0:
        pre = (-1, 0)  # 1.0.dev0 sorts before 1.0a1
    else:
        pre = (3, 0)
    return (int(m.group("epoch") or 0), tuple(release), pre, post, dev)


def _is_prerelease(version: str) -> bool:
    m = _PEP440.fullmatch(version)
    return bool(m and (m.group("pre_l") or m.group("dev_l")))


def _best_version(versions: list[str]) -> str:
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return max(versions, key=_fallback_version_key)
    parsed = []
    for v in versions:
        try:
            parsed.append((Version(v), v))
        except InvalidVersion:
            continue
    return max(parsed)[1] if parsed else max(versions, key=_fallback_version_key)


def _versions_equal(a: str, b: str) -> bool:
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return _fallback_version_key(a) == _fallback_version_key(b)
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return _fallback_version_key(a) == _fallback_version_key(b)
