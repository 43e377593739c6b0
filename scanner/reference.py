"""References: a fingerprinted tree turned into a stored reference, and the read-only view of a
stored reference that matching, attribution and reports use.

A reference is fingerprinted exactly like a scanned tree (same pipeline), then flattened: its
units' token hashes end to end, one row per fragment, one MinHash row per indexed fragment, the
LSH band keys, the document frequencies of its shingles, and JSON metadata (file licences and
copyright lines, symbols, the Copied-from notes of its own fragments).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from scanner.artifacts import Artifacts, from_record, to_record
from scanner.attribute import ReferenceTerms, url_key
from scanner.fingerprint import Params, UnitPrints
from scanner.licenses import Copyright
from scanner.parse import Fragment
from signatures.lsh import BandTable, band_keys, band_params
from signatures.shingles import range_index
from signatures.store import StoredReference

KINDS = ("module", "cell", "class", "function", "method", "section")  # codes are stored: append only
# Only like is compared with like: module with module, class with class, function or method
# with function or method, a config section with a config section. A module whose bulk is one
# copied class is explained by the class, not by "this module resembles that class".
LEVELS = (0, 0, 1, 2, 2, 3)
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
# Columns of the "frags" array.
_UNIT, _KIND, _START, _END, _TOK_START, _TOK_END, _PARENT = range(7)


def fragment_rows(fragments: list[Fragment]) -> np.ndarray:
    """A unit's fragments as int64 rows: kind code, start line, end line, token start, token end,
    parent (-1: none), in the unit's own numbering (build_stored offsets them)."""
    rows = np.asarray([(_KIND_CODE[f.kind], f.start_line, f.end_line, f.tok_start, f.tok_end,
                        -1 if f.parent is None else f.parent) for f in fragments], dtype=np.int64)
    return rows.reshape(-1, 6)


def document_frequency(prints) -> tuple[np.ndarray, np.ndarray, int]:
    """For each abstract shingle, in how many distinct functions/methods it occurs.

    Functions with identical abstract token sequences (renamed copies) count once, so code
    copied into many places does not become "boilerplate".
    """
    seen: set[bytes] = set()
    first = []  # for each function of every unit, in order: the first with its token sequence?
    for pr in prints:
        for key in pr.function_keys:
            first.append(key not in seen)
            seen.add(key)
    distinct = sum(first)
    if not distinct:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.uint32), 0
    # Each unit's run ends, made global (offset by the shingles of the units before), give every
    # function's run length; one mask then keeps the runs of first occurrences.
    per_unit = [len(pr.function_keys) for pr in prints]
    unit_starts = np.cumsum([0] + [len(pr.function_shingles) for pr in prints])[:-1]
    ends = np.concatenate([pr.function_ends for pr in prints]) + np.repeat(unit_starts, per_unit)
    lengths = np.diff(ends, prepend=0)
    shingles = np.concatenate([pr.function_shingles for pr in prints])
    values, counts = np.unique(shingles[np.repeat(np.asarray(first), lengths)], return_counts=True)
    return values, counts.astype(np.uint32), distinct


