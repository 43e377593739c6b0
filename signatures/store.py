"""Reference stores: an embedded on-disk index (the default) and a shared Redis index.

A stored reference is JSON metadata plus named numpy arrays. Nothing is ever pickled: arrays
are written with `numpy.save` and read with `allow_pickle=False`, metadata is JSON.

Embedded layout (a directory):

    provscan-index.json      manifest: format, tool version, fingerprint parameters, references
    refs/<id>/meta.json      one reference: metadata and the checksum of each array file
    refs/<id>/<name>.npy     its arrays, memory-mapped when loaded
    .lock                    writers serialise their commits on it; readers take it shared while they load
    .writers                 held shared by every writer while it has a refs/.tmp-* folder

Writes are atomic: a new reference is written under refs/.tmp-*, renamed into place, and only
then named in a new manifest that replaces the old one with os.replace. A crash at any point
(kill -9, a full disk) leaves the previous manifest, and every reference it names, intact; a
writer that fails removes what it wrote, and what a killed writer left is removed by the next
writer that commits while no other writer holds .writers (the kernel drops a dead process's
locks, so that test cannot mistake a live writer for a dead one).

Redis layout (prefix P): `P:manifest` (JSON), `P:ref:<id>:meta` (JSON), `P:ref:<id>:<name>`
(.npy bytes), and datasketch's MinHashLSH tables under `P:lsh` with keys `<id>:<fragment>`
(prepickle off: keys are bytes we format, values are never unpickled). The manifest is written
last, so a reference is visible only once all of it is stored.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scanner.errors import ProvscanError
from signatures import exit_cleanly_on_bus_error

# 3: parser fixes changed some token streams (docstrings after comments, decorators next to
# dedented comments) and references keep their model artifacts: older indexes are rebuilt.
FORMAT = "provscan-index/3"
MANIFEST = "provscan-index.json"


class IndexStoreError(ProvscanError):
    """A reference index cannot be opened, read or written."""


@dataclass
class StoredReference:
    meta: dict  # JSON-able; meta["name"] is the reference's name in the index
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    id: str = ""


def _checksum(path_or_bytes) -> str:
    import xxhash

    h = xxhash.xxh3_64()
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        h.update(path_or_bytes)
        return h.hexdigest()
    with open(path_or_bytes, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FileChecks:
    """Array files already checked against their checksums, so that the hook does not re-read a
    139 MiB index on every commit.

    A file counts as checked while its size, inode, mtime and ctime are those it had when its
    bytes matched: any write to it, a rename over it, or a `touch` changes its ctime, which no
    user-level call can set back. Kept as JSON in the user cache; losing it costs one re-check.
    """

    _LIMIT = 20_000  # entries kept

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict | None = None
        self._dirty = False

    def _load(self) -> dict:
        if self._entries is None:
            self._entries = {}
            if self.path is not None:
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                    if isinstance(data, dict):
                        self._entries = data
                except (OSError, ValueError, UnicodeDecodeError):
                    pass  # unreadable: every file is checked again
        return self._entries

    def verified(self, file: Path, expected: str) -> bool:
        st = file.stat()
        key = str(file.absolute())
        stamp = [st.st_size, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns, expected]
        entries = self._load()
        if self.path is not None and entries.get(key) == stamp:
            return True
        if _checksum(file) != expected:
            return False
        entries[key] = stamp
        self._dirty = True
        return True

    def save(self) -> None:
        if not self._dirty or self.path is None:
            return
        entries = self._load()
        if len(entries) > self._LIMIT:  # forget files that are gone (removed references)
            entries = {k: v for k, v in entries.items() if os.path.exists(k)}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(entries), encoding="utf-8")
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:  # a read-only or full cache: the next run checks again
            with contextlib.suppress(OSError):
                tmp.unlink()


def _npy_parts(array: np.ndarray) -> tuple[bytes, np.ndarray]:
    """An array as the two parts of the .npy file np.save writes: its header, and its bytes (a view,
    not a copy)."""
    array = np.ascontiguousarray(array)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
    return buf.getvalue(), array.reshape(-1).view(np.uint8)


def _record(array: np.ndarray, header: bytes, body: np.ndarray) -> dict:
    """What meta.json records of an array (checked again on load)."""
    import xxhash

    digest = xxhash.xxh3_64(header)
    digest.update(body)
    return {"dtype": str(array.dtype), "shape": list(array.shape), "xxh3": digest.hexdigest()}


def _array_record(array: np.ndarray) -> tuple[bytes, dict]:
    """An array as .npy bytes (a Redis value), and its record."""
    header, body = _npy_parts(array)
    return header + body.tobytes(), _record(array, header, body)


def _write_array(path: Path, array: np.ndarray) -> dict:
    """Write an array as a .npy file, synced, without a copy of its bytes in memory; returns its record."""
    header, body = _npy_parts(array)
    with open(path, "xb") as fh:
        fh.write(header)
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    return _record(array, header, body)


def _with_reference(manifest: dict, ref: StoredReference, tool_version: str) -> tuple[dict, list[dict]]:
    """The manifest naming ref (replacing an entry of the same name), and the replaced entries."""
    old = [e for e in manifest["references"] if e["name"] == ref.meta["name"]]
    entry = {"id": ref.id, **{k: ref.meta.get(k) for k in _SUMMARY_KEYS}}
    kept = [e for e in manifest["references"] if e["name"] != ref.meta["name"]]
    return {**manifest, "references": kept + [entry], "tool_version": tool_version}, old


def _check_params(where: str, stored: dict, wanted: dict) -> None:
    if stored != wanted:
        diff = ", ".join(f"{k}={stored.get(k)!r} (now {wanted.get(k)!r})" for k in sorted(set(stored) | set(wanted))
                         if stored.get(k) != wanted.get(k))
        raise IndexStoreError(f"{where} was built with other fingerprint parameters: {diff}; "
                              f"rebuild it (provscan index remove / index add) or scan with its parameters")


def open_store(location: str | Path, params: dict, tool_version: str, checks: Path | None = None):
    """The store at a path or a redis:// URL."""
    text = str(location)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(text, params, tool_version)
    if "://" in text:
        raise IndexStoreError(f"unsupported index location {text!r}: give a directory or redis://HOST:PORT/DB?prefix=NAME")
    return EmbeddedStore(Path(text), params, tool_version, checks)


