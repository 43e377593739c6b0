"""`provscan index add|list|remove|info`: fingerprint references once, store them, reuse them.

The same pipeline as a scan fingerprints a reference (acquire -> walk -> parse -> fingerprint),
then `scanner.reference.build_stored` flattens it into the store (signatures/store.py).
"""

from __future__ import annotations

import json
import re
import time
from functools import lru_cache

from scanner import __version__
from scanner.acquire import acquire
from scanner.errors import UsageError
from scanner.pipeline import ScanOptions, load_tree, store_for
from scanner.reference import build_stored
from signatures.store import EmbeddedStore

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@lru_cache(maxsize=1)
def presets() -> dict[str, dict]:
    import tomllib
    from importlib.resources import files

    return tomllib.loads(files("scanner").joinpath("data/presets.toml").read_text(encoding="utf-8"))


def add(options: ScanOptions, name: str | None, source: str | None, includes: list[str], preset: str | None,
        status=None) -> dict:
    if preset is not None:
        if preset not in presets():
            raise UsageError(f"unknown preset {preset!r}; presets: {', '.join(sorted(presets()))}")
        spec = presets()[preset]
        name = name or preset
        source = source or spec["source"]
        includes = includes or list(spec.get("include", []))
    if not name or not source:
        raise UsageError("provscan index add: give NAME and REF, or --preset NAME")
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"bad reference name {name!r}: letters, digits, '.', '_', '-' (at most 64)")
    store = store_for(options)
    store.manifest()  # a corrupt or mismatched index fails before the long fingerprinting
    started = time.monotonic()
    acquired = acquire(source, options.cache_dir, timeout=options.timeout)
    tree = load_tree(acquired, name, options, status, includes, as_reference=True)
    if not tree.units:
        raise UsageError(f"no Python files in {source}" + (f" matching {', '.join(includes)}" if includes else ""))
    stored = build_stored(tree, options.params, includes=includes, preset=preset, tool_version=__version__)
    if status:
        status(f"writing {name} to {store.location}")
    store.add(stored)
    meta = stored.meta
    return {"name": name, "source": meta["source"], "commit": meta["commit"], "version": meta["version"],
            "license": meta["license"], "files": meta["files"], "fragments": meta["fragments"],
            "indexed": meta["indexed"], "seconds": round(time.monotonic() - started, 2), "index": store.location}


def listing(options: ScanOptions) -> list[dict]:
    store = store_for(options)
    rows = []
    for e in store.references():
        rows.append({**e, "bytes": store.disk_bytes(e)})
    return rows


def info(options: ScanOptions) -> dict:
    store = store_for(options)
    manifest = store.manifest()
    refs = manifest["references"]
    return {"index": store.location, "backend": "embedded" if isinstance(store, EmbeddedStore) else "redis",
            "exists": store.exists(), "format": manifest["format"], "tool_version": manifest.get("tool_version"),
            "params": manifest["params"], "references": len(refs),
            "files": sum(e.get("files") or 0 for e in refs), "fragments": sum(e.get("fragments") or 0 for e in refs),
            "indexed": sum(e.get("indexed") or 0 for e in refs),
            "bytes": sum(store.disk_bytes(e) for e in refs)}


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render_listing(rows: list[dict], fmt: str) -> str:
    from reports.text import inert

    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if not rows:
        return "no references (add one: provscan index add NAME SOURCE, or --preset NAME)\n"
    table = [("name", "source", "resolved", "licence", "files", "fragments", "bytes")]
    for r in rows:
        resolved = (r.get("commit") or "")[:12] or r.get("version") or "-"
        table.append((r["name"], r["source"], resolved, r.get("license") or "-", str(r.get("files")),
                      str(r.get("fragments")), _size(r["bytes"])))
    widths = [max(len(inert(row[i])) for row in table) for i in range(len(table[0]))]
    return "".join("  ".join(inert(c).ljust(w) for c, w in zip(row, widths)).rstrip() + "\n" for row in table)


def render_info(data: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    p = data["params"]
    return (f"index: {data['index']} ({data['backend']}{'' if data['exists'] else ', empty'})\n"
            f"format: {data['format']}, written by provscan {data['tool_version']}\n"
            f"fingerprints: {p['scheme']} MinHash, {p['num_perm']} permutations, seed {p['seed']}, k={p['k']}, "
            f"LSH threshold {p['lsh_threshold']}, fragments of at least {p['min_tokens']} tokens and {p['min_lines']} lines\n"
            f"references: {data['references']}, files: {data['files']}, fragments: {data['fragments']} "
            f"({data['indexed']} indexed), size: {_size(data['bytes'])}\n")