def build_stored(tree, params: Params, *, includes: list[str] | None = None, preset: str | None = None,
                 tool_version: str = "") -> StoredReference:
    """Flatten a fingerprinted tree (scanner.pipeline.Tree) into a StoredReference."""
    from scanner.acquire import redact

    from concurrent.futures import ThreadPoolExecutor

    units, prints = tree.units, tree.prints
    # The token arrays (115 MB for transformers) are joined on a second thread while this one does
    # the Python part below: numpy copies without holding the GIL.
    joiner = ThreadPoolExecutor(1)
    tokens = {name: joiner.submit(_join, prints, name, dtype)
              for name, dtype in (("abs_tok", np.uint64), ("con_tok", np.uint64), ("lines", np.int32))}
    joiner.shutdown(wait=False)
    offsets = np.cumsum([0] + [len(p.abs_tok) for p in prints])
    counts = [len(p.fragment_rows) for p in prints]
    bases = np.cumsum([0] + counts)
    unit_of = np.repeat(np.arange(len(units), dtype=np.int64), counts)
    frags = np.zeros((int(bases[-1]), 7), dtype=np.int64)
    if len(frags):
        frags[:, _UNIT] = unit_of
        frags[:, _KIND:] = np.concatenate([p.fragment_rows for p in prints])
        frags[:, _TOK_START] += offsets[unit_of]
        frags[:, _TOK_END] += offsets[unit_of]
        has_parent = frags[:, _PARENT] >= 0
        frags[has_parent, _PARENT] += bases[unit_of[has_parent]]
    symbols = [s for p in prints for s in p.symbols]
    notes = {str(int(bases[ui]) + fi): list(note) for ui, p in enumerate(prints) for fi, note in p.notes.items()}
    unit_meta = []
    for unit in units:
        info = tree.file_info.get(unit.path)
        unit_meta.append([unit.path, unit.cell, info.spdx if info else None,
                          [[c.line, c.text, c.holder] for c in info.copyrights] if info else []])
    groups = _groups(frags, [key for p in prints for key in p.fragment_keys])
    # Identical fragments (same abstract tokens) have identical signatures: only the group's
    # first fragment goes into the LSH; matching expands a group to its members.
    eligible = np.concatenate([bases[ui] + p.eligible for ui, p in enumerate(prints)]).astype(np.int64) \
        if prints else np.empty(0, dtype=np.int64)
    all_sigs = np.vstack([p.sigs for p in prints]) if prints else np.empty((0, params.num_perm), dtype=np.uint32)
    first_of_group = groups[eligible] == eligible
    indexed = eligible[first_of_group]
    sigs = all_sigs[first_of_group]
    member_fids = np.argsort(groups, kind="stable").astype(np.int32)
    b, r = band_params(params.lsh_threshold, params.num_perm)
    table = BandTable.build(band_keys(sigs, b, r), indexed.astype(np.int32))
    df_values, df_counts, distinct = document_frequency(prints)
    a = tree.acquired
    meta = {
        "name": tree.name, "source": redact(a.source), "kind": a.kind, "commit": a.commit, "version": a.version,
        "url": redact(a.url) if a.url else None, "acquired_name": a.name, "license": tree.license,
        "repo_licenses": tree.repo_licenses, "packages": sorted(tree.packages), "homepages": sorted(tree.homepages),
        "files": tree.files, "fragments": len(frags), "indexed": len(eligible),
        "distinct_indexed": len(indexed),
        "source_bytes": tree.source_bytes,
        "skipped": len(tree.skipped), "includes": includes or [], "preset": preset, "df_distinct": distinct,
        "params": params.index_key(), "tool_version": tool_version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "units": unit_meta, "symbols": symbols, "notes": notes,
    }
    arrays = {
        **{name: future.result() for name, future in tokens.items()},
        "frags": frags,
        "indexed": indexed.astype(np.int32), "sigs": sigs.astype(np.uint32),
        "band_keys": table.keys, "band_ids": table.ids,
        "df_values": df_values, "df_counts": df_counts, "groups": groups,
        "member_fids": member_fids, "member_reps": groups[member_fids],
        # Model configs, tokenizers and weights, as one JSON record (scanner.artifacts).
        "artifacts": np.frombuffer(to_record(tree.artifacts), dtype=np.uint8),
    }
    return StoredReference(meta, arrays)


def _join(prints, name: str, dtype) -> np.ndarray:
    return np.concatenate([getattr(p, name) for p in prints]).astype(dtype, copy=False) if prints else np.empty(0, dtype)


def _groups(frags: np.ndarray, keys: list[bytes]) -> np.ndarray:
    """Representative (first) fragment id of each fragment's group: same comparison level and
    identical abstract token sequence (keys: xxh3-128 of each fragment's abstract tokens; a file
    holding one function has that function's tokens, but a module is never compared with a function)."""
    first: dict[tuple[int, bytes], int] = {}
    levels = np.asarray(LEVELS)[frags[:, _KIND]].tolist()
    return np.fromiter((first.setdefault(pair, fid) for fid, pair in enumerate(zip(levels, keys))),
                       dtype=np.int32, count=len(keys))