class EmbeddedStore:
    def __init__(self, path: Path, params: dict, tool_version: str, checks: Path | None = None) -> None:
        self.path = path
        self.params = params
        self.tool_version = tool_version
        self.checks = FileChecks(checks)

    @property
    def location(self) -> str:
        return str(self.path)

    # -- reading ---------------------------------------------------------------------------------

    def exists(self) -> bool:
        return (self.path / MANIFEST).is_file()

    def manifest(self) -> dict:
        file = self.path / MANIFEST
        if not file.is_file():
            if self.path.exists() and not self.path.is_dir():
                raise IndexStoreError(f"index path {self.path} is not a directory")
            return {"format": FORMAT, "tool_version": self.tool_version, "params": self.params, "references": []}
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise IndexStoreError(f"index {self.path} is corrupt ({MANIFEST} unreadable: {exc}); "
                                  f"remove the directory and rebuild it with provscan index add") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("references"), list):
            raise IndexStoreError(f"index {self.path} has an unknown format ({str(data.get('format') if isinstance(data, dict) else data)[:40]!r}, "
                                  f"expected {FORMAT}); rebuild it with this version's provscan index add")
        _check_params(f"index {self.path}", data.get("params", {}), self.params)
        return data

    def references(self) -> list[dict]:
        return self.manifest()["references"]

    def stamp(self) -> tuple | None:
        """What changes whenever the index's content may have: the manifest's and every stored file's
        (inode, size, mtime, ctime). An add or remove replaces the manifest; any write to a stored
        file changes its ctime. None when there is no index."""
        out = []
        try:
            for file in [self.path / MANIFEST, *sorted((self.path / "refs").glob("*/*"))]:
                st = file.stat()
                out.append((str(file), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except OSError:
            return None
        return tuple(out)

    def load(self, names: list[str] | None = None) -> list[StoredReference]:
        with self._lock(shared=True):
            entries = self.references()
            if names is not None:
                by_name = {e["name"]: e for e in entries}
                missing = [n for n in names if n not in by_name]
                if missing:
                    raise IndexStoreError(f"no reference named {missing[0]!r} in index {self.path} "
                                          f"(it has: {', '.join(sorted(by_name)) or 'none'})")
                entries = [by_name[n] for n in names]
            try:
                return [self._load_one(e) for e in entries]
            finally:
                self.checks.save()

    def _load_one(self, entry: dict) -> StoredReference:
        ref_id = str(entry.get("id", ""))
        if not re.fullmatch(r"[0-9a-f]{32}", ref_id):
            raise IndexStoreError(f"index {self.path} is corrupt (bad reference id); rebuild it")
        folder = self.path / "refs" / ref_id
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            arrays = {}
            for name, info in meta["arrays"].items():
                if not re.fullmatch(r"[a-z_0-9]+", name):
                    raise ValueError(f"bad array name {name!r}")
                file = folder / f"{name}.npy"
                if not self.checks.verified(file, info["xxh3"]):
                    raise ValueError(f"{name}.npy does not match its checksum")
                exit_cleanly_on_bus_error()
                arr = np.load(file, mmap_mode="r", allow_pickle=False)
                if list(arr.shape) != info["shape"] or str(arr.dtype) != info["dtype"]:
                    raise ValueError(f"{name}.npy has shape {arr.shape} {arr.dtype}, expected {info['shape']} {info['dtype']}")
                arrays[name] = arr
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexStoreError(f"index {self.path} is corrupt (reference {entry.get('name')!r}: {exc}); "
                                  f"remove and re-add it with provscan index add") from None
        return StoredReference(meta["meta"], arrays, ref_id)

    # -- writing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, name: str = ".lock", shared: bool = False):
        import fcntl

        if shared and name == ".lock" and not self.path.exists():  # a reader of an index not made yet
            yield
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / name, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise IndexStoreError(f"cannot use index {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _no_other_writer(self) -> bool:
        """True when no writer (in this or another process) holds .writers: none has a tmp folder."""
        import fcntl

        try:
            fd = os.open(self.path / ".writers", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def add(self, ref: StoredReference) -> None:
        """Store a reference under its name, replacing one of the same name, atomically.

        On any failure (a full disk, a file size limit) it raises IndexStoreError and leaves the
        index as it was, without the files it began to write.
        """
        ref.id = uuid.uuid4().hex
        refs = self.path / "refs"
        tmp = refs / f".tmp-{ref.id}"
        final = refs / ref.id
        committed = False
        try:
            with self._lock(".writers", shared=True):  # from before tmp exists until it is renamed
                refs.mkdir(parents=True, exist_ok=True)
                tmp.mkdir()
                # A few threads: one file's fsync waits on the disk while the next is written.
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(3) as pool:
                    written = {name: pool.submit(_write_array, tmp / f"{name}.npy", array)
                               for name, array in ref.arrays.items()}
                arrays = {name: future.result() for name, future in written.items()}
                _write_synced(tmp / "meta.json", json.dumps({"meta": ref.meta, "arrays": arrays}).encode())
                with self._lock():
                    manifest, old = _with_reference(self.manifest(), ref, self.tool_version)
                    os.rename(tmp, final)
                    _fsync_dir(refs)
                    self._write_manifest(manifest)
                    committed = True
        except OSError as exc:
            raise IndexStoreError(f"cannot write index {self.path}: {exc.strerror or exc}") from None
        finally:
            if not committed:
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.rmtree(final, ignore_errors=True)
        # Committed; what follows only frees space, and a failure there is left to the next writer.
        # The manifest is read again under the lock: another writer may have committed since ours,
        # and its reference must not look like garbage.
        with contextlib.suppress(OSError, IndexStoreError), self._lock():
            for e in old:
                shutil.rmtree(refs / e["id"], ignore_errors=True)
            self._collect_garbage(self.manifest())

    def remove(self, name: str) -> None:
        with self._lock():
            manifest = self.manifest()
            gone = [e for e in manifest["references"] if e["name"] == name]
            if not gone:
                raise IndexStoreError(f"no reference named {name!r} in index {self.path}")
            manifest["references"] = [e for e in manifest["references"] if e["name"] != name]
            try:
                self._write_manifest(manifest)
            except OSError as exc:
                raise IndexStoreError(f"cannot write index {self.path}: {exc.strerror or exc}") from None
            for e in gone:
                shutil.rmtree(self.path / "refs" / e["id"], ignore_errors=True)

    def _write_manifest(self, manifest: dict) -> None:
        """Replace the manifest atomically: on OSError nothing changed (and no temp file is left)."""
        tmp = self.path / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"  # not the pid: a dead writer's file may hold it
        try:
            _write_synced(tmp, json.dumps(manifest, indent=1).encode())
            os.replace(tmp, self.path / MANIFEST)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        with contextlib.suppress(OSError):  # replaced: a failed directory sync cannot undo that
            _fsync_dir(self.path)

    def _collect_garbage(self, manifest: dict) -> None:
        """Remove what crashed writers left: temp folders and references no manifest names.

        Runs under the exclusive .lock, so no writer is committing; temp folders are removed only
        when no writer holds .writers (each holds it from before its folder exists until it is
        renamed), otherwise the next writer removes them.
        """
        live = {e["id"] for e in manifest["references"]}
        writers_idle = self._no_other_writer()
        for entry in (self.path / "refs").iterdir():
            if entry.name in live or (entry.name.startswith(".tmp-") and not writers_idle):
                continue
            shutil.rmtree(entry, ignore_errors=True)
        for stray in self.path.glob(f".{MANIFEST}.*.tmp"):
            with contextlib.suppress(OSError):
                stray.unlink()

    def disk_bytes(self, entry: dict) -> int:
        folder = self.path / "refs" / entry["id"]
        return sum(f.stat().st_size for f in folder.iterdir()) if folder.is_dir() else 0


_SUMMARY_KEYS = ("name", "source", "kind", "commit", "version", "license", "files", "fragments", "indexed",
                 "source_bytes", "includes", "preset")


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RedisStore:
    """The same index on a Redis server, for teams that share one."""

    def __init__(self, url: str, params: dict, tool_version: str) -> None:
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        prefix = query.get("prefix", ["provscan"])[0]
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", prefix):
            raise IndexStoreError(f"bad Redis prefix {prefix!r}: letters, digits, '_', '.', '-' only")
        self.url = url
        self.prefix = prefix
        self.params = params
        self.tool_version = tool_version
        self.timeout = float(query.get("timeout", ["10"])[0])
        try:
            import redis
        except ImportError:
            raise IndexStoreError("a Redis index needs the redis package: pip install 'provscan[redis]'") from None
        base = url.split("?", 1)[0]
        self._redis = redis.Redis.from_url(base, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
        self._errors = (redis.exceptions.RedisError, OSError)

    @property
    def location(self) -> str:
        return self.url

    def _key(self, *parts: str) -> bytes:
        return ":".join((self.prefix, *parts)).encode()

    @contextlib.contextmanager
    def _guard(self, doing: str):
        try:
            yield
        except self._errors as exc:
            raise IndexStoreError(f"Redis index {self.url}: {doing} failed ({str(exc).splitlines()[0][:200]})") from None

    def _lsh(self):
        from datasketch import MinHashLSH

        from signatures.lsh import band_params

        host = self._redis.connection_pool.connection_kwargs
        config = {"type": "redis", "basename": self._key("lsh"),
                  "redis": {k: host[k] for k in ("host", "port", "db", "password", "username") if host.get(k) is not None}}
        if "path" in host:
            config["redis"] = {"unix_socket_path": host["path"], "db": host.get("db", 0)}
        config["redis"]["socket_timeout"] = self.timeout
        return MinHashLSH(threshold=self.params["lsh_threshold"], num_perm=self.params["num_perm"],
                          params=band_params(self.params["lsh_threshold"], self.params["num_perm"]),
                          storage_config=config, prepickle=False)

    def _bucket_key(self, band: int, values: np.ndarray) -> bytes:
        """The Redis key of datasketch's LSH bucket for these band values, computed here so that a scan
        does not import datasketch (whose import of scipy costs more than a second of start-up):
        MinHashLSH names table j `<basename>_bucket_<j as big-endian u16>`, and a bucket that name
        plus the band's uint32 values byte-swapped (`MinHashLSH._byteswap`)."""
        return (self._key("lsh") + b"_bucket_" + struct.pack(">H", band)
                + np.asarray(values, dtype=np.uint32).byteswap().tobytes())

    def exists(self) -> bool:
        with self._guard("reading the manifest"):
            return bool(self._redis.exists(self._key("manifest")))

    def manifest(self) -> dict:
        with self._guard("reading the manifest"):
            raw = self._redis.get(self._key("manifest"))
        if raw is None:
            return {"format": FORMAT, "tool_version": self.tool_version, "params": self.params, "references": []}
        try:
            data = json.loads(raw)
        except ValueError:
            raise IndexStoreError(f"Redis index {self.url} is corrupt (manifest is not JSON); "
                                  f"delete the keys under {self.prefix}: and rebuild") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("references"), list):
            raise IndexStoreError(f"Redis index {self.url} has an unknown format; rebuild it with provscan index add")
        _check_params(f"Redis index {self.url}", data.get("params", {}), self.params)
        return data

    def references(self) -> list[dict]:
        return self.manifest()["references"]

    def load(self, names: list[str] | None = None) -> list[StoredReference]:
        entries = self.references()
        if names is not None:
            by_name = {e["name"]: e for e in entries}
            missing = [n for n in names if n not in by_name]
            if missing:
                raise IndexStoreError(f"no reference named {missing[0]!r} in Redis index {self.url}")
            entries = [by_name[n] for n in names]
        out = []
        for entry in entries:
            ref_id = entry["id"]
            with self._guard("loading a reference"):
                meta_raw = self._redis.get(self._key("ref", ref_id, "meta"))
                if meta_raw is None:
                    raise IndexStoreError(f"Redis index {self.url} is corrupt (reference {entry['name']!r} has no data); "
                                          f"remove and re-add it")
                meta = json.loads(meta_raw)
                names_ = list(meta["arrays"])
                blobs = self._redis.mget([self._key("ref", ref_id, n) for n in names_])
            arrays = {}
            for name, blob in zip(names_, blobs):
                if blob is None or _checksum(blob) != meta["arrays"][name]["xxh3"]:
                    raise IndexStoreError(f"Redis index {self.url} is corrupt (reference {entry['name']!r}, {name}); "
                                          f"remove and re-add it")
                arrays[name] = np.load(io.BytesIO(blob), allow_pickle=False)
            out.append(StoredReference(meta["meta"], arrays, ref_id))
        return out

    def add(self, ref: StoredReference) -> None:
        ref.id = uuid.uuid4().hex
        with self._guard("writing a reference"):
            arrays = {}
            pipe = self._redis.pipeline(transaction=False)
            for name, array in ref.arrays.items():
                data, arrays[name] = _array_record(array)
                pipe.set(self._key("ref", ref.id, name), data)
            pipe.set(self._key("ref", ref.id, "meta"), json.dumps({"meta": ref.meta, "arrays": arrays}))
            pipe.execute()
            lsh = self._lsh()
            from signatures.minhash import MinHasher

            hasher = MinHasher(self.params["num_perm"], self.params["seed"])
            with lsh.insertion_session(buffer_size=5000) as session:
                for fid, sig in zip(ref.arrays["indexed"], ref.arrays["sigs"]):
                    session.insert(f"{ref.id}:{int(fid)}".encode(), hasher.to_datasketch(np.asarray(sig)))
            # The manifest goes last: until it names the reference, readers do not see it.
            manifest, old = _with_reference(self.manifest(), ref, self.tool_version)
            self._redis.set(self._key("manifest"), json.dumps(manifest))
        for e in old:
            self._drop(e["id"])

    def remove(self, name: str) -> None:
        manifest = self.manifest()
        gone = [e for e in manifest["references"] if e["name"] == name]
        if not gone:
            raise IndexStoreError(f"no reference named {name!r} in Redis index {self.url}")
        manifest["references"] = [e for e in manifest["references"] if e["name"] != name]
        with self._guard("writing the manifest"):
            self._redis.set(self._key("manifest"), json.dumps(manifest))
        for e in gone:
            self._drop(e["id"])

    def _drop(self, ref_id: str) -> None:
        """Delete a reference no manifest names any more (its LSH entries, then its data)."""
        with self._guard("removing a reference"):
            meta_raw = self._redis.get(self._key("ref", ref_id, "meta"))
            if meta_raw is None:
                return
            lsh = self._lsh()
            indexed = self.load_array(ref_id, "indexed")
            with lsh.deletion_session() as session:
                for fid in indexed:
                    key = f"{ref_id}:{int(fid)}".encode()
                    if key in lsh:
                        session.remove(key)
            names = list(json.loads(meta_raw)["arrays"]) + ["meta"]
            self._redis.delete(*[self._key("ref", ref_id, n) for n in names])

    def load_array(self, ref_id: str, name: str) -> np.ndarray:
        blob = self._redis.get(self._key("ref", ref_id, name))
        return np.load(io.BytesIO(blob), allow_pickle=False) if blob else np.empty(0, dtype=np.int32)

    def candidates(self, stored: list[StoredReference], qsigs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LSH candidates from the shared tables: (query row, reference position, fragment id).

        Keys of references no loaded manifest names (half-written or removed) are ignored.
        """
        from signatures.lsh import band_params

        b, r = band_params(self.params["lsh_threshold"], self.params["num_perm"])
        position = {ref.id: i for i, ref in enumerate(stored)}
        rows, refs, fids = [], [], []
        with self._guard("querying"):
            pipe = self._redis.pipeline(transaction=False)
            for q in range(qsigs.shape[0]):
                for j in range(b):
                    pipe.smembers(self._bucket_key(j, qsigs[q, j * r:(j + 1) * r]))
            replies = pipe.execute()
        for i, members in enumerate(replies):
            for key in members:
                ref_id, _, fid = key.decode().partition(":")
                if ref_id in position:
                    rows.append(i // b)
                    refs.append(position[ref_id])
                    fids.append(int(fid))
        return (np.asarray(rows, dtype=np.int64), np.asarray(refs, dtype=np.int64), np.asarray(fids, dtype=np.int64))

    def disk_bytes(self, entry: dict) -> int:
        with self._guard("reading sizes"):
            keys = self._redis.keys(self._key("ref", entry["id"], "*"))
            return sum(self._redis.memory_usage(k) or 0 for k in keys)
