"""Parse results kept by content: tree-sitter's part of parsing a Python file (scanner.parse.Syntax)
in one SQLite file under the cache directory, so that bytes parsed once are not parsed again.

tree-sitter is about half of the CPU of fingerprinting (docs/benchmarks.md): a rescan of a
repository, or an index of a new release of a reference (most of whose files did not change),
parses only what changed. What is kept is small and plain (definitions' byte ranges, lines and
names, docstring ranges, imports, error lines: ~1.3 KB a file, as JSON), and it is a function of
the file's bytes alone: the key is the SHA-256 of the bytes, salted with whatever shapes the
result (tree-sitter's and the grammar's compiled modules, the source of scanner/parse.py,
keep_imports). So a stale or foreign entry cannot be picked up, and a collision cannot be forged.

The cache never costs a result: an entry that does not decode to a well-formed Syntax for the
bytes it is asked for is a miss; a cache file that is not a database is replaced; a locked, full
or read-only one is skipped for the run. Beyond MAX_BYTES, the quarter of the entries not used for
the longest time goes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from functools import lru_cache
from pathlib import Path

from scanner.parse import Syntax

FILE_NAME = "parse-cache-v1.sqlite3"
MAX_BYTES = 256 * 2**20  # beyond this, the least recently used quarter goes (~200,000 files at ~1.3 KB)
_BATCH = 500  # keys per SELECT (SQLite's variable limit is 999 in old builds)


@lru_cache(maxsize=1)
def _salt() -> bytes:
    """What a parse result depends on besides the bytes: the code that reads the tree (this
    package's parse.py, and its compiled lexer, whose outline a reference's tree-sitter reads) and
    the parser (tree-sitter's and the grammar's compiled modules), the compiled ones by path, size
    and time: an upgrade or a reinstall changes them; a metadata lookup costs 35 ms a run."""
    import tree_sitter._binding
    import tree_sitter_python._binding

    import scanner.parse

    parts = [Path(scanner.parse.__file__).read_bytes()]
    modules = [tree_sitter._binding, tree_sitter_python._binding]
    if scanner.parse._COMPILED is not None:
        modules.append(scanner.parse._COMPILED)
    for module in modules:
        stat = os.stat(module.__file__)
        parts.append(f"{module.__file__}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return hashlib.sha256(b"\0".join(parts)).digest()


def cache_key(data: bytes, keep_imports: bool) -> bytes:
    return hashlib.sha256(_salt() + (b"i" if keep_imports else b"-") + hashlib.sha256(data).digest()).digest()


def encode(syntax: Syntax) -> bytes:
    return json.dumps([syntax.defs, syntax.docstrings, syntax.imports, syntax.error_lines],
                      ensure_ascii=False, separators=(",", ":")).encode()


def decode(value: bytes, size: int) -> Syntax:
    """The Syntax of an entry, for source bytes of this size; ValueError when it is not one."""
    try:
        defs, docstrings, imports, errors = json.loads(value)
        syntax = Syntax(
            tuple((a, b, c, d, e, f) for a, b, c, d, e, f in defs),
            tuple((a, b, c, d) for a, b, c, d in docstrings),
            tuple((line, module, tuple(names)) for line, module, names in imports),
            tuple(errors),
        )
    except (ValueError, TypeError, RecursionError) as e:  # JSON errors are ValueErrors; wrong shapes unpack wrongly
        raise ValueError(f"not a parse result: {e}") from None

    def ints(*values) -> bool:
        return all(type(v) is int for v in values)

    ok = all(ints(s, e, first, last) and type(name) is str and type(is_class) is bool
             and 0 <= s <= e <= size and 1 <= first <= last for s, e, first, last, name, is_class in syntax.defs)
    ok = ok and all(ints(first, last, s, e) and 1 <= first <= last and 0 <= s <= e <= size
                    for first, last, s, e in syntax.docstrings)
    ok = ok and all(ints(line) and line >= 1 and type(module) is str and all(type(n) is str for n in names)
                    for line, module, names in syntax.imports)
    ok = ok and all(ints(line) and line >= 1 for line in syntax.error_lines)
    if not ok:
        raise ValueError("not a parse result for these bytes")
    return syntax


class ParseCache:
    """The cache file of one cache directory. Each call opens it and closes it again (a process
    pool forks between the calls, and SQLite connections must not cross a fork). Any SQLite error
    other than a broken file turns the cache off for the rest of the run (the parse is only redone)."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / FILE_NAME
        self.hits = self.misses = 0
        self._off = False

    def _connect(self) -> sqlite3.Connection | None:
        for attempt in range(2):
            if self._off:
                return None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:  # the names and imports of scanned code are the user's: readable by the user alone
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                except FileExistsError:
                    pass
                db = sqlite3.connect(self.path, timeout=2.0, isolation_level=None)
                try:
                    db.execute("PRAGMA journal_mode=WAL")  # readers do not wait for a writer
                    db.execute("PRAGMA synchronous=NORMAL")  # no fsync per write: a cache may lose its last entries
                    db.execute("CREATE TABLE IF NOT EXISTS syntax "
                               "(key BLOB PRIMARY KEY, value BLOB NOT NULL, used INTEGER NOT NULL)")
                except BaseException:
                    db.close()
                    raise
                return db
            except sqlite3.DatabaseError as e:
                if attempt == 0 and _not_a_database(e):
                    self.remove()  # garbage where the cache should be: start a new one
                    continue
                self._off = True
            except (sqlite3.Error, OSError):
                self._off = True
        return None

    def remove(self) -> None:
        """Delete the cache file: the next run parses every file (benchmarks of a first run)."""
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except OSError:
                pass

    def get(self, keys: list[bytes], sizes: list[int]) -> list[Syntax | None]:
        """The kept parse results of these keys (None: not kept), each checked against its bytes' size."""
        out: list[Syntax | None] = [None] * len(keys)
        db = self._connect() if keys else None
        if db is None:
            self.misses += len(keys)
            return out
        try:
            found: dict[bytes, bytes] = {}
            try:
                for lo in range(0, len(keys), _BATCH):
                    batch = keys[lo:lo + _BATCH]
                    found.update(db.execute(f"SELECT key, value FROM syntax WHERE key IN ({','.join('?' * len(batch))})",
                                            batch).fetchall())
            except sqlite3.Error:
                self._off = True
                found = {}
            used = []
            for i, (key, size) in enumerate(zip(keys, sizes)):
                value = found.get(key)
                if value is not None:
                    try:
                        out[i] = decode(value, size)
                        used.append(key)
                    except ValueError:
                        pass  # a damaged entry is a miss, replaced by put
            self.hits += len(used)
            self.misses += len(keys) - len(used)
            if used:
                self._write(db, "UPDATE syntax SET used = ? WHERE key = ?", [(int(time.time()), key) for key in used])
        finally:
            db.close()
        return out

    def put(self, items: list[tuple[bytes, Syntax]]) -> None:
        db = self._connect() if items else None
        if db is None:
            return
        try:
            if self._write(db, "INSERT OR REPLACE INTO syntax VALUES (?, ?, ?)",
                           [(key, encode(syntax), int(time.time())) for key, syntax in items]) and self._bytes(db) > MAX_BYTES:
                # Pages in use (freed pages are reused, not returned): two O(1) reads, where a count is a scan.
                (count,) = db.execute("SELECT COUNT(*) FROM syntax").fetchone()
                self._write(db, "DELETE FROM syntax WHERE key IN (SELECT key FROM syntax ORDER BY used LIMIT ?)",
                            [(max(1, count // 4),)])
        except sqlite3.Error:
            self._off = True
        finally:
            db.close()

    @staticmethod
    def _bytes(db: sqlite3.Connection) -> int:
        """Bytes of the pages in use."""
        (pages,), (free,), (size,) = (db.execute(f"PRAGMA {name}").fetchone()
                                      for name in ("page_count", "freelist_count", "page_size"))
        return (pages - free) * size

    def _write(self, db: sqlite3.Connection, sql: str, rows: list[tuple]) -> bool:
        """rows in one transaction; False (and the cache off) when SQLite refuses (locked, full, read-only)."""
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(sql, rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return True
        except sqlite3.Error:
            self._off = True
            return False


def _not_a_database(error: sqlite3.DatabaseError) -> bool:
    text = str(error).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text