@dataclass(frozen=True)
class FileNotice:
    spdx: str | None
    copyrights: list[Copyright]


class Reference:
    """Read-only view of a stored reference (memory-mapped arrays stay on disk until touched)."""

    def __init__(self, stored: StoredReference, display_name: str | None = None, via_redis: bool = False) -> None:
        self.stored = stored
        self.via_redis = via_redis  # its LSH candidates come from the shared Redis tables
        self.root = None  # its source tree, when this run acquired it (reports quote its code)
        self.meta = stored.meta
        self.name = display_name or stored.meta["name"]
        # Plain ndarray views of the memory-mapped arrays: still paged in lazily, without numpy.memmap's
        # per-access overhead (millions of small reads during matching).
        a = {name: np.asarray(array) for name, array in stored.arrays.items()}
        self.arrays = a
        self.prints = UnitPrints(a["abs_tok"], a["con_tok"], a["lines"])
        self.frags = a["frags"]
        self._validate()

    def _validate(self) -> None:
        """A tampered index must give a clear error, not an IndexError deep in matching."""
        from signatures.store import IndexStoreError

        a, m = self.arrays, self.meta
        n_tok, n_frag = len(a["abs_tok"]), len(self.frags)
        ok = (len(a["con_tok"]) == n_tok == len(a["lines"]) and len(m["symbols"]) == n_frag == len(a["groups"])
              and a["sigs"].shape[0] == len(a["indexed"]) and a["band_ids"].shape == a["band_keys"].shape)
        if ok and n_frag:
            f = np.asarray(self.frags)
            ok = (f[:, _TOK_START].min() >= 0 and f[:, _TOK_END].max() <= n_tok and f[:, _UNIT].max() < len(m["units"])
                  and (f[:, _KIND] < len(KINDS)).all() and f[:, _PARENT].max() < n_frag)
        if ok and len(a["indexed"]):
            ok = a["indexed"].max() < n_frag and a["band_ids"].max() < n_frag and a["groups"].max() < n_frag
        if ok and n_frag:
            ok = len(a["member_fids"]) == n_frag and a["member_fids"].max() < n_frag
        if not ok:
            raise IndexStoreError(f"reference {self.name!r} in the index is inconsistent; remove and re-add it")

    # -- what attribution and reports need ---------------------------------------------------------

    @property
    def license(self) -> str | None:
        return self.meta.get("license")

    @property
    def packages(self) -> set[str]:
        return set(self.meta.get("packages", []))

    @cached_property
    def repo_holders(self) -> list[str]:
        return [c for doc in self.meta.get("repo_licenses", []) for c in doc.get("copyright", [])]

    @cached_property
    def _files(self) -> dict[str, FileNotice]:
        out = {}
        for path, _cell, spdx, copyrights in self.meta["units"]:
            if path not in out:
                out[path] = FileNotice(spdx, [Copyright(line, text, None, holder) for line, text, holder in copyrights])
        return out

    def warm(self) -> None:
        """Compute what scans derive from the arrays (the hook server does it once for its children)."""
        for name in ("repo_holders", "_files", "signature_row", "signature_bytes", "levels", "artifacts", "band_table",
                     "rank_columns", "member_reps", "member_fids"):
            getattr(self, name)

    def file_notice(self, path: str) -> FileNotice | None:
        return self._files.get(path)

    def terms(self) -> ReferenceTerms:
        m = self.meta
        names = {self.name, m.get("name"), m.get("acquired_name")} | self.packages
        urls = set(m.get("homepages", []))
        if m.get("kind") in ("git", "hf") and m.get("url"):
            urls.add(url_key(m["url"]))
        if m.get("kind") == "pypi" and m.get("acquired_name"):
            urls.add(f"pypi.org/project/{m['acquired_name'].lower()}")
        if "/" in (m.get("acquired_name") or ""):
            names.add(m["acquired_name"].split("/")[-1])
        return ReferenceTerms({n for n in names if n}, urls)

    def summary(self) -> dict:
        m = self.meta
        return {"source": m["source"], "commit": m.get("commit"), "version": m.get("version"), "files": m["files"],
                "fragments": m["fragments"], "name": self.name, "license": m.get("license"),
                "indexed_fragments": m["indexed"]}

    # -- what matching needs ------------------------------------------------------------------------

    def fragment(self, fid: int) -> tuple[str, int | None, Fragment]:
        """(path, cell, fragment) of fragment fid; token offsets index self.prints."""
        unit, kind, start, end, tok_start, tok_end, parent = self.frags[fid].tolist()
        path, cell = self.meta["units"][unit][:2]
        return path, cell, Fragment(KINDS[kind], self.meta["symbols"][fid], start, end, tok_start, tok_end,
                                    None if parent < 0 else parent, 0)

    def copied_note(self, fid: int) -> tuple[int, str] | None:
        note = self.meta["notes"].get(str(fid))
        return (note[0], note[1]) if note else None

    @cached_property
    def signature_row(self) -> np.ndarray:
        """For each fragment id, its row in self.arrays["sigs"] (int32; -1: not indexed)."""
        rows = np.full(len(self.frags), -1, dtype=np.int32)
        rows[self.arrays["indexed"]] = np.arange(len(self.arrays["indexed"]), dtype=np.int32)
        return rows

    @cached_property
    def signature_bytes(self) -> np.ndarray:
        """The low byte of every signature value: equal values have equal low bytes, so agreement
        counted on these is never below the true agreement, at a quarter of the memory traffic."""
        return np.ascontiguousarray(np.asarray(self.arrays["sigs"]).astype(np.uint8))

    @cached_property
    def levels(self) -> np.ndarray:
        """Comparison level of every fragment: 0 module/cell, 1 class, 2 function/method."""
        return np.asarray(LEVELS, dtype=np.int8)[self.frags[:, _KIND]] if len(self.frags) else np.empty(0, np.int8)

    @property
    def groups(self) -> np.ndarray:
        """For each fragment, the first fragment with the same abstract token sequence."""
        return self.arrays["groups"]

    @cached_property
    def member_reps(self) -> np.ndarray:
        """For each fragment id in member_fids order, its group's representative (sorted): int32."""
        return np.ascontiguousarray(self.arrays["member_reps"], dtype=np.int32)

    @cached_property
    def member_fids(self) -> np.ndarray:
        """Fragment ids ordered by group (int32): the members of a group are consecutive."""
        return np.ascontiguousarray(self.arrays["member_fids"], dtype=np.int32)

    def members(self, reps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fragments identical to (in the group of) each of fragments reps, each rep included:
        (their ids, group after group, and how many each group has)."""
        member_reps = self.member_reps
        keys = np.asarray(reps).astype(member_reps.dtype)
        lo, hi = member_reps.searchsorted(keys, "left"), member_reps.searchsorted(keys, "right")
        counts = hi - lo
        return self.member_fids[range_index(lo, counts)].astype(np.int64), counts

    @cached_property
    def rank_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per fragment, what orders equally similar copies (scanner.match): whether it has its own
        Copied-from note, its path's rank among the reference's paths, its start line."""
        noted = np.zeros(len(self.frags), dtype=bool)
        notes = self.meta["notes"]
        noted[[int(fid) for fid, note in notes.items() if note]] = True
        paths = [unit[0] for unit in self.meta["units"]]
        rank = {path: i for i, path in enumerate(sorted(set(paths)))}
        unit_rank = np.asarray([rank[path] for path in paths], dtype=np.int64)
        return noted, unit_rank[self.frags[:, _UNIT]], np.ascontiguousarray(self.frags[:, _START])

    @cached_property
    def artifacts(self) -> Artifacts:
        """Its model configs, tokenizers and weights (none in an index built before they were kept)."""
        record = self.arrays.get("artifacts")
        return Artifacts() if record is None else from_record(np.asarray(record).tobytes())

    @cached_property
    def band_table(self) -> BandTable:
        return BandTable(self.arrays["band_keys"], self.arrays["band_ids"])
