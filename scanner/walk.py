"""Walk a tree: pick the files to scan, skip what must not be read, and say why.

Never follows a symlink out of the tree, never descends into a symlinked directory (loops),
never reads a file above the size cap, and turns notebooks into one unit per code cell.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_FILE_SIZE = 1024 * 1024
PYTHON_SUFFIXES = (".py", ".pyi")
NOTEBOOK_SUFFIX = ".ipynb"
# VCS metadata and byte-code caches hold no source of the project.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__"})


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


def _inside(root: Path, target: Path) -> bool:
    try:
        target.relative_to(root)
        return True
    except ValueError:
        return False


def walk_tree(root: Path, *, max_file_size: int = DEFAULT_MAX_FILE_SIZE, only: set[str] | None = None) -> WalkResult:
    """only: read just these source files (relative paths), and only the directories that lead to
    them (the pre-commit hook); files at the root are still listed for the repository's notices."""
    root = root.resolve()
    # Every directory on the way to a wanted file ("a/", "a/b/" for "a/b/c.py").
    prefixes = None if only is None else {"/".join(p.split("/")[:i]) + "/" for p in only for i in range(1, p.count("/") + 1)}
    units: list[SourceUnit] = []
    skipped: list[Skip] = []
    others: list[str] = []
    files = 0
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(Skip(_rel(root, Path(current)), f"unreadable directory ({exc.strerror})"))
            continue
        subdirs = []
        for entry in entries:
            path = Path(entry.path)
            rel = _rel(root, path)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                skipped.append(Skip(rel, f"cannot stat ({exc.strerror})"))
                continue
            if stat.S_ISLNK(st.st_mode):
                target = _symlink_target(root, path)
                if target is None:
                    skipped.append(Skip(rel, "symlink pointing outside the tree"))
                    continue
                if target.is_dir():
                    skipped.append(Skip(rel, "symlink to a directory (not followed)"))
                    continue
                if not _is_source(entry.name):
                    continue
                try:
                    st = target.stat()
                except OSError:
                    skipped.append(Skip(rel, "dangling symlink"))
                    continue
                path = target
            if stat.S_ISDIR(st.st_mode):
                if entry.name not in SKIP_DIRS and (prefixes is None or rel + "/" in prefixes):
                    subdirs.append(path)
                continue
            if not stat.S_ISREG(st.st_mode):
                if _is_source(entry.name):
                    skipped.append(Skip(rel, "not a regular file"))
                continue
            if not _is_source(entry.name):
                others.append(rel)
                continue
            if only is not None and rel not in only:
                continue
            if st.st_size > max_file_size:
                skipped.append(Skip(rel, f"larger than the size cap ({st.st_size} > {max_file_size} bytes)"))
                continue
            try:
                data = path.read_bytes()
            except OSError as exc:
                skipped.append(Skip(rel, f"unreadable ({exc.strerror})"))
                continue
            if len(data) > max_file_size:  # grew after stat
                skipped.append(Skip(rel, f"larger than the size cap ({len(data)} > {max_file_size} bytes)"))
                continue
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
    return WalkResult(units, skipped, files, sorted(others))


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else "."


def _is_source(name: str) -> bool:
    return name.endswith(PYTHON_SUFFIXES) or name.endswith(NOTEBOOK_SUFFIX)


def _symlink_target(root: Path, link: Path) -> Path | None:
    """The link's final target if it stays inside root, else None (loops count as outside)."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return target if _inside(root, target) else None


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
