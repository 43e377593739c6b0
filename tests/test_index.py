"""The reference index: commands, equivalence with scanning sources, crash safety, concurrency,
corruption, presets, and the shared Redis store against a real redis-server."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import EXAMPLES, make_repo, scan_json, write_tree
from tests.fixtures import LOSS_BODY_TEXT, REF_ATTENTION, REF_HEADER

UPSTREAM = EXAMPLES / "upstream"
SUSPECT = EXAMPLES / "suspect"


def cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def listing(index: str | Path) -> list[dict]:
    proc = cli("index", "list", "--index", str(index), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def comparable(report: dict) -> list[tuple]:
    """What must be equal between two scans of the same code against the same references."""
    return sorted((f["id"], f["kind"], f["path"], f["start_line"], f["end_line"], f["clone_type"], f["similarity"],
                   f["reference"]["path"] if f["reference"] else None,
                   f["reference"]["start_line"] if f["reference"] else None,
                   f["attribution"]["status"] if f["attribution"] else None) for f in report["findings"])


def test_add_list_info_remove_round_trip(tmp_path):
    index = tmp_path / "idx"
    proc = cli("index", "add", "tinylm", str(UPSTREAM), "--index", str(index))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("added tinylm (") and "4 files" in proc.stdout
    assert cli("index", "add", "zoo", str(SUSPECT), "--index", str(index), "--include", "acmelm/norm.py").returncode == 0
    rows = {r["name"]: r for r in listing(index)}
    assert set(rows) == {"tinylm", "zoo"}
    assert rows["tinylm"]["license"] == "Apache-2.0" and rows["tinylm"]["files"] == 4
    assert rows["zoo"]["files"] == 1 and rows["zoo"]["includes"] == ["acmelm/norm.py"]
    assert all(r["bytes"] > 0 and r["fragments"] > 0 for r in rows.values())
    text = cli("index", "list", "--index", str(index)).stdout
    assert text.splitlines()[0].split() == ["name", "source", "resolved", "licence", "files", "fragments", "bytes"]
    info = json.loads(cli("index", "info", "--index", str(index), "--format", "json").stdout)
    assert info["references"] == 2 and info["params"]["k"] == 5 and info["params"]["scheme"] == "affine32"
    # Re-adding a name replaces it.
    assert cli("index", "add", "zoo", str(SUSPECT), "--index", str(index)).returncode == 0
    assert {r["name"]: r["files"] for r in listing(index)}["zoo"] == 10
    assert cli("index", "remove", "zoo", "--index", str(index)).returncode == 0
    assert [r["name"] for r in listing(index)] == ["tinylm"]
    assert len(list((index / "refs").iterdir())) == 1  # the removed reference's files are gone
    proc = cli("index", "remove", "zoo", "--index", str(index))
    assert proc.returncode == 2 and "no reference named 'zoo'" in proc.stderr


def test_scan_against_index_equals_scan_against_sources(tmp_path):
    index = tmp_path / "idx"
    assert cli("index", "add", "upstream", str(UPSTREAM), "--index", str(index)).returncode == 0
    _, direct = scan_json(tmp_path, SUSPECT, UPSTREAM)
    _, via_index = scan_json(tmp_path, SUSPECT, args=("--index", str(index)))
    _, named = scan_json(tmp_path, SUSPECT, "upstream", args=("--index", str(index)))
    assert comparable(direct) == comparable(via_index) == comparable(named)
    assert len(direct["findings"]) == 16
    assert via_index["references"][0]["name"] == "upstream"
    proc = cli("scan", str(SUSPECT), "--index", str(index), "--reference", "nope")
    assert proc.returncode == 2 and "no reference named 'nope'" in proc.stderr


def test_source_reference_is_fingerprinted_once(tmp_path):
    repo = tmp_path / "ref"
    commit = make_repo(repo, copy_from=UPSTREAM)
    cache = tmp_path / "cache"
    spec = f"file://{repo}@{commit}"
    _, first = scan_json(tmp_path, SUSPECT, spec, args=("--cache-dir", str(cache)))
    entries = list((cache / "references").iterdir())
    assert len(entries) == 1
    stamp = (entries[0] / "provscan-index.json").stat().st_mtime_ns
    shutil.rmtree(repo)  # the origin is gone: the commit-keyed clone and the fingerprints answer
    _, second = scan_json(tmp_path, SUSPECT, spec, args=("--cache-dir", str(cache)))
    assert comparable(first) == comparable(second) and len(first["findings"]) == 16
    assert list((cache / "references").iterdir()) == entries
    assert (entries[0] / "provscan-index.json").stat().st_mtime_ns == stamp
    assert first["references"][0]["commit"] == commit


def _big_reference(root: Path, files: int) -> Path:
    """A reference large enough that `index add` takes a while (to kill it mid-way)."""
    body = REF_HEADER + REF_ATTENTION
    return write_tree(root, {f"pkg/mod_{i}/layer_{i}.py": body.replace("OrbitAttention", f"Orbit{i}Attention")
                             for i in range(files)})


# kill -9 of `index add` at random points: tests/test_faults.py


def test_concurrent_index_adds_do_not_corrupt(tmp_path):
    index = tmp_path / "idx"
    procs = [subprocess.Popen([sys.executable, "-m", "scanner", "index", "add", f"ref{i}", str(UPSTREAM),
                               "--index", str(index)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert sorted(r["name"] for r in listing(index)) == ["ref0", "ref1", "ref2", "ref3"]
    _, rep = scan_json(tmp_path, SUSPECT, "ref2", args=("--index", str(index)))
    assert len(rep["findings"]) == 16


def test_readers_during_a_write_see_a_consistent_index(tmp_path):
    index = tmp_path / "idx"
    assert cli("index", "add", "first", str(UPSTREAM), "--index", str(index)).returncode == 0
    big = _big_reference(tmp_path / "big", 200)
    writer = subprocess.Popen([sys.executable, "-m", "scanner", "index", "add", "second", str(big), "--index",
                               str(index)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = set()
    while writer.poll() is None:
        proc = cli("scan", str(SUSPECT), "--index", str(index), "--format", "json", "--fail-on", "never")
        assert proc.returncode == 0, proc.stderr
        seen.add(tuple(sorted(r["name"] for r in json.loads(proc.stdout)["references"])))
    assert writer.returncode == 0
    assert seen <= {("first",), ("first", "second")}


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "params", "format"])
def test_damaged_index_exits_2_with_advice(tmp_path, damage):
    index = tmp_path / "idx"
    assert cli("index", "add", "upstream", str(UPSTREAM), "--index", str(index)).returncode == 0
    (ref_dir,) = (index / "refs").iterdir()
    manifest = index / "provscan-index.json"
    if damage == "truncate":
        data = (ref_dir / "sigs.npy").read_bytes()
        (ref_dir / "sigs.npy").write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data = bytearray((ref_dir / "frags.npy").read_bytes())
        data[-3] ^= 0x55
        (ref_dir / "frags.npy").write_bytes(bytes(data))
    elif damage == "manifest":
        manifest.write_text("{not json")
    else:
        doc = json.loads(manifest.read_text())
        if damage == "params":
            doc["params"]["k"] = 7
        else:
            doc["format"] = "provscan-index/99"
        manifest.write_text(json.dumps(doc))
    proc = cli("scan", str(SUSPECT), "--index", str(index))
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and str(index) in line
    assert {"truncate": "corrupt", "flip": "checksum", "manifest": "corrupt", "params": "k=7",
            "format": "unknown format"}[damage] in line
    assert any(word in line for word in ("rebuild", "re-add"))


def test_stored_array_files_are_what_np_save_writes(tmp_path):
    """Arrays are written header + body without a copy in memory: the same bytes as np.save (as the
    Redis values are), and the checksum recorded for them is that of the file."""
    import io

    import signatures.store as store

    arrays = [np.arange(10, dtype=np.uint64), np.zeros((0, 128), np.uint32), np.arange(12, dtype=np.int32).reshape(3, 4),
              np.frombuffer(b'{"a": 1}', np.uint8), np.zeros((2, 0), np.int64), np.arange(20, dtype=np.int64)[::2]]
    for i, array in enumerate(arrays):
        record = store._write_array(tmp_path / f"{i}.npy", array)
        data, expected = store._array_record(array)
        saved = io.BytesIO()
        np.save(saved, array, allow_pickle=False)
        assert (tmp_path / f"{i}.npy").read_bytes() == data == saved.getvalue() and record == expected, i
        assert np.array_equal(np.load(tmp_path / f"{i}.npy", allow_pickle=False), array)
        assert record["xxh3"] == store._checksum(tmp_path / f"{i}.npy")


def test_checked_index_files_are_not_reread_until_they_change(tmp_path, monkeypatch):
    import signatures.store as store
    from scanner.pipeline import ScanOptions, load_references

    index = tmp_path / "idx"
    assert cli("index", "add", "upstream", str(UPSTREAM), "--index", str(index)).returncode == 0
    read = []
    real = store._checksum
    monkeypatch.setattr(store, "_checksum", lambda file: read.append(file) or real(file))
    options = ScanOptions(index=str(index))
    load_references([], options)
    first = len(read)
    load_references([], options)
    assert first > 0 and len(read) == first  # the second load trusts the recorded checks
    # A same-size change with its modification time put back is still caught (its ctime moved).
    (ref_dir,) = (index / "refs").iterdir()
    target = ref_dir / "frags.npy"
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x55
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    proc = cli("scan", str(SUSPECT), "--index", str(index))
    assert proc.returncode == 2 and "checksum" in proc.stderr


def test_presets_are_shipped_and_usable_offline(tmp_path, monkeypatch):
    data = json.loads(cli("index", "presets", "--format", "json").stdout)
    assert {"qwen", "llama", "mistral", "deepseek", "gemma", "transformers"} <= set(data)
    for spec in data.values():
        assert spec["source"].startswith("pypi:") and "==" in spec["source"]  # pinned
    # A stand-in "transformers" wheel built here, served from a local directory (no network).
    version = data["qwen"]["source"].split("==")[1]
    proj = write_tree(tmp_path / "fake", {
        "pyproject.toml": f"""\
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "transformers"
            version = "{version}"
            [tool.setuptools.packages.find]
            include = ["transformers*"]
            """,
        "transformers/__init__.py": "",
        "transformers/models/__init__.py": "",
        "transformers/models/qwen2/__init__.py": "",
        "transformers/models/qwen2/modeling_qwen2.py": REF_HEADER + REF_ATTENTION,
        "transformers/models/llama/__init__.py": "",
        "transformers/models/llama/modeling_llama.py": REF_HEADER + LOSS_BODY_TEXT,
    })
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(dist), str(proj)],
                   check=True, capture_output=True)
    env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(dist), "PROVSCAN_CACHE_DIR": str(tmp_path / "cache")}
    index = tmp_path / "idx"
    proc = cli("index", "add", "--preset", "qwen", "--index", str(index), env=env)
    assert proc.returncode == 0, proc.stderr
    (row,) = listing(index)
    # qwen2/__init__.py and modeling_qwen2.py; not the llama folder
    assert (row["name"], row["preset"], row["version"], row["files"]) == ("qwen", "qwen", version, 2)
    assert cli("index", "add", "--preset", "nope", "--index", str(index)).returncode == 2


def test_redis_index_gives_the_same_findings(tmp_path, redis_server):
    url = f"{redis_server.url}?prefix=t{random.randrange(10**9)}"
    proc = cli("index", "add", "upstream", str(UPSTREAM), "--index", url)
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in listing(url)] == ["upstream"]
    embedded = tmp_path / "idx"
    assert cli("index", "add", "upstream", str(UPSTREAM), "--index", str(embedded)).returncode == 0
    _, via_redis = scan_json(tmp_path, SUSPECT, args=("--index", url))
    _, via_disk = scan_json(tmp_path, SUSPECT, args=("--index", str(embedded)))
    assert comparable(via_redis) == comparable(via_disk) and len(via_redis["findings"]) == 16
    # No value the shared server holds is ever unpickled: LSH keys are our own "<id>:<fragment>" bytes.
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    prefix = url.split("prefix=")[1]
    keys = client.keys(f"{prefix}:lsh_bucket_*".encode())
    assert keys and all(m.decode().split(":")[1].isdigit() for m in client.smembers(keys[0]))
    assert cli("index", "remove", "upstream", "--index", url).returncode == 0
    assert listing(url) == []
    assert client.keys(f"{prefix}:ref:*".encode()) == []


def test_redis_unreachable_exits_2(tmp_path):
    from tests.conftest import free_port

    url = f"redis://127.0.0.1:{free_port()}/0?prefix=x&timeout=2"
    proc = cli("scan", str(SUSPECT), "--index", url)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "Redis index" in line and "failed" in line
    proc = cli("index", "add", "upstream", str(UPSTREAM), "--index", url)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_redis_bucket_keys_are_datasketchs():
    """A scan computes datasketch's LSH bucket keys itself (not importing datasketch): the same bytes."""
    import numpy as np

    from scanner.fingerprint import Params
    from signatures.lsh import band_params
    from signatures.store import RedisStore

    store = RedisStore("redis://127.0.0.1:1/0?prefix=keys", Params().index_key(), "test")
    lsh = store._lsh()
    _, r = band_params(store.params["lsh_threshold"], store.params["num_perm"])
    sig = np.random.default_rng(5).integers(0, 1 << 32, store.params["num_perm"], dtype=np.uint64).astype(np.uint32)
    for j, table in enumerate(lsh.hashtables):
        band = sig[j * r:(j + 1) * r]
        assert store._bucket_key(j, band) == table.redis_key(lsh._H(np.asarray(band, dtype=np.uint32)))


# Redis killed mid-write and mid-scan: tests/test_faults.py


def test_a_damaged_default_index_does_not_affect_scans_against_sources(tmp_path):
    cache = Path(os.environ["PROVSCAN_CACHE_DIR"])
    (cache / "index").mkdir(parents=True)
    (cache / "index" / "provscan-index.json").write_text("garbage")
    _, rep = scan_json(tmp_path, SUSPECT, UPSTREAM)
    assert len(rep["findings"]) == 16
    proc = cli("scan", str(SUSPECT))  # uses the default index: now it matters
    assert proc.returncode == 2 and "corrupt" in proc.stderr
