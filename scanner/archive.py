"""Safe extraction of downloaded distributions (wheels, zips, tarballs).

Archives come from package indexes, so every member is hostile until checked: we never
call extractall, never create links or devices, never trust permission bits, and never
write more bytes than the caps allow, however well the data compresses.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from scanner.errors import SourceError

MiB = 1024 * 1024
GiB = 1024 * MiB
_CHUNK = 1024 * 1024

# What a provenance scan reads: code, notebooks, configs, docs and the licence/notice files.
WANTED_SUFFIXES = frozenset(
    {".py", ".pyi", ".ipynb", ".json", ".yaml", ".yml", ".toml", ".txt", ".md", ".rst", ".cfg"}
)
WANTED_PREFIXES = (
    "LICENSE", "LICENCE", "COPYING", "NOTICE", "README", "AUTHORS", "CREDITS",
    "THIRD_PARTY", "THIRD-PARTY", "ACKNOWLEDG",
    # Package metadata carries the declared licence and authors (no file extension).
    "METADATA", "PKG-INFO",
)
_DRIVE = re.compile(r"^[A-Za-z]:")
_EXAMPLES = 5


def default_wanted(path: str) -> bool:
    """True for the files a scan reads; `path` is the member's relative POSIX path."""
    base = path.rsplit("/", 1)[-1]
    if base.upper().startswith(WANTED_PREFIXES):
        return True
    dot = base.rfind(".")
    return dot > 0 and base[dot:].lower() in WANTED_SUFFIXES


@dataclass
class _Skips:
    """Skipped members grouped by reason, so a wheel with 5,000 binaries gives one note."""

    by_reason: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, name: str) -> None:
        self.by_reason.setdefault(reason, []).append(name)

    def notes(self, archive_name: str) -> list[str]:
        out = []
        for reason, names in self.by_reason.items():
            shown = ", ".join(_show(n) for n in names[:_EXAMPLES])
            more = f" (+{len(names) - _EXAMPLES} more)" if len(names) > _EXAMPLES else ""
            out.append(f"{archive_name}: skipped {len(names)} {reason}: {shown}{more}")
        return out


@dataclass
class _Member:
    """One archive entry reduced to what extraction needs."""

    name: str
    kind: str  # "file" | "dir" | "symlink" | "hardlink" | "special" | "encrypted"
    size: int
    opener: Callable[[], IO[bytes]]


def _show(name: str) -> str:
    """Quote a member name for a one-line message, escaping control characters."""
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in name)
    return repr(text[:200])


