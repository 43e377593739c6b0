"""Walk a tree: pick the files to scan, skip what must not be read, and say why.

Never follows a symlink out of the tree, never descends into a symlinked directory (loops),
never opens anything but a regular file (a FIFO or device would block or never end), never
reads more than the size cap of one file, and stops reading source files at a per-tree count
and byte budget, so that a hostile tree costs bounded time and memory. Turns notebooks into
one unit per code cell.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_FILE_SIZE = 1024 * 1024
# Per-tree budgets. transformers 5.24 (the largest reference corpus we know) has 2,912 .py files
# and 54 MB of source; a tree beyond these is read up to them and the rest listed as skipped.
MAX_FILES = 20_000
MAX_TOTAL_BYTES = 256 * 1024 * 1024
# Skipped files are listed one by one up to this many, then counted by reason.
_MAX_LISTED_SKIPS = 2000
PYTHON_SUFFIXES = (".py", ".pyi")
NOTEBOOK_SUFFIX = ".ipynb"
# VCS metadata and byte-code caches hold no source of the project.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__"})
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class SourceUnit:
    """One piece of Python source: a .py file, or one code cell of a notebook."""

    path: str  # relative to the scanned root, '/'-separated
    data: bytes
    cell: int | None = None  # 1-based index of the cell among the notebook's cells


@dataclass(frozen=True)
class Skip:
    path: str
    reason: str


@dataclass
class WalkResult:
    units: list[SourceUnit]
    skipped: list[Skip]
    files: int  # source files read (a notebook counts once)
    other_files: list[str]  # non-source files (licence texts, READMEs...) with their relative paths


class _Unreadable(Exception):
    """A source file that cannot be read as one; str() is the reason listed in the report."""


def walk_tree(root: Path, *, max_file_size: int = DEFAULT_MAX_FILE_SIZE, only: set[str] | None = None,
              max_files: int | None = None, max_total_bytes: int | None = None) -> WalkResult:
    """only: read just these source files (relative paths), and only the directories that lead to
    them (the pre-commit hook); files at the root are still listed for the repository's notices.

    Paths in the result are text: a name that is not valid UTF-8 shows its bytes as \\xNN escapes.
    """
    from scanner.configs import is_config  # configs are sources too (scanner.configs imports this module)

    max_files = MAX_FILES if max_files is None else max_files
    max_total_bytes = MAX_TOTAL_BYTES if max_total_bytes is None else max_total_bytes
    root = root.resolve()
    root_s = str(root)
    prefix = root_s if root_s.endswith(os.sep) else root_s + os.sep
    # Every directory on the way to a wanted file ("a/", "a/b/" for "a/b/c.py").
    prefixes = None if only is None else {"/".join(p.split("/")[:i]) + "/" for p in only for i in range(1, p.count("/") + 1)}
    units: list[SourceUnit] = []
    skipped = _Skipped()
    others: list[str] = []
    files = opened = total = 0
    stack = [root_s]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skipped.append(Skip(_shown(_rel(prefix, current)), f"unreadable directory ({exc.strerror})"))
            continue
        subdirs = []
        for entry in entries:
            raw_rel = _rel(prefix, entry.path)
            rel = _shown(raw_rel)
            source = _is_source(entry.name) or is_config(raw_rel)
            path = entry.path
            try:
                if entry.is_symlink():
                    target, why = _symlink_target(root_s, prefix, path)
                    if target is None:
                        skipped.append(Skip(rel, why))
                        continue
                    mode = os.stat(target).st_mode
                    if stat.S_ISDIR(mode):
                        skipped.append(Skip(rel, "symlink to a directory (not followed)"))
                        continue
                    if not source:
                        continue
                    if not stat.S_ISREG(mode):  # never open a device or FIFO, even to look at it
                        skipped.append(Skip(rel, "not a regular file"))
                        continue
                    path = target
                elif entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIP_DIRS and (prefixes is None or raw_rel + "/" in prefixes):
                        subdirs.append(entry.path)
                    continue
                elif not entry.is_file(follow_symlinks=False):
                    if source:
                        skipped.append(Skip(rel, "not a regular file"))
                    continue
            except OSError as exc:
                skipped.append(Skip(rel, f"cannot stat ({exc.strerror})"))
                continue
            if not source:
                others.append(rel)
                continue
            if only is not None and raw_rel not in only:
                continue
            if opened >= max_files:
                skipped.append(Skip(rel, f"over the per-tree budget of {max_files} source files"))
                continue
            if total >= max_total_bytes:
                skipped.append(Skip(rel, f"over the per-tree budget of {max_total_bytes} bytes of source"))
                continue
            opened += 1
            try:
                data = _read_regular(path, max_file_size)
            except _Unreadable as exc:
                skipped.append(Skip(rel, str(exc)))
                continue
            total += len(data)
            if entry.name.endswith(NOTEBOOK_SUFFIX):
                cells, reason = notebook_cells(data)
                if reason:
                    skipped.append(Skip(rel, reason))
                    continue
                files += 1
                units.extend(SourceUnit(rel, src, cell) for cell, src in cells)
                continue
            if b"\0" in data[:8192]:
                skipped.append(Skip(rel, "binary content (NUL bytes)"))
                continue
            files += 1
            units.append(SourceUnit(rel, data))
        stack.extend(reversed(subdirs))
    units.sort(key=lambda u: (u.path, u.cell or 0))
    return WalkResult(units, skipped.listed(), files, sorted(others))


class _Skipped:
    """Skips in walk order: the first _MAX_LISTED_SKIPS one by one, the rest counted by reason
    (a tree of a million symlinks must not make a million-entry report)."""

    def __init__(self) -> None:
        self.items: list[Skip] = []
        self.more: dict[str, int] = {}

    def append(self, skip: Skip) -> None:
        if len(self.items) < _MAX_LISTED_SKIPS:
            self.items.append(skip)
        else:
            self.more[skip.reason] = self.more.get(skip.reason, 0) + 1

    def listed(self) -> list[Skip]:
        return self.items + [Skip("", f"{n} more file(s) not listed: {reason}") for reason, n in self.more.items()]


class NotRegularFile(OSError):
    """A path that is a FIFO, device, socket or directory, not a file."""


class FileTooLarge(OSError):
    """A file above the cap it is read with; size is what was seen (a lower bound if it grew)."""

    def __init__(self, size: int, grew: bool = False) -> None:
        super().__init__(f"{size}{'+' if grew else ''} bytes")
        self.size, self.grew = size, grew


def open_regular(path: str | os.PathLike) -> int:
    """A file descriptor on a regular file of a scanned tree (every reader of one goes through here).

    Opens without following a final symlink and without blocking (a FIFO swapped in after the
    directory was listed would wait forever), then checks the type on the open file, so nothing
    can be swapped in between the check and the read."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike, cap: int) -> bytes:
    """The bytes of a regular file of at most cap bytes (open_regular), never reading more than
    cap + 1 bytes: a file that grows while read raises FileTooLarge too."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size > cap:
            raise FileTooLarge(size)
        # The first read asks for the size fstat gave, and one byte more (a file that grew shows
        # it); os.read allocates what it is asked for, so a fixed large request cost a 1 MiB
        # allocation, its pages and its shrinking per file (half the walk's time).
        chunks, want, size = [], size + 1, 0
        while size <= cap:
            chunk = os.read(fd, min(cap + 1 - size, want))
            want = 64 * 1024
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > cap:
            raise FileTooLarge(size, grew=True)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_regular(path: str, cap: int) -> bytes:
    """read_regular, its failures as the reasons the report lists."""
    try:
        return read_regular(path, cap)
    except FileTooLarge as exc:
        shown = f"{exc.size}+" if exc.grew else str(exc.size)
        raise _Unreadable(f"larger than the size cap ({shown} > {cap} bytes)") from None
    except NotRegularFile:
        raise _Unreadable("not a regular file") from None
    except OSError as exc:
        raise _Unreadable(f"unreadable ({exc.strerror})") from None


def _rel(prefix: str, path: str) -> str:
    if not path.startswith(prefix):
        return "."
    rel = path[len(prefix):]
    return rel.replace(os.sep, "/") if os.sep != "/" else rel


def _shown(rel: str) -> str:
    """rel as text for reports: bytes of a name that is not UTF-8 (surrogate escapes) as \\xNN."""
    if rel.isascii():
        return rel
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return os.fsencode(rel).decode("utf-8", errors="backslashreplace")


def _is_source(name: str) -> bool:
    return name.endswith(PYTHON_SUFFIXES) or name.endswith(NOTEBOOK_SUFFIX)


def _symlink_target(root: str, prefix: str, link: str) -> tuple[str | None, str]:
    """(final target, "") if the link resolves inside root, else (None, why it is skipped)."""
    try:
        target = os.path.realpath(link, strict=True)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "symlink loop (not followed)"
        try:
            lexical = os.path.realpath(link)
        except (OSError, ValueError):
            lexical = ""
        if lexical != root and not lexical.startswith(prefix):
            return None, "symlink pointing outside the tree"
        return None, "dangling symlink" if exc.errno == errno.ENOENT else f"unresolvable symlink ({exc.strerror})"
    except (RuntimeError, ValueError):
        return None, "symlink loop (not followed)"
    if target != root and not target.startswith(prefix):
        return None, "symlink pointing outside the tree"
    return target, ""


def notebook_cells(data: bytes) -> tuple[list[tuple[int, bytes]], str | None]:
    """Code cells of a notebook as Python source, keyed by 1-based cell index.

    IPython magics and shell escapes (`%`, `!`) become blank lines so that line numbers inside
    a cell stay those a reader sees.
    """
    try:
        doc = json.loads(data.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return [], "notebook is not valid JSON"
    cells = doc.get("cells") if isinstance(doc, dict) else None
    if not isinstance(cells, list):
        return [], "notebook has no cell list"
    out: list[tuple[int, bytes]] = []
    for index, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str) or not source.strip():
            continue
        lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
        out.append((index, "\n".join(lines).encode("utf-8", errors="replace")))
    return out, None