def _safe_parts(name: str, archive: Path) -> list[str]:
    """Split a member name into path parts, refusing the archive for any escape attempt."""

    def refuse(why: str) -> SourceError:
        return SourceError(f"refusing {archive.name}: member {_show(name)} {why}")

    if "\x00" in name:
        raise refuse("contains a NUL byte")
    if "\\" in name:
        raise refuse("contains a backslash")
    if _DRIVE.match(name):
        raise refuse("has a drive letter")
    if name.startswith("/"):
        raise refuse("is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise refuse("escapes the extraction directory")
    return parts


def _zip_members(zf: zipfile.ZipFile) -> Iterator[_Member]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        fmt = stat.S_IFMT(mode)
        if info.is_dir():
            kind = "dir"
        elif fmt == stat.S_IFLNK:
            kind = "symlink"
        elif fmt not in (0, stat.S_IFREG):
            kind = "special"
        elif info.flag_bits & 0x1:
            kind = "encrypted"
        else:
            kind = "file"
        yield _Member(info.filename, kind, info.file_size, lambda info=info: zf.open(info))


def _tar_members(tf: tarfile.TarFile) -> Iterator[_Member]:
    for ti in tf:  # lazy: a tarball's member list is only known by reading it through
        if ti.isreg():
            kind = "file"
        elif ti.isdir():
            kind = "dir"
        elif ti.issym():
            kind = "symlink"
        elif ti.islnk():
            kind = "hardlink"
        else:
            kind = "special"

        def opener(ti: tarfile.TarInfo = ti) -> IO[bytes]:
            f = tf.extractfile(ti)
            if f is None:
                raise tarfile.ReadError("member has no data")
            return f

        yield _Member(ti.name, kind, ti.size, opener)


def _open_archive(archive: Path) -> zipfile.ZipFile | tarfile.TarFile:
    name = archive.name.lower()
    if name.endswith((".whl", ".zip")):
        return zipfile.ZipFile(archive)
    if name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar")):
        return tarfile.open(archive, "r:*")
    raise SourceError(f"cannot unpack {archive.name}: unsupported archive type")


def _write_member(src: IO[bytes], target: Path, cap: int, budget: int) -> tuple[int, bool]:
    """Stream src to a new file; return (bytes written, complete). Stops at the cap."""
    written = 0
    limit = min(cap, budget)
    # 'xb' + O_NOFOLLOW: never overwrite or write through anything already there;
    # 0o644 because permission bits from an archive are not to be trusted.
    opener = lambda p, flags: os.open(p, flags | os.O_NOFOLLOW, 0o644)  # noqa: E731
    with open(target, "xb", opener=opener) as out:
        while True:
            chunk = src.read(min(_CHUNK, limit - written + 1))
            if not chunk:
                return written, True
            if written + len(chunk) > limit:
                out.write(chunk[: limit - written])
                return limit, False
            out.write(chunk)
            written += len(chunk)


def extract_archive(
    archive: Path,
    dest: Path,
    *,
    max_member_bytes: int = 64 * MiB,
    max_total_bytes: int = 1 * GiB,
    max_members: int = 200_000,
    wanted: Callable[[str], bool] = default_wanted,
    max_read_bytes: int = 4 * GiB,
) -> list[str]:
    """Extract the wanted regular files of `archive` into `dest` (which must not exist).

    A tarball is read through from end to end, skipped members included (inflating a gzip
    stream at ~150 MB/s here), so its members may hold at most max_read_bytes in all: a 1 GiB
    .tar.gz of zeros holds a terabyte.

    Extraction happens in a temporary sibling directory that is renamed to `dest` only on
    success, so `dest` existing means it is complete. If another process created `dest`
    meanwhile, its copy is kept and ours discarded. Returns human-readable notes about
    skipped members. Raises SourceError for hostile or unreadable archives and caps.
    """
    archive = Path(archive)
    dest = Path(dest)
    if dest.exists():
        raise SourceError(f"cannot unpack {archive.name}: {dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-extract-", dir=dest.parent))
    try:
        notes = _extract_into(
            archive, tmp, max_member_bytes, max_total_bytes, max_members, wanted, max_read_bytes
        )
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent run won the race
        return notes
    except SourceError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError,
            RuntimeError, NotImplementedError, ValueError) as exc:
        # zlib/bz2/lzma errors surface as OSError/EOFError; encrypted or exotic zip
        # methods as RuntimeError/NotImplementedError.
        shutil.rmtree(tmp, ignore_errors=True)
        text = str(exc).strip()
        detail = text.splitlines()[0] if text else type(exc).__name__
        detail = "".join(c if c.isprintable() else "?" for c in detail[:300])
        raise SourceError(f"cannot unpack {archive.name}: {detail}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _extract_into(
    archive: Path,
    root: Path,
    max_member_bytes: int,
    max_total_bytes: int,
    max_members: int,
    wanted: Callable[[str], bool],
    max_read_bytes: int,
) -> list[str]:
    handle = _open_archive(archive)
    skips = _Skips()
    total = 0
    through = 0  # tar: bytes of member data the stream holds up to the current member
    real_root = os.path.realpath(root)
    with handle:
        if isinstance(handle, zipfile.ZipFile):
            infos = handle.infolist()
            if len(infos) > max_members:
                raise SourceError(
                    f"refusing {archive.name}: {len(infos)} members exceed the limit of {max_members}"
                )
            for info in infos:  # refuse before writing anything when the names are known up front
                _safe_parts(info.filename, archive)
            members: Iterator[_Member] = _zip_members(handle)
        else:
            members = _tar_members(handle)
        for count, m in enumerate(members, start=1):
            if count > max_members:
                raise SourceError(
                    f"refusing {archive.name}: more than {max_members} members"
                )
            parts = _safe_parts(m.name, archive)
            if isinstance(handle, tarfile.TarFile):
                through += max(m.size, 0)
                if through > max_read_bytes:
                    raise SourceError(
                        f"refusing {archive.name}: its members hold more than {max_read_bytes} bytes"
                    )
            if m.kind == "dir" or not parts:
                continue
            rel = "/".join(parts)
            if m.kind in ("symlink", "hardlink"):
                skips.add(f"{m.kind} member(s)", rel)
                continue
            if m.kind == "special":
                skips.add("device, fifo or other special member(s)", rel)
                continue
            if m.kind == "encrypted":
                skips.add("encrypted member(s)", rel)
                continue
            if not wanted(rel):
                skips.add("member(s) of file types a scan does not read", rel)
                continue
            if m.size > max_member_bytes:
                skips.add(f"member(s) larger than {max_member_bytes} bytes", rel)
                continue
            if total + m.size > max_total_bytes:
                raise SourceError(
                    f"refusing {archive.name}: unpacked size exceeds {max_total_bytes} bytes"
                )
            target = root.joinpath(*parts)
            parent = os.path.realpath(target.parent)
            if parent != real_root and not parent.startswith(real_root + os.sep):
                raise SourceError(
                    f"refusing {archive.name}: member {_show(m.name)} escapes the extraction directory"
                )
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with m.opener() as src:
                    budget = max_total_bytes - total
                    written, complete = _write_member(src, target, max_member_bytes, budget)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                skips.add("duplicate or conflicting member(s)", rel)
                continue
            if complete:
                total += written
                continue
            # More data than the header declared: a bomb or a lying header. Drop the partial file.
            target.unlink()
            if budget < max_member_bytes:
                raise SourceError(
                    f"refusing {archive.name}: unpacked size exceeds {max_total_bytes} bytes"
                )
            skips.add(f"member(s) larger than {max_member_bytes} bytes", rel)
    return skips.notes(archive.name)
